//! Running a resolved plan: discovery, port scan, reverse DNS, and streaming each finished
//! host into every output. Ctrl-C stops the scan and still closes every output validly.

use crate::args::{Dns, ScanKind};
use crate::plan::{Plan, VersionPlan};
use crate::progress;
use anyhow::Result;
use portolan_engine::core::arp_ping::run_arp_ping;
use portolan_engine::core::link_ping::{LinkPingError, LinkReply};
use portolan_engine::core::nd_ping::run_nd_ping;
use portolan_engine::core::scan::{Mode, Share, Slot};
use portolan_engine::core::scheduler::HostDone;
use portolan_engine::data::macvendor::MacPrefixTable;
use portolan_engine::io::connect::{ConnectScan, Progress};
use portolan_engine::io::dns::reverse_lookup_many;
use portolan_engine::io::driver::{run_raw, Output, RawJob, RawRun};
use portolan_engine::io::netif;
use portolan_engine::io::ping::{ping_hosts, PingResult};
use portolan_engine::pipeline::convert;
use portolan_engine::plan::timing::Timing;
use portolan_engine::stages::version::{self, Detected};
use portolan_model::{
    AddrType, Address, Completeness, Host, HostState, HostStatus, Hostname, HostnameType,
    PortState, Protocol, RunExit, RunStats, ScanRun, Service, ServiceMethod, Sink,
};
use portolan_wire::ethernet::MacAddr;
use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

pub enum Ended {
    Completed,
    Interrupted,
}

/// Hosts handled per round of discovery and port scanning: bounds memory for huge ranges.
/// A round holds at most about this many probes (hosts × ports)...
const BATCH_PROBES: usize = 1 << 18;
/// ... and between this many hosts (so a full port range still goes 4096 hosts at a time)
/// and the most a round ever holds.
const MIN_BATCH: usize = 4096;
const MAX_BATCH: usize = 1 << 18;
/// How long a reverse lookup may take before the host is reported without a name.
const RDNS_DEADLINE: Duration = Duration::from_secs(3);

/// Nmap reports collapsed states once more than this many ports share them.
const COLLAPSE_THRESHOLD: usize = 25;

/// A flag for blocking raw-socket loops that follows the cancellation token (Ctrl-C), and
/// the task that sets it; abort the task when the loop is done.
fn cancel_flag(cancel: &CancellationToken) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let flag = Arc::new(AtomicBool::new(cancel.is_cancelled()));
    let (f, c) = (flag.clone(), cancel.clone());
    let watcher = tokio::spawn(async move {
        c.cancelled().await;
        f.store(true, Ordering::Relaxed);
    });
    (flag, watcher)
}

/// A raw-packet scan of `hosts` × `slots` on a blocking thread, Ctrl-C aware; in dry-run
/// mode the probes are printed on stdout instead.
async fn raw_scan(
    plan: &Plan,
    hosts: Vec<(usize, IpAddr)>,
    slots: Vec<Slot>,
    mode: Mode,
    share: Share,
    progress: Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<RawRun> {
    let (timing, seed, dry_run) = (plan.timing.clone(), plan.seed(), plan.dry_run);
    let payloads = plan.payloads.clone();
    let (flag, watcher) = cancel_flag(cancel);
    let result = tokio::task::spawn_blocking(move || {
        let stdout = Mutex::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        ));
        let payload = |port: u16| {
            payloads
                .for_port(port)
                .first()
                .map_or(&[][..], Vec::as_slice)
        };
        let job = RawJob {
            hosts: &hosts,
            slots: &slots,
            mode,
            timing: &timing,
            seed,
            share,
            payload: &payload,
            output: if dry_run {
                Output::DryRun(&stdout)
            } else {
                Output::Wire
            },
        };
        let run = run_raw(&job, &progress, &flag);
        if let Ok(mut out) = stdout.lock() {
            let _ = out.flush();
        }
        run
    })
    .await;
    watcher.abort();
    Ok(result??)
}

/// Host discovery as the plan asks: the connect ping without raw sockets, else ARP for
/// on-link IPv4 hosts (as Nmap on a LAN) and the raw probes (Nmap's default set, or the -P
/// options) for the rest, a host being up at its first answer. Also returns the MACs ARP
/// learnt.
async fn discover(
    plan: &Plan,
    ips: &[IpAddr],
    cancel: &CancellationToken,
) -> Result<(Vec<PingResult>, Vec<Option<MacAddr>>)> {
    let d = &plan.discovery;
    let mut macs: Vec<Option<MacAddr>> = vec![None; ips.len()];
    // Hosts ARP has answered for (up or down): the IP probes are not sent to them.
    let mut settled = vec![false; ips.len()];
    let mut pings: Vec<PingResult> = if !d.connect_ports.is_empty() {
        ping_hosts(ips, &d.connect_ports, &plan.timing, 256, cancel.clone()).await
    } else {
        ips.iter()
            .map(|_| PingResult {
                status: HostStatus::down("no-response"),
                rtt: None,
            })
            .collect()
    };
    let ifaces = if d.slots.is_empty() && !d.arp {
        Vec::new()
    } else {
        netif::interfaces()?
    };
    // Our own addresses answer without a probe, as in Nmap.
    for (i, ip) in ips.iter().enumerate() {
        let own = ip.is_loopback()
            || ifaces.iter().any(|f| match ip {
                IpAddr::V4(a) => f.ipv4.iter().any(|(addr, _)| addr == a),
                IpAddr::V6(a) => f.ipv6.iter().any(|(addr, _)| addr == a),
            });
        if own && !d.slots.is_empty() {
            settled[i] = true;
            pings[i] = PingResult {
                status: HostStatus::up("localhost-response"),
                rtt: None,
            };
        }
    }
    if d.arp && !plan.dry_run {
        // On-link hosts: neighbour discovery (IPv6) and ARP (IPv4).
        let mut found = Found {
            settled: &mut settled,
            pings: &mut pings,
            macs: &mut macs,
        };
        let v6 = |ip: &IpAddr| match ip {
            IpAddr::V6(a) if netif::on_link_v6_in(&ifaces, *a).is_some() => Some(*a),
            _ => None,
        };
        link_ping(
            plan,
            ips,
            v6,
            run_nd_ping,
            "nd-response",
            &mut found,
            cancel,
        )
        .await?;
        let v4 = |ip: &IpAddr| match ip {
            IpAddr::V4(a) if netif::on_link_in(&ifaces, *a).is_some() => Some(*a),
            _ => None,
        };
        link_ping(
            plan,
            ips,
            v4,
            run_arp_ping,
            "arp-response",
            &mut found,
            cancel,
        )
        .await?;
    }
    let hosts: Vec<(usize, IpAddr)> = ips
        .iter()
        .copied()
        .enumerate()
        .filter(|&(i, _)| !settled[i])
        .collect();
    if d.slots.is_empty() || hosts.is_empty() {
        return Ok((pings, macs));
    }
    // A sweep (-sn) is the scan --shard divides; before a port scan every machine must
    // know every host.
    let share = if plan.scan == ScanKind::PingOnly {
        plan.share
    } else {
        Share::ALL
    };
    let run = raw_scan(
        plan,
        hosts,
        d.slots.clone(),
        Mode::Discovery,
        share,
        Arc::new(Progress::default()),
        cancel,
    )
    .await?;
    for host in run.hosts {
        if let (Some(a), Some(slot)) = (host.answer, pings.get_mut(host.tag)) {
            if slot.status.state != HostState::Up {
                slot.status = HostStatus {
                    state: HostState::Up,
                    reason: a.reason.into(),
                    reason_ttl: a.ttl,
                };
            }
        }
    }
    Ok((pings, macs))
}

/// What discovery has learnt so far, per host of the batch.
struct Found<'a> {
    /// Answered for (up or down) by a link-layer ping: no IP probes for it.
    settled: &'a mut [bool],
    pings: &'a mut [PingResult],
    macs: &'a mut [Option<MacAddr>],
}

/// `run_arp_ping` or `run_nd_ping`.
type LinkPingFn<A> =
    fn(&[A], &Timing, &AtomicBool) -> Result<Vec<Option<LinkReply>>, LinkPingError>;

/// One link-layer ping (ARP or neighbour discovery) of the hosts not yet settled that
/// `pick` chooses (on-link, of its family): each is settled, and up with `reason` and
/// its MAC when it answered.
async fn link_ping<A: Copy + Send + 'static>(
    plan: &Plan,
    ips: &[IpAddr],
    pick: impl Fn(&IpAddr) -> Option<A>,
    ping: LinkPingFn<A>,
    reason: &str,
    found: &mut Found<'_>,
    cancel: &CancellationToken,
) -> Result<()> {
    let chosen: Vec<(usize, A)> = ips
        .iter()
        .enumerate()
        .filter(|&(i, _)| !found.settled[i])
        .filter_map(|(i, ip)| pick(ip).map(|a| (i, a)))
        .collect();
    if chosen.is_empty() {
        return Ok(());
    }
    let targets: Vec<A> = chosen.iter().map(|&(_, a)| a).collect();
    let timing = plan.timing.clone();
    let (flag, watcher) = cancel_flag(cancel);
    let replies = tokio::task::spawn_blocking(move || ping(&targets, &timing, &flag)).await;
    watcher.abort();
    for ((i, _), reply) in chosen.into_iter().zip(replies??) {
        found.settled[i] = true;
        if let Some(r) = reply {
            found.pings[i] = PingResult {
                status: HostStatus::up(reason),
                rtt: Some(r.rtt),
            };
            found.macs[i] = Some(r.mac);
        }
    }
    Ok(())
}

/// A MAC address as Nmap writes it: upper-case hex.
fn mac_address(mac: MacAddr, vendors: &MacPrefixTable) -> Address {
    let b = mac.0;
    Address {
        addr: format!(
            "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        ),
        addrtype: AddrType::Mac,
        vendor: vendors.lookup(mac).map(str::to_string),
    }
}

fn epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub async fn run(mut plan: Plan) -> Result<Ended> {
    let started = Instant::now();
    let mut run = ScanRun::new(plan.args_line.clone(), plan.start.timestamp());
    run.verbose = plan.out_opts.verbose;
    run.debugging = plan.out_opts.debugging;
    run.scaninfo = plan.scaninfo();
    let mut sink = plan.take_sink();
    // A dry run prints probes on stdout, and no report.
    if !plan.dry_run {
        sink.begin(&run)?;
    }

    let cancel = CancellationToken::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("caught SIGINT signal, cleaning up");
                cancel.cancel();
            }
        });
    }

    let mut up = 0u32;
    let mut total = 0u32;
    let mut completeness: Option<Completeness> = None;
    let mut add_completeness = |c: Completeness| match completeness.as_mut() {
        Some(acc) => acc.add(&c),
        None => completeness = Some(c),
    };
    let mut targets = plan.targets();
    let probes_per_host = match plan.scan {
        ScanKind::PingOnly | ScanKind::List => plan.discovery.slots.len(),
        _ => plan.ports.len() + plan.udp_ports.len(),
    }
    .max(1);
    let batch_size = (BATCH_PROBES / probes_per_host).clamp(MIN_BATCH, MAX_BATCH);
    let port_scan = !matches!(plan.scan, ScanKind::PingOnly | ScanKind::List);
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let batch: Vec<(IpAddr, Option<String>)> = targets.by_ref().take(batch_size).collect();
        if batch.is_empty() {
            break;
        }
        total += batch.len() as u32;
        let ips: Vec<IpAddr> = batch.iter().map(|(ip, _)| *ip).collect();

        // Host discovery.
        let mut macs: Vec<Option<MacAddr>> = vec![None; ips.len()];
        let pings: Vec<PingResult> = if plan.scan == ScanKind::List {
            ips.iter()
                .map(|_| PingResult {
                    status: HostStatus {
                        state: HostState::Unknown,
                        reason: String::new(),
                        reason_ttl: 0,
                    },
                    rtt: None,
                })
                .collect()
        } else if plan.no_ping || (plan.dry_run && port_scan) {
            // A dry run of a port scan prints the port probes of every host, as with -Pn.
            ips.iter()
                .map(|_| PingResult {
                    status: HostStatus::up("user-set"),
                    rtt: None,
                })
                .collect()
        } else {
            let (pings, found) = discover(&plan, &ips, &cancel).await?;
            macs = found;
            pings
        };
        if cancel.is_cancelled() {
            break;
        }

        // Reverse DNS: hosts found up, or every host with -R (and -sL, as Nmap does).
        let want_name: Vec<usize> = (0..ips.len())
            .filter(|&i| match plan.dns {
                Dns::Never => false,
                Dns::Always => true,
                Dns::Default => {
                    plan.scan == ScanKind::List || pings[i].status.state == HostState::Up
                }
            })
            .collect();
        let names = reverse_lookup_many(
            &want_name.iter().map(|&i| ips[i]).collect::<Vec<_>>(),
            RDNS_DEADLINE,
        )
        .await;
        let mut ptr: HashMap<usize, String> = HashMap::new();
        for (k, name) in want_name.into_iter().zip(names) {
            if let Some(n) = name {
                ptr.insert(k, n);
            }
        }

        let make_host = |i: usize, status: HostStatus, macs: &[Option<MacAddr>]| -> Host {
            let (ip, user_name) = &batch[i];
            let mut h = Host::new(*ip, status);
            if let (Some(Some(mac)), Some(vendors)) = (macs.get(i), &plan.mac_vendors) {
                h.addresses.push(mac_address(*mac, vendors));
            }
            if let Some(n) = user_name {
                h.hostnames.push(Hostname {
                    name: n.clone(),
                    kind: HostnameType::User,
                });
            }
            if let Some(n) = ptr.get(&i) {
                h.hostnames.push(Hostname {
                    name: n.clone(),
                    kind: HostnameType::Ptr,
                });
            }
            h
        };

        let up_idx: Vec<usize> = (0..ips.len())
            .filter(|&i| pings[i].status.state == HostState::Up)
            .collect();
        up += up_idx.len() as u32;

        // Hosts that will not be port scanned are reported now.
        for (i, ping) in pings.iter().enumerate() {
            let state = ping.status.state;
            let report = match plan.scan {
                ScanKind::List => true,
                ScanKind::PingOnly => state == HostState::Up || plan.out_opts.verbose > 0,
                ScanKind::Connect | ScanKind::Syn | ScanKind::Udp => {
                    state != HostState::Up && plan.out_opts.verbose > 0
                }
            } && !plan.dry_run;
            if report {
                let mut h = make_host(i, ping.status.clone(), &macs);
                h.times = ping.rtt.map(convert::times_from_rtt);
                let now = epoch(SystemTime::now());
                h.starttime = Some(now);
                h.endtime = Some(now);
                sink.host(&run, &h)?;
            }
        }

        if up_idx.is_empty() || !port_scan {
            continue;
        }
        let fill_macs_from_kernel = |macs: &mut Vec<Option<MacAddr>>| {
            // On-link hosts not ARP-pinged (-Pn, IP probes): the kernel resolved them to
            // send our probes, as Nmap's own ARP resolution does.
            if plan.mac_vendors.is_none() || plan.dry_run {
                return;
            }
            let cache = netif::arp_cache();
            for (i, ip) in ips.iter().enumerate() {
                if macs[i].is_none() {
                    if let IpAddr::V4(a) = ip {
                        macs[i] = cache.iter().find(|(c, _)| c == a).map(|&(_, m)| m);
                    }
                }
            }
        };

        if plan.raw_port_scan() {
            let targets: Vec<(usize, IpAddr)> = up_idx.iter().map(|&i| (i, ips[i])).collect();
            let progress_state = Arc::new(Progress::default());
            let stop_progress = CancellationToken::new();
            let label = match (plan.scan, plan.udp) {
                (ScanKind::Syn, false) => "SYN Stealth Scan",
                (ScanKind::Syn, true) => "SYN Stealth and UDP Scan",
                _ => "UDP Scan",
            };
            let reporter = if plan.dry_run {
                None
            } else {
                Some(progress::spawn(
                    progress_state.clone(),
                    plan.stats_every,
                    label,
                    stop_progress.clone(),
                ))
            };
            let wall_start = SystemTime::now();
            let result = raw_scan(
                &plan,
                targets,
                plan.port_slots(),
                Mode::Ports,
                plan.share,
                progress_state,
                &cancel,
            )
            .await;
            stop_progress.cancel();
            if let Some(r) = reporter {
                let _ = r.await;
            }
            let raw = result?;
            fill_macs_from_kernel(&mut macs);
            let mut finished: Vec<Host> = Vec::new();
            for host in &raw.hosts {
                if raw.interrupted || plan.dry_run {
                    break;
                }
                if host.slots.is_empty() {
                    // Another shard's host.
                    continue;
                }
                if raw.stats.timed_out {
                    eprintln!("Skipping host {} due to host timeout", host.ip);
                }
                let mut h = make_host(host.tag, pings[host.tag].status.clone(), &macs);
                h.starttime = Some(epoch(wall_start));
                h.endtime = Some(epoch(SystemTime::now()));
                let mut all = Vec::new();
                for proto in [Protocol::Tcp, Protocol::Udp] {
                    let ports: Vec<(u16, PortState, &str, u8)> = host
                        .slots
                        .iter()
                        .filter_map(|r| match (proto, r.slot) {
                            (Protocol::Tcp, Slot::Syn(p)) | (Protocol::Udp, Slot::Udp(p)) => {
                                Some((p, r.state, r.reason, r.ttl))
                            }
                            _ => None,
                        })
                        .collect();
                    if !ports.is_empty() {
                        convert::fill_ports(&mut h, proto, &ports, &plan.services, &raw.rtt);
                        all.append(&mut h.ports);
                    }
                }
                h.ports = all;
                finished.push(h);
            }
            if let Some(v) = &plan.version {
                detect_versions(v, &mut finished, &cancel).await;
            }
            for mut h in finished {
                h.collapse_ports(COLLAPSE_THRESHOLD, plan.out_opts.open_only);
                sink.host(&run, &h)?;
            }
            let s = raw.stats;
            add_completeness(Completeness::estimate(
                s.probes_sent,
                s.retransmissions,
                s.answers,
                s.unanswered,
                s.late_answers,
                s.passes,
            ));
            if plan.out_opts.debugging > 0 {
                eprintln!(
                    "Completeness: {} probes sent, {} retransmissions in {} passes, {} answered, {} unanswered, {} rate cuts, {} invalid, {} receive drops",
                    s.probes_sent, s.retransmissions, s.passes, s.answers, s.unanswered, s.rate_cuts, s.invalid, raw.receive_drops
                );
            }
            continue;
        }

        // Port scan of the hosts that are up.
        let progress_state = Arc::new(Progress::default());
        let stop_progress = CancellationToken::new();
        let reporter = progress::spawn(
            progress_state.clone(),
            plan.stats_every,
            "Connect Scan",
            stop_progress.clone(),
        );
        let scan = ConnectScan {
            timing: plan.timing.clone(),
            ports: plan.port_order(),
            host_group: plan.host_group,
            shards: ConnectScan::default_shards(),
        };
        let wall_start = SystemTime::now();
        let mut write_error: Option<anyhow::Error> = None;
        // With -sV hosts wait for their versions before they are written.
        let mut held: Vec<Host> = Vec::new();
        let summary = scan
            .run(
                up_idx.iter().map(|&i| (i, ips[i])).collect(),
                progress_state,
                cancel.clone(),
                |done: HostDone| {
                    if write_error.is_some() {
                        return;
                    }
                    let i = done.tag;
                    let mut h = make_host(i, pings[i].status.clone(), &macs);
                    fill_host(&mut h, &done, &plan, wall_start);
                    if done.timed_out {
                        eprintln!("Skipping host {} due to host timeout", done.ip);
                    }
                    if plan.version.is_some() {
                        held.push(h);
                        return;
                    }
                    h.collapse_ports(COLLAPSE_THRESHOLD, plan.out_opts.open_only);
                    if let Err(e) = sink.host(&run, &h) {
                        write_error = Some(e.into());
                    }
                },
            )
            .await;
        stop_progress.cancel();
        let _ = reporter.await;
        if let Some(e) = write_error {
            return Err(e);
        }
        if let Some(v) = &plan.version {
            detect_versions(v, &mut held, &cancel).await;
            for mut h in held {
                h.collapse_ports(COLLAPSE_THRESHOLD, plan.out_opts.open_only);
                sink.host(&run, &h)?;
            }
        }
        let s = summary.stats;
        add_completeness(Completeness::estimate(
            s.probes_sent,
            s.retransmissions,
            s.answered,
            s.ports_done.saturating_sub(s.answered),
            s.drops_detected,
            s.max_tries,
        ));
        if plan.out_opts.debugging > 0 {
            eprintln!(
                "Completeness: {} probes sent, {} retransmissions, {} answered, {} timed out, {} drops detected, {} local errors",
                s.probes_sent, s.retransmissions, s.answered, s.timeouts, s.drops_detected, s.local_errors
            );
        }
    }

    let interrupted = cancel.is_cancelled();
    let elapsed = started.elapsed().as_secs_f64();
    run.runstats = Some(RunStats {
        finished: epoch(SystemTime::now()),
        elapsed,
        exit: if interrupted {
            RunExit::Error
        } else {
            RunExit::Success
        },
        errormsg: interrupted.then(|| "Interrupted by the user (SIGINT)".to_string()),
        hosts_up: up,
        hosts_down: total - up.min(total),
        hosts_total: total,
        completeness,
    });
    if total == 0 && !interrupted {
        eprintln!("WARNING: No targets were specified, so 0 hosts scanned.");
    }
    if !plan.dry_run {
        sink.end(&run)?;
    }
    Ok(if interrupted {
        Ended::Interrupted
    } else {
        Ended::Completed
    })
}

/// Turns the engine's view of a finished host into the model's, shaped for output.
fn fill_host(h: &mut Host, done: &HostDone, plan: &Plan, wall_start: SystemTime) {
    h.starttime = Some(epoch(wall_start));
    h.endtime = Some(epoch(SystemTime::now()));
    convert::fill_tcp_ports(h, done, &plan.services);
}

/// Ports probed at once by -sV (each with a few probe connections of its own).
const VERSION_PARALLEL_PORTS: usize = 64;

/// -sV: detects the service on every open TCP port of `hosts`, all ports at once (up to
/// [`VERSION_PARALLEL_PORTS`]), and writes what it found into their service entries.
async fn detect_versions(v: &VersionPlan, hosts: &mut [Host], cancel: &CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(VERSION_PARALLEL_PORTS));
    let mut tasks = tokio::task::JoinSet::new();
    for (hi, h) in hosts.iter().enumerate() {
        let Some(ip) = h.addr_str().parse::<IpAddr>().ok() else {
            continue;
        };
        for (pi, port) in h.ports.iter().enumerate() {
            // TCP: open ports. UDP: open|filtered ones too, as Nmap: an answer to a probe
            // shows the port open.
            let (proto, udp) = match (port.protocol, port.state) {
                (Protocol::Tcp, PortState::Open) => (portolan_probes::Proto::Tcp, false),
                (Protocol::Udp, PortState::Open | PortState::OpenFiltered) => {
                    (portolan_probes::Proto::Udp, true)
                }
                _ => continue,
            };
            if !v.all_ports && v.db.is_excluded(proto, port.portid) {
                continue;
            }
            let (db, opts, tls, slots) =
                (v.db.clone(), v.opts.clone(), v.tls.clone(), slots.clone());
            let portid = port.portid;
            tasks.spawn(async move {
                let _permit = slots.acquire_owned().await;
                let d = if udp {
                    version::detect_udp(db, ip, portid, &opts).await
                } else {
                    version::detect(db, ip, portid, &opts, &tls).await
                };
                (hi, pi, d)
            });
        }
    }
    loop {
        let next = tokio::select! {
            n = tasks.join_next() => n,
            _ = cancel.cancelled() => {
                tasks.abort_all();
                None
            }
        };
        let Some(Ok((hi, pi, d))) = next else {
            if next.is_none() {
                break;
            }
            continue;
        };
        let Some(port) = hosts.get_mut(hi).and_then(|h| h.ports.get_mut(pi)) else {
            continue;
        };
        match d {
            Detected::Match { found, ssl } => {
                let found = *found;
                if port.protocol == Protocol::Udp && port.state != PortState::Open {
                    port.state = PortState::Open;
                    port.reason = "udp-response".into();
                }
                port.service = Some(Service {
                    name: found.service,
                    product: found.product,
                    version: found.version,
                    extrainfo: found.info,
                    hostname: found.hostname,
                    ostype: found.ostype,
                    devicetype: found.devicetype,
                    method: ServiceMethod::Probed,
                    conf: 10,
                    tunnel: ssl.then(|| "ssl".to_string()),
                    servicefp: None,
                    cpes: found.cpes,
                });
            }
            Detected::TcpWrapped => {
                port.service = Some(Service {
                    name: "tcpwrapped".into(),
                    method: ServiceMethod::Probed,
                    conf: 8,
                    ..Service::default()
                });
            }
            Detected::SslUnknown => {
                if let Some(service) = port.service.as_mut() {
                    service.tunnel = Some("ssl".into());
                }
            }
            Detected::Unknown => {}
        }
    }
}
