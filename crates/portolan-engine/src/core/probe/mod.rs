//! Probe kinds: what the raw-packet engine ([`RawScan`](crate::core::scan::RawScan)) sends
//! and how it reads the answers, one module per kind behind one trait, as ZMap's probe
//! modules are. The engine keeps the policy (order, passes, epochs, rate, results) and asks
//! the kinds everything that depends on what a packet is:
//!
//! - [`ProbeKind::build`]: the packet for a [`Probe`] (IP header on), with the stamp where
//!   the kind carries it;
//! - [`ProbeKind::classify_reply`]: whether a reply (TCP segment, UDP datagram, ICMP query
//!   reply) answers one of our probes, and what it says;
//! - [`ProbeKind::classify_quoted`]: which of our probes an ICMP error quotes;
//! - [`ProbeKind::meaning`]: the Nmap state and reason a result code stands for;
//! - [`ProbeKind::describe`]: the dry-run line;
//! - [`ProbeKind::cookie_port`]: the destination "port" its cookie is keyed on.
//!
//! The kinds: [`tcp`] (SYN, ACK), [`udp`], [`icmp`] (echo, timestamp, address mask), each
//! over IPv4 and IPv6. They hold no state: everything about the scan they need (the cookie
//! key, source ports, which slots are probed) comes in a [`Ctx`].
//!
//! Adding a kind: a module implementing [`ProbeKind`], a [`Slot`] variant for it, its arm
//! in [`kind_of`] and `index_key`, and its entry in [`KINDS`] and `kinds_for` (a test
//! checks those two agree). Nothing in the engine changes.

pub mod icmp;
pub mod tcp;
#[cfg(test)]
mod testutil;
pub mod udp;

use crate::data::payloads::udp_state_from_icmp;
use portolan_model::PortState;
use portolan_wire::cookie::CookieKey;
use portolan_wire::{icmpv4, icmpv6, ipv4, ipv6, IpProtocol};
use std::net::IpAddr;
use std::ops::RangeInclusive;

/// What one probe of a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// A TCP SYN to this port (-sS, -PS).
    Syn(u16),
    /// A TCP ACK to this port (-PA): any RST says the host is up.
    Ack(u16),
    /// A UDP datagram to this port (-sU, -PU), with the port's payload.
    Udp(u16),
    /// An ICMP (or ICMPv6) echo request (-PE).
    Echo,
    /// An ICMP timestamp request (-PP); IPv4 only.
    Timestamp,
    /// An ICMP address mask request (-PM); IPv4 only.
    Netmask,
}

impl Slot {
    /// The port a TCP or UDP slot probes.
    pub fn port(self) -> Option<u16> {
        match self {
            Slot::Syn(p) | Slot::Ack(p) | Slot::Udp(p) => Some(p),
            _ => None,
        }
    }

    /// The kind that sends and reads this slot's probes.
    pub fn kind(self) -> &'static dyn ProbeKind {
        kind_of(self)
    }
}

/// One packet to send. The driver builds it from the slot (see each kind's module for
/// where the stamp travels):
/// - `Syn`: TCP SYN `sport → port`, sequence number `stamp`;
/// - `Ack`: TCP ACK `sport → port`, sequence and acknowledgement numbers `stamp`;
/// - `Udp`: UDP `sport → port` with the port's payload; IPv4 identification `stamp as u16`,
///   IPv6 flow label `stamp & 0xfffff`;
/// - ICMP slots: identifier `(stamp >> 16) as u16`, sequence number `stamp as u16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub slot: Slot,
    pub sport: u16,
    pub stamp: u32,
}

/// Where a UDP probe's payload comes from: the payload for a port (empty for none).
pub type PayloadFn<'a> = &'a (dyn Fn(u16) -> &'a [u8] + Sync);

/// IPv4 identification of probes that carry their stamp elsewhere (Nmap's habit of a
/// fixed value per scan).
pub const PROBE_IP_ID: u16 = 0x5157;

// Result codes, one byte per host × slot. The engine owns the first few; each kind gives
// its own meaning to `KIND_CODES`; ICMP destination unreachable codes quoting any kind's
// probe are stored as a base plus the ICMP code.
/// No answer (yet).
pub const UNANSWERED: u8 = 0;
/// First code a kind may use for its own answers.
pub const KIND_CODES: u8 = 8;
/// ICMP destination unreachable (IPv4): this plus the ICMP code (at most 31).
pub const UNREACH_V4: u8 = 32;
/// ICMPv6 destination unreachable: this plus the ICMPv6 code (at most 31).
pub const UNREACH_V6: u8 = 64;

/// Nmap's reason for a stored ICMP destination unreachable code (`UNREACH_V4 + code` or
/// `UNREACH_V6 + code`), and whether it says the quoted port is closed (port unreachable)
/// rather than filtered. The table is Nmap's -sU one ([`udp_state_from_icmp`]); its
/// reasons are the same for every kind. `None` if `code` is not an unreachable code.
pub fn unreach_reason(code: u8) -> Option<(&'static str, bool)> {
    let found = if code >= UNREACH_V6 {
        udp_state_from_icmp(1, code - UNREACH_V6, true)
    } else if code >= UNREACH_V4 {
        udp_state_from_icmp(3, code - UNREACH_V4, false)
    } else {
        return None;
    };
    Some(match found {
        Some((state, reason)) => (reason, state == PortState::Closed),
        None => ("unreach", false),
    })
}

/// Why a packet was not taken as an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not addressed to this scan (another engine's, the kernel's): ignored.
    NotOurs,
    /// Addressed to this scan but malformed or forged: counted as invalid.
    Invalid,
}

/// A kind's reading of a direct reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub slot: Slot,
    /// The kind's result code (see [`KIND_CODES`]).
    pub code: u8,
    /// The send epoch of the answered probe, when the reply carries it back.
    pub epoch: Option<u8>,
}

/// A reply addressed to us, its IP header read: what a kind's
/// [`ProbeKind::classify_reply`] gets.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// Who sent it (the probed host, if it answers one of our probes).
    pub from: IpAddr,
    /// IPv4 protocol or IPv6 next header.
    pub protocol: IpProtocol,
    /// The IP payload: a TCP segment, UDP datagram, ICMP or ICMPv6 message.
    pub payload: &'a [u8],
}

/// The probe an ICMP error quotes, its IP header read: what a kind's
/// [`ProbeKind::classify_quoted`] gets. Its source is already known to be us.
#[derive(Debug, Clone, Copy)]
pub struct QuotedProbe<'a> {
    /// Where the quoted probe went.
    pub dst: IpAddr,
    /// Its IPv4 protocol or IPv6 next header.
    pub protocol: IpProtocol,
    /// Its IPv4 identification or IPv6 flow label.
    pub ip_id: u32,
    /// As much of its transport header as was quoted.
    pub transport: &'a [u8],
}

impl QuotedProbe<'_> {
    fn quoted(&self) -> portolan_wire::Quoted<'_, ()> {
        portolan_wire::Quoted {
            ip: (),
            transport: self.transport,
        }
    }

    /// Source and destination ports of a quoted TCP or UDP header.
    pub fn ports(&self) -> Option<(u16, u16)> {
        self.quoted().ports()
    }

    /// Sequence number of a quoted TCP header.
    pub fn tcp_seq(&self) -> Option<u32> {
        self.quoted().tcp_seq()
    }

    /// Identifier and sequence number of a quoted ICMP or ICMPv6 query.
    pub fn echo_ident_seq(&self) -> Option<(u16, u16)> {
        self.quoted().echo_ident_seq()
    }
}

/// One recognised answer, for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub host: IpAddr,
    pub slot: Slot,
    pub code: u8,
    pub ttl: u8,
    /// Whether the answer came from the probed host itself (not a router on the way).
    pub from_target: bool,
    pub epoch: Option<u8>,
}

/// One kind of probe: how its packets are built, and how answers to them are read.
pub trait ProbeKind: Sync {
    /// The IP protocols (IPv4 protocol / IPv6 next header) of its probes and of the direct
    /// replies it reads: the engine hands it replies and quoted probes of these only.
    fn protocols(&self) -> &'static [IpProtocol];

    /// The destination "port" the cookie of `slot` is keyed on (ICMP kinds: a number of
    /// their own, e.g. the request type).
    fn cookie_port(&self, slot: Slot) -> u16;

    /// The payload `p` carries: none, unless the kind sends one (UDP: the port's).
    fn payload<'a>(&self, p: &Probe, payload: PayloadFn<'a>) -> &'a [u8] {
        let _ = (p, payload);
        &[]
    }

    /// The most bytes [`ProbeKind::build`] writes for a probe with `payload`. The default
    /// has room for the longest IPv4 header (60) and a UDP header, which also holds every
    /// TCP and ICMP probe of ours over either family (at most 64 bytes); a kind sending
    /// more (TCP options of OS probes) says so.
    fn max_len(&self, payload: &[u8]) -> usize {
        60 + 8 + payload.len()
    }

    /// Writes the packet for `p` (IP header on, no link header) into `buf`, with hop limit
    /// `ttl`; returns its length (0 when the kind has nothing to send for that family).
    fn build(
        &self,
        buf: &mut [u8],
        p: &Probe,
        payload: &[u8],
        ttl: u8,
    ) -> Result<usize, portolan_wire::Error>;

    /// Reads a reply addressed to us, of one of [`ProbeKind::protocols`].
    fn classify_reply(&self, ctx: &Ctx, reply: &Reply) -> Result<Verdict, Reject>;

    /// Finds which of our probes an ICMP error quotes; returns its slot and send epoch.
    fn classify_quoted(&self, ctx: &Ctx, q: &QuotedProbe) -> Result<(Slot, u8), Reject>;

    /// What result `code` of `slot` means, as Nmap reports it ([`UNANSWERED`] included).
    fn meaning(&self, slot: Slot, code: u8) -> (PortState, &'static str);

    /// Appends the dry-run line for `p` (in the spirit of Nmap's --packet-trace).
    fn describe(&self, text: &mut String, p: &Probe, payload: PayloadFn);
}

/// Every kind, in the order replies are offered to them.
pub const KINDS: &[&dyn ProbeKind] = &[&tcp::Tcp, &udp::Udp, &icmp::Icmp];

/// The kinds that read replies of `protocol` (and whose probes are of it), in the order
/// they are offered a reply: [`KINDS`] filtered by [`ProbeKind::protocols`], spelt out so
/// that the per-packet dispatch is one jump (a test checks the two agree).
fn kinds_for(protocol: IpProtocol) -> &'static [&'static dyn ProbeKind] {
    match protocol {
        IpProtocol::TCP => &[&tcp::Tcp],
        IpProtocol::UDP => &[&udp::Udp],
        IpProtocol::ICMP | IpProtocol::ICMPV6 => &[&icmp::Icmp],
        _ => &[],
    }
}

/// The kind of `slot`.
pub fn kind_of(slot: Slot) -> &'static dyn ProbeKind {
    match slot {
        Slot::Syn(_) | Slot::Ack(_) => &tcp::Tcp,
        Slot::Udp(_) => &udp::Udp,
        Slot::Echo | Slot::Timestamp | Slot::Netmask => &icmp::Icmp,
    }
}

/// Where [`SlotIndex`] files `slot`: a table and a key in it. Port slots of each kind have
/// a table of their own keyed by port, so a reply finds its slot in O(1).
fn index_key(slot: Slot) -> (usize, u16) {
    match slot {
        Slot::Syn(p) => (0, p),
        Slot::Ack(p) => (1, p),
        Slot::Udp(p) => (2, p),
        Slot::Echo => (3, 0),
        Slot::Timestamp => (3, 1),
        Slot::Netmask => (3, 2),
    }
}
const INDEX_TABLES: usize = 4;

/// Slot → its position in the scan's slot list, in O(1) and without hashing. Positions
/// take 32 bits: `-sS -sU -p-` has 131,070 slots.
#[derive(Debug, Clone, Default)]
pub struct SlotIndex {
    tables: [Vec<u32>; INDEX_TABLES],
}

impl SlotIndex {
    const NONE: u32 = u32::MAX;

    pub fn new(slots: &[Slot]) -> Self {
        let mut index = SlotIndex::default();
        for (i, &slot) in slots.iter().enumerate() {
            let (t, key) = index_key(slot);
            let table = &mut index.tables[t];
            if table.len() <= key as usize {
                table.resize(key as usize + 1, Self::NONE);
            }
            if let (Some(entry), Ok(i)) = (table.get_mut(key as usize), u32::try_from(i)) {
                *entry = i;
            }
        }
        index
    }

    /// The position of `slot` in the slot list, if it is probed.
    pub fn get(&self, slot: Slot) -> Option<usize> {
        let (t, key) = index_key(slot);
        match self.tables.get(t)?.get(key as usize) {
            Some(&i) if i != Self::NONE => Some(i as usize),
            _ => None,
        }
    }
}

/// What the kinds know of the scan: the cookie scheme (key, our address, source ports,
/// passes so far) and which slots are probed. Built by the engine for each look.
pub struct Ctx<'a> {
    pub(crate) src: IpAddr,
    pub(crate) key: &'a CookieKey,
    pub(crate) source_ports: &'a RangeInclusive<u16>,
    pub(crate) pass: u32,
    pub(crate) index: &'a SlotIndex,
}

impl Ctx<'_> {
    /// Our address.
    pub fn src(&self) -> IpAddr {
        self.src
    }

    /// Whether `slot` is one of the scan's slots.
    pub fn probes(&self, slot: Slot) -> bool {
        self.index.get(slot).is_some()
    }

    /// Whether `sport` is one of this engine's source ports.
    pub fn ours(&self, sport: u16) -> bool {
        self.source_ports.contains(&sport)
    }

    /// The source port of a probe to `dst:dport` in retransmission pass `pass`: a keyed
    /// hash of the destination, moved on by one each pass. A retry must not reuse the
    /// 4-tuple of a try whose SYN-ACK was lost: the target still holds that attempt, and a
    /// SYN with another sequence number on it draws a RST, which would read as closed.
    pub fn sport_for(&self, dst: IpAddr, dport: u16, pass: u32) -> u16 {
        let (start, end) = (*self.source_ports.start(), *self.source_ports.end());
        let span = u32::from(end - start) + 1;
        let base = self
            .key
            .source_port(self.src, dst, dport, self.source_ports.clone());
        let offset = (u32::from(base - start) + pass % span) % span;
        // offset < span, so start + offset stays within the range.
        start + offset as u16
    }

    /// Whether `sport` is the source port of some pass so far to `dst:dport`.
    pub fn sport_ok(&self, dst: IpAddr, dport: u16, sport: u16) -> bool {
        let (start, end) = (*self.source_ports.start(), *self.source_ports.end());
        if !(start..=end).contains(&sport) {
            return false;
        }
        let span = u32::from(end - start) + 1;
        let base = self
            .key
            .source_port(self.src, dst, dport, self.source_ports.clone());
        let pass = (u32::from(sport - start) + span - u32::from(base - start)) % span;
        pass <= self.pass
    }

    /// The cookie of a probe from `sport` (0 for ICMP), before the epoch is stamped in.
    pub fn cookie(&self, dst: IpAddr, slot: Slot, sport: u16) -> u32 {
        self.key
            .cookie(self.src, sport, dst, kind_of(slot).cookie_port(slot))
    }

    /// Checks a stamp against the cookie of (`dst`, `slot`, `sport`); returns its epoch.
    pub fn check_stamp(
        &self,
        dst: IpAddr,
        slot: Slot,
        sport: u16,
        stamp: u32,
    ) -> Result<u8, Reject> {
        let cookie = self.cookie(dst, slot, sport);
        if stamp & !0xff == cookie & !0xff {
            Ok(stamp as u8)
        } else {
            Err(Reject::Invalid)
        }
    }
}

/// Writes the packet for `probe` (IP header on, no link header) into `buf`; returns its
/// length. `payload` goes into UDP probes (the port's protocol payload; may be empty).
pub fn build_probe(
    buf: &mut [u8],
    probe: &Probe,
    payload: &[u8],
    ttl: u8,
) -> Result<usize, portolan_wire::Error> {
    kind_of(probe.slot).build(buf, probe, payload, ttl)
}

/// The packet for `probe`, its payload (if its kind sends one) taken from `payload`; empty
/// if there is nothing to send.
pub fn build_packet(probe: &Probe, payload: PayloadFn, ttl: u8) -> Vec<u8> {
    let kind = kind_of(probe.slot);
    let payload = kind.payload(probe, payload);
    let mut buf = vec![0u8; kind.max_len(payload)];
    match kind.build(&mut buf, probe, payload, ttl) {
        Ok(len) => buf.truncate(len),
        Err(_) => buf.clear(),
    }
    buf
}

/// One line for a probe, in the spirit of Nmap's --packet-trace.
pub fn describe(text: &mut String, p: &Probe, payload: PayloadFn) {
    kind_of(p.slot).describe(text, p, payload);
}

/// Reads one received IP packet (starting at the IPv4 or IPv6 header): which of our probes
/// it answers, offered to the kinds by protocol.
pub fn classify(ctx: &Ctx, packet: &[u8]) -> Result<Answer, Reject> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => classify_v4(ctx, packet),
        Some(6) => classify_v6(ctx, packet),
        _ => Err(Reject::Invalid),
    }
}

fn classify_v4(ctx: &Ctx, packet: &[u8]) -> Result<Answer, Reject> {
    let ip = ipv4::Packet::new_checked(packet).map_err(|_| Reject::Invalid)?;
    let (from, to) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
    if to != ctx.src {
        return Err(Reject::NotOurs);
    }
    let (ttl, protocol, payload) = (ip.ttl(), ip.protocol(), ip.payload());
    if protocol == IpProtocol::ICMP {
        let icmp = icmpv4::Packet::new_checked(payload).map_err(|_| Reject::Invalid)?;
        if icmp.msg_type() == icmpv4::Message::DST_UNREACHABLE {
            let q = icmp.quoted().map_err(|_| Reject::Invalid)?;
            if IpAddr::V4(q.ip.src_addr) != ctx.src {
                return Err(Reject::NotOurs);
            }
            if udp_state_from_icmp(3, icmp.msg_code(), false).is_none() {
                // A code Nmap ignores (e.g. fragmentation needed).
                return Err(Reject::NotOurs);
            }
            let probe = QuotedProbe {
                dst: IpAddr::V4(q.ip.dst_addr),
                protocol: q.ip.protocol,
                ip_id: q.ip.ident.into(),
                transport: q.transport,
            };
            let code = UNREACH_V4 + icmp.msg_code().min(31);
            return error_answer(ctx, from, ttl, &probe, code);
        }
    }
    reply_answer(
        ctx,
        ttl,
        &Reply {
            from,
            protocol,
            payload,
        },
    )
}

fn classify_v6(ctx: &Ctx, packet: &[u8]) -> Result<Answer, Reject> {
    let ip = ipv6::Packet::new_checked(packet).map_err(|_| Reject::Invalid)?;
    let (from, to) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
    if to != ctx.src {
        return Err(Reject::NotOurs);
    }
    let (ttl, protocol, payload) = (ip.hop_limit(), ip.next_header(), ip.payload());
    if protocol == IpProtocol::ICMPV6 {
        let icmp = icmpv6::Packet::new_checked(payload).map_err(|_| Reject::Invalid)?;
        if icmp.msg_type() == icmpv6::Message::DST_UNREACHABLE {
            let q = icmp.quoted().map_err(|_| Reject::Invalid)?;
            if IpAddr::V6(q.ip.src_addr) != ctx.src {
                return Err(Reject::NotOurs);
            }
            if udp_state_from_icmp(1, icmp.msg_code(), true).is_none() {
                return Err(Reject::NotOurs);
            }
            let probe = QuotedProbe {
                dst: IpAddr::V6(q.ip.dst_addr),
                protocol: q.ip.next_header,
                ip_id: q.ip.flow_label,
                transport: q.transport,
            };
            let code = UNREACH_V6 + icmp.msg_code().min(31);
            return error_answer(ctx, from, ttl, &probe, code);
        }
    }
    reply_answer(
        ctx,
        ttl,
        &Reply {
            from,
            protocol,
            payload,
        },
    )
}

/// Offers `reply` to the kinds that read its protocol: the first that takes it wins; it is
/// invalid if one found it addressed to its probes but wrong, else not ours.
fn reply_answer(ctx: &Ctx, ttl: u8, reply: &Reply) -> Result<Answer, Reject> {
    let mut rejected = Reject::NotOurs;
    for kind in kinds_for(reply.protocol) {
        match kind.classify_reply(ctx, reply) {
            Ok(v) => {
                return Ok(Answer {
                    host: reply.from,
                    slot: v.slot,
                    code: v.code,
                    ttl,
                    from_target: true,
                    epoch: v.epoch,
                })
            }
            Err(Reject::Invalid) => rejected = Reject::Invalid,
            Err(Reject::NotOurs) => {}
        }
    }
    Err(rejected)
}

/// Offers the probe an ICMP error from `from` quotes to the kinds that send its protocol.
fn error_answer(
    ctx: &Ctx,
    from: IpAddr,
    ttl: u8,
    probe: &QuotedProbe,
    code: u8,
) -> Result<Answer, Reject> {
    let mut rejected = Reject::NotOurs;
    for kind in kinds_for(probe.protocol) {
        match kind.classify_quoted(ctx, probe) {
            Ok((slot, epoch)) => {
                return Ok(Answer {
                    host: probe.dst,
                    slot,
                    code,
                    ttl,
                    from_target: from == probe.dst,
                    epoch: Some(epoch),
                })
            }
            Err(Reject::Invalid) => rejected = Reject::Invalid,
            Err(Reject::NotOurs) => {}
        }
    }
    Err(rejected)
}

/// An address and port as `a.b.c.d:p` or `[v6]:p`, formatted without allocating.
pub struct Sock(pub IpAddr, pub u16);

impl std::fmt::Display for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_index_finds_every_slot_of_a_full_tcp_and_udp_scan() {
        let mut slots: Vec<Slot> = (1..=65535).map(Slot::Syn).collect();
        slots.extend((1..=65535).map(Slot::Udp));
        slots.extend([Slot::Echo, Slot::Netmask]);
        let index = SlotIndex::new(&slots);
        for (i, &slot) in slots.iter().enumerate() {
            assert_eq!(index.get(slot), Some(i), "{slot:?}");
        }
        assert_eq!(index.get(Slot::Syn(0)), None);
        assert_eq!(index.get(Slot::Ack(80)), None);
        assert_eq!(index.get(Slot::Timestamp), None);
    }

    /// The per-packet dispatch table says what the kinds declare.
    #[test]
    fn kinds_for_agrees_with_what_the_kinds_declare() {
        for protocol in (0..=255).map(IpProtocol) {
            let declared: Vec<_> = KINDS
                .iter()
                .filter(|k| k.protocols().contains(&protocol))
                .map(|k| k.protocols())
                .collect();
            let dispatched: Vec<_> = kinds_for(protocol).iter().map(|k| k.protocols()).collect();
            assert_eq!(declared, dispatched, "{protocol:?}");
        }
    }

    #[test]
    fn every_kind_builds_only_its_own_slots() {
        let p = Probe {
            src: "198.18.0.1".parse().unwrap(),
            dst: "198.18.0.2".parse().unwrap(),
            slot: Slot::Echo,
            sport: 61_000,
            stamp: 1,
        };
        let mut buf = [0u8; 128];
        for kind in KINDS {
            for slot in [Slot::Syn(1), Slot::Ack(1), Slot::Udp(1), Slot::Echo] {
                let p = Probe { slot, ..p };
                let built = kind.build(&mut buf, &p, &[], 64).unwrap();
                let own = kind_of(slot).protocols() == kind.protocols();
                assert_eq!(built > 0, own, "{slot:?}");
            }
        }
        // Mixed families: nothing to send.
        let mixed = Probe {
            dst: "2001:2::1".parse().unwrap(),
            ..p
        };
        assert_eq!(build_probe(&mut buf, &mixed, &[], 64), Ok(0));
        assert!(build_packet(&mixed, &|_| &[], 64).is_empty());
    }

    #[test]
    fn garbage_is_invalid_and_other_traffic_not_ours() {
        let index = SlotIndex::new(&[Slot::Syn(80)]);
        let key = CookieKey::from_seed([1; 16]);
        let ctx = Ctx {
            src: "198.18.0.1".parse().unwrap(),
            key: &key,
            source_ports: &(61_000..=64_999),
            pass: 0,
            index: &index,
        };
        assert_eq!(classify(&ctx, &[]), Err(Reject::Invalid));
        assert_eq!(classify(&ctx, &[0x45, 0, 0]), Err(Reject::Invalid));
        assert_eq!(classify(&ctx, &[0x60; 30]), Err(Reject::Invalid));
        // A well-formed IPv4 packet of a protocol no kind reads (IGMP).
        let mut igmp = [0u8; 28];
        igmp[0] = 0x45;
        igmp[3] = 28;
        igmp[8] = 1;
        igmp[9] = 2;
        igmp[12..16].copy_from_slice(&[198, 18, 0, 9]);
        igmp[16..20].copy_from_slice(&[198, 18, 0, 1]);
        let sum = portolan_wire::checksum::checksum(&igmp[..20]);
        igmp[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(classify(&ctx, &igmp), Err(Reject::NotOurs));
    }
}
