//! The TCP connect scan driver: the only part that touches sockets and the clock. It asks
//! the [`Scheduler`] what to send, runs each connect as a task with its timeout, and feeds
//! the outcomes back. Hosts stream out as soon as each is finished.

use crate::core::scheduler::{HostDone, Outcome, Probe, Scheduler, Stats};
use crate::core::Poll;
use crate::io::sys;
use crate::plan::timing::Timing;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Counters a progress display reads while the scan runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub ports_total: AtomicU64,
    pub ports_done: AtomicU64,
    pub hosts_done: AtomicU64,
}

impl Progress {
    pub fn fraction(&self) -> f64 {
        let total = self.ports_total.load(Ordering::Relaxed);
        if total == 0 {
            return 0.0;
        }
        (self.ports_done.load(Ordering::Relaxed) as f64 / total as f64).min(1.0)
    }
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanSummary {
    pub stats: Stats,
    pub interrupted: bool,
}

/// Probes in flight at most, whatever the descriptor limit: beyond this the kernel, not
/// the network, is the bottleneck on a small machine.
const DEFAULT_CEILING: usize = 4096;
/// Descriptors kept free for outputs, DNS and the runtime.
const FD_RESERVE: u64 = 64;
/// Ports each shard gets at least. A shard's window opens only on the answers to its own
/// ports: with a handful of ports per host, split over shards, a sparse network's rare
/// answers leave each window nearly shut (issue 13: 3 ports over two shards, one of them
/// seeing a single answer in a /24).
const MIN_PORTS_PER_SHARD: usize = 16;

/// What to scan on each host.
pub struct ConnectScan {
    pub timing: Timing,
    /// The ports, in the order to probe them.
    pub ports: Vec<u16>,
    /// Hosts scanned at once.
    pub host_group: usize,
    /// Threads to spread the probes over (see [`ConnectScan::default_shards`]).
    pub shards: usize,
}

impl ConnectScan {
    /// One shard per core. Each connect costs kernel work in the caller's context (the SYN
    /// and its answer are processed there), so a connect scan is bound by syscalls:
    /// spreading them over the cores is what makes it fast.
    pub fn default_shards() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8)
    }

    /// Scans `targets`, calling `on_host` for each finished host. Stops launching probes
    /// when `cancel` fires and returns with `interrupted` set.
    ///
    /// With several shards, each thread runs its own single-threaded runtime over every
    /// host and a share of the ports, so no wake-up crosses threads; a host is reported
    /// once all shards have finished it.
    pub async fn run<F>(
        &self,
        targets: Vec<(usize, IpAddr)>,
        progress: Arc<Progress>,
        cancel: CancellationToken,
        mut on_host: F,
    ) -> ScanSummary
    where
        F: FnMut(HostDone),
    {
        let limit = sys::raise_nofile_limit();
        let fd_ceiling = (limit.saturating_sub(FD_RESERVE).max(1) as usize).min(DEFAULT_CEILING);
        let t = &self.timing;
        // Limits that bind the scan as a whole (serial probing, pacing) are kept exact
        // by one shard; rates are split evenly.
        let serial = t.max_parallelism.is_some() || !t.scan_delay.is_zero();
        let shards = if serial {
            1
        } else {
            self.shards
                .clamp(1, (self.ports.len() / MIN_PORTS_PER_SHARD).max(1))
        };
        if shards == 1 {
            return run_shard(
                t.clone(),
                self.ports.clone(),
                self.host_group,
                fd_ceiling,
                targets,
                progress.clone(),
                cancel,
                |d| {
                    if d.complete {
                        progress.hosts_done.fetch_add(1, Ordering::Relaxed);
                    }
                    on_host(d)
                },
            )
            .await;
        }
        let mut timing = t.clone();
        timing.max_rate = t.max_rate.map(|r| r / shards as f64);
        timing.min_rate = t.min_rate.map(|r| r / shards as f64);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<HostDone>();
        let mut threads = Vec::new();
        let threads_cancel = cancel.clone();
        for s in 0..shards {
            let ports: Vec<u16> = self.ports.iter().skip(s).step_by(shards).copied().collect();
            let (timing, targets, progress, cancel, tx) = (
                timing.clone(),
                targets.clone(),
                progress.clone(),
                cancel.clone(),
                tx.clone(),
            );
            let group = self.host_group;
            let per_shard_fds = (fd_ceiling / shards).max(1);
            let spawned = std::thread::Builder::new()
                .name(format!("portolan-shard-{s}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(_) => {
                            // Without this shard no host can finish: stop the others.
                            cancel.cancel();
                            return ScanSummary {
                                stats: Stats::default(),
                                interrupted: true,
                            };
                        }
                    };
                    rt.block_on(run_shard(
                        timing,
                        ports,
                        group,
                        per_shard_fds,
                        targets,
                        progress,
                        cancel,
                        |d| {
                            let _ = tx.send(d);
                        },
                    ))
                });
            match spawned {
                Ok(h) => threads.push(h),
                Err(_) => threads_cancel.cancel(),
            }
        }
        drop(tx);
        let expected = threads.len();
        let mut partial: HashMap<usize, (usize, HostDone)> = HashMap::new();
        while let Some(d) = rx.recv().await {
            let tag = d.tag;
            let entry = match partial.remove(&tag) {
                None => (1, d),
                Some((n, mut acc)) => {
                    merge(&mut acc, d);
                    (n + 1, acc)
                }
            };
            if entry.0 == expected {
                if entry.1.complete {
                    progress.hosts_done.fetch_add(1, Ordering::Relaxed);
                }
                on_host(entry.1);
            } else {
                partial.insert(tag, entry);
            }
        }
        let mut summary = ScanSummary {
            stats: Stats::default(),
            interrupted: cancel.is_cancelled() || expected < shards,
        };
        if summary.interrupted {
            // Hosts some shards had not reached: what the others found, marked unfinished.
            let mut rest: Vec<(usize, HostDone)> = partial.into_values().collect();
            rest.sort_by_key(|(_, d)| d.tag);
            for (_, mut d) in rest {
                d.complete = false;
                on_host(d);
            }
        }
        for h in threads {
            if let Ok(s) = h.join() {
                add_stats(&mut summary.stats, &s.stats);
                summary.interrupted |= s.interrupted;
            } else {
                summary.interrupted = true;
            }
        }
        summary
    }
}

/// Folds one shard's view of a host into another's.
fn merge(acc: &mut HostDone, d: HostDone) {
    acc.ports.extend(d.ports);
    if acc.rtt.srtt().is_none() || d.replies > acc.replies {
        acc.rtt = d.rtt;
    }
    acc.started = acc.started.min(d.started);
    acc.finished = acc.finished.max(d.finished);
    acc.timed_out |= d.timed_out;
    acc.replies += d.replies;
    acc.complete &= d.complete;
}

fn add_stats(a: &mut Stats, b: &Stats) {
    a.probes_sent += b.probes_sent;
    a.retransmissions += b.retransmissions;
    a.answered += b.answered;
    a.timeouts += b.timeouts;
    a.drops_detected += b.drops_detected;
    a.ports_total += b.ports_total;
    a.ports_done += b.ports_done;
    a.local_errors += b.local_errors;
    a.max_tries = a.max_tries.max(b.max_tries);
}

/// One shard: a scheduler and its probes, driven on the current runtime.
#[allow(clippy::too_many_arguments)]
async fn run_shard<F>(
    timing: Timing,
    ports: Vec<u16>,
    host_group: usize,
    fd_ceiling: usize,
    targets: Vec<(usize, IpAddr)>,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    mut on_host: F,
) -> ScanSummary
where
    F: FnMut(HostDone),
{
    let mut sched = Scheduler::new(timing, fd_ceiling);
    let mut targets = targets.into_iter();
    let mut exhausted = false;
    let mut tasks: JoinSet<(Probe, Outcome, Duration)> = JoinSet::new();
    let mut interrupted = false;
    let group = host_group.max(1);
    // The group's timeout, for probes out to hosts that had not answered yet.
    let (group_to, group_rx) = tokio::sync::watch::channel(None::<Duration>);
    loop {
        while !exhausted && sched.active_hosts() < group {
            match targets.next() {
                Some((tag, ip)) => {
                    progress
                        .ports_total
                        .fetch_add(ports.len() as u64, Ordering::Relaxed);
                    sched.add_host(ip, tag, ports.clone(), Instant::now());
                }
                None => exhausted = true,
            }
        }
        while let Some(res) = tasks.try_join_next() {
            settle(&mut sched, res, &progress);
        }
        let now_group = sched.group_timeout();
        group_to.send_if_modified(|g| std::mem::replace(g, now_group) != now_group);
        while let Some(d) = sched.take_done() {
            on_host(d);
        }
        if cancel.is_cancelled() {
            interrupted = true;
            break;
        }
        match sched.next(Instant::now()) {
            Poll::Send(p) => {
                let group_rx = p.follows_group.then(|| group_rx.clone());
                tasks.spawn(async move {
                    let started = Instant::now();
                    let outcome = connect_watching(p.ip, p.port, p.timeout, group_rx).await;
                    (p, outcome, started.elapsed())
                });
            }
            Poll::Done => {
                if exhausted {
                    break;
                }
            }
            Poll::WaitUntil(at) => {
                tokio::select! {
                    Some(res) = tasks.join_next() => settle(&mut sched, res, &progress),
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = cancel.cancelled() => {}
                }
            }
            Poll::WaitForInput => {
                tokio::select! {
                    res = tasks.join_next() => match res {
                        Some(res) => settle(&mut sched, res, &progress),
                        // Nothing in flight and nothing to send: only a paced host remains.
                        None => tokio::time::sleep(Duration::from_millis(1)).await,
                    },
                    _ = cancel.cancelled() => {}
                }
            }
        }
    }
    tasks.abort_all();
    if interrupted {
        // What the interrupt cut short is reported too, marked unfinished.
        for d in sched.take_unfinished(Instant::now()) {
            on_host(d);
        }
    }
    ScanSummary {
        stats: sched.stats,
        interrupted,
    }
}

fn settle(
    sched: &mut Scheduler,
    res: Result<(Probe, Outcome, Duration), tokio::task::JoinError>,
    progress: &Progress,
) {
    // A task only fails if it panicked or was aborted; neither happens while we run.
    if let Ok((probe, outcome, rtt)) = res {
        let before = sched.stats.ports_done;
        sched.on_outcome(probe, outcome, rtt, Instant::now());
        progress
            .ports_done
            .fetch_add(sched.stats.ports_done - before, Ordering::Relaxed);
    }
}

/// One non-blocking connect with a timeout, classified as Nmap's connect scan does.
pub async fn connect_once(ip: IpAddr, port: u16, timeout: Duration) -> Outcome {
    let sock = match ip {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    };
    let sock = match sock {
        Ok(s) => s,
        Err(e) => return classify_error(&e),
    };
    match tokio::time::timeout(timeout, sock.connect(SocketAddr::new(ip, port))).await {
        Err(_) => Outcome::Timeout,
        Ok(Ok(stream)) => {
            drop(stream);
            Outcome::Connected
        }
        Ok(Err(e)) => classify_error(&e),
    }
}

/// [`connect_once`], whose wait shortens to the group's timeout (`group`) whenever that
/// becomes shorter while the connect is out.
async fn connect_watching(
    ip: IpAddr,
    port: u16,
    timeout: Duration,
    group: Option<tokio::sync::watch::Receiver<Option<Duration>>>,
) -> Outcome {
    let Some(mut group) = group else {
        return connect_once(ip, port, timeout).await;
    };
    let started = tokio::time::Instant::now();
    let attempt = connect_once(ip, port, timeout);
    tokio::pin!(attempt);
    let mut watching = true;
    loop {
        let wait = match *group.borrow_and_update() {
            Some(g) => timeout.min(g),
            None => timeout,
        };
        tokio::select! {
            outcome = &mut attempt => return outcome,
            _ = tokio::time::sleep_until(started + wait) => return Outcome::Timeout,
            changed = group.changed(), if watching => watching = changed.is_ok(),
        }
    }
}

/// Maps a connect error to an outcome (Nmap's reasons for the connect scan).
pub fn classify_error(e: &std::io::Error) -> Outcome {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) | Some(libc::ECONNRESET) => Outcome::Refused,
        Some(libc::EHOSTUNREACH) => Outcome::Unreachable("host-unreach"),
        Some(libc::ENETUNREACH) | Some(libc::ENETDOWN) => Outcome::Unreachable("net-unreach"),
        Some(libc::EACCES) | Some(libc::EPERM) => Outcome::Unreachable("admin-prohibited"),
        Some(libc::ETIMEDOUT) => Outcome::Timeout,
        Some(libc::EMFILE)
        | Some(libc::ENFILE)
        | Some(libc::EADDRNOTAVAIL)
        | Some(libc::ENOBUFS)
        | Some(libc::ENOMEM)
        | Some(libc::EAGAIN) => Outcome::LocalResource,
        _ => Outcome::Unreachable("unknown-response"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::timing::Template;
    use portolan_model::PortState;
    use std::net::TcpListener;

    #[tokio::test]
    async fn scans_loopback_listener_and_closed_ports() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        // A port that was free a moment ago is almost surely closed now.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let scan = ConnectScan {
            timing: Template::Aggressive.timing(),
            ports: vec![open, closed],
            host_group: 4,
            shards: 2,
        };
        let progress = Arc::new(Progress::default());
        let mut hosts = Vec::new();
        let summary = scan
            .run(
                vec![(0, "127.0.0.1".parse().unwrap())],
                progress.clone(),
                CancellationToken::new(),
                |d| hosts.push(d),
            )
            .await;
        assert!(!summary.interrupted);
        assert_eq!(hosts.len(), 1);
        let st: Vec<_> = hosts[0].ports.clone();
        assert!(st.contains(&(open, PortState::Open, "syn-ack")));
        assert!(st.contains(&(closed, PortState::Closed, "conn-refused")));
        assert_eq!(progress.fraction(), 1.0);
    }

    #[tokio::test]
    async fn cancelled_scan_stops_and_says_so() {
        let scan = ConnectScan {
            timing: Template::Aggressive.timing(),
            ports: (1..=1000).collect(),
            host_group: 1,
            shards: 1,
        };
        let cancel = CancellationToken::new();
        cancel.cancel();
        let summary = scan
            .run(
                vec![(0, "127.0.0.1".parse().unwrap())],
                Arc::new(Progress::default()),
                cancel,
                |_| {},
            )
            .await;
        assert!(summary.interrupted);
        assert!(summary.stats.probes_sent < 1000);
    }

    #[test]
    fn errors_map_to_nmaps_reasons() {
        let e = |n| std::io::Error::from_raw_os_error(n);
        assert_eq!(classify_error(&e(libc::ECONNREFUSED)), Outcome::Refused);
        assert_eq!(
            classify_error(&e(libc::EHOSTUNREACH)),
            Outcome::Unreachable("host-unreach")
        );
        assert_eq!(classify_error(&e(libc::EMFILE)), Outcome::LocalResource);
    }
}
