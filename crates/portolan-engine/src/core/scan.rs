//! The sans-I/O core of every raw-packet scan: the SYN scan (-sS), the UDP scan (-sU), both
//! at once, and host discovery with ICMP, TCP and UDP probes (-PE/-PP/-PM/-PS/-PA/-PU), over
//! IPv4 and IPv6.
//!
//! It never touches a socket or the clock: the driver asks [`RawScan::poll`] what to send at
//! `now`, builds the packet ([`Probe`] says which), and hands every received IP packet to
//! [`RawScan::on_packet`]. So the whole policy runs under test on a fake clock against
//! simulated hosts.
//!
//! - **Slots.** Each host is probed in the same list of [`Slot`]s: a TCP SYN to a port, a UDP
//!   datagram to a port, an ICMP echo, ... A port scan's slots are its ports (TCP and UDP
//!   together for `-sS -sU`); a discovery sweep's are the ping probes.
//! - **Probe kinds.** Everything that depends on what a packet is (building it, reading
//!   replies and quoting ICMP errors, what an answer means) belongs to the slot's kind in
//!   [`crate::core::probe`]; this module keeps the policy and never looks inside a packet.
//! - **Order.** Hosts × slots are visited in a seeded random permutation (O(1) state), which
//!   spreads the load over hosts. `--shard K/N` and the per-core split take every N-th
//!   position of that one order, so shards are disjoint and together cover everything.
//! - **No per-probe state.** Every probe carries a *stamp*: a keyed cookie of its 4-tuple
//!   whose low 8 bits are replaced by the send epoch (4 ms units). It travels as the TCP
//!   sequence number, the ICMP identifier and sequence number, or (UDP) the IPv4
//!   identification / IPv6 flow label, which ICMP errors quote back. A reply is accepted only
//!   if it carries the cookie's upper 24 bits (UDP replies: the keyed source port). The epoch
//!   bits tell when the answered probe left, which gives RTT samples and per-epoch loss
//!   without remembering any probe.
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
//! - **Discovery** ([`Mode::Discovery`]): a host is up at its first answer, and its other
//!   probes are then dropped from later passes.

use crate::core::permutation::{Permutation, Shard};
use crate::core::probe::{self, Answer, Ctx, Reject, SlotIndex, UNANSWERED};
use crate::core::Poll;
use crate::plan::timing::{RttEstimator, Timing, TokenBucket};
use portolan_model::PortState;
use portolan_wire::cookie::CookieKey;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

pub use crate::core::probe::{build_probe, Probe, Slot};

/// What a scan wants to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The state of every slot (port).
    Ports,
    /// Whether each host answers at all: its first answer ends its probing.
    Discovery,
}

/// Counters for the completeness report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
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
    /// --host-timeout ended the scan with probes unanswered.
    pub timed_out: bool,
}

impl ScanStats {
    /// Adds another engine's counters (the per-core engines of one scan).
    pub fn add(&mut self, b: &ScanStats) {
        self.probes_sent += b.probes_sent;
        self.retransmissions += b.retransmissions;
        self.answers += b.answers;
        self.duplicates += b.duplicates;
        self.invalid += b.invalid;
        self.passes = self.passes.max(b.passes);
        self.rate_cuts += b.rate_cuts;
        self.unanswered += b.unanswered;
        self.late_answers += b.late_answers;
        self.timed_out |= b.timed_out;
    }
}

/// Which of the scan's positions this engine sends: `start, start + stride, ...` of the
/// permuted order. `--shard K/N` is `start = K-1, stride = N`; splitting that over `c`
/// cores gives core `k` `start = K-1 + N*k, stride = N*c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub start: u64,
    pub stride: u64,
}

impl Share {
    pub const ALL: Share = Share {
        start: 0,
        stride: 1,
    };

    /// This share split `parts` ways: part `k` (0-based).
    pub fn split(self, k: u64, parts: u64) -> Share {
        Share {
            start: self.start + self.stride * k,
            stride: self.stride * parts.max(1),
        }
    }

    /// The share of a `--shard` (masscan's K/N).
    pub fn of_shard(shard: Shard) -> Share {
        Share {
            start: u64::from(shard.index),
            stride: u64::from(shard.count).max(1),
        }
    }

    fn contains(self, pos: u64) -> bool {
        pos >= self.start && (pos - self.start).is_multiple_of(self.stride)
    }

    /// How many positions below `n` are in the share.
    fn count_below(self, n: u64) -> u64 {
        if n <= self.start {
            0
        } else {
            (n - self.start - 1) / self.stride.max(1) + 1
        }
    }
}

/// The answer a slot got, as Nmap reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotResult {
    pub slot: Slot,
    pub state: PortState,
    pub reason: &'static str,
    /// TTL (hop limit) of the answer; 0 without one.
    pub ttl: u8,
}

/// A host's discovery verdict: the reason of its first answer, that answer's TTL, and the
/// probe it answered (traceroute probes the host the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostAnswer {
    pub reason: &'static str,
    pub ttl: u8,
    pub slot: Slot,
}

/// Source ports of our probes: outside Linux's default ephemeral range, so the kernel's
/// own connections never collide with them.
pub const SOURCE_PORTS: RangeInclusive<u16> = 61_000..=64_999;

/// Width of a send epoch. 256 epochs (the 8 stamped bits) span about a second.
const EPOCH: Duration = Duration::from_millis(4);
const EPOCHS: usize = 256;
/// How often settled epochs are looked for.
const REVIEW_EVERY: Duration = Duration::from_millis(1);
/// Loss above the floor by this much (absolute) is congestion.
const CONGESTION_MARGIN: f64 = 0.15;
/// How much lower the loss must be at half the rate for halving again to be worth it.
const EXPLORE_GAIN: f64 = 0.05;
/// Loss is judged over at least this many first-pass probes, so that chance alone (3% loss
/// seen as 15% more) is out of the question.
const MIN_SAMPLE_PROBES: u32 = 200;
/// The rate the scan starts at when neither template nor user says otherwise.
const INITIAL_RATE: f64 = 5_000.0;
/// The least rate anything can ask for (a --scan-delay of 1000 s).
const MIN_RATE: f64 = 1e-3;
/// The most the scan sends without a --max-rate: what one core's sendmmsg sustains.
const DEFAULT_CEILING: f64 = 300_000.0;

// Result codes of the engine's own (see [`probe`] for the kinds' codes).
/// Discovery: the host already answered another probe.
const SKIPPED: u8 = 1;
/// Outside this engine's share.
const NOT_PROBED: u8 = 2;

/// Positions of a share claimed at once from [`Claims`]: small enough that engines end
/// their first pass close together, large enough that claiming costs nothing.
const CLAIM: u64 = 256;

/// The first pass of one share, handed out in runs of [`CLAIM`] positions to the engines
/// that take from it ([`RawScan::with_claims`]), each taking its next run when it has sent
/// the last: an engine that gets less of the machine (another process on its core) sends
/// less, where fixed shares would leave the scan waiting for the slowest.
#[derive(Debug, Default)]
pub struct Claims {
    /// The next run's first index within the share (0, 1, 2...: the share's positions
    /// counted, not the positions).
    next: std::sync::atomic::AtomicU64,
}

impl Claims {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next run of share indices, `[first, first + CLAIM)`.
    fn take(&self) -> u64 {
        self.next
            .fetch_add(CLAIM, std::sync::atomic::Ordering::Relaxed)
    }
}

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

/// A scan of `hosts` × `slots` from `src`.
pub struct RawScan {
    timing: Timing,
    mode: Mode,
    src: IpAddr,
    hosts: Vec<IpAddr>,
    /// Indices into `hosts`, sorted by address: the reverse lookup without a hash map.
    by_addr: Vec<u32>,
    slots: Vec<Slot>,
    /// Slot → index in `slots`, O(1) per reply.
    index: SlotIndex,
    key: CookieKey,
    /// The source ports this engine's probes use (a part of [`SOURCE_PORTS`] per core).
    source_ports: RangeInclusive<u16>,
    perm: Permutation,
    share: Share,
    /// hosts × slots result codes, index = host + hosts * slot_idx.
    results: Vec<u8>,
    ttl: Vec<u8>,
    pass: u32,
    pos: u64,
    /// Where the positions this engine may send in this pass end (exclusive): the share's
    /// end, or the end of the run claimed last (first pass with [`Claims`]).
    pos_end: u64,
    claims: Option<std::sync::Arc<Claims>>,
    /// Answers to probes sent in the current pass (retransmission depth).
    pass_answers: u64,
    pass_done_at: Option<Instant>,
    unanswered_left: u64,
    /// Positions below this have been looked at by [`RawScan::prepare`].
    marked: u64,
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
    next_review: Option<Instant>,
    started: Option<Instant>,
    pub stats: ScanStats,
}

impl RawScan {
    /// A scan of `hosts` × `slots` from `src` (one address family), sending the positions
    /// of `share` in the order `seed` gives.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        timing: Timing,
        mode: Mode,
        src: IpAddr,
        hosts: Vec<IpAddr>,
        slots: Vec<Slot>,
        key: CookieKey,
        seed: u64,
        share: Share,
    ) -> Self {
        let n = hosts.len() as u64 * slots.len() as u64;
        let mut ceiling = timing.max_rate.unwrap_or(DEFAULT_CEILING).max(MIN_RATE);
        if !timing.scan_delay.is_zero() {
            // --scan-delay (and -T0..-T2): at least that long between any two probes,
            // which is Nmap's rule for one host and stricter for several.
            ceiling = ceiling
                .min(1.0 / timing.scan_delay.as_secs_f64())
                .max(MIN_RATE);
        }
        let floor_rate = timing.min_rate.unwrap_or(1.0).min(ceiling);
        let initial = match timing.template as u8 {
            0..=2 => 10.0,
            3 => INITIAL_RATE,
            _ => INITIAL_RATE * 4.0,
        };
        let index = SlotIndex::new(&slots);
        let mut by_addr: Vec<u32> = (0..hosts.len() as u32).collect();
        by_addr.sort_unstable_by_key(|&i| hosts[i as usize]);
        let perm = Permutation::new(n, seed);
        let results = vec![UNANSWERED; n as usize];
        // Slots outside the share are marked by [`RawScan::prepare`], which a caller can
        // run in steps (a permutation lookup per slot: seconds for a -p- of a /25).
        let unanswered_left = share.count_below(n);
        let marked = if share == Share::ALL { n } else { 0 };
        RawScan {
            index,
            by_addr,
            rtt: RttEstimator::new(&timing),
            rate: initial.clamp(floor_rate, ceiling),
            ceiling,
            floor_rate,
            timing,
            mode,
            src,
            results,
            ttl: vec![0; n as usize],
            hosts,
            slots,
            key,
            source_ports: SOURCE_PORTS,
            perm,
            share,
            pass: 0,
            pos: share.start,
            pos_end: n,
            claims: None,
            pass_answers: 0,
            pass_done_at: None,
            unanswered_left,
            marked,
            pacer: TokenBucket::default(),
            epochs: [Epoch::default(); EPOCHS],
            current_epoch: None,
            loss_floor: 1.0,
            lowest_judged: f64::INFINITY,
            loss_at_lowest: 1.0,
            clean_rate: None,
            sample: LossSample::default(),
            last_cut: None,
            next_review: None,
            started: None,
            stats: ScanStats::default(),
        }
    }

    /// Uses only `ports` as source ports (each per-core engine its own part of
    /// [`SOURCE_PORTS`], so that each core's receiver can take only its own replies).
    /// Replies to other source ports are ignored as not ours.
    pub fn with_source_ports(mut self, ports: RangeInclusive<u16>) -> Self {
        self.source_ports = ports;
        self
    }

    /// Takes the first pass's positions from `claims`, shared with the share's other
    /// engines (each made with the same share), instead of a fixed part of it. Later
    /// passes retry what this engine sent. Before the first poll only.
    pub fn with_claims(mut self, claims: std::sync::Arc<Claims>) -> Self {
        // Nothing is this engine's until claimed.
        self.results.fill(NOT_PROBED);
        self.marked = self.n();
        self.unanswered_left = 0;
        self.pos_end = self.pos;
        self.claims = Some(claims);
        self
    }

    /// First pass with claims, the last run sent: claims the next one and makes its
    /// positions this engine's, or ends the pass when none is left.
    fn claim_more(&mut self) {
        let Some(claims) = &self.claims else { return };
        if self.pass > 0 || self.pos < self.pos_end || self.pos >= self.n() {
            return;
        }
        let (start, stride) = (self.share.start, self.share.stride.max(1));
        let total = self.share.count_below(self.n());
        let first = claims.take();
        if first >= total {
            self.pos = self.n();
            self.pos_end = self.n();
            return;
        }
        let last = (first + CLAIM).min(total);
        self.pos = start + first * stride;
        self.pos_end = start + last * stride;
        for i in first..last {
            let idx = self.perm.at(start + i * stride) as usize;
            if self.results.get(idx) != Some(&NOT_PROBED) {
                continue;
            }
            // Discovery: a host this engine already heard from needs no more probes.
            let up = self.mode == Mode::Discovery && self.host_answered(self.split(idx as u64).0);
            if let Some(r) = self.results.get_mut(idx) {
                if up {
                    *r = SKIPPED;
                } else {
                    *r = UNANSWERED;
                    self.unanswered_left += 1;
                }
            }
        }
    }

    /// Whether any probe of host `h` got an answer.
    fn host_answered(&self, h: usize) -> bool {
        (0..self.slots.len()).any(|s| {
            self.results
                .get(h + self.hosts.len() * s)
                .is_some_and(|&c| !matches!(c, UNANSWERED | SKIPPED | NOT_PROBED))
        })
    }

    /// The source ports of this engine's probes.
    pub fn source_ports(&self) -> RangeInclusive<u16> {
        self.source_ports.clone()
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

    /// What the probe kinds need to know of this scan to build and read its packets.
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            src: self.src,
            key: &self.key,
            source_ports: &self.source_ports,
            pass: self.pass,
            index: &self.index,
        }
    }

    fn probe_for(&self, host: usize, slot: usize, epoch: u8) -> Probe {
        let dst = self.hosts[host];
        let slot = self.slots[slot];
        let ctx = self.ctx();
        let sport = match slot.port() {
            Some(port) => ctx.sport_for(dst, port, self.pass),
            None => 0,
        };
        let cookie = ctx.cookie(dst, slot, sport);
        Probe {
            src: self.src,
            dst,
            slot,
            sport,
            stamp: (cookie & !0xff) | u32::from(epoch),
        }
    }

    /// Marks up to `budget` more slots outside this engine's share as not its own;
    /// returns whether every slot has been looked at. Done in full by the first
    /// [`RawScan::poll`] or [`RawScan::on_packet`] if the caller did not: calling it
    /// in steps first lets a caller stop (an interrupt) while a large scan is set up.
    pub fn prepare(&mut self, budget: u64) -> bool {
        let n = self.results.len() as u64;
        let end = self.marked.saturating_add(budget).min(n);
        for pos in self.marked..end {
            if !self.share.contains(pos) {
                if let Some(r) = self.results.get_mut(self.perm.at(pos) as usize) {
                    *r = NOT_PROBED;
                }
            }
        }
        self.marked = end;
        end == n
    }

    fn prepared(&self) -> bool {
        self.marked == self.results.len() as u64
    }

    /// The next thing to do at `now`.
    pub fn poll(&mut self, now: Instant) -> Poll<Probe> {
        self.prepare(u64::MAX);
        // --host-timeout: every host of this engine started together, so they all run out
        // together; what is unanswered then stays so.
        let started = *self.started.get_or_insert(now);
        if let Some(limit) = self.timing.host_timeout {
            if self.unanswered_left > 0 && now.saturating_duration_since(started) >= limit {
                self.stats.timed_out = true;
                self.stats.unanswered = self.unanswered_left;
                self.stats.passes = self.pass + 1;
                return Poll::Done;
            }
        }
        // Epochs are looked at every millisecond, not at every probe: the look walks all
        // 256 of them, which would cost more than building the probe.
        if self.next_review.is_none_or(|t| now >= t) {
            self.review_epochs(now);
            self.next_review = Some(now + REVIEW_EVERY);
        }
        loop {
            self.claim_more();
            if self.pos >= self.n() {
                // The pass is sent: wait for late answers, then decide on another pass.
                let done_at = *self.pass_done_at.get_or_insert(now);
                let wait_until = done_at + self.rtt.timeout();
                if self.unanswered_left > 0 && now < wait_until {
                    return Poll::WaitUntil(wait_until);
                }
                let retry_allowed = self.pass < self.timing.max_retries
                    && (self.pass == 0 || self.pass_answers > 0);
                self.stats.passes = self.pass + 1;
                if self.unanswered_left == 0 || !retry_allowed {
                    self.stats.unanswered = self.unanswered_left;
                    return Poll::Done;
                }
                self.pass += 1;
                self.pass_answers = 0;
                self.pos = self.share.start;
                // Retries walk the whole share: what this engine sent is what is
                // UNANSWERED in its results.
                self.pos_end = self.n();
                self.pass_done_at = None;
            }
            // Pacing: a token bucket at the current rate (bursts of at most 4 ms worth);
            // retransmissions go no faster than the highest rate seen to be clean.
            let rate = match (self.pass, self.clean_rate) {
                (0, _) | (_, None) => self.rate,
                (_, Some(clean)) => self.rate.min(clean).max(self.floor_rate),
            };
            if let Some(at) = self.pacer.wait(now, rate, EPOCH) {
                return Poll::WaitUntil(at);
            }
            // The next probe still unanswered in this pass.
            while self.pos < self.pos_end.min(self.n()) {
                let idx = self.perm.at(self.pos);
                self.pos += self.share.stride;
                if self.results[idx as usize] != UNANSWERED {
                    continue;
                }
                let (h, s) = self.split(idx);
                let epoch = self.epoch_for(now);
                let probe = self.probe_for(h, s, epoch);
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
                return Poll::Send(probe);
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

    /// Digests one received IP packet (starting at the IPv4 or IPv6 header).
    pub fn on_packet(&mut self, now: Instant, packet: &[u8]) {
        self.prepare(u64::MAX);
        match probe::classify(&self.ctx(), packet) {
            Ok(a) => self.accept(now, a),
            Err(Reject::Invalid) => self.stats.invalid += 1,
            Err(Reject::NotOurs) => {}
        }
    }

    fn host_index(&self, host: IpAddr) -> Option<usize> {
        let at = self
            .by_addr
            .binary_search_by_key(&host, |&i| self.hosts[i as usize])
            .ok()?;
        Some(self.by_addr[at] as usize)
    }

    fn slot_index(&self, slot: Slot) -> Option<usize> {
        self.index.get(slot)
    }

    fn accept(&mut self, now: Instant, a: Answer) {
        let (Some(h), Some(s)) = (self.host_index(a.host), self.slot_index(a.slot)) else {
            return;
        };
        if self.mode == Mode::Discovery && !a.from_target {
            // A router's word that the host cannot be reached: not an answer from it.
            return;
        }
        let idx = h + self.hosts.len() * s;
        match self.results[idx] {
            UNANSWERED => {}
            // Another engine's probe (per-core shares see each other's answers); in
            // discovery it still says the host is up.
            NOT_PROBED => {
                if self.mode == Mode::Discovery {
                    self.skip_rest_of(h);
                }
                return;
            }
            _ => {
                self.stats.duplicates += 1;
                return;
            }
        }
        self.results[idx] = a.code;
        self.ttl[idx] = a.ttl;
        self.unanswered_left -= 1;
        self.stats.answers += 1;
        self.pass_answers += 1;
        if self.pass > 0 {
            self.stats.late_answers += 1;
        }
        if self.mode == Mode::Discovery {
            self.skip_rest_of(h);
        }
        if let Some(epoch) = a.epoch {
            let ep = &mut self.epochs[epoch as usize];
            ep.answered += 1;
            if let Some(start) = ep.start {
                self.rtt.sample(now.saturating_duration_since(start));
            }
        }
    }

    /// Discovery: host `h` is up, so its probes still unanswered are not needed.
    fn skip_rest_of(&mut self, h: usize) {
        for other in 0..self.slots.len() {
            let j = h + self.hosts.len() * other;
            if self.results[j] == UNANSWERED {
                self.results[j] = SKIPPED;
                self.unanswered_left -= 1;
            }
        }
    }

    /// What `code` in `slot` means, as Nmap reports it: the slot's kind says.
    fn describe(slot: Slot, code: u8) -> (PortState, &'static str) {
        slot.kind().meaning(slot, code)
    }

    /// Results per host, in the order hosts were given, each in slot order, leaving out
    /// slots outside this engine's share.
    pub fn results(&self) -> Vec<Vec<SlotResult>> {
        self.results_where(false)
    }

    /// As [`RawScan::results`], only the slots that got an answer: what an interrupted
    /// scan reports, without building (and dropping) a result for every slot not tried.
    pub fn answered_results(&self) -> Vec<Vec<SlotResult>> {
        self.results_where(true)
    }

    fn results_where(&self, answered_only: bool) -> Vec<Vec<SlotResult>> {
        let h = self.hosts.len();
        if !self.prepared() {
            // Never polled: nothing was sent, and which slots are this share's is not
            // known yet.
            return vec![Vec::new(); h];
        }
        let each = if answered_only { 0 } else { self.slots.len() };
        let mut out = vec![Vec::with_capacity(each); h];
        for (i, &code) in self.results.iter().enumerate() {
            if code == NOT_PROBED || code == SKIPPED || (answered_only && code == UNANSWERED) {
                continue;
            }
            let (host, slot) = (i % h, self.slots[i / h]);
            let (state, reason) = Self::describe(slot, code);
            out[host].push(SlotResult {
                slot,
                state,
                reason,
                ttl: self.ttl[i],
            });
        }
        out
    }

    /// Discovery verdicts per host, in the order hosts were given: the first answer's
    /// reason and TTL, or None (no answer from the host itself). Within this share only.
    pub fn answers(&self) -> Vec<Option<HostAnswer>> {
        let h = self.hosts.len();
        let mut out = vec![None; h];
        for (i, &code) in self.results.iter().enumerate() {
            let host = i % h;
            if out[host].is_some() || matches!(code, UNANSWERED | SKIPPED | NOT_PROBED) {
                continue;
            }
            let slot = self.slots[i / h];
            let reason = Self::describe(slot, code).1;
            out[host] = Some(HostAnswer {
                reason,
                ttl: self.ttl[i],
                slot,
            });
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
    use crate::plan::timing::Template;
    use portolan_wire::build::{
        build_icmpv4, build_tcp_v4, build_tcp_v6, build_udp_v4, Ipv4Params, Ipv6Params, TcpParams,
        UdpParams,
    };
    use portolan_wire::tcp::{self, Flags};
    use portolan_wire::{icmpv4, ipv4, ipv6, udp};
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashMap, VecDeque};
    use std::net::Ipv4Addr;
    use std::net::Ipv6Addr;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

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
        fn answer(&mut self, p: &Probe, now: Instant) -> Option<(Instant, Vec<u8>)> {
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
            let dport = p.slot.port().unwrap();
            if self.filtered.contains(&dport) || self.rand() < self.loss {
                return None;
            }
            let flags = if self.open.contains(&dport) {
                Flags::SYN | Flags::ACK
            } else {
                Flags::RST | Flags::ACK
            };
            Some((now + delay, tcp_reply(p, flags)))
        }
    }

    /// The target's TCP answer with `flags` to the SYN `p` (IPv4), acknowledging its stamp.
    fn tcp_reply(p: &Probe, flags: Flags) -> Vec<u8> {
        let mut buf = vec![0u8; 80];
        let tcp = TcpParams {
            sport: p.slot.port().unwrap(),
            dport: p.sport,
            seq: 1,
            ack: p.stamp.wrapping_add(1),
            flags,
            window: 0,
            options: &[],
            payload: &[],
        };
        let ip = Ipv4Params {
            src: v4(p.dst),
            dst: SRC,
            ttl: 64,
            ident: 0,
            dont_frag: true,
        };
        let len = build_tcp_v4(&mut buf, None, &ip, &tcp).unwrap();
        buf.truncate(len);
        buf
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
    fn run(mut scan: RawScan, net: &mut Net) -> (RawScan, Duration) {
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
                Poll::WaitForInput => panic!("raw and link cores never wait for input"),
                Poll::Send(p) => {
                    if let Some(a) = net.answer(&p, now) {
                        arrivals.push(Reverse(a));
                    }
                }
                Poll::WaitUntil(t) => {
                    let next = arrivals.peek().map_or(t, |a| a.0 .0.min(t));
                    now = now.max(next);
                }
                Poll::Done => break,
            }
        }
        (scan, now - start)
    }

    fn v4(a: IpAddr) -> Ipv4Addr {
        match a {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => panic!("IPv4 expected"),
        }
    }

    fn scan_slots(mode: Mode, hosts: Vec<IpAddr>, slots: Vec<Slot>, t: Timing) -> RawScan {
        RawScan::new(
            t,
            mode,
            IpAddr::V4(SRC),
            hosts,
            slots,
            CookieKey::from_seed([7; 16]),
            42,
            Share::ALL,
        )
    }

    fn scan(ports: Vec<u16>, t: Timing) -> RawScan {
        scan_slots(
            Mode::Ports,
            vec![IpAddr::V4(TARGET)],
            ports.into_iter().map(Slot::Syn).collect(),
            t,
        )
    }

    fn states(s: &RawScan) -> HashMap<u16, (PortState, &'static str)> {
        s.results()[0]
            .iter()
            .map(|r| (r.slot.port().unwrap(), (r.state, r.reason)))
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
            Poll::WaitUntil(t) => assert!(t > now),
            Poll::Send(_) => {}
            other => panic!("{other:?}"),
        }
    }

    /// Regression: a retry reused the 4-tuple of a try whose SYN-ACK was lost. A Linux
    /// target still holds that half-open attempt and answers a SYN with another sequence
    /// number on the same 4-tuple with a RST: the open port read as closed (seen in the
    /// lab on the tbf-congested host).
    #[test]
    fn a_retry_after_a_lost_syn_ack_still_finds_the_port_open() {
        let mut s = scan(vec![80, 81], Template::Aggressive.timing());
        let mut now = Instant::now();
        // (sport, dport) -> the sequence number of the attempt the target holds.
        let mut half_open: HashMap<(u16, u16), u32> = HashMap::new();
        let mut first = true;
        let mut pending: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
        loop {
            while pending.front().is_some_and(|p| p.0 <= now) {
                let (_, pkt) = pending.pop_front().unwrap();
                s.on_packet(now, &pkt);
            }
            match s.poll(now) {
                Poll::WaitForInput => panic!("raw and link cores never wait for input"),
                Poll::Send(p) => {
                    let port = p.slot.port().unwrap();
                    let flags = match half_open.get(&(p.sport, port)) {
                        Some(&seq) if seq != p.stamp => Flags::RST | Flags::ACK,
                        _ if port == 80 => Flags::SYN | Flags::ACK,
                        _ => Flags::RST | Flags::ACK,
                    };
                    if port == 80 {
                        half_open.insert((p.sport, port), p.stamp);
                        if first {
                            // The first SYN-ACK is lost on the way.
                            first = false;
                            continue;
                        }
                    }
                    pending.push_back((now + Duration::from_micros(300), tcp_reply(&p, flags)));
                }
                Poll::WaitUntil(t) => now = pending.front().map_or(t, |p| p.0.min(t)),
                Poll::Done => break,
            }
        }
        let st = states(&s);
        assert_eq!(st[&80], (PortState::Open, "syn-ack"));
        assert_eq!(st[&81], (PortState::Closed, "reset"));
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
    fn scan_delay_spaces_every_probe() {
        let mut t = Template::Aggressive.timing();
        t.scan_delay = Duration::from_millis(10);
        let mut s = scan((1..=50).collect(), t);
        let mut now = Instant::now();
        let mut sent = Vec::new();
        loop {
            match s.poll(now) {
                Poll::WaitForInput => panic!("raw and link cores never wait for input"),
                Poll::Send(_) => sent.push(now),
                Poll::WaitUntil(t) => now = t,
                Poll::Done => break,
            }
        }
        assert_eq!(sent.len(), 100, "50 probes and one retransmission of each");
        for w in sent.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(10) - Duration::from_micros(1));
        }
    }

    #[test]
    fn host_timeout_ends_the_scan() {
        let mut t = Template::Aggressive.timing();
        t.max_rate = Some(100.0);
        t.host_timeout = Some(Duration::from_millis(500));
        let mut n = net(&[80], &[], 0.0);
        let (s, took) = run(scan((1..=1000).collect(), t), &mut n);
        assert!(s.stats.timed_out);
        assert!(took <= Duration::from_millis(520), "took {took:?}");
        assert!(s.stats.probes_sent <= 52, "{}", s.stats.probes_sent);
        assert!(s.stats.unanswered >= 900);
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
            let hosts = (10..20)
                .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 0, i)))
                .collect();
            let mut t = Template::Aggressive.timing();
            t.min_rate = Some(1e9);
            let mut s = RawScan::new(
                t,
                Mode::Ports,
                IpAddr::V4(SRC),
                hosts,
                (1..=100).map(Slot::Syn).collect(),
                CookieKey::from_seed([key; 16]),
                seed,
                Share::ALL,
            );
            let mut now = Instant::now();
            let mut sent = Vec::new();
            while sent.len() < 200 {
                match s.poll(now) {
                    Poll::WaitForInput => panic!("raw and link cores never wait for input"),
                    Poll::Send(p) => sent.push((p.dst, p.slot)),
                    Poll::WaitUntil(t) => now = t,
                    Poll::Done => break,
                }
            }
            sent
        };
        assert_eq!(order(7, 1), order(7, 2));
        assert_ne!(order(7, 1), order(8, 1));
        assert_eq!(order(7, 1).len(), 200);
    }

    /// Cost of `on_packet` for SYN-ACK/RST replies to a -p- scan, first answers and then
    /// duplicates. Not a test of speed; run to measure:
    /// `cargo test --release -p portolan-engine --lib scan::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_on_packet() {
        let mut t = Template::Insane.timing();
        t.min_rate = Some(1e12);
        let mut s = scan((1..=65535).collect(), t);
        let mut now = Instant::now();
        let mut replies = Vec::new();
        loop {
            match s.poll(now) {
                Poll::Send(p) => {
                    let open = p.slot.port().is_some_and(|port| port % 100 == 0);
                    let flags = if open { Flags::SYN } else { Flags::RST };
                    replies.push(tcp_reply(&p, flags | Flags::ACK));
                }
                Poll::WaitUntil(at) if replies.len() < 65535 => now = at,
                _ => break,
            }
        }
        for round in ["first answers", "duplicates"] {
            let start = Instant::now();
            for r in &replies {
                s.on_packet(now, std::hint::black_box(r));
            }
            let ns = start.elapsed().as_nanos() as f64 / replies.len() as f64;
            println!("{round}: {ns:.1} ns per on_packet()");
        }
        assert_eq!(s.stats.answers, 65535);
    }

    #[test]
    fn forged_and_stray_answers_are_rejected() {
        let mut s = scan(vec![80], Template::Aggressive.timing());
        let now = Instant::now();
        let Poll::Send(p) = s.poll(now) else { panic!() };
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
        let Poll::Send(p) = s.poll(now) else { panic!() };
        // Our SYN as the target's router would quote it.
        let mut syn = vec![0u8; 64];
        let ip = Ipv4Params {
            src: SRC,
            dst: v4(p.dst),
            ttl: 64,
            ident: 1,
            dont_frag: false,
        };
        let len = build_tcp_v4(
            &mut syn,
            None,
            &ip,
            &TcpParams::syn(p.sport, p.slot.port().unwrap(), p.stamp),
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
        assert_eq!(s.results()[0][0].ttl, 250);
    }

    /// A host that reads the real probe bytes and answers as a Linux host would: open TCP
    /// ports SYN-ACK, closed ones RST (also to any ACK), open UDP ports reply, closed UDP
    /// ports draw an ICMP port unreachable (the first `icmp_budget` of them: the kernel's
    /// rate limit), and echo requests get replies when `echo` is set.
    struct Responder {
        open_tcp: Vec<u16>,
        open_udp: Vec<u16>,
        echo: bool,
        icmp_budget: usize,
    }

    impl Responder {
        fn answer(&mut self, p: &Probe) -> Option<Vec<u8>> {
            let mut probe = vec![0u8; 256];
            let len = build_probe(&mut probe, p, b"payload", 64).unwrap();
            probe.truncate(len);
            let mut buf = vec![0u8; 256];
            let reply_len = match (p.src, p.dst, p.slot) {
                (IpAddr::V4(src), IpAddr::V4(dst), slot) => {
                    let ip = Ipv4Params {
                        src: dst,
                        dst: src,
                        ttl: 63,
                        ident: 0,
                        dont_frag: false,
                    };
                    let seg = ipv4::Packet::new_checked(&probe[..]).unwrap();
                    match slot {
                        Slot::Syn(port) | Slot::Ack(port) => {
                            let t = tcp::Packet::new_checked(seg.payload()).unwrap();
                            let syn = slot == Slot::Syn(port);
                            let flags = match (syn, self.open_tcp.contains(&port)) {
                                (true, true) => Flags::SYN | Flags::ACK,
                                (true, false) => Flags::RST | Flags::ACK,
                                (false, _) => Flags::RST,
                            };
                            let tcp = TcpParams {
                                sport: port,
                                dport: t.src_port(),
                                seq: if syn { 1 } else { t.ack_number() },
                                ack: t.seq_number().wrapping_add(1),
                                flags,
                                window: 0,
                                options: &[],
                                payload: &[],
                            };
                            build_tcp_v4(&mut buf, None, &ip, &tcp).unwrap()
                        }
                        Slot::Udp(port) => {
                            let u = udp::Packet::new_checked(seg.payload()).unwrap();
                            if self.open_udp.contains(&port) {
                                let udp = UdpParams {
                                    sport: port,
                                    dport: u.src_port(),
                                    payload: b"answer",
                                };
                                build_udp_v4(&mut buf, None, &ip, &udp).unwrap()
                            } else if self.icmp_budget > 0 {
                                self.icmp_budget -= 1;
                                let icmp = icmpv4::Repr::DstUnreachable {
                                    code: 3,
                                    next_hop_mtu: 0,
                                    inner: &probe[..28],
                                };
                                build_icmpv4(&mut buf, None, &ip, &icmp).unwrap()
                            } else {
                                return None;
                            }
                        }
                        Slot::Echo if self.echo => {
                            let i = icmpv4::Packet::new_checked(seg.payload()).unwrap();
                            let icmp = icmpv4::Repr::EchoReply {
                                ident: i.echo_ident(),
                                seq_no: i.echo_seq_no(),
                                data: &[],
                            };
                            build_icmpv4(&mut buf, None, &ip, &icmp).unwrap()
                        }
                        _ => return None,
                    }
                }
                (IpAddr::V6(src), IpAddr::V6(dst), Slot::Syn(port)) => {
                    let seg = ipv6::Packet::new_checked(&probe[..]).unwrap();
                    let t = tcp::Packet::new_checked(seg.payload()).unwrap();
                    let ip = Ipv6Params {
                        src: dst,
                        dst: src,
                        hop_limit: 60,
                        traffic_class: 0,
                        flow_label: 0,
                    };
                    let tcp = TcpParams {
                        sport: port,
                        dport: t.src_port(),
                        seq: 1,
                        ack: t.seq_number().wrapping_add(1),
                        flags: if self.open_tcp.contains(&port) {
                            Flags::SYN | Flags::ACK
                        } else {
                            Flags::RST | Flags::ACK
                        },
                        window: 0,
                        options: &[],
                        payload: &[],
                    };
                    build_tcp_v6(&mut buf, None, &ip, &tcp).unwrap()
                }
                _ => return None,
            };
            buf.truncate(reply_len);
            Some(buf)
        }
    }

    /// Runs a scan on a fake clock against responders (by host address), 300 µs away.
    fn run_against(scan: &mut RawScan, hosts: &mut HashMap<IpAddr, Responder>) -> Vec<Probe> {
        let mut now = Instant::now();
        let mut sent = Vec::new();
        let mut arrivals: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
        for _ in 0..10_000_000u64 {
            while arrivals.front().is_some_and(|a| a.0 <= now) {
                if let Some((_, pkt)) = arrivals.pop_front() {
                    scan.on_packet(now, &pkt);
                }
            }
            match scan.poll(now) {
                Poll::WaitForInput => panic!("raw and link cores never wait for input"),
                Poll::Send(p) => {
                    sent.push(p);
                    if let Some(reply) = hosts.get_mut(&p.dst).and_then(|h| h.answer(&p)) {
                        arrivals.push_back((now + Duration::from_micros(300), reply));
                    }
                }
                Poll::WaitUntil(t) => {
                    let next = arrivals.front().map_or(t, |a| a.0.min(t));
                    now = now.max(next);
                }
                Poll::Done => break,
            }
        }
        sent
    }

    fn responder(open_tcp: &[u16], open_udp: &[u16], echo: bool, icmp_budget: usize) -> Responder {
        Responder {
            open_tcp: open_tcp.to_vec(),
            open_udp: open_udp.to_vec(),
            echo,
            icmp_budget,
        }
    }

    #[test]
    fn udp_states_as_nmap_reports_them() {
        let t = IpAddr::V4(TARGET);
        let slots = vec![Slot::Udp(53), Slot::Udp(161), Slot::Udp(7), Slot::Udp(9)];
        let mut s = scan_slots(Mode::Ports, vec![t], slots, Template::Aggressive.timing());
        // 53 answers; 7 and 9 are closed, but the kernel's ICMP rate limit lets only one
        // port unreachable out; 161 is silent.
        let mut hosts = HashMap::from([(t, responder(&[], &[53], false, 1))]);
        run_against(&mut s, &mut hosts);
        let st = states(&s);
        assert_eq!(st[&53], (PortState::Open, "udp-response"));
        assert_eq!(st[&161], (PortState::OpenFiltered, "no-response"));
        let closed = [st[&7], st[&9]];
        assert!(
            closed.contains(&(PortState::Closed, "port-unreach")),
            "{closed:?}"
        );
        assert!(
            closed.contains(&(PortState::OpenFiltered, "no-response")),
            "{closed:?}"
        );
    }

    #[test]
    fn tcp_and_udp_in_one_scan() {
        let t = IpAddr::V4(TARGET);
        let slots = vec![Slot::Syn(53), Slot::Syn(22), Slot::Udp(53), Slot::Udp(22)];
        let mut s = scan_slots(Mode::Ports, vec![t], slots, Template::Aggressive.timing());
        let mut hosts = HashMap::from([(t, responder(&[53], &[53], false, 10))]);
        run_against(&mut s, &mut hosts);
        let r: Vec<(Slot, PortState)> = s.results()[0].iter().map(|r| (r.slot, r.state)).collect();
        assert_eq!(
            r,
            vec![
                (Slot::Syn(53), PortState::Open),
                (Slot::Syn(22), PortState::Closed),
                (Slot::Udp(53), PortState::Open),
                (Slot::Udp(22), PortState::Closed),
            ]
        );
    }

    /// Regression: slot positions were kept in 16 bits, but `-sS -sU -p-` has 131,070
    /// slots. The UDP slots past the 65,535th were lost or filed under a TCP port.
    #[test]
    fn every_tcp_and_udp_port_in_one_scan() {
        let t = IpAddr::V4(TARGET);
        let mut slots: Vec<Slot> = (1..=65535).map(Slot::Syn).collect();
        slots.extend([Slot::Udp(53), Slot::Udp(54), Slot::Udp(65535)]);
        let mut s = scan_slots(Mode::Ports, vec![t], slots, Template::Insane.timing());
        let mut hosts = HashMap::from([(t, responder(&[22], &[53, 54, 65535], false, 0))]);
        run_against(&mut s, &mut hosts);
        let r = &s.results()[0];
        assert_eq!(r.len(), 65538);
        assert_eq!((r[0].slot, r[0].state), (Slot::Syn(1), PortState::Closed));
        assert_eq!((r[21].slot, r[21].state), (Slot::Syn(22), PortState::Open));
        for udp in &r[65535..] {
            assert_eq!(
                (udp.state, udp.reason),
                (PortState::Open, "udp-response"),
                "{udp:?}"
            );
        }
        assert_eq!(s.stats.duplicates, 0);
    }

    #[test]
    fn discovery_stops_at_the_first_answer() {
        let a = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 20));
        let b = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 21));
        let c = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 22));
        let slots = vec![Slot::Echo, Slot::Syn(443), Slot::Ack(80), Slot::Timestamp];
        let mut s = scan_slots(
            Mode::Discovery,
            vec![a, b, c],
            slots,
            Template::Aggressive.timing(),
        );
        // a answers echo (and would answer TCP too); b has ICMP filtered but answers TCP; c
        // is silent.
        let mut hosts = HashMap::from([
            (a, responder(&[443], &[], true, 0)),
            (b, responder(&[], &[], false, 0)),
        ]);
        let sent = run_against(&mut s, &mut hosts);
        let ans = s.answers();
        assert!(ans[0].is_some() && ans[1].is_some(), "{ans:?}");
        assert!(["reset"].contains(&ans[1].unwrap().reason), "{ans:?}");
        assert_eq!(ans[2], None);
        // Nothing is sent to a or b after their first answer came back; c gets every probe
        // twice (one retransmission, which nothing answers).
        let to = |h: IpAddr| sent.iter().filter(|p| p.dst == h).count();
        assert!(to(a) <= 4 && to(b) <= 4, "a {} b {}", to(a), to(b));
        assert_eq!(to(c), 8);
        assert_eq!(s.stats.unanswered, 4);
    }

    /// Discovery with claims: the positions of a host this engine already heard from are
    /// skipped when their run is claimed, not probed.
    #[test]
    fn claimed_discovery_skips_hosts_already_up() {
        let hosts: Vec<IpAddr> = (1..=200)
            .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i)))
            .collect();
        let slots = vec![Slot::Echo, Slot::Syn(443), Slot::Ack(80), Slot::Timestamp];
        let mut s = scan_slots(
            Mode::Discovery,
            hosts.clone(),
            slots.clone(),
            Template::Aggressive.timing(),
        )
        .with_claims(std::sync::Arc::new(Claims::new()));
        s.claim_more();
        assert_eq!(s.unanswered_left, CLAIM);
        // Every host of the first run answered (its first claimed slot): the second run
        // holds only slots of hosts left unheard.
        let first_run: Vec<usize> = (0..CLAIM).map(|i| s.perm.at(i) as usize).collect();
        let mut up = std::collections::HashSet::new();
        for &idx in &first_run {
            let h = s.split(idx as u64).0;
            if up.insert(h) {
                s.results[idx] = 3; // an answer code
            } else {
                s.results[idx] = SKIPPED;
            }
        }
        s.pos = s.pos_end;
        s.claim_more();
        let n = (hosts.len() * slots.len()) as u64;
        let second: Vec<usize> = (CLAIM..n.min(2 * CLAIM))
            .map(|i| s.perm.at(i) as usize)
            .collect();
        assert!(!second.is_empty());
        for idx in second {
            let h = s.split(idx as u64).0;
            let expected = if up.contains(&h) { SKIPPED } else { UNANSWERED };
            assert_eq!(s.results[idx], expected, "host {h}");
        }
    }

    /// Engines taking from one pool of claims: a slower one (polled a third as often)
    /// sends less; together their first tries cover the share once; each retries only
    /// what it sent itself; their results do not overlap and cover the share.
    #[test]
    fn claimed_runs_cover_the_share_once_and_follow_speed() {
        let hosts: Vec<IpAddr> = (1..=5)
            .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i)))
            .collect();
        let slots: Vec<Slot> = (1..=400).map(Slot::Syn).collect();
        let mut t = Template::Insane.timing();
        t.max_retries = 1;
        // Hosts 1..=4 answer (port 80 open), host 5 is silent: its probes are retried.
        let mut responders: HashMap<IpAddr, Responder> = hosts[..4]
            .iter()
            .map(|&h| (h, responder(&[80], &[], false, 0)))
            .collect();
        let share = Share {
            start: 1,
            stride: 2,
        };
        let claims = std::sync::Arc::new(Claims::new());
        let make = || {
            RawScan::new(
                t.clone(),
                Mode::Ports,
                IpAddr::V4(SRC),
                hosts.clone(),
                slots.clone(),
                CookieKey::from_seed([1; 16]),
                9,
                share,
            )
            .with_claims(std::sync::Arc::clone(&claims))
        };
        let mut engines = [make(), make()];
        let mut clocks = [Instant::now(); 2];
        let mut arrivals: [VecDeque<(Instant, Vec<u8>)>; 2] = Default::default();
        let mut sent: [Vec<Probe>; 2] = Default::default();
        let mut done = [false; 2];
        for round in 0..10_000_000u64 {
            if done == [true, true] {
                break;
            }
            // Engine 1 gets a step every third round only.
            for k in 0..2 {
                if done[k] || (k == 1 && round % 3 != 0) {
                    continue;
                }
                let (scan, now) = (&mut engines[k], &mut clocks[k]);
                while arrivals[k].front().is_some_and(|a| a.0 <= *now) {
                    if let Some((_, pkt)) = arrivals[k].pop_front() {
                        scan.on_packet(*now, &pkt);
                    }
                }
                match scan.poll(*now) {
                    Poll::Send(p) => {
                        sent[k].push(p);
                        if let Some(r) = responders.get_mut(&p.dst).and_then(|h| h.answer(&p)) {
                            arrivals[k].push_back((*now + Duration::from_micros(300), r));
                        }
                    }
                    Poll::WaitUntil(w) => {
                        let next = arrivals[k].front().map_or(w, |a| a.0.min(w));
                        *now = (*now).max(next);
                    }
                    Poll::WaitForInput => unreachable!(),
                    Poll::Done => done[k] = true,
                }
            }
        }
        assert_eq!(done, [true, true]);
        let in_share: usize = (0..hosts.len() * slots.len())
            .filter(|&p| share.contains(p as u64))
            .count();
        let mut first: HashMap<(IpAddr, Slot), usize> = HashMap::new();
        for (k, probes) in sent.iter().enumerate() {
            let mut mine = std::collections::HashSet::new();
            for p in probes {
                if mine.insert((p.dst, p.slot)) {
                    *first.entry((p.dst, p.slot)).or_insert(0) += 1;
                }
            }
            // Each engine retried (the silent host's probes); that no probe went out from
            // both engines is checked below (each counted once).
            assert!(probes.len() > mine.len(), "engine {k} retried nothing");
        }
        assert_eq!(first.len(), in_share);
        assert!(first.values().all(|&n| n == 1));
        assert!(
            sent[0].len() > 2 * sent[1].len(),
            "the faster engine sent {} probes, the slower {}",
            sent[0].len(),
            sent[1].len()
        );
        let results: Vec<usize> = engines
            .iter()
            .map(|e| e.results().iter().map(Vec::len).sum())
            .collect();
        assert_eq!(results[0] + results[1], in_share);
        // What the share holds: (host index, slot) of each of its positions.
        let e0 = &engines[0];
        let held: Vec<(usize, Slot)> = (0..e0.n())
            .filter(|&p| share.contains(p))
            .map(|p| {
                let (h, s) = e0.split(e0.perm.at(p));
                (h, slots[s])
            })
            .collect();
        let open: usize = engines
            .iter()
            .flat_map(|e| e.results())
            .flatten()
            .filter(|r| r.state == PortState::Open)
            .count();
        let open_held = held
            .iter()
            .filter(|&&(h, s)| h < 4 && s == Slot::Syn(80))
            .count();
        assert_eq!(open, open_held);
        assert_eq!(
            engines[0].stats.unanswered + engines[1].stats.unanswered,
            held.iter().filter(|&&(h, _)| h == 4).count() as u64
        );
    }

    #[test]
    fn shares_are_disjoint_and_cover_everything() {
        let hosts: Vec<IpAddr> = (1..=7)
            .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i)))
            .collect();
        let slots: Vec<Slot> = (1..=13).map(Slot::Syn).collect();
        let mut t = Template::Insane.timing();
        t.max_retries = 0;
        let mut seen = HashMap::new();
        for shard in 0..3u64 {
            for core in 0..2u64 {
                let share = Share {
                    start: shard,
                    stride: 3,
                }
                .split(core, 2);
                let mut s = RawScan::new(
                    t.clone(),
                    Mode::Ports,
                    IpAddr::V4(SRC),
                    hosts.clone(),
                    slots.clone(),
                    CookieKey::from_seed([1; 16]),
                    9,
                    share,
                );
                for p in run_against(&mut s, &mut HashMap::new()) {
                    *seen.entry((p.dst, p.slot)).or_insert(0) += 1;
                }
                // Results cover exactly the share's probes.
                let n: usize = s.results().iter().map(Vec::len).sum();
                assert_eq!(n as u64, s.stats.probes_sent);
            }
        }
        assert_eq!(seen.len(), 7 * 13);
        assert!(seen.values().all(|&n| n == 1));
    }

    /// Preparing in small steps (as the driver does, to hear an interrupt while a large
    /// scan is set up) marks exactly what preparing at once does; the count of this
    /// share's slots is known from the start; an engine never prepared reports nothing.
    #[test]
    fn prepare_in_steps_marks_as_at_once() {
        let hosts: Vec<IpAddr> = (1..=7)
            .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i)))
            .collect();
        let slots: Vec<Slot> = (1..=13).map(Slot::Syn).collect();
        let t = Template::Insane.timing();
        let make = |share: Share| {
            RawScan::new(
                t.clone(),
                Mode::Ports,
                IpAddr::V4(SRC),
                hosts.clone(),
                slots.clone(),
                CookieKey::from_seed([1; 16]),
                9,
                share,
            )
        };
        for (k, parts) in [(0, 1), (0, 2), (1, 2), (2, 3)] {
            let share = Share::ALL.split(k, parts);
            let mut at_once = make(share);
            let fresh = make(share);
            let n: usize = fresh.results().iter().map(Vec::len).sum();
            assert_eq!(n, if parts == 1 { 7 * 13 } else { 0 }, "{k}/{parts}");
            assert!(at_once.prepare(u64::MAX));
            let mut steps = make(share);
            let mut calls = 0;
            while !steps.prepare(5) {
                calls += 1;
            }
            assert!(parts == 1 || calls >= (7 * 13) / 5, "{calls} steps");
            assert_eq!(steps.results, at_once.results, "{k}/{parts}");
            let own = at_once.results.iter().filter(|&&c| c != NOT_PROBED).count();
            assert_eq!(own as u64, at_once.unanswered_left, "{k}/{parts}");
        }
    }

    #[test]
    fn ipv6_syn_scan() {
        let src = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1));
        let t = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 10));
        let mut s = RawScan::new(
            Template::Aggressive.timing(),
            Mode::Ports,
            src,
            vec![t],
            vec![Slot::Syn(22), Slot::Syn(23)],
            CookieKey::from_seed([3; 16]),
            1,
            Share::ALL,
        );
        let mut hosts = HashMap::from([(t, responder(&[22], &[], false, 0))]);
        run_against(&mut s, &mut hosts);
        let st = states(&s);
        assert_eq!(st[&22], (PortState::Open, "syn-ack"));
        assert_eq!(st[&23], (PortState::Closed, "reset"));
        assert_eq!(s.results()[0][0].ttl, 60);
    }

    /// Every packet `build_probe` writes parses back with the stamp where the module docs
    /// say it travels.
    #[test]
    fn probes_carry_their_stamp() {
        let p = Probe {
            src: IpAddr::V4(SRC),
            dst: IpAddr::V4(TARGET),
            slot: Slot::Udp(161),
            sport: 61_234,
            stamp: 0xdead_beef,
        };
        let mut buf = [0u8; 128];
        let len = build_probe(&mut buf, &p, b"x", 64).unwrap();
        let ip = ipv4::Packet::new_checked(&buf[..len]).unwrap();
        assert_eq!(ip.ident(), 0xbeef);
        let ack = Probe {
            slot: Slot::Ack(80),
            ..p
        };
        let len = build_probe(&mut buf, &ack, &[], 64).unwrap();
        let ip = ipv4::Packet::new_checked(&buf[..len]).unwrap();
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((t.seq_number(), t.ack_number()), (0xdead_beef, 0xdead_beef));
        assert!(t.flags().contains(Flags::ACK) && !t.flags().contains(Flags::SYN));
    }
}
