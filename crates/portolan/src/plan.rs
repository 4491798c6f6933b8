//! Resolving parsed options into the engine's [`ScanPlan`]: targets parsed (and hostnames
//! resolved), excludes built, ports chosen, timing settled, data files loaded. Nothing is
//! opened here (outputs are [`crate::outputs`]'s) and nothing is sent; every user error in
//! the options surfaces here.

use crate::args::{Dns, Options, ScanKind};
use anyhow::{bail, Result};
use chrono::{DateTime, Local};
use portolan_engine::core::permutation::Shard;
use portolan_engine::core::scan::{Share, Slot};
use portolan_engine::data::datadir::{load_services, Source};
use portolan_engine::data::macvendor::load_mac_prefixes;
use portolan_engine::data::payloads::{load_payloads, PayloadTable};
use portolan_engine::data::services::ServiceTable;
use portolan_engine::plan::ports::{parse_port_spec, PortSet, Protos};
use portolan_engine::plan::targets::{
    parse_exclude_arg, parse_target, parse_target_list, read_target_file, ExcludeSet,
    SystemResolver, TargetError, TargetSpec,
};
use portolan_engine::plan::timing::Timing;
use portolan_engine::plan::{Discovery, OsPlan, ScanPlan, Targets, VersionPlan};
use portolan_engine::stages::version::VersionOptions;
use portolan_model::OutputOptions;
use portolan_probes::ProbeDb;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Hosts port-scanned at once unless --min/max-hostgroup say otherwise.
const DEFAULT_HOST_GROUP: usize = 64;

/// Loads the probe database for -sV: Nmap's where installed (as Nmap, unless
/// --builtin-data), else Portolan's own. Malformed lines are reported and skipped.
fn version_plan(o: &Options, datadir: Option<&Path>) -> Result<Option<VersionPlan>> {
    if !o.version {
        return Ok(None);
    }
    let installed = if o.builtin_data {
        None
    } else {
        portolan_engine::data::datadir::find_data_file("nmap-service-probes", datadir)
    };
    let (db, errors, from) = match installed {
        Some(path) => match ProbeDb::load(&path) {
            Ok((db, errors)) => (db, errors, path.display().to_string()),
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        },
        None => {
            let (db, errors) = portolan_probes::builtin();
            (db, errors, "Portolan's built-in probes".to_string())
        }
    };
    for e in errors.iter().take(5) {
        eprintln!("WARNING: {from}: {e}");
    }
    if errors.len() > 5 {
        eprintln!(
            "WARNING: {from}: {} more malformed lines skipped",
            errors.len() - 5
        );
    }
    let tls = portolan_engine::stages::version::tls_connector()
        .map_err(|e| anyhow::anyhow!("cannot set up TLS for -sV: {e}"))?;
    Ok(Some(VersionPlan {
        db: Arc::new(db),
        opts: VersionOptions {
            intensity: o
                .version_intensity
                .unwrap_or(portolan_probes::INTENSITY_DEFAULT),
            connect_timeout: Duration::from_secs(5),
            trace: o.version_trace,
        },
        all_ports: o.all_ports,
        tls,
    }))
}

/// A resolved scan: the engine's plan and what the CLI itself needs.
pub struct Resolved {
    pub plan: ScanPlan,
    /// The start time, for the report and `%D`-style output names.
    pub start: DateTime<Local>,
    /// --stats-every.
    pub stats_every: Option<Duration>,
    /// --packet-trace.
    pub packet_trace: bool,
    /// With --shard: the part this run records in the store (identity, K, N).
    pub shard_part: Option<portolan_store::ShardPart>,
}

impl Resolved {
    pub fn resolve(o: &Options, argv: &[String]) -> Result<Resolved> {
        let o = o.clone();
        let start = Local::now();
        // As Nmap: a SYN scan by default when raw sockets are allowed, else connect.
        // Why raw sockets cannot be used; each use below says what works instead.
        let raw_ok = if o.unprivileged {
            Err("--unprivileged was given".to_string())
        } else {
            portolan_engine::io::raw::can_use_raw().map_err(|e| match e {
                portolan_engine::io::raw::RawError::NotPermitted => NEED_RAW.to_string(),
                e => e.to_string(),
            })
        };
        let scan = match o.scan {
            Some(k) => k,
            None if o.udp => ScanKind::Udp,
            None if raw_ok.is_ok() => ScanKind::Syn,
            None => ScanKind::Connect,
        };
        if o.udp && scan == ScanKind::Connect {
            bail!("not supported yet: -sU with -sT (use -sS -sU)");
        }
        if o.udp && matches!(scan, ScanKind::PingOnly | ScanKind::List) {
            bail!("-sU cannot be combined with -sn or -sL");
        }
        // Only where a connect scan does the same job is -sT suggested.
        for (wanted, what, instead) in [
            (scan == ScanKind::Syn, "-sS", ", or use -sT (connect scan)"),
            (
                o.udp,
                "-sU",
                "; UDP scanning needs raw sockets (-sT scans TCP only)",
            ),
        ] {
            if wanted {
                if let Err(e) = &raw_ok {
                    bail!("{what}: {e}{instead}");
                }
            }
        }
        let (os_wanted, traceroute) = os_and_trace(&o, scan, &raw_ok)?;
        if o.dry_run && scan == ScanKind::Connect {
            bail!("--dryrun needs a raw-packet scan (-sS, -sU or -sn with raw probes), not -sT");
        }
        let share = match &o.shard {
            Some(spec) => Share::of_shard(
                Shard::parse(spec).map_err(|e| anyhow::anyhow!("--shard {spec}: {e}"))?,
            ),
            None => Share::ALL,
        };
        if o.shard.is_some() && scan == ScanKind::Connect {
            bail!("--shard needs a raw-packet scan (-sS, -sU or -sn), not -sT");
        }

        let datadir = o.datadir.as_deref().map(Path::new);
        let (services, source) = load_services(datadir, o.builtin_data);
        match &source {
            Source::BuiltinFallback { path, reason } => eprintln!(
                "WARNING: could not use {}: {reason}; using Portolan's built-in services table",
                path.display()
            ),
            Source::Builtin if o.verbose > 0 => {
                eprintln!("No nmap-services found: using Portolan's built-in services table")
            }
            _ => {}
        }

        let payloads = if o.udp || o.ping_udp_ports.is_some() {
            let (table, source) = load_payloads(datadir, o.builtin_data);
            if let Source::BuiltinFallback { path, reason } = &source {
                eprintln!(
                    "WARNING: could not use {}: {reason}; using Portolan's built-in UDP payloads",
                    path.display()
                );
            }
            for w in table.warnings().iter().take(5) {
                eprintln!("WARNING: nmap-payloads: {w}");
            }
            table
        } else {
            PayloadTable::default()
        };
        let tcp_scan = matches!(scan, ScanKind::Connect | ScanKind::Syn);
        let (ports, udp_ports) = if tcp_scan || o.udp {
            choose_ports(&o, &services, tcp_scan, o.udp)?
        } else {
            (Vec::new(), Vec::new())
        };
        let discovery = discovery_from(&o, &services, raw_ok.is_ok())?;

        let timing = timing_from(&o)?;
        let min_g = o.min_hostgroup.unwrap_or(1) as usize;
        let max_g = o.max_hostgroup.map(|m| m as usize).unwrap_or(usize::MAX);
        if min_g > max_g {
            bail!("--min-hostgroup ({min_g}) must not exceed --max-hostgroup ({max_g})");
        }
        let host_group = DEFAULT_HOST_GROUP.clamp(min_g, max_g);

        // Targets: every token is parsed before anything is resolved or sent.
        let mut tokens = o.targets.clone();
        if let Some(file) = &o.input_file {
            let text = read_target_file(file)?;
            tokens.extend(parse_target_list(&text));
        }
        let specs: Vec<(String, TargetSpec)> = tokens
            .iter()
            .map(|t| {
                let spec = parse_target(t)?;
                spec.check_family(o.ipv6)?;
                Ok((t.clone(), spec))
            })
            .collect::<Result<_, TargetError>>()?;

        let mut exclude_specs = Vec::new();
        for e in &o.excludes {
            exclude_specs.extend(parse_exclude_arg(e)?);
        }
        if let Some(file) = &o.exclude_file {
            let text = read_target_file(file)?;
            for t in parse_target_list(&text) {
                exclude_specs.push(parse_target(&t)?);
            }
        }
        let resolver = SystemResolver;
        let excludes = ExcludeSet::build(&exclude_specs, o.ipv6, &resolver)?;

        // Hostnames are resolved now; one that fails is reported and the rest go on.
        let mut expansions = Vec::new();
        for (token, spec) in specs {
            match spec.expand(o.ipv6, &resolver) {
                Ok(exp) => {
                    if !exp.other_addrs.is_empty() && !o.resolve_all {
                        let others: Vec<String> =
                            exp.other_addrs.iter().map(|a| a.to_string()).collect();
                        eprintln!(
                            "Other addresses for {token} (not scanned): {}",
                            others.join(" ")
                        );
                    }
                    if o.resolve_all && !exp.other_addrs.is_empty() {
                        for extra in &exp.other_addrs {
                            if let Ok(e) = spec.with_address(*extra).and_then(|s| {
                                s.expand(o.ipv6, &resolver).map(|mut e| {
                                    e.hostname = exp.hostname.clone();
                                    e
                                })
                            }) {
                                expansions.push(e);
                            }
                        }
                    }
                    expansions.push(exp);
                }
                Err(e @ (TargetError::Resolve { .. } | TargetError::Unresolved { .. })) => {
                    eprintln!("Failed to resolve \"{token}\". ({e})");
                }
                Err(e) => return Err(e.into()),
            }
        }

        // The parts of a sharded scan: the same seed on every machine even without --seed,
        // and the identity that makes them one scan in the store.
        let canonical = crate::shard_id::canonical_plan(
            &o,
            scan,
            &tokens,
            &ports,
            &udp_ports,
            share.stride as u32,
        );
        let shard_part = crate::shard_id::part_of(&o, &canonical);
        let seed = match (o.seed, &shard_part) {
            (Some(s), _) => s,
            (None, Some(_)) => {
                if o.verbose > 0 {
                    eprintln!(
                        "--shard without --seed: the seed is derived from the plan (targets, \
                         ports, scan type, N, --scan-id), the same on every machine"
                    );
                }
                crate::shard_id::derived_seed(&canonical, o.scan_id.as_deref())
            }
            (None, None) => seed(),
        };
        let out_opts = OutputOptions {
            // As Nmap: -vv shows the reasons too.
            reason: o.reason || o.verbose > 1,
            verbose: o.verbose,
            debugging: o.debug,
            open_only: o.open_only,
        };
        let plan = ScanPlan {
            // A store's password is not recorded with the command line (outputs, store).
            args_line: argv
                .iter()
                .map(|w| portolan_store::pg::shown_word(w.as_ref()))
                .collect::<Vec<_>>()
                .join(" "),
            start: start.timestamp(),
            scan,
            udp: o.udp,
            no_ping: o.no_ping,
            discovery,
            dns: if o.dry_run { Dns::Never } else { o.dns },
            services,
            ports,
            udp_ports,
            share,
            dry_run: o.dry_run,
            version: version_plan(&o, datadir)?,
            payloads: Arc::new(payloads),
            mac_vendors: raw_ok
                .is_ok()
                .then(|| Arc::new(load_mac_prefixes(datadir, o.builtin_data).0)),
            sequential_ports: o.sequential_ports,
            timing,
            host_group,
            out_opts,
            targets: Targets {
                expansions,
                excludes,
                randomize: o.randomize_hosts,
            },
            seed,
            os: if os_wanted {
                Some(os_plan(&o, datadir))
            } else {
                None
            },
            traceroute,
            carried: Vec::new(),
        };
        Ok(Resolved {
            plan,
            start,
            stats_every: o.stats_every,
            packet_trace: o.packet_trace,
            shard_part,
        })
    }
}
/// Whether OS detection and traceroute run, by Nmap's rules: asked for, they need raw
/// sockets (Nmap's messages when refused); `-A` adds them only when raw sockets are allowed,
/// silently otherwise, as Nmap does for a user without root. OS detection needs a port scan.
fn os_and_trace(o: &Options, scan: ScanKind, raw_ok: &Result<(), String>) -> Result<(bool, bool)> {
    let raw = raw_ok.is_ok();
    if o.os && !raw {
        bail!("TCP/IP fingerprinting (for OS scan) requires root privileges.");
    }
    let os = o.os || (o.aggressive && raw);
    if os && matches!(scan, ScanKind::PingOnly | ScanKind::List) {
        bail!(
            "OS Scan is unreliable without a port scan.  You need to use a scan type along with \
             it, such as -sS or -sT instead of -sn"
        );
    }
    if os && o.ipv6 {
        bail!("not supported yet: -O with -6 (IPv6 OS detection)");
    }
    if o.traceroute && !raw {
        bail!("Traceroute has to be run as root");
    }
    let traceroute = o.traceroute || (o.aggressive && raw);
    Ok((os, traceroute))
}

/// Most malformed nmap-os-db lines named one by one; the rest are counted.
const OS_DB_ERRORS_SHOWN: usize = 10;

/// The plan of -O: Nmap's nmap-os-db found as Nmap finds its data files (none with
/// --builtin-data). A malformed line is reported by number and the rest loads; without a
/// usable file only the coarse guess is given, and the user is told so.
fn os_plan(o: &Options, datadir: Option<&Path>) -> OsPlan {
    OsPlan {
        db: if o.builtin_data {
            if o.verbose > 0 {
                eprintln!("--builtin-data: no nmap-os-db, OS detection gives only a coarse guess");
            }
            None
        } else {
            load_os_db(datadir)
        },
        limit: o.osscan_limit,
        guess: o.osscan_guess,
        max_tries: o.max_os_tries.unwrap_or(DEFAULT_MAX_OS_TRIES),
    }
}

/// Nmap's default --max-os-tries.
const DEFAULT_MAX_OS_TRIES: u32 = 5;

fn load_os_db(datadir: Option<&Path>) -> Option<Arc<portolan_os::db::OsDb>> {
    let coarse =
        "OS detection will give only a coarse guess (TTL, window, options), not Nmap's matches";
    let Some(path) = portolan_engine::data::datadir::find_data_file("nmap-os-db", datadir) else {
        eprintln!("WARNING: no nmap-os-db found (--datadir, $NMAPDIR, ~/.nmap, /usr/local/share/nmap, /usr/share/nmap): {coarse}");
        return None;
    };
    match portolan_os::db::OsDb::load(&path) {
        Ok((db, errors)) => {
            // DbError names the file and the line: "nmap-os-db line 12: ...".
            for e in errors.iter().take(OS_DB_ERRORS_SHOWN) {
                eprintln!("WARNING: {e} (in {})", path.display());
            }
            if errors.len() > OS_DB_ERRORS_SHOWN {
                eprintln!(
                    "WARNING: {}: {} more malformed lines skipped",
                    path.display(),
                    errors.len() - OS_DB_ERRORS_SHOWN
                );
            }
            if db.prints.is_empty() {
                eprintln!("WARNING: {} holds no fingerprint: {coarse}", path.display());
                return None;
            }
            Some(Arc::new(db))
        }
        Err(e) => {
            eprintln!("WARNING: cannot read {}: {e}: {coarse}", path.display());
            None
        }
    }
}

/// Why raw sockets are refused, without a suggestion: what works instead depends on what
/// needed them (-sT replaces -sS, but not -sU nor the raw pings).
const NEED_RAW: &str = "raw sockets need root or CAP_NET_RAW: run as root, or grant it with \
     'sudo setcap cap_net_raw,cap_net_admin+eip $(command -v portolan)'";

/// Nmap's default probes when it may send raw packets: ICMP echo, SYN to 443, ACK to 80,
/// and (IPv4) ICMP timestamp.
pub const DEFAULT_RAW_PINGS: [Slot; 4] =
    [Slot::Echo, Slot::Syn(443), Slot::Ack(80), Slot::Timestamp];

fn discovery_from(o: &Options, services: &ServiceTable, raw: bool) -> Result<Discovery> {
    let ports = |flag: &str, spec: &Option<String>, proto: Protos| -> Result<Vec<u16>> {
        match spec {
            Some(spec) => {
                let set = parse_port_spec(spec, services, proto)
                    .map_err(|e| anyhow::anyhow!("{flag}{spec}: {e}"))?;
                Ok(if proto == Protos::UDP {
                    set.udp
                } else {
                    set.tcp
                })
            }
            None => Ok(Vec::new()),
        }
    };
    let syn = ports("-PS", &o.ping_ports, Protos::TCP)?;
    let ack = ports("-PA", &o.ping_ack_ports, Protos::TCP)?;
    let udp = ports("-PU", &o.ping_udp_ports, Protos::UDP)?;
    let mut slots: Vec<Slot> = Vec::new();
    if o.ping_echo {
        slots.push(Slot::Echo);
    }
    slots.extend(syn.iter().map(|&p| Slot::Syn(p)));
    slots.extend(ack.iter().map(|&p| Slot::Ack(p)));
    slots.extend(udp.iter().map(|&p| Slot::Udp(p)));
    for (wanted, slot, flag) in [
        (o.ping_timestamp, Slot::Timestamp, "-PP"),
        (o.ping_netmask, Slot::Netmask, "-PM"),
    ] {
        if wanted {
            if o.ipv6 {
                bail!("{flag} has no ICMPv6 counterpart: it cannot be used with -6");
            }
            slots.push(slot);
        }
    }
    let any_raw_flag = !slots.is_empty() || o.ping_arp;
    if !raw {
        // Without raw sockets only the connect ping exists, as in Nmap.
        let raw_only = o.ping_echo
            || o.ping_timestamp
            || o.ping_netmask
            || o.ping_ack_ports.is_some()
            || o.ping_udp_ports.is_some()
            || o.ping_arp;
        if raw_only && !o.no_ping {
            let given: Vec<&str> = [
                (o.ping_echo, "-PE"),
                (o.ping_timestamp, "-PP"),
                (o.ping_netmask, "-PM"),
                (o.ping_ack_ports.is_some(), "-PA"),
                (o.ping_udp_ports.is_some(), "-PU"),
                (o.ping_arp, "-PR"),
            ]
            .into_iter()
            .filter_map(|(on, flag)| on.then_some(flag))
            .collect();
            bail!(
                "{} {} raw packets: {NEED_RAW} (and no --unprivileged). Without them, hosts are \
                 discovered with the connect ping (-PS[portlist], the default), or -Pn skips \
                 discovery",
                given.join(" and "),
                if given.len() == 1 { "sends" } else { "send" }
            );
        }
        let connect_ports = if syn.is_empty() {
            portolan_engine::io::ping::DEFAULT_PING_PORTS.to_vec()
        } else {
            syn
        };
        return Ok(Discovery {
            connect_ports,
            slots: Vec::new(),
            arp: false,
        });
    }
    if !any_raw_flag {
        slots = DEFAULT_RAW_PINGS
            .into_iter()
            .filter(|s| !(o.ipv6 && *s == Slot::Timestamp))
            .collect();
    }
    // ARP (IPv6: neighbour discovery) replaces the IP probes for on-link targets by
    // default, or when asked (-PR).
    let arp = !o.disable_arp_ping && (o.ping_arp || !any_raw_flag);
    Ok(Discovery {
        connect_ports: Vec::new(),
        slots,
        arp,
    })
}

fn choose_ports(
    o: &Options,
    services: &ServiceTable,
    tcp: bool,
    udp: bool,
) -> Result<(Vec<u16>, Vec<u16>)> {
    let protos = match (tcp, udp) {
        (true, true) => Protos::TCP_UDP,
        (false, true) => Protos::UDP,
        _ => Protos::TCP,
    };
    let exclude = match &o.exclude_ports {
        Some(spec) => Some(
            parse_port_spec(spec, services, protos)
                .map_err(|e| anyhow::anyhow!("--exclude-ports: {e}"))?,
        ),
        None => None,
    };
    let explicit = match &o.ports {
        Some(spec) => Some(
            parse_port_spec(spec, services, protos)
                .map_err(|e| anyhow::anyhow!("-p: {e}"))?
                .restrict(protos),
        ),
        None => None,
    };
    let mut set = match (explicit, o.top_ports, o.port_ratio) {
        (Some(set), None, None) => set,
        (within, Some(n), _) => PortSet::top(
            services,
            protos,
            n as usize,
            within.as_ref(),
            exclude.as_ref(),
        ),
        (_, None, Some(r)) => PortSet::with_ratio(services, protos, r, exclude.as_ref()),
        (None, None, None) => {
            let n = if o.fast { 100 } else { 1000 };
            PortSet::top(services, protos, n, None, exclude.as_ref())
        }
    };
    if let Some(ex) = &exclude {
        set.remove(ex);
    }
    if tcp && set.tcp.is_empty() {
        bail!("no TCP ports left to scan (check -p, --top-ports and --exclude-ports)");
    }
    if udp && set.udp.is_empty() {
        bail!("no UDP ports left to scan (check -p, --top-ports and --exclude-ports)");
    }
    Ok((
        if tcp { set.tcp } else { Vec::new() },
        if udp { set.udp } else { Vec::new() },
    ))
}

fn timing_from(o: &Options) -> Result<Timing> {
    let mut t = o.template.timing();
    if let Some(v) = o.min_rtt_timeout {
        t.min_rtt_timeout = v;
    }
    if let Some(v) = o.max_rtt_timeout {
        t.max_rtt_timeout = v;
    }
    if let Some(v) = o.initial_rtt_timeout {
        t.initial_rtt_timeout = v;
    }
    if let Some(v) = o.max_retries {
        t.max_retries = v;
    }
    if let Some(v) = o.host_timeout {
        t.host_timeout = if v.is_zero() { None } else { Some(v) };
    }
    if let Some(v) = o.scan_delay {
        t.scan_delay = v;
        // As in Nmap, an explicit delay also raises the ceiling it must not exceed.
        if t.max_scan_delay < v {
            t.max_scan_delay = v;
        }
    }
    if let Some(v) = o.max_scan_delay {
        t.max_scan_delay = v;
        if t.scan_delay > v {
            bail!("--scan-delay must not exceed --max-scan-delay");
        }
    }
    t.min_parallelism = o.min_parallelism;
    if o.max_parallelism.is_some() {
        t.max_parallelism = o.max_parallelism;
    }
    t.min_rate = o.min_rate;
    t.max_rate = o.max_rate;
    if t.min_rtt_timeout > t.max_rtt_timeout {
        bail!("--min-rtt-timeout must not exceed --max-rtt-timeout");
    }
    if t.initial_rtt_timeout < t.min_rtt_timeout {
        t.initial_rtt_timeout = t.min_rtt_timeout;
    }
    if t.initial_rtt_timeout > t.max_rtt_timeout {
        t.initial_rtt_timeout = t.max_rtt_timeout;
    }
    if let (Some(lo), Some(hi)) = (t.min_rate, t.max_rate) {
        if lo > hi {
            bail!("--min-rate ({lo}) must not exceed --max-rate ({hi})");
        }
    }
    if let (Some(lo), Some(hi)) = (t.min_parallelism, t.max_parallelism) {
        if lo > hi {
            bail!("--min-parallelism ({lo}) must not exceed --max-parallelism ({hi})");
        }
    }
    Ok(t)
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5EED);
    t ^ (std::process::id() as u64).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_overrides_and_conflicts() {
        let mut o = Options {
            template: portolan_engine::plan::timing::Template::Aggressive,
            max_retries: Some(2),
            max_rtt_timeout: Some(Duration::from_millis(300)),
            ..Options::default()
        };
        let t = timing_from(&o).unwrap();
        assert_eq!(t.max_retries, 2);
        assert_eq!(t.initial_rtt_timeout, Duration::from_millis(300));
        o.min_rate = Some(100.0);
        o.max_rate = Some(10.0);
        assert!(timing_from(&o).is_err());
    }

    #[test]
    fn port_choice_follows_nmaps_rules() {
        let services = ServiceTable::builtin();
        let tcp = |o: &Options| choose_ports(o, &services, true, false).map(|p| p.0);
        let mut o = Options {
            ports: Some("22,80,U:53".into()),
            ..Options::default()
        };
        assert_eq!(tcp(&o).unwrap(), vec![22, 80]);
        // -sS -sU: each protocol takes its own ports, unprefixed ones go to both.
        assert_eq!(
            choose_ports(&o, &services, true, true).unwrap(),
            (vec![22, 80], vec![22, 53, 80])
        );
        o.ports = Some("T:22,U:53,161,7".into());
        assert_eq!(
            choose_ports(&o, &services, true, true).unwrap(),
            (vec![22], vec![7, 53, 161])
        );
        o.ports = Some("22,80,U:53".into());
        o.exclude_ports = Some("80".into());
        assert_eq!(tcp(&o).unwrap(), vec![22]);
        o.exclude_ports = Some("22,80".into());
        assert!(tcp(&o).is_err());
        let mut o = Options {
            fast: true,
            ..Options::default()
        };
        assert_eq!(tcp(&o).unwrap().len(), 100);
        let (t, u) = choose_ports(&o, &services, true, true).unwrap();
        assert_eq!((t.len(), u.len()), (100, 100));
        o.fast = false;
        assert_eq!(tcp(&o).unwrap().len(), 1000);
        o.top_ports = Some(10);
        assert_eq!(tcp(&o).unwrap().len(), 10);
    }

    #[test]
    fn discovery_probes_follow_nmaps_rules() {
        let services = ServiceTable::builtin();
        let d = |o: &Options, raw| discovery_from(o, &services, raw);
        let o = Options::default();
        // Privileged default: echo, SYN 443, ACK 80, timestamp, and ARP on a LAN.
        let def = d(&o, true).unwrap();
        assert_eq!(def.slots, DEFAULT_RAW_PINGS.to_vec());
        assert!(def.arp && def.connect_ports.is_empty());
        // Unprivileged: the connect ping to 80 and 443.
        let unpriv = d(&o, false).unwrap();
        assert_eq!(unpriv.connect_ports, vec![80, 443]);
        assert!(unpriv.slots.is_empty() && !unpriv.arp);
        // Explicit probes replace the default set, and ARP unless -PR.
        let o = Options {
            ping_echo: true,
            ping_ack_ports: Some("22".into()),
            ping_udp_ports: Some("53".into()),
            ..Options::default()
        };
        let ex = d(&o, true).unwrap();
        assert_eq!(ex.slots, vec![Slot::Echo, Slot::Ack(22), Slot::Udp(53)]);
        assert!(!ex.arp);
        assert!(d(&o, false).is_err(), "raw probes without privileges");
        let o = Options {
            ping_arp: true,
            disable_arp_ping: true,
            ..Options::default()
        };
        assert!(!d(&o, true).unwrap().arp);
        // IPv6 has no timestamp request; neighbour discovery stands for ARP.
        let o = Options {
            ipv6: true,
            ..Options::default()
        };
        let v6 = d(&o, true).unwrap();
        assert!(!v6.slots.contains(&Slot::Timestamp) && v6.arp);
        let o = Options {
            ipv6: true,
            ping_timestamp: true,
            ..Options::default()
        };
        assert!(d(&o, true).is_err());
    }

    #[test]
    fn os_and_traceroute_follow_nmaps_rules() {
        let raw: Result<(), String> = Ok(());
        let no_raw: Result<(), String> = Err("no".into());
        let a = crate::args::parse(["-A"]).unwrap();
        // -A: -sV -sC always, -O and --traceroute with raw sockets only, silently.
        assert!(a.version && a.script_default);
        assert_eq!(os_and_trace(&a, ScanKind::Syn, &raw).unwrap(), (true, true));
        assert_eq!(
            os_and_trace(&a, ScanKind::Connect, &no_raw).unwrap(),
            (false, false)
        );
        assert!(os_and_trace(&a, ScanKind::PingOnly, &raw).is_err());
        let o = crate::args::parse(["-O"]).unwrap();
        // -O with a connect scan is Nmap's too (as root).
        assert_eq!(
            os_and_trace(&o, ScanKind::Connect, &raw).unwrap(),
            (true, false)
        );
        let e = os_and_trace(&o, ScanKind::Syn, &no_raw).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TCP/IP fingerprinting (for OS scan) requires root privileges."
        );
        for k in [ScanKind::PingOnly, ScanKind::List] {
            assert!(os_and_trace(&o, k, &raw).is_err(), "{k:?}");
        }
        let t = crate::args::parse(["--traceroute"]).unwrap();
        assert_eq!(
            os_and_trace(&t, ScanKind::PingOnly, &raw).unwrap(),
            (false, true)
        );
        let e = os_and_trace(&t, ScanKind::Connect, &no_raw).unwrap_err();
        assert_eq!(e.to_string(), "Traceroute has to be run as root");
    }

    #[test]
    fn os_plan_takes_the_flags_and_builtin_data_means_no_database() {
        let o = crate::args::parse(
            "-O --osscan-limit --fuzzy --max-os-tries 2 --builtin-data".split(' '),
        )
        .unwrap();
        let plan = os_plan(&o, None);
        assert!(plan.db.is_none() && plan.limit && plan.guess);
        assert_eq!(plan.max_tries, 2);
        let plan = os_plan(&crate::args::parse(["-O", "--builtin-data"]).unwrap(), None);
        assert!(!plan.limit && !plan.guess);
        assert_eq!(plan.max_tries, DEFAULT_MAX_OS_TRIES);
    }
}
