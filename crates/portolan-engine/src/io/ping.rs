//! Host discovery without privileges, as Nmap does it: a TCP connect to ports 80 and 443
//! (or the `-PS` list). A host is up as soon as any port answers, accepted or refused.

use crate::core::scheduler::Outcome;
use crate::io::connect::connect_once;
use crate::plan::timing::Timing;
use portolan_model::HostStatus;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The default ports of an unprivileged ping.
pub const DEFAULT_PING_PORTS: [u16; 2] = [80, 443];

/// Result of pinging one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingResult {
    pub status: HostStatus,
    pub rtt: Option<Duration>,
}

/// Pings one host: each round sends to every port at once and waits up to the timeout;
/// `tries` rounds at most.
pub async fn ping_host(ip: IpAddr, ports: &[u16], timeout: Duration, tries: u32) -> PingResult {
    let mut unreachable = false;
    for _ in 0..tries.max(1) {
        let mut set = JoinSet::new();
        for &port in ports {
            set.spawn(async move {
                let start = Instant::now();
                (connect_once(ip, port, timeout).await, start.elapsed())
            });
        }
        while let Some(r) = set.join_next().await {
            let Ok((outcome, rtt)) = r else { continue };
            let reason = match outcome {
                Outcome::Connected => "syn-ack",
                Outcome::Refused => "conn-refused",
                Outcome::Unreachable(_) => {
                    unreachable = true;
                    continue;
                }
                _ => continue,
            };
            set.abort_all();
            return PingResult {
                status: HostStatus::up(reason),
                rtt: Some(rtt),
            };
        }
    }
    PingResult {
        status: HostStatus::down(if unreachable {
            "host-unreach"
        } else {
            "no-response"
        }),
        rtt: None,
    }
}

/// Pings many hosts, `parallel` at a time. Results come back in input order; a host not
/// reached before `cancel` fires is reported down with reason `no-response`.
pub async fn ping_hosts(
    ips: &[IpAddr],
    ports: &[u16],
    timing: &Timing,
    parallel: usize,
    cancel: CancellationToken,
) -> Vec<PingResult> {
    // Nmap's ping waits the initial RTT timeout, at least a second for a first contact.
    let timeout = timing
        .initial_rtt_timeout
        .max(Duration::from_millis(1000))
        .min(timing.max_rtt_timeout.max(timing.initial_rtt_timeout));
    let tries = (timing.max_retries.min(1)) + 1;
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let ports: Arc<[u16]> = ports.into();
    let mut set = JoinSet::new();
    for (i, &ip) in ips.iter().enumerate() {
        let sem = sem.clone();
        let ports = ports.clone();
        let cancel = cancel.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = tokio::select! {
                r = ping_host(ip, &ports, timeout, tries) => r,
                _ = cancel.cancelled() => PingResult { status: HostStatus::down("no-response"), rtt: None },
            };
            (i, r)
        });
    }
    let mut out = vec![
        PingResult {
            status: HostStatus::down("no-response"),
            rtt: None
        };
        ips.len()
    ];
    while let Some(r) = set.join_next().await {
        if let Ok((i, res)) = r {
            if let Some(slot) = out.get_mut(i) {
                *slot = res;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::timing::Template;
    use portolan_model::HostState;

    #[tokio::test]
    async fn loopback_is_up_by_refusal_or_accept() {
        let r = ping_hosts(
            &["127.0.0.1".parse().unwrap()],
            &DEFAULT_PING_PORTS,
            &Template::Aggressive.timing(),
            4,
            CancellationToken::new(),
        )
        .await;
        assert_eq!(r[0].status.state, HostState::Up);
        assert!(["conn-refused", "syn-ack"].contains(&r[0].status.reason.as_str()));
        assert!(r[0].rtt.is_some());
    }
}
