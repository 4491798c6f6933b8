//! Resolving parsed options into one validated plan: targets parsed (and hostnames
//! resolved), excludes built, ports chosen, timing settled and output files opened.
//! Every user error surfaces here, before any packet leaves.

use crate::args::{Dns, Format, Options, ScanKind};
use crate::outname;
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Local};
use portolan_engine::datadir::{load_services, Source};
use portolan_engine::ports::{parse_port_spec, PortSet, Protos};
use portolan_engine::services::ServiceTable;
use portolan_engine::targets::{
    parse_exclude_arg, parse_target, parse_target_list, read_target_file, ExcludeSet, Expansion,
    SystemResolver, TargetError, TargetSpec,
};
use portolan_engine::timing::Timing;
use portolan_model::{compact_port_list, OutputOptions, Protocol, ScanInfo, ScanType, Sink, Tee};
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// Hosts port-scanned at once unless --min/max-hostgroup say otherwise.
const DEFAULT_HOST_GROUP: usize = 64;

pub struct Plan {
    pub args_line: String,
    pub start: DateTime<Local>,
    pub scan: ScanKind,
    pub no_ping: bool,
    pub ping_ports: Vec<u16>,
    /// -PE: ICMP echo discovery.
    pub ping_echo: bool,
    /// The connect ping runs unless only -PE was asked for.
    pub ping_connect: bool,
    pub dns: Dns,
    pub services: ServiceTable,
    /// TCP ports to scan, ascending.
    pub ports: Vec<u16>,
    pub sequential_ports: bool,
    pub timing: Timing,
    pub host_group: usize,
    pub out_opts: OutputOptions,
    pub stats_every: Option<Duration>,
    expansions: Vec<Expansion>,
    excludes: ExcludeSet,
    randomize_hosts: bool,
    /// --seed, or one drawn from the clock at start.
    seed: u64,
    sink: Option<Tee>,
}

impl Plan {
    pub fn resolve(o: Options, argv: &[String]) -> Result<Plan> {
        let start = Local::now();
        // As Nmap: a SYN scan by default when raw sockets are allowed, else connect.
        let raw_ok = portolan_engine::raw::can_use_raw();
        let scan = match o.scan {
            Some(k) => k,
            None if raw_ok.is_ok() && !o.ipv6 => ScanKind::Syn,
            None => ScanKind::Connect,
        };
        if o.ping_echo {
            if o.ipv6 {
                bail!("not supported yet: -PE with -6");
            }
            if let Err(e) = &raw_ok {
                bail!("-PE: {e}");
            }
        }
        if scan == ScanKind::Syn {
            if o.ipv6 {
                bail!("not supported yet: -sS with -6 (use -sT for IPv6 for now)");
            }
            if let Err(e) = raw_ok {
                bail!("-sS: {e}");
            }
        }

        let datadir = o.datadir.as_deref().map(Path::new);
        let (services, source) = load_services(datadir, false);
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

        let ports = if matches!(scan, ScanKind::Connect | ScanKind::Syn) {
            choose_ports(&o, &services)?
        } else {
            Vec::new()
        };
        let ping_ports = match &o.ping_ports {
            Some(spec) => {
                let set = parse_port_spec(spec, &services, Protos::TCP)
                    .map_err(|e| anyhow::anyhow!("-PS{spec}: {e}"))?;
                set.tcp
            }
            None => portolan_engine::discovery::DEFAULT_PING_PORTS.to_vec(),
        };

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

        let outputs = open_outputs(&o, &start)?;

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

        let out_opts = OutputOptions {
            reason: o.reason,
            verbose: o.verbose,
            debugging: o.debug,
            open_only: o.open_only,
        };
        let sink = build_sink(outputs, &out_opts, &o)?;
        Ok(Plan {
            args_line: argv.join(" "),
            start,
            scan,
            no_ping: o.no_ping,
            ping_ports,
            ping_echo: o.ping_echo,
            ping_connect: !o.ping_echo || o.ping_ports.is_some(),
            dns: o.dns,
            services,
            ports,
            sequential_ports: o.sequential_ports,
            timing,
            host_group,
            out_opts,
            stats_every: o.stats_every,
            expansions,
            excludes,
            randomize_hosts: o.randomize_hosts,
            seed: o.seed.unwrap_or_else(seed),
            sink: Some(sink),
        })
    }

    pub fn take_sink(&mut self) -> Tee {
        self.sink.take().unwrap_or_default()
    }

    /// The scaninfo element of a port scan.
    pub fn scaninfo(&self) -> ScanInfo {
        ScanInfo {
            scan_type: if self.scan == ScanKind::Syn {
                ScanType::Syn
            } else {
                ScanType::Connect
            },
            protocol: Protocol::Tcp,
            numservices: self.ports.len() as u32,
            services: compact_port_list(&self.ports),
        }
    }

    /// The seed of this scan's probe order.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Ports in the order to probe them: shuffled (as Nmap does) unless -r.
    pub fn port_order(&self) -> Vec<u16> {
        let mut ports = self.ports.clone();
        if !self.sequential_ports {
            shuffle(&mut ports, self.seed);
        }
        ports
    }

    /// Every address to scan with the name the user gave it, excluded ones left out.
    /// Lazy: a /8 is never held in memory whole.
    pub fn targets(&mut self) -> Box<dyn Iterator<Item = (IpAddr, Option<String>)> + Send> {
        let expansions = std::mem::take(&mut self.expansions);
        let excludes = std::mem::take(&mut self.excludes);
        let it = expansions
            .into_iter()
            .flat_map(|e| {
                let name = e.hostname.clone();
                e.addrs.map(move |ip| (ip, name.clone()))
            })
            .filter(move |(ip, _)| !excludes.contains(*ip));
        if self.randomize_hosts {
            // Nmap shuffles hosts in blocks of 2048 so memory stays bounded.
            let mut it = it;
            let mut state = self.seed;
            Box::new(
                std::iter::from_fn(move || {
                    let block: Vec<_> = it.by_ref().take(2048).collect();
                    if block.is_empty() {
                        return None;
                    }
                    let mut block = block;
                    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    shuffle(&mut block, state);
                    Some(block)
                })
                .flatten(),
            )
        } else {
            Box::new(it)
        }
    }
}

fn choose_ports(o: &Options, services: &ServiceTable) -> Result<Vec<u16>> {
    let exclude = match &o.exclude_ports {
        Some(spec) => Some(
            parse_port_spec(spec, services, Protos::TCP)
                .map_err(|e| anyhow::anyhow!("--exclude-ports: {e}"))?,
        ),
        None => None,
    };
    let explicit = match &o.ports {
        Some(spec) => Some(
            parse_port_spec(spec, services, Protos::TCP)
                .map_err(|e| anyhow::anyhow!("-p: {e}"))?
                .restrict(Protos::TCP),
        ),
        None => None,
    };
    let mut set = match (explicit, o.top_ports, o.port_ratio) {
        (Some(set), None, None) => set,
        (within, Some(n), _) => PortSet::top(
            services,
            Protos::TCP,
            n as usize,
            within.as_ref(),
            exclude.as_ref(),
        ),
        (_, None, Some(r)) => PortSet::with_ratio(services, Protos::TCP, r, exclude.as_ref()),
        (None, None, None) => {
            let n = if o.fast { 100 } else { 1000 };
            PortSet::top(services, Protos::TCP, n, None, exclude.as_ref())
        }
    };
    if let Some(ex) = &exclude {
        set.remove(ex);
    }
    if set.tcp.is_empty() {
        bail!("no TCP ports left to scan (check -p, --top-ports and --exclude-ports)");
    }
    Ok(set.tcp)
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

/// An output destination, opened.
pub struct Output {
    pub format: Format,
    pub to_stdout: bool,
    pub file: Option<std::fs::File>,
}

fn open_outputs(o: &Options, start: &DateTime<Local>) -> Result<Vec<Output>> {
    let mut out = Vec::new();
    let mut stdout_taken = false;
    for (format, name) in &o.outputs {
        if name == "-" {
            if stdout_taken {
                bail!("only one output can go to stdout ('-')");
            }
            stdout_taken = true;
            out.push(Output {
                format: *format,
                to_stdout: true,
                file: None,
            });
            continue;
        }
        let path = outname::expand(name, start);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .append(o.append_output)
            .truncate(!o.append_output)
            .open(&path)
            .with_context(|| format!("cannot open output file {path:?} for writing"))?;
        out.push(Output {
            format: *format,
            to_stdout: false,
            file: Some(file),
        });
    }
    // Normal output goes to stdout unless some other output claimed it.
    if !stdout_taken {
        out.push(Output {
            format: Format::Normal,
            to_stdout: true,
            file: None,
        });
    }
    Ok(out)
}

fn build_sink(outputs: Vec<Output>, opts: &OutputOptions, o: &Options) -> Result<Tee> {
    let mut tee = Tee::default();
    let stylesheet = if o.no_stylesheet {
        None
    } else {
        Some(
            o.stylesheet
                .clone()
                .unwrap_or_else(|| portolan_model::xml::DEFAULT_STYLESHEET.to_string()),
        )
    };
    for out in outputs {
        let w: Box<dyn Write + Send> = match out.file {
            Some(f) => Box::new(BufWriter::new(f)),
            None => Box::new(std::io::stdout()),
        };
        let is_file = !out.to_stdout;
        let sink: Box<dyn Sink + Send> = match out.format {
            Format::Normal => Box::new(portolan_model::normal::NormalWriter::new(
                w,
                opts.clone(),
                is_file,
            )),
            Format::Xml => {
                let x = portolan_model::xml::XmlWriter::new(w, opts.clone())
                    .with_stylesheet(stylesheet.clone());
                Box::new(x)
            }
            Format::Grepable => Box::new(portolan_model::grepable::GrepableWriter::new(
                w,
                opts.clone(),
            )),
            Format::Json => Box::new(portolan_model::json::JsonWriter::new(w, opts.clone())),
        };
        tee.sinks.push(sink);
    }
    Ok(tee)
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5EED);
    t ^ (std::process::id() as u64).rotate_left(32)
}

/// Fisher–Yates with xorshift64*: order only needs to be unpredictable enough to spread
/// load, not secret.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let j = (r % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u16> = (1..=1000).collect();
        shuffle(&mut v, 42);
        assert_ne!(v, (1..=1000).collect::<Vec<_>>());
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (1..=1000).collect::<Vec<_>>());
    }

    #[test]
    fn timing_overrides_and_conflicts() {
        let mut o = Options {
            template: portolan_engine::timing::Template::Aggressive,
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
        let mut o = Options {
            ports: Some("22,80,U:53".into()),
            ..Options::default()
        };
        assert_eq!(choose_ports(&o, &services).unwrap(), vec![22, 80]);
        o.exclude_ports = Some("80".into());
        assert_eq!(choose_ports(&o, &services).unwrap(), vec![22]);
        o.exclude_ports = Some("22,80".into());
        assert!(choose_ports(&o, &services).is_err());
        let mut o = Options {
            fast: true,
            ..Options::default()
        };
        assert_eq!(choose_ports(&o, &services).unwrap().len(), 100);
        o.fast = false;
        assert_eq!(choose_ports(&o, &services).unwrap().len(), 1000);
        o.top_ports = Some(10);
        assert_eq!(choose_ports(&o, &services).unwrap().len(), 10);
    }
}
