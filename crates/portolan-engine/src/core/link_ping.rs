//! What ARP ping (`-PR`, [`crate::core::arp_ping`]) and IPv6 neighbour discovery ping (Nmap's
//! "nd-response", [`crate::core::nd_ping`]) share: one request per host on a directly attached
//! Ethernet link, a reply naming the host's MAC, retransmission after the RTT timeout and
//! token-bucket pacing.
//!
//! The protocol engines only parse frames and build requests; everything about *when* to
//! ask whom lives in [`LinkSchedule`], so both ping the same way. They run over a backend's
//! link path in [`crate::io::link_ping`].

use crate::core::Poll;
use crate::plan::timing::{RttEstimator, Timing, TokenBucket};
use portolan_wire::ethernet::MacAddr;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Requests per second without `--max-rate`/`--min-rate`: ARP requests are broadcast (and
/// solicitations multicast), so every host on the segment may read each one; this keeps a
/// /16 sweep under a minute.
pub const DEFAULT_RATE: f64 = 1_500.0;
/// The most requests per host. Nmap's ARP and ND pings give up on a host after a few tries
/// whatever `--max-retries` allows; a lower `--max-retries` lowers it.
pub const MAX_TRIES: u32 = 3;
/// Pacing burst: after a late wake-up at most this much sending goes out back to back.
const BURST: Duration = Duration::from_millis(4);

/// A host that answered: its MAC and the round trip from the request that drew the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkReply {
    pub mac: MacAddr,
    pub rtt: Duration,
}

/// Retransmission and pacing of one request per host, for any address type `A`.
///
/// A silent host is asked again once the RTT timeout passes after its last request, up to
/// the try limit; requests are paced by a token bucket honouring `--max-rate`/`--min-rate`.
/// A host listed twice is asked (and answered) at its first position only.
#[derive(Debug)]
pub(crate) struct LinkSchedule<A> {
    hosts: Vec<A>,
    index: HashMap<A, usize>,
    tries: u32,
    rate: f64,
    rtt: RttEstimator,
    pacer: TokenBucket,
    sent: Vec<u32>,
    last: Vec<Option<Instant>>,
    replies: Vec<Option<LinkReply>>,
    /// Hosts never asked yet are `hosts[fresh..]`.
    fresh: usize,
    /// Hosts asked and not yet answered, in the order of their last request (so also in
    /// the order their timeouts expire: one timeout applies to all).
    outstanding: VecDeque<usize>,
}

impl<A: Copy + Eq + Hash> LinkSchedule<A> {
    pub(crate) fn new(timing: &Timing, hosts: Vec<A>) -> Self {
        let n = hosts.len();
        let ceiling = timing
            .max_rate
            .filter(|r| r.is_finite() && *r > 0.0)
            .unwrap_or(f64::INFINITY);
        let floor = timing
            .min_rate
            .filter(|r| r.is_finite() && *r > 0.0)
            .unwrap_or(0.0);
        let rate = DEFAULT_RATE.max(floor).min(ceiling).max(0.001);
        // Duplicates in `hosts` share the first index: each is asked once.
        let mut index = HashMap::with_capacity(n);
        for (i, &h) in hosts.iter().enumerate() {
            index.entry(h).or_insert(i);
        }
        LinkSchedule {
            index,
            hosts,
            tries: timing.max_retries.min(MAX_TRIES - 1) + 1,
            rate,
            rtt: RttEstimator::new(timing),
            pacer: TokenBucket::default(),
            sent: vec![0; n],
            last: vec![None; n],
            replies: vec![None; n],
            fresh: 0,
            outstanding: VecDeque::new(),
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    /// Which host to ask at `now`, or how long to wait, or that all is over.
    pub(crate) fn poll(&mut self, now: Instant) -> Poll<A> {
        let timeout = self.rtt.timeout();
        // Retire answered hosts and those whose last try timed out.
        let mut retry = None;
        while let Some(&i) = self.outstanding.front() {
            let due = self.last[i].map_or(now, |t| t + timeout);
            if self.replies[i].is_some() || (due <= now && self.sent[i] >= self.tries) {
                self.outstanding.pop_front();
                continue;
            }
            if due <= now {
                retry = Some(i);
            }
            break;
        }
        // Skip duplicate entries among the fresh hosts (asked under their first index).
        while self.fresh < self.hosts.len()
            && self.index.get(&self.hosts[self.fresh]) != Some(&self.fresh)
        {
            self.fresh += 1;
        }
        let next = match retry {
            Some(i) => Some(i),
            None if self.fresh < self.hosts.len() => Some(self.fresh),
            None => None,
        };
        let Some(i) = next else {
            return match self.outstanding.front() {
                Some(&i) => Poll::WaitUntil(self.last[i].map_or(now, |t| t + timeout)),
                None => Poll::Done,
            };
        };
        if let Some(at) = self.pacer.wait(now, self.rate, BURST) {
            return Poll::WaitUntil(at);
        }
        self.pacer.take();
        if retry.is_some() {
            self.outstanding.pop_front();
        } else {
            self.fresh += 1;
        }
        self.sent[i] += 1;
        self.last[i] = Some(now);
        self.outstanding.push_back(i);
        Poll::Send(self.hosts[i])
    }

    /// Records that `host` answered at `now` from `mac`. Ignored if `host` is not one of
    /// ours, was never asked (an unsolicited reply), already answered, or `mac` is multicast
    /// or zero (no host has such an address).
    pub(crate) fn answer(&mut self, now: Instant, host: A, mac: MacAddr) {
        if mac.is_multicast() || mac == MacAddr::ZERO {
            return;
        }
        let Some(&i) = self.index.get(&host) else {
            return;
        };
        let Some(sent_at) = self.last[i] else { return };
        if self.replies[i].is_none() {
            let rtt = now.saturating_duration_since(sent_at);
            self.rtt.sample(rtt);
            self.replies[i] = Some(LinkReply { mac, rtt });
        }
    }

    pub(crate) fn replies(&self) -> &[Option<LinkReply>] {
        &self.replies
    }

    pub(crate) fn requests_sent(&self) -> &[u32] {
        &self.sent
    }
}

/// A sans-I/O link-layer ping as a driver sees it.
pub trait LinkPing {
    type Probe: Copy;
    fn poll(&mut self, now: Instant) -> Poll<Self::Probe>;
    fn on_frame(&mut self, now: Instant, frame: &[u8]);
    /// Writes the request frame for `probe` into `buf`; returns its length.
    fn build(&self, probe: Self::Probe, buf: &mut [u8]) -> portolan_wire::Result<usize>;
    /// The address `probe` asks about.
    fn target(probe: Self::Probe) -> std::net::IpAddr;
    fn replies(&self) -> &[Option<LinkReply>];
}

/// A fake-clock harness for the protocol engines' tests.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// How a simulated host answers each request.
    #[derive(Clone, Copy)]
    pub(crate) enum Host {
        Up,
        Silent,
        /// Answers only from this try on (earlier replies are lost).
        UpFromTry(u32),
        /// Answers every request twice.
        Duplicates,
    }

    pub(crate) struct Outcome {
        pub(crate) replies: Vec<Option<LinkReply>>,
        pub(crate) sent: Vec<u32>,
        pub(crate) send_times: Vec<Instant>,
        pub(crate) start: Instant,
        pub(crate) end: Instant,
    }

    /// Runs `ping` on a fake clock against simulated `hosts` that answer after 1 ms with
    /// `reply_from(i)`; `host_of` says which host a request asks for; `extra` frames are
    /// delivered at the start.
    pub(crate) fn simulate<P: LinkPing>(
        mut ping: P,
        hosts: &[Host],
        host_of: impl Fn(P::Probe) -> usize,
        reply_from: impl Fn(usize) -> Vec<u8>,
        extra: &[Vec<u8>],
    ) -> Outcome {
        let start = Instant::now();
        let mut now = start;
        let mut pending: Vec<(Instant, Vec<u8>)> = extra.iter().map(|f| (now, f.clone())).collect();
        let mut tries = vec![0u32; hosts.len()];
        let mut send_times = Vec::new();
        for _ in 0..1_000_000 {
            pending.sort_by_key(|p| std::cmp::Reverse(p.0));
            while pending.last().is_some_and(|p| p.0 <= now) {
                let (_, f) = pending.pop().unwrap();
                ping.on_frame(now, &f);
            }
            match ping.poll(now) {
                Poll::WaitForInput => panic!("raw and link cores never wait for input"),
                Poll::Send(p) => {
                    send_times.push(now);
                    let i = host_of(p);
                    tries[i] += 1;
                    let at = now + Duration::from_millis(1);
                    match hosts[i] {
                        Host::Up => pending.push((at, reply_from(i))),
                        Host::Silent => {}
                        Host::UpFromTry(t) if tries[i] >= t => pending.push((at, reply_from(i))),
                        Host::UpFromTry(_) => {}
                        Host::Duplicates => {
                            pending.push((at, reply_from(i)));
                            pending.push((at + Duration::from_millis(5), reply_from(i)));
                        }
                    }
                }
                Poll::WaitUntil(t) => {
                    assert!(t > now, "WaitUntil must move the clock");
                    now = pending
                        .iter()
                        .map(|p| p.0)
                        .min()
                        .map_or(t, |a| a.min(t))
                        .max(now);
                }
                Poll::Done => break,
            }
        }
        assert!(
            matches!(ping.poll(now), Poll::Done),
            "engine did not finish"
        );
        Outcome {
            replies: ping.replies().to_vec(),
            sent: tries,
            send_times,
            start,
            end: now,
        }
    }
}
