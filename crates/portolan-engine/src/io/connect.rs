//! The TCP connect scan driver: the only part that touches sockets and the clock. Each
//! shard thread asks its [`Scheduler`] what to send, starts each connect on a non-blocking
//! socket, watches those still out with one epoll set and their deadlines, and feeds the
//! outcomes back. Hosts stream out as soon as each is finished.
//!
//! The cost of a scan is the kernel's work in `connect` (the SYN, and on a LAN its
//! answer, processed within the call). Batching the connects through io_uring was
//! measured (`-p-` of a lab host: 0.81 s of kernel time against 0.77 s for plain calls)
//! and does not pay; reusing refused sockets does (1.08 s with a fresh socket each).

use crate::core::scheduler::{HostDone, Outcome, Probe, Scheduler, Stats};
use crate::core::Poll;
use crate::io::sys::{self, Epoll};
use crate::plan::timing::Timing;
use socket2::{Domain, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
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
    /// Each shard is a thread of its own over every host and a share of the ports, so
    /// no wake-up crosses threads; a host is reported once all shards have finished it.
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
                    run_shard(
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
                    )
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

/// How long a shard blocks at most before looking at the cancellation token.
const CANCEL_CHECK: Duration = Duration::from_millis(50);

/// One shard, on its own thread: a scheduler and its probes. Each connect is a
/// non-blocking socket; where the answer is already in when `connect` returns (the SYN and
/// its answer are processed within the call on a fast path, as on a LAN), the outcome is
/// read at once with a second `connect`, else the socket joins the shard's epoll set.
#[allow(clippy::too_many_arguments)]
fn run_shard<F>(
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
    let mut out = match Outstanding::new() {
        Ok(o) => o,
        Err(_) => {
            // Without this shard no host can finish: stop the others.
            cancel.cancel();
            return ScanSummary {
                stats: Stats::default(),
                interrupted: true,
            };
        }
    };
    let mut targets = targets.into_iter();
    let mut exhausted = false;
    let mut interrupted = false;
    let group = host_group.max(1);
    let mut settled = Vec::new();
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
        for (probe, outcome, rtt) in settled.drain(..) {
            settle(&mut sched, probe, outcome, rtt, &progress);
        }
        while let Some(d) = sched.take_done() {
            on_host(d);
        }
        if cancel.is_cancelled() {
            interrupted = true;
            break;
        }
        let now = Instant::now();
        let until = match sched.next(now) {
            Poll::Send(p) => {
                if let Some((outcome, rtt)) = out.launch(p) {
                    settle(&mut sched, p, outcome, rtt, &progress);
                }
                continue;
            }
            Poll::Done => {
                if exhausted {
                    break;
                }
                continue;
            }
            Poll::WaitUntil(at) => at,
            // Nothing in flight and nothing to send: only a paced host remains.
            Poll::WaitForInput if out.is_empty() => now + Duration::from_millis(1),
            Poll::WaitForInput => now + CANCEL_CHECK,
        };
        if out
            .wait(
                until.min(now + CANCEL_CHECK),
                sched.group_timeout(),
                &mut settled,
            )
            .is_err()
        {
            // The epoll set failed: nothing more can be learnt about the probes out.
            cancel.cancel();
        }
    }
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
    probe: Probe,
    outcome: Outcome,
    rtt: Duration,
    progress: &Progress,
) {
    let before = sched.stats.ports_done;
    sched.on_outcome(probe, outcome, rtt, Instant::now());
    progress
        .ports_done
        .fetch_add(sched.stats.ports_done - before, Ordering::Relaxed);
}

/// A connect still out.
struct Pending {
    sock: Socket,
    probe: Probe,
    started: Instant,
}

/// A shard's connects still out, watched by one epoll set, each with its deadline.
struct Outstanding {
    epoll: Epoll,
    slots: Vec<Option<Pending>>,
    free: Vec<usize>,
    len: usize,
    /// No deadline falls before this; recomputed when it passes or the group's timeout
    /// changes.
    next_expiry: Option<Instant>,
    group: Option<Duration>,
    ready: Vec<u64>,
    /// A socket whose connect was refused, to use again.
    spare: Option<(Domain, Socket)>,
}

impl Outstanding {
    fn new() -> std::io::Result<Self> {
        Ok(Outstanding {
            epoll: Epoll::new()?,
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            next_expiry: None,
            group: None,
            ready: Vec::new(),
            spare: None,
        })
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Starts `p`'s connect. Returns its outcome when known at once, else keeps it.
    fn launch(&mut self, p: Probe) -> Option<(Outcome, Duration)> {
        let started = Instant::now();
        let addr = SockAddr::from(SocketAddr::new(p.ip, p.port));
        let domain = Domain::for_address(addr.as_socket()?);
        let (sock, reused) = match self.spare.take() {
            Some((d, s)) if d == domain => (s, true),
            _ => match Socket::new(domain, Type::STREAM.nonblocking().cloexec(), None) {
                Ok(s) => (s, false),
                Err(e) => return Some((classify_error(&e), started.elapsed())),
            },
        };
        match sock.connect(&addr) {
            Ok(()) => return Some((connected(sock), started.elapsed())),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            // Whatever a reused socket says at once is its own state, not the port's:
            // try again on a fresh one (the spare is gone, so this recurses once).
            Err(_) if reused => return self.launch(p),
            Err(e) => return Some((classify_error(&e), started.elapsed())),
        }
        // A second connect tells a pending attempt (EALREADY) from a finished one.
        match sock.connect(&addr) {
            Ok(()) => return Some((connected(sock), started.elapsed())),
            Err(e) if e.raw_os_error() == Some(libc::EISCONN) => {
                return Some((connected(sock), started.elapsed()))
            }
            Err(e) if e.raw_os_error() == Some(libc::EALREADY) => {}
            Err(e) => {
                if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                    // A refused connect leaves the socket unconnected, and Linux lets it
                    // connect again: the next probe saves a socket() and a close(), a
                    // quarter of a closed port's cost.
                    self.spare = Some((domain, sock));
                }
                return Some((classify_error(&e), started.elapsed()));
            }
        }
        let slot = self.free.pop().unwrap_or(self.slots.len());
        if let Err(e) = self.epoll.watch_writable(sock.as_raw_fd(), slot as u64) {
            return Some((classify_error(&e), started.elapsed()));
        }
        let deadline = started + wait_for(&p, self.group);
        self.next_expiry = Some(self.next_expiry.map_or(deadline, |n| n.min(deadline)));
        let pending = Some(Pending {
            sock,
            probe: p,
            started,
        });
        match self.slots.get_mut(slot) {
            Some(s) => *s = pending,
            None => self.slots.push(pending),
        }
        self.len += 1;
        None
    }

    /// Waits for answers until `until` at most, then moves the answered and the expired
    /// connects to `settled`. `group`: the group's timeout as it stands now.
    fn wait(
        &mut self,
        until: Instant,
        group: Option<Duration>,
        settled: &mut Vec<(Probe, Outcome, Duration)>,
    ) -> std::io::Result<()> {
        if group != self.group {
            // A shorter group timeout may bring deadlines forward: look again.
            self.group = group;
            self.next_expiry = Some(Instant::now());
        }
        let until = self.next_expiry.map_or(until, |n| n.min(until));
        if self.len > 0 {
            let now = Instant::now();
            self.epoll
                .wait(&mut self.ready, until.saturating_duration_since(now))?;
        } else {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
        for token in std::mem::take(&mut self.ready) {
            let Some(p) = self.take(token as usize) else {
                continue;
            };
            let outcome = match p.sock.take_error() {
                Ok(None) => connected(p.sock),
                Ok(Some(e)) | Err(e) => classify_error(&e),
            };
            settled.push((p.probe, outcome, p.started.elapsed()));
        }
        let now = Instant::now();
        if self.next_expiry.is_some_and(|n| n <= now) {
            self.next_expiry = None;
            for slot in 0..self.slots.len() {
                let Some(p) = self.slots.get(slot).and_then(|s| s.as_ref()) else {
                    continue;
                };
                let deadline = p.started + wait_for(&p.probe, self.group);
                if deadline <= now {
                    if let Some(p) = self.take(slot) {
                        settled.push((p.probe, Outcome::Timeout, now - p.started));
                    }
                } else {
                    self.next_expiry = Some(self.next_expiry.map_or(deadline, |n| n.min(deadline)));
                }
            }
        }
        Ok(())
    }

    fn take(&mut self, slot: usize) -> Option<Pending> {
        let p = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(p)
    }
}

/// How long a probe waits for its answer: its own timeout, shortened to the group's for
/// a host that had not answered when it left (as Nmap re-reads a probe's timeout while it
/// is out).
fn wait_for(p: &Probe, group: Option<Duration>) -> Duration {
    match group {
        Some(g) if p.follows_group => p.timeout.min(g),
        _ => p.timeout,
    }
}

/// Closes a connected socket with a reset rather than a FIN exchange, as Nmap does: the
/// port's state is known, and a lingering connection would only hold a local port.
fn connected(sock: Socket) -> Outcome {
    let _ = sock.set_linger(Some(Duration::ZERO));
    Outcome::Connected
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

    /// Ports that were free a moment ago, almost surely closed now.
    fn free_ports(n: usize) -> Vec<u16> {
        let held: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        held.iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect()
    }

    fn scan_one_shard(timing: Timing, ports: Vec<u16>) -> HostDone {
        let scan = ConnectScan {
            timing,
            ports,
            host_group: 1,
            shards: 1,
        };
        let mut hosts = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(scan.run(
            vec![(0, "127.0.0.1".parse().unwrap())],
            Arc::new(Progress::default()),
            CancellationToken::new(),
            |d| hosts.push(d),
        ));
        assert_eq!(hosts.len(), 1);
        hosts.remove(0)
    }

    #[test]
    fn a_socket_used_again_after_a_refusal_still_finds_the_open_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        let mut ports = free_ports(20);
        let closed = ports.clone();
        ports.insert(10, open);
        let host = scan_one_shard(Template::Aggressive.timing(), ports);
        assert!(host.complete);
        assert!(host.ports.contains(&(open, PortState::Open, "syn-ack")));
        for p in closed {
            assert!(host.ports.contains(&(p, PortState::Closed, "conn-refused")));
        }
    }

    #[test]
    fn an_unanswered_connect_is_watched_until_it_times_out() {
        let (_listener, _queued, addr) = silent_listener();
        let mut timing = Template::Aggressive.timing();
        timing.initial_rtt_timeout = Duration::from_millis(100);
        timing.max_retries = 0;
        let host = scan_one_shard(timing, vec![addr.port()]);
        assert_eq!(
            host.ports,
            vec![(addr.port(), PortState::Filtered, "no-response")]
        );
    }

    /// A listener whose accept queue is full: it drops SYNs, so a connect to it stays out.
    fn silent_listener() -> (Socket, std::net::TcpStream, SocketAddr) {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let queued = std::net::TcpStream::connect(addr).unwrap();
        (listener, queued, addr)
    }

    #[test]
    fn a_probe_to_a_silent_host_waits_only_as_long_as_the_group_timeout() {
        let (_l, _q, addr) = silent_listener();
        let mut out = Outstanding::new().unwrap();
        let probe = Probe {
            host: 0,
            ip: addr.ip(),
            port: addr.port(),
            idx: 0,
            try_no: 0,
            timeout: Duration::from_secs(3600),
            follows_group: true,
        };
        assert_eq!(out.launch(probe), None);
        // The group's timeout, learnt while the probe is out, cuts its hour short.
        let mut settled = Vec::new();
        for _ in 0..20 {
            let until = Instant::now() + Duration::from_millis(100);
            out.wait(until, Some(Duration::from_millis(10)), &mut settled)
                .unwrap();
            if !settled.is_empty() {
                break;
            }
        }
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].1, Outcome::Timeout);
        assert!(out.is_empty());
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
