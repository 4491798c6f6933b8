//! OS detection (-O) of many hosts at once: a sans-I/O core that schedules Nmap's sixteen
//! probes per host in rounds, as Nmap's osscan2.cc does, on a clock it is handed.
//!
//! A round of one host has two phases. The sequence phase sends the six SEQ probes to the
//! open TCP port, 100 ms apart (never retransmitted: their spacing is the test), and waits
//! until each is answered or timed out. The TUI phase then sends, in Nmap's order (the IP
//! ID tests depend on it), the two ICMP echoes, the UDP probe, the SEQ probes that got no
//! answer again (for OPS/WIN/T1), ECN and T2-T7, back to back, retransmitting a silent
//! probe up to three times. When the round ends the caller ([`Rounds::finish`]) analyses
//! it and says whether the host is done (a perfect match, or out of tries).
//!
//! Where Nmap waits on fixed times this core waits only for the host: the next round starts
//! as soon as the previous one is analysed (Nmap sleeps a second between rounds and two and
//! a half before the fourth; nothing in the tests depends on it, and a round elicits one
//! rate-limited ICMP error, U1's, well within Linux's burst of six), the TUI probes are not
//! spaced 25 ms apart (Nmap's OS_PROBE_DELAY, a courtesy no test reads), and a probe times
//! out after the RTT measured for its host (srtt + 4 rttvar, from the port scan until the
//! OS probes are answered) with a floor of [`MIN_TIMEOUT`] instead of Nmap's 100 ms.
//!
//! Every host keeps its own phases, spacing and timeouts: the probes of many hosts are in
//! flight together and no host waits for another. `--max-parallelism` bounds the probes
//! outstanding, `--max-rate` the sending rate, `--scan-delay` the spacing per host.

use crate::core::Poll;
use crate::io::backend::Described;
use crate::plan::timing::{RttEstimator, Timing, TokenBucket};
use portolan_os::probes::OsProbe;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Nmap's OS_SEQ_PROBE_DELAY: the spacing of the six SEQ probes.
pub const SEQ_GAP: Duration = Duration::from_millis(100);
/// Sends of one TUI probe per round: the first and three retransmissions.
pub const TUI_TRIES: u8 = 4;
/// The least timeout of a probe to a host that answers (unless --min-rtt-timeout says
/// otherwise): far above a LAN's jitter, a fraction of Nmap's 100 ms floor that made
/// the probes no host answers (T2, T3 on Linux) cost most of a round.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(20);
/// Congestion window per host: start and ceiling (Nmap's host_initial_cwnd and max_cwnd).
const INITIAL_CWND: f64 = 10.0;
const MAX_CWND: f64 = 300.0;
/// Sending is paced over bursts no longer than this.
const BURST: Duration = Duration::from_millis(10);

/// The probes of one host for one round: its ports and source ports, and so which packets
/// answer it. The stage implements it over `portolan_os::probes::HostProbes`.
pub trait HostRound {
    /// Whether an open TCP port is known (else no SEQ, ECN, T2-T4 probes).
    fn open_tcp(&self) -> bool;
    /// Which of this round's probes `packet` (an IPv4 packet from the host) answers.
    fn classify(&self, packet: &[u8]) -> Option<OsProbe>;
    /// Writes the IPv4 packet of `probe`'s `attempt`-th send this round into `buf`;
    /// false if it cannot be built.
    fn build(&self, probe: OsProbe, attempt: u8, buf: &mut Vec<u8>) -> bool;
}

/// What starts and ends a host's rounds: the caller's policy (analysis, matching, and
/// whether to try again).
pub trait Rounds {
    type Round: HostRound;
    /// The probes of `host`'s round `round` (0-based).
    fn start(&mut self, host: usize, round: u32) -> Self::Round;
    /// The round is over; true: the host is done, false: another round.
    fn finish(
        &mut self,
        host: usize,
        round: u32,
        probes: &Self::Round,
        record: RoundRecord,
    ) -> bool;
}

/// One answer of a round: the first packet that answered `probe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundReply {
    pub probe: OsProbe,
    pub at: Instant,
    pub packet: Vec<u8>,
}

/// What one round of one host saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundRecord {
    /// When each SEQ probe went out (the sequence tests time the replies by them).
    pub seq_sent: [Option<Instant>; 6],
    /// Answers, in the order they arrived.
    pub replies: Vec<RoundReply>,
    /// Sends in this round, retransmissions included.
    pub sent: u32,
}

/// One probe to send: which host, which probe, and its send number in the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsSend {
    pub host: usize,
    pub probe: OsProbe,
    pub attempt: u8,
}

impl OsSend {
    /// The handle a [`Described`] probe carries.
    pub fn tag(self) -> u64 {
        ((self.host as u64) << 24)
            | (u64::from(probe_code(self.probe)) << 8)
            | u64::from(self.attempt)
    }

    /// The send a tag was made from.
    pub fn from_tag(tag: u64) -> Option<OsSend> {
        Some(OsSend {
            host: usize::try_from(tag >> 24).ok()?,
            probe: probe_of_code(((tag >> 8) & 0xffff) as u16)?,
            attempt: (tag & 0xff) as u8,
        })
    }

    /// As a dry run prints it: "OS probe SEQ 3", "OS probe IE 1", "OS probe T5".
    pub fn described(self) -> Described {
        let (what, n) = match self.probe {
            OsProbe::Seq(i) => ("OS probe SEQ", Some(u32::from(i))),
            OsProbe::Ie(i) => ("OS probe IE", Some(u32::from(i))),
            OsProbe::Ecn => ("OS probe ECN", None),
            OsProbe::T(i) => {
                const T: [&str; 7] = [
                    "OS probe T1",
                    "OS probe T2",
                    "OS probe T3",
                    "OS probe T4",
                    "OS probe T5",
                    "OS probe T6",
                    "OS probe T7",
                ];
                match T.get(usize::from(i).wrapping_sub(1)) {
                    Some(w) => (*w, None),
                    None => ("OS probe T", Some(u32::from(i))),
                }
            }
            OsProbe::U1 => ("OS probe U1", None),
        };
        Described {
            what,
            n,
            tag: self.tag(),
        }
    }
}

fn probe_code(p: OsProbe) -> u16 {
    match p {
        OsProbe::Seq(i) => 0x100 | u16::from(i),
        OsProbe::Ie(i) => 0x200 | u16::from(i),
        OsProbe::Ecn => 0x300,
        OsProbe::T(i) => 0x400 | u16::from(i),
        OsProbe::U1 => 0x500,
    }
}

fn probe_of_code(c: u16) -> Option<OsProbe> {
    let i = (c & 0xff) as u8;
    Some(match c >> 8 {
        1 => OsProbe::Seq(i),
        2 => OsProbe::Ie(i),
        3 => OsProbe::Ecn,
        4 => OsProbe::T(i),
        5 => OsProbe::U1,
        _ => return None,
    })
}

/// Where a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between rounds: the next starts at this instant.
    Pause(Instant),
    Seq,
    Tui,
    /// The round is over; its analysis waits for a moment when no probe is due.
    Ended,
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    probe: OsProbe,
    sent: Instant,
    /// Sends of this probe in this phase.
    tries: u8,
}

struct HostState<R> {
    dst: Ipv4Addr,
    phase: Phase,
    /// Rounds started.
    rounds: u32,
    round: Option<R>,
    /// To send, in order: (probe, sends so far in this phase).
    queue: VecDeque<(OsProbe, u8)>,
    active: Vec<Active>,
    record: RoundRecord,
    last_sent: Option<Instant>,
    rtt: RttEstimator,
    /// Until the first answer: the port scan's timeout for this host, if it had one.
    timeout_hint: Option<Duration>,
    /// The least timeout once the host answered.
    floor: Duration,
    /// The most.
    ceiling: Duration,
    cwnd: f64,
    /// When the window last shrank: one shrink per burst of losses, as Nmap's drop().
    last_drop: Option<Instant>,
    /// When its first probe went out (for --host-timeout).
    started: Option<Instant>,
    timed_out: bool,
}

impl<R: HostRound> HostState<R> {
    fn timeout(&self) -> Duration {
        let measured = match (self.rtt.srtt(), self.timeout_hint) {
            (Some(srtt), _) => srtt + self.rtt.rttvar() * 4,
            (None, Some(t)) => t,
            // Never heard from: the scan's initial timeout, as Nmap.
            (None, None) => return self.rtt.timeout(),
        };
        measured.clamp(self.floor, self.ceiling.max(self.floor))
    }

    fn answered(&self, probe: OsProbe) -> bool {
        self.record.replies.iter().any(|r| r.probe == probe)
    }

    /// The least gap to the previous probe: SEQ_GAP between the SEQ probes of a round
    /// (the first follows the previous round at once), --scan-delay between any two.
    fn gap(&self, scan_delay: Duration) -> Duration {
        match self.phase {
            Phase::Seq if self.record.sent > 0 => SEQ_GAP.max(scan_delay),
            _ => scan_delay,
        }
    }
}

/// Counters of an OS scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OsStats {
    pub probes_sent: u64,
    pub retransmissions: u64,
    pub answers: u64,
    pub rounds: u64,
}

/// The OS scan of a set of hosts.
pub struct OsScan<P: Rounds> {
    policy: P,
    hosts: Vec<HostState<P::Round>>,
    index: HashMap<Ipv4Addr, usize>,
    scan_delay: Duration,
    host_timeout: Option<Duration>,
    max_active: usize,
    rate: Option<f64>,
    pacer: TokenBucket,
    /// Round-robin start of the next send search (Nmap's nextIncompleteHost).
    cursor: usize,
    stats: OsStats,
}

/// One host to scan: its address and, if the port scan measured its RTT, the probe
/// timeout to start from (srtt + 4 rttvar; the core applies its floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsTarget {
    pub dst: Ipv4Addr,
    pub timeout: Option<Duration>,
}

impl<P: Rounds> OsScan<P> {
    /// A scan of `targets` (a host listed twice is scanned once, at its first place),
    /// starting at `now`.
    pub fn new(timing: &Timing, targets: &[OsTarget], policy: P, now: Instant) -> Self {
        let mut index = HashMap::new();
        // A --min-rtt-timeout other than the template's is the user's word: kept.
        let floor = if timing.min_rtt_timeout != timing.template.timing().min_rtt_timeout {
            timing.min_rtt_timeout
        } else {
            MIN_TIMEOUT
        };
        let hosts = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let dup = index.contains_key(&t.dst);
                index.entry(t.dst).or_insert(i);
                HostState {
                    dst: t.dst,
                    phase: if dup { Phase::Done } else { Phase::Pause(now) },
                    rounds: 0,
                    round: None,
                    queue: VecDeque::new(),
                    active: Vec::new(),
                    record: RoundRecord::default(),
                    last_sent: None,
                    rtt: RttEstimator::new(timing),
                    timeout_hint: t.timeout,
                    floor,
                    ceiling: timing.max_rtt_timeout,
                    cwnd: INITIAL_CWND,
                    last_drop: None,
                    started: None,
                    timed_out: false,
                }
            })
            .collect();
        OsScan {
            policy,
            hosts,
            index,
            scan_delay: timing.scan_delay,
            host_timeout: timing.host_timeout,
            max_active: timing
                .max_parallelism
                .map_or(usize::MAX, |p| (p as usize).max(1)),
            rate: timing.max_rate.filter(|r| r.is_finite() && *r > 0.0),
            pacer: TokenBucket::default(),
            cursor: 0,
            stats: OsStats::default(),
        }
    }

    pub fn policy(&self) -> &P {
        &self.policy
    }

    pub fn into_policy(self) -> P {
        self.policy
    }

    pub fn stats(&self) -> OsStats {
        self.stats
    }

    /// Where `host`'s probes go.
    pub fn dst(&self, host: usize) -> Option<Ipv4Addr> {
        self.hosts.get(host).map(|h| h.dst)
    }

    /// The probes of `host`'s current round.
    pub fn round(&self, host: usize) -> Option<&P::Round> {
        self.hosts.get(host)?.round.as_ref()
    }

    /// Rounds `host` went through (or is in).
    pub fn rounds(&self, host: usize) -> u32 {
        self.hosts.get(host).map_or(0, |h| h.rounds)
    }

    /// Whether `host` ran out of --host-timeout.
    pub fn timed_out(&self, host: usize) -> bool {
        self.hosts.get(host).is_some_and(|h| h.timed_out)
    }

    /// What to do next at `now`.
    pub fn poll(&mut self, now: Instant) -> Poll<OsSend> {
        for h in 0..self.hosts.len() {
            self.advance(h, now);
        }
        let n = self.hosts.len();
        let active: usize = self.hosts.iter().map(|h| h.active.len()).sum();
        let mut wake: Option<Instant> = None;
        let mut soon = |t: Instant| wake = Some(wake.map_or(t, |w: Instant| w.min(t)));
        let mut all_done = true;
        let mut sendable = None;
        let mut ended = None;
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let h = &self.hosts[i];
            match h.phase {
                Phase::Done => continue,
                Phase::Pause(t) => {
                    all_done = false;
                    soon(t);
                    continue;
                }
                Phase::Ended => {
                    all_done = false;
                    ended.get_or_insert(i);
                    continue;
                }
                Phase::Seq | Phase::Tui => all_done = false,
            }
            let timeout = h.timeout();
            for a in &h.active {
                soon(a.sent + timeout);
            }
            if h.queue.is_empty() {
                continue;
            }
            let ready = h.last_sent.map_or(now, |t| t + h.gap(self.scan_delay));
            if ready > now {
                soon(ready);
                continue;
            }
            if h.cwnd < h.active.len() as f64 + 0.5 || active >= self.max_active {
                // An answer or a timeout frees the window.
                continue;
            }
            if sendable.is_none() {
                sendable = Some(i);
            }
        }
        if all_done {
            return Poll::Done;
        }
        if let Some(i) = sendable {
            if let Some(rate) = self.rate {
                if let Some(t) = self.pacer.wait(now, rate, BURST) {
                    return Poll::WaitUntil(t);
                }
                self.pacer.take();
            }
            self.cursor = (i + 1) % n;
            if let Some(send) = self.send(i, now) {
                return Poll::Send(send);
            }
        }
        // Analysing and matching a round takes milliseconds: done only when no probe is
        // due, one at a time, so other hosts' SEQ probes keep their spacing.
        if let Some(i) = ended {
            self.end_round(i, now);
            return Poll::WaitUntil(now);
        }
        match wake {
            Some(t) if t > now => Poll::WaitUntil(t),
            // A deadline has passed: the next poll acts on it.
            Some(_) => Poll::WaitUntil(now),
            None => Poll::WaitForInput,
        }
    }

    /// Sends `i`'s next queued probe.
    fn send(&mut self, i: usize, now: Instant) -> Option<OsSend> {
        let h = &mut self.hosts[i];
        let (probe, tries) = h.queue.pop_front()?;
        h.active.push(Active {
            probe,
            sent: now,
            tries: tries + 1,
        });
        h.last_sent = Some(now);
        h.started.get_or_insert(now);
        h.record.sent += 1;
        if let (Phase::Seq, OsProbe::Seq(k)) = (h.phase, probe) {
            if let Some(slot) = h.record.seq_sent.get_mut(usize::from(k).wrapping_sub(1)) {
                *slot = Some(now);
            }
        }
        self.stats.probes_sent += 1;
        if tries > 0 {
            self.stats.retransmissions += 1;
        }
        // SEQ probes sent again in the TUI phase count after their first send.
        let attempt = match (h.phase, probe) {
            (Phase::Tui, OsProbe::Seq(_)) => tries + 1,
            _ => tries,
        };
        Some(OsSend {
            host: i,
            probe,
            attempt,
        })
    }

    /// Moves `host` on at `now`: timeouts, the end of a phase or round, the next round.
    fn advance(&mut self, i: usize, now: Instant) {
        loop {
            let h = &mut self.hosts[i];
            if let (Some(limit), Some(start), false) =
                (self.host_timeout, h.started, h.phase == Phase::Done)
            {
                if now.saturating_duration_since(start) >= limit {
                    h.timed_out = true;
                    h.phase = Phase::Done;
                    h.active.clear();
                    h.queue.clear();
                    return;
                }
            }
            match h.phase {
                Phase::Done => return,
                Phase::Pause(t) => {
                    if t > now {
                        return;
                    }
                    self.start_round(i);
                }
                Phase::Seq | Phase::Tui => {
                    let timeout = h.timeout();
                    let seq = h.phase == Phase::Seq;
                    let mut k = 0;
                    while k < h.active.len() {
                        let a = h.active[k];
                        if a.sent + timeout > now {
                            k += 1;
                            continue;
                        }
                        h.active.swap_remove(k);
                        // A drop: the window shrinks, once for the probes sent before the
                        // previous shrink.
                        if h.last_drop.is_none_or(|d| a.sent > d) {
                            h.cwnd = (h.cwnd / 2.0).max(1.0);
                            h.last_drop = Some(now);
                        }
                        if !seq && a.tries < TUI_TRIES {
                            h.queue.push_front((a.probe, a.tries));
                        }
                    }
                    if !h.queue.is_empty() || !h.active.is_empty() {
                        return;
                    }
                    if seq {
                        h.phase = Phase::Tui;
                        let probes =
                            tui_probes(h.round.as_ref().is_some_and(HostRound::open_tcp), |p| {
                                h.record.replies.iter().any(|r| r.probe == p)
                            });
                        h.queue = probes.into_iter().map(|p| (p, 0)).collect();
                        continue;
                    }
                    h.phase = Phase::Ended;
                    return;
                }
                Phase::Ended => return,
            }
        }
    }

    fn start_round(&mut self, i: usize) {
        let round = self.hosts[i].rounds;
        let r = self.policy.start(i, round);
        let h = &mut self.hosts[i];
        h.rounds += 1;
        self.stats.rounds += 1;
        h.record = RoundRecord::default();
        h.active.clear();
        h.phase = Phase::Seq;
        h.queue = if r.open_tcp() {
            (1..=6).map(|k| (OsProbe::Seq(k), 0)).collect()
        } else {
            VecDeque::new()
        };
        h.round = Some(r);
    }

    fn end_round(&mut self, i: usize, now: Instant) {
        let h = &mut self.hosts[i];
        let record = std::mem::take(&mut h.record);
        let round = h.rounds.saturating_sub(1);
        let Some(r) = h.round.take() else {
            h.phase = Phase::Done;
            return;
        };
        let done = self.policy.finish(i, round, &r, record);
        let h = &mut self.hosts[i];
        h.round = Some(r);
        // The next round at once: the previous one's answers are in (or timed out).
        h.phase = if done { Phase::Done } else { Phase::Pause(now) };
    }

    /// Digests one received IPv4 packet: the first answer to each probe of a host's round
    /// is kept (late answers too: the tests still use them, as Nmap's do).
    pub fn on_packet(&mut self, now: Instant, packet: &[u8]) {
        let Ok(ip) = portolan_wire::ipv4::Packet::new_checked(packet) else {
            return;
        };
        let Some(&i) = self.index.get(&ip.src_addr()) else {
            return;
        };
        let Some(h) = self.hosts.get_mut(i) else {
            return;
        };
        if !matches!(h.phase, Phase::Seq | Phase::Tui) {
            return;
        }
        let Some(probe) = h.round.as_ref().and_then(|r| r.classify(packet)) else {
            return;
        };
        if h.answered(probe) {
            return;
        }
        let sent_before = h.active.iter().position(|a| a.probe == probe);
        let was_sent = sent_before.is_some()
            || match (probe, h.phase) {
                (OsProbe::Seq(k), _) => h
                    .record
                    .seq_sent
                    .get(usize::from(k).wrapping_sub(1))
                    .is_some_and(Option::is_some),
                (_, Phase::Tui) => !h.queue.iter().any(|&(p, n)| p == probe && n == 0),
                _ => false,
            };
        if !was_sent {
            return;
        }
        if let Some(k) = sent_before {
            let a = h.active.swap_remove(k);
            // Karn: only a first send's answer times the path.
            if a.tries == 1 {
                h.rtt.sample(now.saturating_duration_since(a.sent));
            }
            h.cwnd = (h.cwnd + 1.0).min(MAX_CWND);
        }
        // Answered: not to be sent again.
        h.queue.retain(|&(p, _)| p != probe);
        h.record.replies.push(RoundReply {
            probe,
            at: now,
            packet: packet.to_vec(),
        });
        self.stats.answers += 1;
    }
}

/// The TUI phase's probes in Nmap's order: ICMP first after the SEQ probes' TCP answers
/// (the IP ID tests compare them), the UDP probe, the unanswered SEQ probes again, ECN,
/// T1 (when SEQ 1 got no answer) to T4 (open port), T5-T7 (closed port).
fn tui_probes(open: bool, answered: impl Fn(OsProbe) -> bool) -> Vec<OsProbe> {
    let mut out = vec![OsProbe::Ie(1), OsProbe::Ie(2), OsProbe::U1];
    if open {
        out.extend((1..=6).map(OsProbe::Seq).filter(|&p| !answered(p)));
        out.push(OsProbe::Ecn);
        // T1 is the first SEQ probe's answer; without one Nmap sends T1 itself.
        if !answered(OsProbe::Seq(1)) {
            out.push(OsProbe::T(1));
        }
        out.extend((2..=4).map(OsProbe::T));
    }
    out.extend((5..=7).map(OsProbe::T));
    out
}

impl<P: Rounds> crate::io::drive::Core for OsScan<P> {
    type Probe = Described;
    fn poll(&mut self, now: Instant) -> Poll<Described> {
        OsScan::poll(self, now).map(OsSend::described)
    }
    fn on_packet(&mut self, now: Instant, packet: &[u8]) {
        OsScan::on_packet(self, now, packet)
    }
}

#[cfg(test)]
mod tests;
