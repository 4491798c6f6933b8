//! The sans-I/O core of the stateless SYN scan (-sS) over IPv4.
//!
//! It never touches a socket or the clock: the driver asks [`SynScan::poll`] what to send
//! at `now`, builds the packet, and hands every received IP packet to
//! [`SynScan::on_packet`]. So the whole policy runs under test on a fake clock against
//! simulated hosts.
//!
//! - **Order.** Hosts × ports are visited in a seeded random permutation (O(1) state), which
//!   spreads the load over hosts.
//! - **No per-probe state.** A SYN's sequence number is a keyed cookie of its 4-tuple whose
//!   low 8 bits are replaced by the send epoch (4 ms units). A SYN-ACK or RST is accepted
//!   only if `ack - 1` matches the cookie in its upper 24 bits; ICMP errors are matched by
//!   the quoted header. The epoch bits tell when the answered probe left, which gives RTT
//!   samples and per-epoch loss without remembering any probe.
//! - **Retransmission driven by answers.** Probes go out in passes: pass 0 sends every probe,
//!   each later pass resends only what is still unanswered, after waiting the RTT timeout.
//!   A first retransmission always happens; further passes only while the previous pass's
//!   retransmissions were answered (so loss is recovered and silence is not chased),
//!   never beyond `--max-retries`.
//! - **Congestion control that random loss does not fool.** For each send epoch the share
//!   of probes left unanswered is compared with the lowest share seen so far (the floor that
//!   random loss and filtered ports produce whatever the rate). Loss well above that floor
//!   means the path is congested: the rate halves. Otherwise the rate grows, up to the
//!   ceiling. `--max-rate`/`--min-rate` bound it exactly.

use crate::permutation::Permutation;
use crate::timing::{RttEstimator, Timing, TokenBucket};
use portolan_model::PortState;
use portolan_wire::cookie::CookieKey;
use portolan_wire::icmpv4;
use portolan_wire::ipv4;
use portolan_wire::tcp::{self, Flags};
use portolan_wire::IpProtocol;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// One SYN to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynProbe {
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
}

/// What the driver should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynPoll {
    Send(SynProbe),
    /// Nothing to send before this instant; hand over received packets meanwhile.
    WaitUntil(Instant),
    Done,
}

/// Counters for the completeness report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynStats {
    pub probes_sent: u64,
    pub retransmissions: u64,
    pub answers: u64,
    pub duplicates: u64,
    pub invalid: u64,
    pub passes: u32,
    pub rate_cuts: u32,
    /// Probes never answered (ports reported filtered with reason no-response).
    pub unanswered: u64,
    /// Answers that came only to a retransmission: their first try was lost.
    pub late_answers: u64,
}

/// Source ports of our probes: outside Linux's default ephemeral range, so the kernel's
/// own connections never collide with them.
pub const SOURCE_PORTS: RangeInclusive<u16> = 61_000..=64_999;

/// Width of a send epoch. 256 epochs (the 8 stamped bits) span about a second.
const EPOCH: Duration = Duration::from_millis(4);
const EPOCHS: usize = 256;
/// Loss above the floor by this much (absolute) is congestion.
const CONGESTION_MARGIN: f64 = 0.15;
/// How much lower the loss must be at half the rate for halving again to be worth it.
const EXPLORE_GAIN: f64 = 0.05;
/// Loss is judged over at least this many first-pass probes, so that chance alone (3% loss
/// seen as 15% more) is out of the question.
const MIN_SAMPLE_PROBES: u32 = 200;
/// The rate the scan starts at when neither template nor user says otherwise.
const INITIAL_RATE: f64 = 5_000.0;
/// The most the scan sends without a --max-rate: what one core's sendmmsg sustains.
const DEFAULT_CEILING: f64 = 300_000.0;

// Per-port result codes.
const UNANSWERED: u8 = 0;
const OPEN: u8 = 1;
const CLOSED: u8 = 2;
const FILTERED_ICMP: u8 = 3;

#[derive(Debug, Clone, Copy, Default)]
struct Epoch {
    start: Option<Instant>,
    sent: u32,
    answered: u32,
    /// The rate the epoch's probes were sent at.
    rate: f64,
}

/// Settled first-pass epochs gathered until they say enough about loss.
#[derive(Debug, Clone, Copy, Default)]
struct LossSample {
    sent: u32,
    answered: u32,
    /// The lowest rate among the epochs gathered.
    rate: f64,
}

/// A scan of `hosts` × `ports` from `src`.
pub struct SynScan {
    timing: Timing,
    src: Ipv4Addr,
    hosts: Vec<Ipv4Addr>,
    ports: Vec<u16>,
    key: CookieKey,
    perm: Permutation,
    /// hosts × ports result codes, index = host + hosts * port_idx.
    results: Vec<u8>,
    /// Port number → index in `ports` (u32::MAX: not scanned).
    port_index: Vec<u32>,
    /// Host address → index in `hosts`.
    host_index: std::collections::HashMap<Ipv4Addr, u32>,
    ttl: Vec<u8>,
    icmp_reason: Vec<(u32, &'static str)>,
    pass: u32,
    pos: u64,
    /// Answers to probes sent in the current / previous pass (retransmission depth).
    pass_answers: u64,
    prev_pass_answers: u64,
    pass_done_at: Option<Instant>,
    unanswered_left: u64,
    rtt: RttEstimator,
    // Rate control.
    rate: f64,
    ceiling: f64,
    floor_rate: f64,
    pacer: TokenBucket,
    epochs: [Epoch; EPOCHS],
    current_epoch: Option<(u8, Instant)>,
    loss_floor: f64,
    /// The lowest rate whose loss has been judged: high loss there is ambiguous (it may be
    /// the path's floor or congestion) until a lower rate has been tried.
    lowest_judged: f64,
    /// The loss seen at `lowest_judged`.
    loss_at_lowest: f64,
    /// The highest rate whose loss was judged clean (near the floor): retransmissions,
    /// which recover what the first pass lost, are paced no faster.
    clean_rate: Option<f64>,
    sample: LossSample,
    last_cut: Option<Instant>,
    pub stats: SynStats,
}

impl SynScan {
    pub fn new(
        timing: Timing,
        src: Ipv4Addr,
        hosts: Vec<Ipv4Addr>,
        ports: Vec<u16>,
        key: CookieKey,
        seed: u64,
    ) -> Self {
        let n = hosts.len() as u64 * ports.len() as u64;
        let ceiling = timing.max_rate.unwrap_or(DEFAULT_CEILING).max(1.0);
        let floor_rate = timing.min_rate.unwrap_or(1.0).min(ceiling);
        let initial = match timing.template as u8 {
            0..=2 => 10.0,
            3 => INITIAL_RATE,
            _ => INITIAL_RATE * 4.0,
        };
        let mut port_index = vec![u32::MAX; 65536];
        for (i, &p) in ports.iter().enumerate() {
            port_index[p as usize] = i as u32;
        }
        let host_index = hosts
            .iter()
            .enumerate()
            .map(|(i, &h)| (h, i as u32))
            .collect();
        SynScan {
            port_index,
            host_index,
            rtt: RttEstimator::new(&timing),
            rate: initial.clamp(floor_rate, ceiling),
            ceiling,
            floor_rate,
            timing,
            src,
            results: vec![UNANSWERED; n as usize],
            ttl: vec![0; n as usize],
            icmp_reason: Vec::new(),
            hosts,
            ports,
            key,
            perm: Permutation::new(n, seed),
            pass: 0,
            pos: 0,
            pass_answers: 0,
            prev_pass_answers: 0,
            pass_done_at: None,
            unanswered_left: n,
            pacer: TokenBucket::default(),
            epochs: [Epoch::default(); EPOCHS],
            current_epoch: None,
            loss_floor: 1.0,
            lowest_judged: f64::INFINITY,
            loss_at_lowest: 1.0,
            clean_rate: None,
            sample: LossSample::default(),
            last_cut: None,
            stats: SynStats::default(),
        }
    }

    /// Probes per second the scan currently allows itself.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn n(&self) -> u64 {
        self.results.len() as u64
    }

    fn split(&self, idx: u64) -> (usize, usize) {
        let h = self.hosts.len() as u64;
        ((idx % h) as usize, (idx / h) as usize)
    }

    fn probe_for(&self, host: usize, port: usize, epoch: u8) -> SynProbe {
        let dst = self.hosts[host];
        let dport = self.ports[port];
        let (s, d) = (IpAddr::V4(self.src), IpAddr::V4(dst));
        let sport = self.key.source_port(s, d, dport, SOURCE_PORTS);
        let cookie = self.key.cookie(s, sport, d, dport);
        SynProbe {
            dst,
            sport,
            dport,
            seq: (cookie & !0xff) | u32::from(epoch),
        }
    }

    /// The next thing to do at `now`.
    pub fn poll(&mut self, now: Instant) -> SynPoll {
        self.review_epochs(now);
        loop {
            if self.pos >= self.n() {
                // The pass is sent: wait for late answers, then decide on another pass.
                let done_at = *self.pass_done_at.get_or_insert(now);
                let wait_until = done_at + self.rtt.timeout();
                if now < wait_until {
                    return SynPoll::WaitUntil(wait_until);
                }
                let retry_allowed = self.pass < self.timing.max_retries
                    && (self.pass == 0 || self.pass_answers > 0);
                self.stats.passes = self.pass + 1;
                if self.unanswered_left == 0 || !retry_allowed {
                    self.stats.unanswered = self.unanswered_left;
                    return SynPoll::Done;
                }
                self.pass += 1;
                self.prev_pass_answers = self.pass_answers;
                self.pass_answers = 0;
                self.pos = 0;
                self.pass_done_at = None;
            }
            // Pacing: a token bucket at the current rate (bursts of at most 4 ms worth);
            // retransmissions go no faster than the highest rate seen to be clean.
            let rate = match (self.pass, self.clean_rate) {
                (0, _) | (_, None) => self.rate,
                (_, Some(clean)) => self.rate.min(clean).max(self.floor_rate),
            };
            if let Some(at) = self.pacer.wait(now, rate, EPOCH) {
                return SynPoll::WaitUntil(at);
            }
            // The next probe still unanswered in this pass.
            while self.pos < self.n() {
                let idx = self.perm.at(self.pos);
                self.pos += 1;
                if self.results[idx as usize] != UNANSWERED {
                    continue;
                }
                let (h, p) = self.split(idx);
                let epoch = self.epoch_for(now);
                let probe = self.probe_for(h, p, epoch);
                self.pacer.take();
                self.stats.probes_sent += 1;
                if self.pass > 0 {
                    self.stats.retransmissions += 1;
                }
                if self.pass == 0 {
                    // Only first tries measure the path: retransmissions go mostly to
                    // silent ports, whose loss says nothing about congestion.
                    self.epochs[epoch as usize].sent += 1;
                }
                return SynPoll::Send(probe);
            }
        }
    }

    /// The epoch stamp for a probe sent at `now`, opening a new epoch when 4 ms have passed.
    fn epoch_for(&mut self, now: Instant) -> u8 {
        match self.current_epoch {
            Some((e, start)) if now.saturating_duration_since(start) < EPOCH => e,
            Some((e, _)) => {
                let next = e.wrapping_add(1);
                self.open_epoch(next, now);
                next
            }
            None => {
                self.open_epoch(0, now);
                0
            }
        }
    }

    fn open_epoch(&mut self, e: u8, now: Instant) {
        // An epoch still unsettled when its stamp comes round again is judged now.
        self.settle_epoch(e as usize, now);
        self.epochs[e as usize] = Epoch {
            start: Some(now),
            sent: 0,
            answered: 0,
            rate: self.rate,
        };
        self.current_epoch = Some((e, now));
    }

    /// How long after an epoch its answers are in, for judging loss: the measured round
    /// trip with room for jitter, not the retransmission timeout, whose floor (100 ms)
    /// exists to avoid needless retries and would make the rate climb slowly on a LAN.
    fn settle_time(&self) -> Duration {
        let measured = self
            .rtt
            .srtt()
            .map(|s| (s + self.rtt.rttvar() * 4) * 2 + Duration::from_millis(1));
        EPOCH + measured.map_or(self.rtt.timeout(), |m| m.min(self.rtt.timeout()))
    }

    /// Looks at epochs old enough for their answers to be in, and adjusts the rate.
    fn review_epochs(&mut self, now: Instant) {
        let settle = self.settle_time();
        for i in 0..EPOCHS {
            if self.epochs[i]
                .start
                .is_some_and(|s| now.saturating_duration_since(s) >= settle)
            {
                self.settle_epoch(i, now);
            }
        }
    }

    /// Adds a settled epoch to the loss sample; judges the sample once it is large enough.
    fn settle_epoch(&mut self, i: usize, now: Instant) {
        let ep = self.epochs[i];
        if ep.start.is_none() {
            return;
        }
        self.epochs[i].start = None;
        if ep.sent == 0 {
            return;
        }
        let s = &mut self.sample;
        s.rate = if s.sent == 0 {
            ep.rate
        } else {
            s.rate.min(ep.rate)
        };
        s.sent += ep.sent;
        s.answered += ep.answered.min(ep.sent);
        if s.sent < MIN_SAMPLE_PROBES {
            return;
        }
        let sample = std::mem::take(&mut self.sample);
        let loss = 1.0 - f64::from(sample.answered) / f64::from(sample.sent);
        self.loss_floor = self.loss_floor.min(loss);
        // Heavy loss at the lowest rate tried so far says nothing yet: the path may have
        // been congested from the first probe. Halving the rate tells: while the loss keeps
        // dropping, it was congestion (halve again); once it stops, what remains is the
        // floor (random loss, silent ports), and the rule above takes over.
        let first = self.lowest_judged.is_infinite();
        let lower = sample.rate < self.lowest_judged * 0.9;
        let improved = lower && self.loss_at_lowest - loss > EXPLORE_GAIN;
        let unexplored =
            loss > CONGESTION_MARGIN && (first || improved) && sample.rate / 2.0 >= self.floor_rate;
        if sample.rate <= self.lowest_judged {
            self.lowest_judged = sample.rate;
            self.loss_at_lowest = loss;
        }
        if loss > self.loss_floor + CONGESTION_MARGIN || unexplored {
            // Loss that appears with a higher rate is the path's doing: halve the rate the
            // loss was seen at, once per settle period.
            let recent = self
                .last_cut
                .is_some_and(|t| now.saturating_duration_since(t) < self.settle_time());
            if !recent {
                self.rate = (self.rate.min(sample.rate) / 2.0).max(self.floor_rate);
                self.last_cut = Some(now);
                self.stats.rate_cuts += 1;
            }
        } else if sample.rate >= self.rate * 0.8 {
            if loss <= self.loss_floor + CONGESTION_MARGIN / 2.0 {
                self.clean_rate = Some(self.clean_rate.map_or(sample.rate, |c| c.max(sample.rate)));
            }
            // The path kept up at (nearly) the current rate: double it.
            self.rate = (self.rate * 2.0).min(self.ceiling);
        }
    }

    /// Digests one received IPv4 packet (starting at the IP header).
    pub fn on_packet(&mut self, now: Instant, packet: &[u8]) {
        let Ok(ip) = ipv4::Packet::new_checked(packet) else {
            self.stats.invalid += 1;
            return;
        };
        if ip.dst_addr() != self.src {
            return;
        }
        let ttl = ip.ttl();
        match ip.protocol() {
            IpProtocol::TCP => self.on_tcp(now, ip.src_addr(), ttl, ip.payload()),
            IpProtocol::ICMP => self.on_icmp(ip.payload(), ttl),
            _ => {}
        }
    }

    fn on_tcp(&mut self, now: Instant, from: Ipv4Addr, ttl: u8, segment: &[u8]) {
        let Ok(tcp) = tcp::Packet::new_checked(segment) else {
            self.stats.invalid += 1;
            return;
        };
        let (sport, dport) = (tcp.dst_port(), tcp.src_port());
        if !SOURCE_PORTS.contains(&sport) {
            return;
        }
        let (s, d) = (IpAddr::V4(self.src), IpAddr::V4(from));
        if self.key.source_port(s, d, dport, SOURCE_PORTS) != sport {
            self.stats.invalid += 1;
            return;
        }
        let sent = tcp.ack_number().wrapping_sub(1);
        let cookie = self.key.cookie(s, sport, d, dport);
        if sent & !0xff != cookie & !0xff {
            self.stats.invalid += 1;
            return;
        }
        let flags = tcp.flags();
        let code = if flags.contains(Flags::SYN) && flags.contains(Flags::ACK) {
            OPEN
        } else if flags.contains(Flags::RST) {
            CLOSED
        } else {
            self.stats.invalid += 1;
            return;
        };
        let Some(idx) = self.index_of(from, dport) else {
            return;
        };
        let epoch = (sent & 0xff) as u8;
        self.record(idx, code, ttl, None, Some((epoch, now)));
    }

    fn on_icmp(&mut self, message: &[u8], ttl: u8) {
        let Ok(icmp) = icmpv4::Packet::new_checked(message) else {
            self.stats.invalid += 1;
            return;
        };
        if icmp.msg_type() != icmpv4::Message::DST_UNREACHABLE {
            return;
        }
        let Ok(quoted) = icmp.quoted() else {
            self.stats.invalid += 1;
            return;
        };
        if quoted.ip.src_addr != self.src || quoted.ip.protocol != IpProtocol::TCP {
            return;
        }
        let (Some((sport, dport)), Some(seq)) = (quoted.ports(), quoted.tcp_seq()) else {
            return;
        };
        let dst = quoted.ip.dst_addr;
        let (s, d) = (IpAddr::V4(self.src), IpAddr::V4(dst));
        let cookie = self.key.cookie(s, sport, d, dport);
        if seq & !0xff != cookie & !0xff {
            self.stats.invalid += 1;
            return;
        }
        // Nmap's reasons for the unreachable codes it treats as filtered.
        let reason = match icmp.msg_code() {
            0 => "net-unreach",
            1 => "host-unreach",
            2 => "proto-unreach",
            3 => "port-unreach",
            9 => "net-prohibited",
            10 => "host-prohibited",
            13 => "admin-prohibited",
            _ => return,
        };
        if let Some(idx) = self.index_of(dst, dport) {
            self.record(idx, FILTERED_ICMP, ttl, Some(reason), None);
        }
    }

    fn index_of(&self, host: Ipv4Addr, port: u16) -> Option<u64> {
        let h = u64::from(*self.host_index.get(&host)?);
        let p = *self.port_index.get(port as usize)?;
        if p == u32::MAX {
            return None;
        }
        Some(h + self.hosts.len() as u64 * u64::from(p))
    }

    fn record(
        &mut self,
        idx: u64,
        code: u8,
        ttl: u8,
        reason: Option<&'static str>,
        sent: Option<(u8, Instant)>,
    ) {
        let Some(slot) = self.results.get_mut(idx as usize) else {
            return;
        };
        if *slot != UNANSWERED {
            self.stats.duplicates += 1;
            return;
        }
        *slot = code;
        if let Some(t) = self.ttl.get_mut(idx as usize) {
            *t = ttl;
        }
        if let Some(r) = reason {
            self.icmp_reason.push((idx as u32, r));
        }
        self.unanswered_left -= 1;
        self.stats.answers += 1;
        self.pass_answers += 1;
        if self.pass > 0 {
            self.stats.late_answers += 1;
        }
        if let Some((epoch, now)) = sent {
            let ep = &mut self.epochs[epoch as usize];
            ep.answered += 1;
            if let Some(start) = ep.start {
                self.rtt.sample(now.saturating_duration_since(start));
            }
        }
    }

    /// Results per host, in the order hosts were given: (host index, port, state, reason,
    /// reply TTL). Unanswered ports are filtered with reason `no-response`.
    pub fn results(&self) -> Vec<Vec<(u16, PortState, &'static str, u8)>> {
        let h = self.hosts.len();
        let mut out = vec![Vec::with_capacity(self.ports.len()); h];
        for (i, &code) in self.results.iter().enumerate() {
            let (host, port) = (i % h, i / h);
            let (state, reason) = match code {
                OPEN => (PortState::Open, "syn-ack"),
                CLOSED => (PortState::Closed, "reset"),
                FILTERED_ICMP => (
                    PortState::Filtered,
                    self.icmp_reason
                        .iter()
                        .find(|(j, _)| *j as usize == i)
                        .map(|(_, r)| *r)
                        .unwrap_or("unreach"),
                ),
                _ => (PortState::Filtered, "no-response"),
            };
            out[host].push((self.ports[port], state, reason, self.ttl[i]));
        }
        out
    }

    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::Template;
    use portolan_wire::build::{build_tcp_v4, Ipv4Params, TcpParams};
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashMap, VecDeque};

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    /// A simulated network: hosts with open/filtered ports, random loss of answers, and
    /// optionally a bottleneck of `capacity` probes/s with a queue of `queue` probes.
    struct Net {
        open: Vec<u16>,
        filtered: Vec<u16>,
        loss: f64,
        capacity: Option<f64>,
        queue: usize,
        rtt: Duration,
        rng: u64,
        in_queue: VecDeque<Instant>,
    }

    impl Net {
        fn rand(&mut self) -> f64 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            (self.rng >> 11) as f64 / (1u64 << 53) as f64
        }

        /// The answer to a probe sent at `now`, and when it arrives (None if lost).
        fn answer(&mut self, p: &SynProbe, now: Instant) -> Option<(Instant, Vec<u8>)> {
            let mut delay = self.rtt;
            if let Some(cap) = self.capacity {
                // A drop-tail queue drained at `cap` per second.
                let per = Duration::from_secs_f64(1.0 / cap);
                while self.in_queue.front().is_some_and(|&t| t <= now) {
                    self.in_queue.pop_front();
                }
                if self.in_queue.len() >= self.queue {
                    return None;
                }
                let leave = self.in_queue.back().map_or(now, |&t| t.max(now)) + per;
                self.in_queue.push_back(leave);
                delay += leave - now;
            }
            if self.filtered.contains(&p.dport) || self.rand() < self.loss {
                return None;
            }
            let flags = if self.open.contains(&p.dport) {
                Flags::SYN | Flags::ACK
            } else {
                Flags::RST | Flags::ACK
            };
            let mut buf = vec![0u8; 80];
            let tcp = TcpParams {
                sport: p.dport,
                dport: p.sport,
                seq: 1,
                ack: p.seq.wrapping_add(1),
                flags,
                window: 0,
                options: &[],
                payload: &[],
            };
            let ip = Ipv4Params {
                src: p.dst,
                dst: SRC,
                ttl: 64,
                ident: 0,
                dont_frag: true,
            };
            let len = build_tcp_v4(&mut buf, None, &ip, &tcp).unwrap();
            buf.truncate(len);
            Some((now + delay, buf))
        }
    }

    fn net(open: &[u16], filtered: &[u16], loss: f64) -> Net {
        Net {
            open: open.to_vec(),
            filtered: filtered.to_vec(),
            loss,
            capacity: None,
            queue: 0,
            rtt: Duration::from_micros(300),
            rng: 0x9E37_79B9_7F4A_7C15,
            in_queue: VecDeque::new(),
        }
    }

    /// Runs a scan to completion on a fake clock; returns the scan and the time it took.
    fn run(mut scan: SynScan, net: &mut Net) -> (SynScan, Duration) {
        let start = Instant::now();
        let mut now = start;
        let mut arrivals: BinaryHeap<Reverse<(Instant, Vec<u8>)>> = BinaryHeap::new();
        for _ in 0..50_000_000u64 {
            while arrivals.peek().is_some_and(|a| a.0 .0 <= now) {
                if let Some(Reverse((_, pkt))) = arrivals.pop() {
                    scan.on_packet(now, &pkt);
                }
            }
            match scan.poll(now) {
                SynPoll::Send(p) => {
                    if let Some(a) = net.answer(&p, now) {
                        arrivals.push(Reverse(a));
                    }
                }
                SynPoll::WaitUntil(t) => {
                    let next = arrivals.peek().map_or(t, |a| a.0 .0.min(t));
                    now = now.max(next);
                }
                SynPoll::Done => break,
            }
        }
        (scan, now - start)
    }

    fn scan(ports: Vec<u16>, t: Timing) -> SynScan {
        SynScan::new(
            t,
            SRC,
            vec![Ipv4Addr::new(198, 18, 0, 10)],
            ports,
            CookieKey::from_seed([7; 16]),
            42,
        )
    }

    fn states(s: &SynScan) -> HashMap<u16, (PortState, &'static str)> {
        s.results()[0]
            .iter()
            .map(|&(p, st, r, _)| (p, (st, r)))
            .collect()
    }

    /// Regression: a token deficit below a nanosecond made pacing ask to wait until `now`,
    /// and the scan stalled with half its probes unsent.
    #[test]
    fn pacing_never_asks_for_a_zero_wait() {
        let mut s = scan((1..=100).collect(), Template::Aggressive.timing());
        let now = Instant::now();
        s.pacer = TokenBucket::with_deficit(1e-15, now);
        match s.poll(now) {
            SynPoll::WaitUntil(t) => assert!(t > now),
            SynPoll::Send(_) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clean_host_full_range() {
        let mut n = net(&[22, 80, 443], &[], 0.0);
        let (s, took) = run(
            scan((1..=65535).collect(), Template::Aggressive.timing()),
            &mut n,
        );
        let st = states(&s);
        assert_eq!(st[&22], (PortState::Open, "syn-ack"));
        assert_eq!(st[&1], (PortState::Closed, "reset"));
        assert_eq!(
            st.values().filter(|v| v.0 == PortState::Closed).count(),
            65532
        );
        assert_eq!(s.stats.retransmissions, 0);
        assert_eq!(s.stats.passes, 1);
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }

    #[test]
    fn random_loss_keeps_the_rate_and_every_answer() {
        let open: Vec<u16> = (1..=65535).step_by(997).collect();
        let filtered = [135, 139, 445, 3389];
        let mut n = net(&open, &filtered, 0.03);
        let (s, took) = run(
            scan((1..=65535).collect(), Template::Aggressive.timing()),
            &mut n,
        );
        let st = states(&s);
        for p in &open {
            assert_eq!(st[p].0, PortState::Open, "open port {p} missed");
        }
        for p in filtered {
            assert_eq!(st[&p], (PortState::Filtered, "no-response"));
        }
        let wrong = st.values().filter(|v| v.0 == PortState::Filtered).count();
        assert_eq!(wrong, 4, "closed ports misread as filtered");
        assert_eq!(s.stats.rate_cuts, 0, "random loss was taken for congestion");
        // About 3% of answers needed a retry.
        let late = s.stats.late_answers as f64 / s.stats.answers as f64;
        assert!((0.02..0.04).contains(&late), "late share {late}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }

    #[test]
    fn congestion_brings_the_rate_down() {
        let mut n = net(&[80], &[], 0.0);
        n.capacity = Some(20_000.0);
        n.queue = 200;
        let (s, _) = run(
            scan((1..=65535).collect(), Template::Insane.timing()),
            &mut n,
        );
        assert!(s.stats.rate_cuts > 0, "never backed off");
        assert!(
            s.rate() < 60_000.0,
            "rate {} stayed far above capacity",
            s.rate()
        );
        // Retransmission still recovers what the queue dropped.
        let st = states(&s);
        assert_eq!(st[&80].0, PortState::Open);
        let filtered = st.values().filter(|v| v.0 == PortState::Filtered).count();
        assert!(filtered < 10, "{filtered} ports lost to congestion");
    }

    /// A path congested from the very first probe: the floor must not be learned there.
    #[test]
    fn congestion_from_the_start_is_found() {
        let mut n = net(&[80], &[], 0.0);
        n.capacity = Some(4_000.0);
        n.queue = 100;
        // T4: enough retries (6) to recover what the first pass lost while finding the rate.
        let (s, _) = run(
            scan((1..=20000).collect(), Template::Aggressive.timing()),
            &mut n,
        );
        assert!(s.stats.rate_cuts >= 2, "cuts: {}", s.stats.rate_cuts);
        assert!(
            s.rate() < 16_000.0,
            "rate {} stayed far above capacity",
            s.rate()
        );
        let st = states(&s);
        let filtered = st.values().filter(|v| v.0 == PortState::Filtered).count();
        assert!(filtered < 10, "{filtered} ports lost to congestion");
    }

    /// A host whose ports are all silent loses everything at any rate: after checking a
    /// lower rate once, that loss is its floor and the rate is not cut again and again.
    #[test]
    fn a_silent_host_is_not_taken_for_congestion_for_long() {
        let all: Vec<u16> = (1..=20000).collect();
        let mut n = net(&[], &all, 0.0);
        let (s, _) = run(scan(all, Template::Aggressive.timing()), &mut n);
        assert!(s.stats.rate_cuts <= 2, "cuts: {}", s.stats.rate_cuts);
    }

    #[test]
    fn silence_is_not_chased() {
        let all: Vec<u16> = (1..=1000).collect();
        let mut n = net(&[], &all, 0.0);
        let (s, _) = run(scan(all, Template::Aggressive.timing()), &mut n);
        // One retransmission of each, then nothing answered: stop.
        assert_eq!(s.stats.probes_sent, 2000);
        assert_eq!(s.stats.passes, 2);
        assert_eq!(s.stats.unanswered, 1000);
    }

    #[test]
    fn max_retries_zero_sends_once() {
        let mut t = Template::Aggressive.timing();
        t.max_retries = 0;
        let mut n = net(&[], &[5], 0.0);
        let (s, _) = run(scan((1..=10).collect(), t), &mut n);
        assert_eq!(s.stats.probes_sent, 10);
    }

    #[test]
    fn max_rate_is_honoured() {
        let mut t = Template::Insane.timing();
        t.max_rate = Some(1000.0);
        let mut n = net(&[], &[], 0.0);
        let (s, took) = run(scan((1..=2000).collect(), t), &mut n);
        assert_eq!(s.stats.probes_sent, 2000);
        assert!(
            took >= Duration::from_millis(1990),
            "2000 probes at 1000/s took {took:?}"
        );
    }

    /// The probe order depends on the seed alone (--seed), not on the per-run cookie key.
    #[test]
    fn same_seed_same_order() {
        let order = |seed: u64, key: u8| {
            let hosts = (10..20).map(|i| Ipv4Addr::new(198, 18, 0, i)).collect();
            let mut t = Template::Aggressive.timing();
            t.min_rate = Some(1e9);
            let mut s = SynScan::new(
                t,
                SRC,
                hosts,
                (1..=100).collect(),
                CookieKey::from_seed([key; 16]),
                seed,
            );
            let mut now = Instant::now();
            let mut sent = Vec::new();
            while sent.len() < 200 {
                match s.poll(now) {
                    SynPoll::Send(p) => sent.push((p.dst, p.dport)),
                    SynPoll::WaitUntil(t) => now = t,
                    SynPoll::Done => break,
                }
            }
            sent
        };
        assert_eq!(order(7, 1), order(7, 2));
        assert_ne!(order(7, 1), order(8, 1));
        assert_eq!(order(7, 1).len(), 200);
    }

    #[test]
    fn forged_and_stray_answers_are_rejected() {
        let mut s = scan(vec![80], Template::Aggressive.timing());
        let now = Instant::now();
        let SynPoll::Send(p) = s.poll(now) else {
            panic!()
        };
        let mut n = net(&[80], &[], 0.0);
        let (_, mut pkt) = n.answer(&p, now).unwrap();
        // Flip a bit of the acknowledgement number (IP 20 + TCP offset 8 + 1).
        pkt[20 + 9] ^= 0x10;
        s.on_packet(now, &pkt);
        assert_eq!(s.stats.answers, 0);
        assert_eq!(s.stats.invalid, 1);
        s.on_packet(now, &[0x45, 0, 0]);
        let (_, good) = n.answer(&p, now).unwrap();
        s.on_packet(now, &good);
        s.on_packet(now, &good);
        assert_eq!((s.stats.answers, s.stats.duplicates), (1, 1));
    }

    #[test]
    fn icmp_unreachable_marks_filtered_with_nmaps_reason() {
        let mut s = scan(vec![80], Template::Aggressive.timing());
        let now = Instant::now();
        let SynPoll::Send(p) = s.poll(now) else {
            panic!()
        };
        // Our SYN as the target's router would quote it.
        let mut syn = vec![0u8; 64];
        let ip = Ipv4Params {
            src: SRC,
            dst: p.dst,
            ttl: 64,
            ident: 1,
            dont_frag: false,
        };
        let len = build_tcp_v4(
            &mut syn,
            None,
            &ip,
            &TcpParams::syn(p.sport, p.dport, p.seq),
        )
        .unwrap();
        let mut icmp = vec![0u8; 8 + 28];
        icmp[0] = 3; // destination unreachable
        icmp[1] = 13; // administratively prohibited
        icmp[8..].copy_from_slice(&syn[..28.min(len)]);
        let mut pkt = vec![0u8; 20 + icmp.len()];
        pkt[0] = 0x45;
        pkt[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
        pkt[8] = 250;
        pkt[9] = 1;
        pkt[12..16].copy_from_slice(&[198, 18, 0, 254]);
        pkt[16..20].copy_from_slice(&SRC.octets());
        pkt[20..].copy_from_slice(&icmp);
        s.on_packet(now, &pkt);
        let st = states(&s);
        assert_eq!(st[&80], (PortState::Filtered, "admin-prohibited"));
        assert_eq!(s.results()[0][0].3, 250);
    }
}
