//! The TCP connect scan driver: the only part that touches sockets and the clock. It asks
//! the [`Scheduler`] what to send, runs each connect as a task with its timeout, and feeds
//! the outcomes back. Hosts stream out as soon as each is finished.

use crate::scheduler::{HostDone, Next, Outcome, Probe, Scheduler, Stats};
use crate::sys;
use crate::timing::Timing;
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

/// What to scan on each host.
pub struct ConnectScan {
    pub timing: Timing,
    /// The ports, in the order to probe them.
    pub ports: Vec<u16>,
    /// Hosts scanned at once.
    pub host_group: usize,
}

impl ConnectScan {
    /// Scans `targets`, calling `on_host` for each finished host. Stops launching probes
    /// when `cancel` fires and returns with `interrupted` set.
    pub async fn run<I, F>(
        &self,
        targets: I,
        progress: Arc<Progress>,
        cancel: CancellationToken,
        mut on_host: F,
    ) -> ScanSummary
    where
        I: IntoIterator<Item = (usize, IpAddr)>,
        F: FnMut(HostDone),
    {
        let limit = sys::raise_nofile_limit();
        let fd_ceiling = limit.saturating_sub(FD_RESERVE).max(1) as usize;
        let mut sched = Scheduler::new(self.timing.clone(), fd_ceiling.min(DEFAULT_CEILING));
        let mut targets = targets.into_iter();
        let mut exhausted = false;
        let mut tasks: JoinSet<(Probe, Outcome, Duration)> = JoinSet::new();
        let mut interrupted = false;
        let group = self.host_group.max(1);
        loop {
            while !exhausted && sched.active_hosts() < group {
                match targets.next() {
                    Some((tag, ip)) => {
                        progress
                            .ports_total
                            .fetch_add(self.ports.len() as u64, Ordering::Relaxed);
                        sched.add_host(ip, tag, self.ports.clone(), Instant::now());
                    }
                    None => exhausted = true,
                }
            }
            while let Some(res) = tasks.try_join_next() {
                settle(&mut sched, res, &progress);
            }
            while let Some(d) = sched.take_done() {
                progress.hosts_done.fetch_add(1, Ordering::Relaxed);
                on_host(d);
            }
            if cancel.is_cancelled() {
                interrupted = true;
                break;
            }
            match sched.next(Instant::now()) {
                Next::Send(p) => {
                    tasks.spawn(async move {
                        let started = Instant::now();
                        let outcome = connect_once(p.ip, p.port, p.timeout).await;
                        (p, outcome, started.elapsed())
                    });
                }
                Next::Done => {
                    if exhausted {
                        break;
                    }
                }
                Next::WaitUntil(at) => {
                    tokio::select! {
                        Some(res) = tasks.join_next() => settle(&mut sched, res, &progress),
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = cancel.cancelled() => {}
                    }
                }
                Next::WaitForOutcome => {
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
        ScanSummary {
            stats: sched.stats,
            interrupted,
        }
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
    use crate::timing::Template;
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
