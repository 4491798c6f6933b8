//! Running a resolved plan: discovery, port scan, reverse DNS, and streaming each finished
//! host into every output. Ctrl-C stops the scan and still closes every output validly.

use crate::args::{Dns, ScanKind};
use crate::plan::Plan;
use crate::progress;
use anyhow::Result;
use portolan_engine::connect::{ConnectScan, Progress};
use portolan_engine::discovery::{ping_hosts, PingResult};
use portolan_engine::dns::reverse_lookup_many;
use portolan_engine::echo_ping::run_echo_ping;
use portolan_engine::report;
use portolan_engine::scheduler::HostDone;
use portolan_engine::syn_driver::run_syn;
use portolan_model::{
    Completeness, Host, HostState, HostStatus, Hostname, HostnameType, Protocol, RunExit, RunStats,
    ScanRun, Sink,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

pub enum Ended {
    Completed,
    Interrupted,
}

/// Hosts handled per round of discovery and port scanning: bounds memory for huge ranges.
const BATCH: usize = 4096;
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

/// Host discovery as the plan asks: the connect ping, ICMP echo (-PE), or both, a host
/// being up at the first answer to either.
async fn discover(
    plan: &Plan,
    ips: &[IpAddr],
    cancel: &CancellationToken,
) -> Result<Vec<PingResult>> {
    let mut pings = if plan.ping_connect {
        ping_hosts(ips, &plan.ping_ports, &plan.timing, 256, cancel.clone()).await
    } else {
        ips.iter()
            .map(|_| PingResult {
                status: HostStatus::down("no-response"),
                rtt: None,
            })
            .collect()
    };
    if plan.ping_echo {
        let v4: Vec<(usize, Ipv4Addr)> = ips
            .iter()
            .enumerate()
            .filter_map(|(i, ip)| match ip {
                IpAddr::V4(a) => Some((i, *a)),
                IpAddr::V6(_) => None,
            })
            .collect();
        let targets: Vec<Ipv4Addr> = v4.iter().map(|&(_, a)| a).collect();
        let timing = plan.timing.clone();
        let (flag, watcher) = cancel_flag(cancel);
        let replies =
            tokio::task::spawn_blocking(move || run_echo_ping(&targets, &timing, &flag)).await;
        watcher.abort();
        let replies = replies??;
        for ((i, _), reply) in v4.into_iter().zip(replies) {
            if let (Some(r), Some(slot)) = (reply, pings.get_mut(i)) {
                if slot.status.state != HostState::Up {
                    slot.status = HostStatus {
                        state: HostState::Up,
                        reason: "echo-reply".into(),
                        reason_ttl: r.ttl,
                    };
                    slot.rtt = Some(r.rtt);
                }
            }
        }
    }
    Ok(pings)
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
    if matches!(plan.scan, ScanKind::Connect | ScanKind::Syn) {
        run.scaninfo.push(plan.scaninfo());
    }
    let mut sink = plan.take_sink();
    sink.begin(&run)?;

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
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let batch: Vec<(IpAddr, Option<String>)> = targets.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            break;
        }
        total += batch.len() as u32;
        let ips: Vec<IpAddr> = batch.iter().map(|(ip, _)| *ip).collect();

        // Host discovery.
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
        } else if plan.no_ping {
            ips.iter()
                .map(|_| PingResult {
                    status: HostStatus::up("user-set"),
                    rtt: None,
                })
                .collect()
        } else {
            discover(&plan, &ips, &cancel).await?
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

        let make_host = |i: usize, status: HostStatus| -> Host {
            let (ip, user_name) = &batch[i];
            let mut h = Host::new(*ip, status);
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
                ScanKind::Connect | ScanKind::Syn => {
                    state != HostState::Up && plan.out_opts.verbose > 0
                }
            };
            if report {
                let mut h = make_host(i, ping.status.clone());
                h.times = ping.rtt.map(report::times_from_rtt);
                let now = epoch(SystemTime::now());
                h.starttime = Some(now);
                h.endtime = Some(now);
                sink.host(&run, &h)?;
            }
        }

        if up_idx.is_empty() || !matches!(plan.scan, ScanKind::Connect | ScanKind::Syn) {
            continue;
        }

        if plan.scan == ScanKind::Syn {
            let targets: Vec<(usize, Ipv4Addr)> = up_idx
                .iter()
                .filter_map(|&i| match ips[i] {
                    IpAddr::V4(v4) => Some((i, v4)),
                    IpAddr::V6(_) => None,
                })
                .collect();
            let progress_state = Arc::new(Progress::default());
            let stop_progress = CancellationToken::new();
            let reporter = progress::spawn(
                progress_state.clone(),
                plan.stats_every,
                "SYN Stealth Scan",
                stop_progress.clone(),
            );
            let (flag, watcher) = cancel_flag(&cancel);
            let (ports, timing, seed) = (plan.ports.clone(), plan.timing.clone(), plan.seed());
            let progress_for_scan = progress_state.clone();
            let flag_for_scan = flag.clone();
            let wall_start = SystemTime::now();
            let result = tokio::task::spawn_blocking(move || {
                run_syn(
                    &targets,
                    &ports,
                    &timing,
                    seed,
                    &progress_for_scan,
                    &flag_for_scan,
                )
            })
            .await?;
            watcher.abort();
            stop_progress.cancel();
            let _ = reporter.await;
            let syn = result?;
            for host in &syn.hosts {
                if syn.interrupted {
                    break;
                }
                let mut h = make_host(host.tag, pings[host.tag].status.clone());
                h.starttime = Some(epoch(wall_start));
                h.endtime = Some(epoch(SystemTime::now()));
                report::fill_ports(&mut h, Protocol::Tcp, &host.ports, &plan.services, &syn.rtt);
                h.collapse_ports(COLLAPSE_THRESHOLD, plan.out_opts.open_only);
                sink.host(&run, &h)?;
            }
            let s = syn.stats;
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
                    s.probes_sent, s.retransmissions, s.passes, s.answers, s.unanswered, s.rate_cuts, s.invalid, syn.receive_drops
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
                    let mut h = make_host(i, pings[i].status.clone());
                    fill_host(&mut h, &done, &plan, wall_start);
                    if done.timed_out {
                        eprintln!("Skipping host {} due to host timeout", done.ip);
                    }
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
    sink.end(&run)?;
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
    report::fill_tcp_ports(h, done, &plan.services);
    h.collapse_ports(COLLAPSE_THRESHOLD, plan.out_opts.open_only);
}
