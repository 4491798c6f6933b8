//! The sans-I/O core of a probe-per-port scan: which probe goes next, when, and what a
//! probe's outcome means. It never reads a clock or touches a socket: the driver passes
//! `now` in and reports outcomes, so the whole policy runs under test on a fake clock.
//!
//! Policy, after Nmap's (nmap-formats.md §3):
//! - a congestion window of probes in flight: slow start (+1 per reply) up to `ssthresh`,
//!   then +1/cwnd, both scaled by how many outcomes each answer stands for (timeouts
//!   count, up to 50: on a sparse network the rare answers must open the window); halved
//!   when a retransmitted probe is answered (its first try was lost), at most once per
//!   timeout period. An ICMP error (filtered) answering a retry changes nothing: such
//!   errors are rate-limited or come from a router, not a sign of congestion;
//! - a host that never answered waits as long as the group's answers show necessary, not
//!   the initial timeout: on a sparse network nearly every host is such a host;
//! - a ceiling from `--max-parallelism` and from the file-descriptor limit; `--min-parallelism`
//!   as a floor; `--min-rate` lets the window be exceeded while sending is behind the rate;
//!   `--max-rate` paces launches; `--scan-delay` spaces probes to one host;
//! - a probe that times out is retried only as deep as answers showed necessary (one retry at
//!   first; deeper once a retry got an answer), never beyond `--max-retries`;
//! - `--host-timeout` abandons a host.

use crate::core::Poll;
use crate::plan::timing::{RttEstimator, Timing, TokenBucket};
use portolan_model::PortState;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One connection attempt to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Index of the host in the scheduler (stable for the host's life).
    pub host: usize,
    pub ip: IpAddr,
    pub port: u16,
    /// Index of the port in the host's port list.
    pub idx: u32,
    /// 0 for the first try, 1 for the first retransmission, ...
    pub try_no: u8,
    /// How long the driver waits for an answer.
    pub timeout: Duration,
    /// The host had not answered when the probe left: the wait shortens to
    /// [`Scheduler::group_timeout`] if that becomes shorter meanwhile (as Nmap re-reads a
    /// probe's timeout while it is out).
    pub follows_group: bool,
}

/// What became of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handshake completed: open (`syn-ack`).
    Connected,
    /// Refused: closed (`conn-refused`).
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// An ICMP error reported by the kernel: filtered, with this reason.
    Unreachable(&'static str),
    /// A local resource ran out (file descriptors, ephemeral ports): try again later,
    /// and lower the ceiling.
    LocalResource,
}

/// A finished host.
#[derive(Debug, Clone)]
pub struct HostDone {
    pub ip: IpAddr,
    /// The caller's tag, handed back untouched.
    pub tag: usize,
    /// (port, state, reason), in the order the ports were given.
    pub ports: Vec<(u16, PortState, &'static str)>,
    pub rtt: RttEstimator,
    pub started: Instant,
    pub finished: Instant,
    pub timed_out: bool,
    pub replies: u64,
    /// Every port has its verdict; false for a host an interrupt cut short
    /// ([`Scheduler::take_unfinished`]).
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Done(PortState, &'static str),
}

#[derive(Debug)]
struct HostState {
    ip: IpAddr,
    tag: usize,
    ports: Vec<u16>,
    slots: Vec<Slot>,
    next_fresh: usize,
    retries: VecDeque<(u32, u8)>,
    outstanding: usize,
    remaining: usize,
    rtt: RttEstimator,
    /// Deepest try that got an answer.
    max_answered_try: Option<u8>,
    last_send: Option<Instant>,
    started: Instant,
    timed_out: bool,
    replies: u64,
}

impl HostState {
    fn has_work(&self) -> bool {
        !self.timed_out && (!self.retries.is_empty() || self.next_fresh < self.ports.len())
    }
    fn is_finished(&self) -> bool {
        self.outstanding == 0 && (self.remaining == 0 || self.timed_out)
    }
    /// How many retransmissions answers have shown to be worth making.
    fn allowed_retries(&self, max: u32) -> u32 {
        let shown = self.max_answered_try.map(|t| t as u32 + 1).unwrap_or(1);
        shown.max(1).min(max)
    }
}

/// Scheduling state for a group of hosts scanned together.
#[derive(Debug)]
pub struct Scheduler {
    timing: Timing,
    hosts: Vec<Option<HostState>>,
    active: Vec<usize>,
    cursor: usize,
    cwnd: f64,
    ssthresh: f64,
    ceiling: usize,
    /// The ceiling before any local resource error lowered it; recovered towards slowly.
    max_ceiling: usize,
    floor: usize,
    in_flight: usize,
    last_cut: Option<Instant>,
    /// Every host's answers: the timeout of a host that has not answered yet.
    group_rtt: RttEstimator,
    /// Outcomes that bear on the window (answers and timeouts), and the answers among
    /// them: their ratio scales the window's growth.
    outcomes: u64,
    answers: u64,
    first_send: Option<Instant>,
    /// `--max-rate` pacing.
    pacer: TokenBucket,
    sent: u64,
    done: VecDeque<HostDone>,
    /// Totals for the completeness report.
    pub stats: Stats,
}

/// Counters a scan reports about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub probes_sent: u64,
    pub retransmissions: u64,
    pub answered: u64,
    pub timeouts: u64,
    pub drops_detected: u64,
    pub ports_total: u64,
    pub ports_done: u64,
    /// Probes that could not be sent for local reasons (descriptors, ephemeral ports).
    pub local_errors: u64,
    /// The most tries any port got (1 = no retransmission).
    pub max_tries: u32,
}

/// How much sending `--max-rate` lets happen at once after a late wake-up.
const RATE_BURST: Duration = Duration::from_millis(10);

/// The ceiling never drops below this after local errors (unless asked for fewer).
const MIN_CEILING: usize = 4;

/// The most one answer may grow the window by (Nmap's cc_scale_max).
const MAX_GROWTH_SCALE: f64 = 50.0;

/// How long to wait for a host's answer: its own estimate once it has answered, else the
/// group's once any host has, else the initial timeout.
fn probe_timeout(host: &RttEstimator, group: &RttEstimator) -> Duration {
    if host.srtt().is_none() && group.srtt().is_some() {
        group.timeout()
    } else {
        host.timeout()
    }
}

impl Scheduler {
    /// `fd_ceiling`: the most probes that may be in flight for local reasons (descriptors).
    pub fn new(timing: Timing, fd_ceiling: usize) -> Self {
        let par_ceiling = timing
            .max_parallelism
            .map(|m| m as usize)
            .unwrap_or(usize::MAX);
        let ceiling = fd_ceiling.min(par_ceiling).max(1);
        let floor = timing
            .min_parallelism
            .map(|m| m as usize)
            .unwrap_or(1)
            .clamp(1, ceiling);
        let initial = match timing.template as u8 {
            0..=2 => 1.0,
            3 => 10.0,
            _ => 32.0,
        };
        let group_rtt = RttEstimator::new(&timing);
        Scheduler {
            cwnd: f64::max(initial, floor as f64).min(ceiling as f64),
            ssthresh: 75.0_f64.max(ceiling as f64 / 4.0),
            ceiling,
            max_ceiling: ceiling,
            floor,
            timing,
            hosts: Vec::new(),
            active: Vec::new(),
            cursor: 0,
            in_flight: 0,
            last_cut: None,
            group_rtt,
            outcomes: 0,
            answers: 0,
            first_send: None,
            pacer: TokenBucket::default(),
            sent: 0,
            done: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Adds a host with its ports (in the order to probe them). Returns its index.
    pub fn add_host(&mut self, ip: IpAddr, tag: usize, ports: Vec<u16>, now: Instant) -> usize {
        let n = ports.len();
        let idx = self.hosts.len();
        self.stats.ports_total += n as u64;
        self.hosts.push(Some(HostState {
            ip,
            tag,
            slots: vec![Slot::Pending; n],
            ports,
            next_fresh: 0,
            retries: VecDeque::new(),
            outstanding: 0,
            remaining: n,
            rtt: RttEstimator::new(&self.timing),
            max_answered_try: None,
            last_send: None,
            started: now,
            timed_out: false,
            replies: 0,
        }));
        self.active.push(idx);
        self.finish_if_done(idx, now);
        idx
    }

    /// Hosts still being scanned.
    pub fn active_hosts(&self) -> usize {
        self.active.len()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn window(&self) -> f64 {
        self.cwnd
    }

    /// The wait for a host that has not answered, once any host has.
    pub fn group_timeout(&self) -> Option<Duration> {
        self.group_rtt.srtt().map(|_| self.group_rtt.timeout())
    }

    /// Finished hosts, in the order they finished.
    pub fn take_done(&mut self) -> Option<HostDone> {
        self.done.pop_front()
    }

    /// The next thing to do at `now`.
    pub fn next(&mut self, now: Instant) -> Poll<Probe> {
        self.expire_hosts(now);
        if self.active.is_empty() {
            return if self.in_flight == 0 {
                Poll::Done
            } else {
                Poll::WaitForInput
            };
        }
        if self.in_flight >= self.ceiling {
            return Poll::WaitForInput;
        }
        let window = self.cwnd.floor().max(self.floor as f64) as usize;
        if self.in_flight >= window && !self.behind_min_rate(now) {
            return Poll::WaitForInput;
        }
        if let Some(rate) = self.timing.max_rate.filter(|r| *r > 0.0) {
            if let Some(at) = self.pacer.wait(now, rate, RATE_BURST) {
                return Poll::WaitUntil(at);
            }
        }
        // Round-robin over active hosts that have work and whose scan delay allows a probe.
        let mut earliest: Option<Instant> = None;
        for step in 0..self.active.len() {
            let slot = (self.cursor + step) % self.active.len();
            let hidx = self.active[slot];
            let Some(h) = self.hosts[hidx].as_mut() else {
                continue;
            };
            if !h.has_work() {
                continue;
            }
            if let Some(last) = h.last_send {
                let at = last + self.timing.scan_delay;
                if !self.timing.scan_delay.is_zero() && at > now {
                    earliest = Some(earliest.map_or(at, |e: Instant| e.min(at)));
                    continue;
                }
            }
            let (idx, try_no) = match h.retries.pop_front() {
                Some(r) => r,
                None => {
                    let i = h.next_fresh as u32;
                    h.next_fresh += 1;
                    (i, 0)
                }
            };
            h.outstanding += 1;
            h.last_send = Some(now);
            let probe = Probe {
                host: hidx,
                ip: h.ip,
                port: h.ports[idx as usize],
                idx,
                try_no,
                timeout: probe_timeout(&h.rtt, &self.group_rtt),
                follows_group: h.rtt.srtt().is_none(),
            };
            self.cursor = (slot + 1) % self.active.len();
            self.in_flight += 1;
            self.sent += 1;
            self.first_send.get_or_insert(now);
            if self.timing.max_rate.is_some() {
                self.pacer.take();
            }
            self.stats.probes_sent += 1;
            self.stats.max_tries = self.stats.max_tries.max(u32::from(try_no) + 1);
            if try_no > 0 {
                self.stats.retransmissions += 1;
            }
            return Poll::Send(probe);
        }
        match earliest {
            Some(at) => Poll::WaitUntil(at),
            None => Poll::WaitForInput,
        }
    }

    fn behind_min_rate(&self, now: Instant) -> bool {
        match (self.timing.min_rate, self.first_send) {
            (Some(rate), Some(first)) if rate > 0.0 => {
                let expected = now.duration_since(first).as_secs_f64() * rate;
                (self.sent as f64) < expected
            }
            (Some(rate), None) => rate > 0.0,
            _ => false,
        }
    }

    /// Digests a probe's outcome, observed at `now` after `rtt`.
    pub fn on_outcome(&mut self, probe: Probe, outcome: Outcome, rtt: Duration, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let max_retries = self.timing.max_retries;
        let Some(h) = self.hosts.get_mut(probe.host).and_then(|h| h.as_mut()) else {
            return;
        };
        h.outstanding = h.outstanding.saturating_sub(1);
        let answered = match outcome {
            Outcome::Connected => Some((PortState::Open, "syn-ack")),
            Outcome::Refused => Some((PortState::Closed, "conn-refused")),
            Outcome::Unreachable(reason) => Some((PortState::Filtered, reason)),
            Outcome::Timeout => None,
            Outcome::LocalResource => {
                // Not the network's doing: retry at the same depth, with fewer in flight.
                // The ceiling drops to what is in flight (a few at least) and climbs back
                // one probe per answer, so a passing shortage does not slow the rest.
                h.retries.push_front((probe.idx, probe.try_no));
                self.stats.local_errors += 1;
                self.ceiling = self
                    .in_flight
                    .max(self.floor)
                    .max(MIN_CEILING.min(self.max_ceiling));
                self.cwnd = self.cwnd.min(self.ceiling as f64);
                return;
            }
        };
        match answered {
            Some((state, reason)) => {
                self.stats.answered += 1;
                if self.ceiling < self.max_ceiling {
                    self.ceiling += 1;
                }
                h.replies += 1;
                h.rtt.sample(rtt);
                self.group_rtt.sample(rtt);
                if let Some(slot) = h.slots.get_mut(probe.idx as usize) {
                    if *slot == Slot::Pending {
                        *slot = Slot::Done(state, reason);
                        h.remaining -= 1;
                        self.stats.ports_done += 1;
                    }
                }
                // An ICMP error answering a retry says nothing about congestion (rate
                // limits, a router's neighbour resolution failing late): as Nmap, it
                // neither cuts the window nor deepens the retries.
                let adjust = !(matches!(outcome, Outcome::Unreachable(_)) && probe.try_no > 0);
                if !adjust {
                    self.finish_if_done(probe.host, now);
                    return;
                }
                h.max_answered_try = Some(
                    h.max_answered_try
                        .map_or(probe.try_no, |t| t.max(probe.try_no)),
                );
                self.outcomes += 1;
                self.answers += 1;
                // Each answer stands for the timeouts since: growth scaled by their ratio.
                let scale = (self.outcomes as f64 / self.answers as f64).min(MAX_GROWTH_SCALE);
                let timeout = h.rtt.timeout();
                if probe.try_no > 0 {
                    // The first try went unanswered but a later one was answered: a drop.
                    self.stats.drops_detected += 1;
                    let recent = self
                        .last_cut
                        .is_some_and(|t| now.duration_since(t) < timeout);
                    if !recent {
                        self.ssthresh = (self.cwnd / 2.0).max(2.0);
                        self.cwnd = self.ssthresh.max(self.floor as f64);
                        self.last_cut = Some(now);
                    }
                } else if self.cwnd < self.ssthresh {
                    self.cwnd = (self.cwnd + scale).min(self.ssthresh);
                } else {
                    self.cwnd += scale / self.cwnd;
                }
                self.cwnd = self.cwnd.min(self.ceiling as f64);
            }
            None => {
                self.stats.timeouts += 1;
                self.outcomes += 1;
                if (probe.try_no as u32) < h.allowed_retries(max_retries) {
                    h.retries.push_back((probe.idx, probe.try_no + 1));
                } else if let Some(slot) = h.slots.get_mut(probe.idx as usize) {
                    if *slot == Slot::Pending {
                        *slot = Slot::Done(PortState::Filtered, "no-response");
                        h.remaining -= 1;
                        self.stats.ports_done += 1;
                    }
                }
            }
        }
        self.finish_if_done(probe.host, now);
    }

    fn expire_hosts(&mut self, now: Instant) {
        let Some(limit) = self.timing.host_timeout else {
            return;
        };
        let mut expired = Vec::new();
        for &i in &self.active {
            if let Some(h) = self.hosts[i].as_mut() {
                if !h.timed_out && now.duration_since(h.started) >= limit {
                    h.timed_out = true;
                    h.retries.clear();
                    expired.push(i);
                }
            }
        }
        for i in expired {
            self.finish_if_done(i, now);
        }
    }

    fn finish_if_done(&mut self, hidx: usize, now: Instant) {
        let finished = self
            .hosts
            .get(hidx)
            .and_then(|h| h.as_ref())
            .is_some_and(|h| h.is_finished());
        if !finished {
            return;
        }
        let Some(h) = self.hosts.get_mut(hidx).and_then(|h| h.take()) else {
            return;
        };
        self.active.retain(|&i| i != hidx);
        if self.cursor >= self.active.len() {
            self.cursor = 0;
        }
        let ports = h
            .ports
            .iter()
            .zip(h.slots.iter())
            .filter_map(|(&p, s)| match s {
                Slot::Done(state, reason) => Some((p, *state, *reason)),
                Slot::Pending => None,
            })
            .collect();
        self.done.push_back(HostDone {
            ip: h.ip,
            tag: h.tag,
            ports,
            rtt: h.rtt,
            started: h.started,
            finished: now,
            timed_out: h.timed_out,
            replies: h.replies,
            complete: true,
        });
    }

    /// After an interrupt: the hosts still being scanned, with the ports that answered
    /// so far (a port without an answer yet has no verdict to report). They leave the
    /// scheduler.
    pub fn take_unfinished(&mut self, now: Instant) -> Vec<HostDone> {
        let active = std::mem::take(&mut self.active);
        self.cursor = 0;
        active
            .into_iter()
            .filter_map(|i| self.hosts.get_mut(i).and_then(Option::take))
            .map(|h| HostDone {
                ip: h.ip,
                tag: h.tag,
                ports: h
                    .ports
                    .iter()
                    .zip(h.slots.iter())
                    .filter_map(|(&p, s)| match s {
                        Slot::Done(state, reason) if *reason != "no-response" => {
                            Some((p, *state, *reason))
                        }
                        _ => None,
                    })
                    .collect(),
                rtt: h.rtt,
                started: h.started,
                finished: now,
                timed_out: h.timed_out,
                replies: h.replies,
                complete: false,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::timing::Template;
    use std::collections::HashMap;

    /// A simulated host: per-port behaviour, plus a loss pattern for first tries.
    #[derive(Clone)]
    struct SimHost {
        open: Vec<u16>,
        dropped: Vec<u16>,
        /// Lose the first try of every n-th probe (0 = never).
        lose_first_every: u64,
    }

    /// Runs a scheduler to completion against simulated hosts on a fake clock.
    /// Each probe is answered after `rtt`, or times out after its timeout.
    fn simulate(
        timing: Timing,
        hosts: Vec<SimHost>,
        ports: Vec<u16>,
        rtt: Duration,
    ) -> (Vec<HostDone>, Stats, Duration) {
        let start = Instant::now();
        let mut now = start;
        let mut s = Scheduler::new(timing, 10_000);
        for (i, _) in hosts.iter().enumerate() {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0xc612_000a + i as u32));
            s.add_host(ip, i, ports.clone(), now);
        }
        // (completion time, probe, outcome, rtt)
        let mut pending: Vec<(Instant, Probe, Outcome, Duration)> = Vec::new();
        let mut done = Vec::new();
        let mut counter = 0u64;
        for _ in 0..10_000_000 {
            match s.next(now) {
                Poll::Send(p) => {
                    counter += 1;
                    let h = &hosts[p.host];
                    let lost = h.lose_first_every > 0
                        && p.try_no == 0
                        && counter.is_multiple_of(h.lose_first_every);
                    let (outcome, took) = if h.dropped.contains(&p.port) || lost {
                        (Outcome::Timeout, p.timeout)
                    } else if h.open.contains(&p.port) {
                        (Outcome::Connected, rtt)
                    } else {
                        (Outcome::Refused, rtt)
                    };
                    pending.push((now + took, p, outcome, took));
                }
                Poll::Done => break,
                other => {
                    pending.sort_by_key(|e| std::cmp::Reverse(e.0));
                    let next_outcome = pending.last().map(|e| e.0);
                    let wake = match other {
                        Poll::WaitUntil(t) => Some(next_outcome.map_or(t, |o| o.min(t))),
                        _ => next_outcome,
                    };
                    let wake = wake.expect("scheduler waits for nothing");
                    now = now.max(wake);
                    while pending.last().is_some_and(|e| e.0 <= now) {
                        let (_, p, o, took) = pending.pop().unwrap();
                        s.on_outcome(p, o, took, now);
                    }
                }
            }
            while let Some(d) = s.take_done() {
                done.push(d);
            }
        }
        while let Some(d) = s.take_done() {
            done.push(d);
        }
        (done, s.stats, now - start)
    }

    fn states(d: &HostDone) -> HashMap<u16, PortState> {
        d.ports.iter().map(|&(p, s, _)| (p, s)).collect()
    }

    #[test]
    fn clean_host_every_port_classified() {
        let ports: Vec<u16> = (1..=1000).collect();
        let host = SimHost {
            open: vec![22, 80],
            dropped: vec![],
            lose_first_every: 0,
        };
        let (done, stats, _) = simulate(
            Template::Aggressive.timing(),
            vec![host],
            ports,
            Duration::from_micros(200),
        );
        assert_eq!(done.len(), 1);
        let st = states(&done[0]);
        assert_eq!(st.len(), 1000);
        assert_eq!(st[&22], PortState::Open);
        assert_eq!(st[&80], PortState::Open);
        assert_eq!(
            st.values().filter(|s| **s == PortState::Closed).count(),
            998
        );
        assert_eq!(stats.retransmissions, 0);
        assert_eq!(stats.probes_sent, 1000);
    }

    #[test]
    fn dropped_ports_are_filtered_after_one_retry() {
        let ports: Vec<u16> = (1..=100).collect();
        let host = SimHost {
            open: vec![80],
            dropped: vec![135, 139, 45],
            lose_first_every: 0,
        };
        let (done, stats, _) = simulate(
            Template::Aggressive.timing(),
            vec![host],
            ports,
            Duration::from_millis(1),
        );
        let st = states(&done[0]);
        assert_eq!(st[&45], PortState::Filtered);
        assert_eq!(st[&80], PortState::Open);
        let d = &done[0];
        assert!(d
            .ports
            .iter()
            .any(|&(p, _, r)| p == 45 && r == "no-response"));
        // Nothing answered a retry, so each silent port gets exactly one retransmission.
        assert_eq!(stats.retransmissions, 1);
        assert_eq!(stats.max_tries, 2);
    }

    #[test]
    fn lost_first_tries_are_recovered_and_cut_the_window() {
        let ports: Vec<u16> = (1..=2000).collect();
        let host = SimHost {
            open: (1..=2000).step_by(100).collect(),
            dropped: vec![],
            lose_first_every: 30,
        };
        let (done, stats, _) = simulate(
            Template::Aggressive.timing(),
            vec![host],
            ports,
            Duration::from_millis(1),
        );
        let st = states(&done[0]);
        assert_eq!(st.len(), 2000);
        // Every open port is found despite the loss.
        for p in (1..=2000).step_by(100) {
            assert_eq!(st[&(p as u16)], PortState::Open, "port {p}");
        }
        assert!(st.values().all(|s| *s != PortState::Filtered));
        assert!(stats.drops_detected > 0);
    }

    #[test]
    fn retries_never_exceed_max_retries() {
        let mut t = Template::Normal.timing();
        t.max_retries = 0;
        let host = SimHost {
            open: vec![],
            dropped: vec![1, 2, 3],
            lose_first_every: 0,
        };
        let (_, stats, _) = simulate(t, vec![host], vec![1, 2, 3, 4], Duration::from_millis(1));
        assert_eq!(stats.retransmissions, 0);
        assert_eq!(stats.probes_sent, 4);
    }

    #[test]
    fn max_parallelism_one_sends_serially() {
        let mut t = Template::Aggressive.timing();
        t.max_parallelism = Some(1);
        let start = Instant::now();
        let mut s = Scheduler::new(t, 1000);
        s.add_host("198.18.0.10".parse().unwrap(), 0, vec![1, 2, 3], start);
        let p = match s.next(start) {
            Poll::Send(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(s.next(start), Poll::WaitForInput);
        s.on_outcome(p, Outcome::Refused, Duration::from_millis(1), start);
        assert!(matches!(s.next(start), Poll::Send(_)));
    }

    /// An interrupt mid-host: the unfinished host comes back with the ports that answered
    /// (open and closed), none still pending, marked incomplete, and leaves the scheduler.
    #[test]
    fn take_unfinished_returns_the_answers_so_far() {
        let t = Template::Aggressive.timing();
        let start = Instant::now();
        let mut s = Scheduler::new(t, 1000);
        s.add_host(
            "198.18.0.10".parse().unwrap(),
            4,
            vec![22, 23, 24, 25],
            start,
        );
        let mut sent = Vec::new();
        for _ in 0..3 {
            match s.next(start) {
                Poll::Send(p) => sent.push(p),
                other => panic!("{other:?}"),
            }
        }
        let ms = Duration::from_millis(1);
        s.on_outcome(sent[0], Outcome::Connected, ms, start);
        s.on_outcome(sent[1], Outcome::Refused, ms, start);
        assert!(s.take_done().is_none(), "the host is not finished");
        let cut = s.take_unfinished(start);
        assert_eq!(cut.len(), 1);
        let d = &cut[0];
        assert!(!d.complete);
        assert_eq!(d.tag, 4);
        let mut ports = d.ports.clone();
        ports.sort();
        let want = [
            (sent[0].port, PortState::Open, "syn-ack"),
            (sent[1].port, PortState::Closed, "conn-refused"),
        ];
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(ports, want);
        assert!(s.take_unfinished(start).is_empty());
    }

    #[test]
    fn max_rate_paces_launches() {
        let mut t = Template::Aggressive.timing();
        t.max_rate = Some(100.0);
        let ports: Vec<u16> = (1..=200).collect();
        let host = SimHost {
            open: vec![],
            dropped: vec![],
            lose_first_every: 0,
        };
        let (_, _, took) = simulate(t, vec![host], ports, Duration::from_micros(100));
        // 200 probes at 100/s need at least 199 intervals of 10 ms.
        assert!(took >= Duration::from_millis(1990), "took {took:?}");
    }

    /// Regression: pacing from the last send let a 1 ms timer turn 750/s into ~500/s,
    /// so an interrupted lab scan had finished no host when it should have.
    #[test]
    fn max_rate_average_holds_when_the_timer_wakes_late() {
        let mut t = Template::Aggressive.timing();
        t.max_rate = Some(750.0);
        let start = Instant::now();
        let mut now = start;
        let mut s = Scheduler::new(t, 10_000);
        s.add_host("198.18.0.10".parse().unwrap(), 0, (1..=1500).collect(), now);
        let mut sent = 0;
        while sent < 1500 {
            match s.next(now) {
                Poll::Send(p) => {
                    sent += 1;
                    s.on_outcome(p, Outcome::Refused, Duration::from_micros(50), now);
                }
                // Every wake-up comes a millisecond late.
                Poll::WaitUntil(at) => now = at.max(now) + Duration::from_millis(1),
                other => panic!("{other:?}"),
            }
        }
        let took = now - start;
        assert!(
            took >= Duration::from_millis(1950) && took <= Duration::from_millis(2100),
            "1500 probes at 750/s took {took:?}"
        );
    }

    #[test]
    fn scan_delay_spaces_probes_to_a_host() {
        let mut t = Template::Aggressive.timing();
        t.scan_delay = Duration::from_millis(50);
        let host = SimHost {
            open: vec![],
            dropped: vec![],
            lose_first_every: 0,
        };
        let (_, _, took) = simulate(
            t,
            vec![host],
            (1..=11).collect(),
            Duration::from_micros(100),
        );
        assert!(took >= Duration::from_millis(500), "took {took:?}");
    }

    #[test]
    fn host_timeout_abandons_the_host() {
        let mut t = Template::Normal.timing();
        t.host_timeout = Some(Duration::from_secs(2));
        t.max_parallelism = Some(1);
        let host = SimHost {
            open: vec![],
            dropped: (1..=100).collect(),
            lose_first_every: 0,
        };
        let (done, _, took) =
            simulate(t, vec![host], (1..=100).collect(), Duration::from_millis(1));
        assert!(done[0].timed_out);
        assert!(done[0].ports.len() < 100);
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    #[test]
    fn local_resource_errors_lower_the_ceiling_and_retry() {
        let t = Template::Aggressive.timing();
        let now = Instant::now();
        let mut s = Scheduler::new(t, 1000);
        s.add_host("198.18.0.10".parse().unwrap(), 0, vec![1, 2], now);
        let a = match s.next(now) {
            Poll::Send(p) => p,
            o => panic!("{o:?}"),
        };
        let b = match s.next(now) {
            Poll::Send(p) => p,
            o => panic!("{o:?}"),
        };
        s.on_outcome(a, Outcome::LocalResource, Duration::ZERO, now);
        assert_eq!(s.stats.local_errors, 1);
        s.on_outcome(b, Outcome::Refused, Duration::from_millis(1), now);
        // The same port comes back at the same depth.
        let again = match s.next(now) {
            Poll::Send(p) => p,
            o => panic!("{o:?}"),
        };
        assert_eq!((again.port, again.try_no), (a.port, 0));
        s.on_outcome(again, Outcome::Connected, Duration::from_millis(1), now);
        assert_eq!(s.next(now), Poll::Done);
        let d = s.take_done().unwrap();
        assert_eq!(d.ports.len(), 2);
        assert_eq!(s.stats.retransmissions, 0);
    }

    /// Issue 13: a /24 where one host answers and the rest drop everything (a black hole).
    /// The silent hosts must wait only as long as the live host's answers show necessary,
    /// and the rare answers must open the window: with each silent host held to the
    /// initial 1 s timeout through a window of 10, the scan took 1524 probe-seconds / 10.
    #[test]
    fn sparse_network_is_not_held_to_the_initial_timeout() {
        let ports = vec![22, 80, 443];
        let hosts: Vec<SimHost> = (0..254)
            .map(|i| SimHost {
                open: if i == 10 { vec![80] } else { vec![] },
                dropped: if i == 10 { vec![] } else { ports.clone() },
                lose_first_every: 0,
            })
            .collect();
        let (done, stats, took) = simulate(
            Template::Normal.timing(),
            hosts,
            ports,
            Duration::from_micros(300),
        );
        assert_eq!(done.len(), 254);
        let live = done.iter().find(|d| d.tag == 10).unwrap();
        assert_eq!(states(live)[&80], PortState::Open);
        assert_eq!(states(live)[&22], PortState::Closed);
        for d in done.iter().filter(|d| d.tag != 10) {
            assert!(states(d).values().all(|s| *s == PortState::Filtered));
        }
        // Every silent port still gets its one retry, as Nmap's.
        assert_eq!(stats.retransmissions, 253 * 3);
        assert!(took < Duration::from_secs(30), "took {took:?}");
    }

    /// A probe to a host that never answered follows the group's timeout, which exists
    /// once any host has answered; a host's own answers take it off the group's.
    #[test]
    fn silent_hosts_follow_the_group_timeout() {
        let now = Instant::now();
        let mut s = Scheduler::new(Template::Normal.timing(), 1000);
        s.add_host("198.18.0.10".parse().unwrap(), 0, vec![1, 2], now);
        s.add_host("198.18.0.11".parse().unwrap(), 1, vec![1, 2], now);
        assert_eq!(s.group_timeout(), None);
        let mut sent = Vec::new();
        for _ in 0..2 {
            match s.next(now) {
                Poll::Send(p) => sent.push(p),
                o => panic!("{o:?}"),
            }
        }
        assert!(sent.iter().all(|p| p.follows_group));
        assert_eq!(sent[0].timeout, Duration::from_secs(1));
        let live = sent.iter().find(|p| p.host == 0).copied().unwrap();
        s.on_outcome(live, Outcome::Refused, Duration::from_millis(1), now);
        assert_eq!(s.group_timeout(), Some(Duration::from_millis(100)));
        let mut next = Vec::new();
        for _ in 0..2 {
            match s.next(now) {
                Poll::Send(p) => next.push(p),
                o => panic!("{o:?}"),
            }
        }
        let of = |h: usize| next.iter().find(|p| p.host == h).copied().unwrap();
        assert!(!of(0).follows_group);
        assert!(of(1).follows_group);
        assert_eq!(of(1).timeout, Duration::from_millis(100));
    }

    /// A host-unreachable error answering a retry (ARP failing seconds after the first
    /// try, or a rate-limited router) is no sign of congestion: the window stays.
    #[test]
    fn filtered_answer_to_a_retry_keeps_the_window() {
        let mut t = Template::Normal.timing();
        t.max_retries = 3;
        let now = Instant::now();
        let mut s = Scheduler::new(t, 1000);
        s.add_host("198.18.0.10".parse().unwrap(), 0, vec![1], now);
        let first = match s.next(now) {
            Poll::Send(p) => p,
            o => panic!("{o:?}"),
        };
        s.on_outcome(first, Outcome::Timeout, first.timeout, now);
        let retry = match s.next(now) {
            Poll::Send(p) => p,
            o => panic!("{o:?}"),
        };
        assert_eq!(retry.try_no, 1);
        let before = s.window();
        let later = now + Duration::from_secs(3);
        s.on_outcome(
            retry,
            Outcome::Unreachable("host-unreach"),
            Duration::from_secs(2),
            later,
        );
        assert_eq!(s.window(), before);
        assert_eq!(s.stats.drops_detected, 0);
        let d = s.take_done().unwrap();
        assert_eq!(d.ports, vec![(1, PortState::Filtered, "host-unreach")]);
    }

    #[test]
    fn many_hosts_all_finish() {
        let hosts: Vec<SimHost> = (0..20)
            .map(|i| SimHost {
                open: vec![i as u16 + 1],
                dropped: vec![],
                lose_first_every: 0,
            })
            .collect();
        let (done, _, _) = simulate(
            Template::Aggressive.timing(),
            hosts,
            (1..=50).collect(),
            Duration::from_millis(2),
        );
        assert_eq!(done.len(), 20);
        for d in &done {
            let st = states(d);
            assert_eq!(st[&(d.tag as u16 + 1)], PortState::Open);
        }
    }
}
