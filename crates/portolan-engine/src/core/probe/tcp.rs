//! TCP probes: SYN (-sS, -PS) and ACK (-PA), over IPv4 and IPv6.
//!
//! - **SYN** `sport → port`, sequence number = stamp, Nmap's MSS option. A SYN-ACK (open)
//!   or RST (closed) acknowledges `stamp + 1`.
//! - **ACK** `sport → port`, sequence and acknowledgement numbers = stamp. The RST any
//!   host sends to an unexpected ACK takes its sequence number from our acknowledgement
//!   number, so it carries the stamp back.
//!
//! The source port is the engine's keyed one for `(dst, port, pass)`: a reply to a source
//! port of ours that no pass used is forged. An ICMP unreachable quoting our probe says
//! filtered.

use super::{
    unreach_reason, Ctx, PayloadFn, Probe, ProbeKind, QuotedProbe, Reject, Reply, Slot, Sock,
    Verdict, KIND_CODES, PROBE_IP_ID,
};
use portolan_model::PortState;
use portolan_wire::build::{
    build_tcp_v4, build_tcp_v6, Ipv4Params, Ipv6Params, TcpParams, TcpTemplateV4,
};
use portolan_wire::tcp::{self, Flags};
use portolan_wire::IpProtocol;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The TCP kind (SYN and ACK slots).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp;

/// A SYN-ACK: the port is open.
const SYN_ACK: u8 = KIND_CODES;
/// A RST: the port is closed (to a SYN), the host is up (to an ACK).
const RESET: u8 = KIND_CODES + 1;

impl Tcp {
    fn params(p: &Probe) -> Option<TcpParams<'static>> {
        let (flags, ack, port) = match p.slot {
            Slot::Syn(port) => (Flags::SYN, 0, port),
            Slot::Ack(port) => (Flags::ACK, p.stamp, port),
            _ => return None,
        };
        Some(TcpParams {
            flags,
            ack,
            ..TcpParams::syn(p.sport, port, p.stamp)
        })
    }
}

impl ProbeKind for Tcp {
    fn protocols(&self) -> &'static [IpProtocol] {
        &[IpProtocol::TCP]
    }

    fn cookie_port(&self, slot: Slot) -> u16 {
        slot.port().unwrap_or(0)
    }

    fn build(
        &self,
        buf: &mut [u8],
        p: &Probe,
        _payload: &[u8],
        ttl: u8,
    ) -> Result<usize, portolan_wire::Error> {
        let Some(tcp) = Self::params(p) else {
            return Ok(0);
        };
        match (p.src, p.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let ip = Ipv4Params {
                    src,
                    dst,
                    ttl,
                    ident: PROBE_IP_ID,
                    dont_frag: false,
                };
                build_tcp_v4(buf, None, &ip, &tcp)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let ip = Ipv6Params {
                    src,
                    dst,
                    hop_limit: ttl,
                    traffic_class: 0,
                    flow_label: 0,
                };
                build_tcp_v6(buf, None, &ip, &tcp)
            }
            _ => Ok(0),
        }
    }

    fn classify_reply(&self, ctx: &Ctx, reply: &Reply) -> Result<Verdict, Reject> {
        let tcp = tcp::Packet::new_checked(reply.payload).map_err(|_| Reject::Invalid)?;
        let (from, sport, dport) = (reply.from, tcp.dst_port(), tcp.src_port());
        if !ctx.ours(sport) {
            return Err(Reject::NotOurs);
        }
        if !ctx.sport_ok(from, dport, sport) {
            return Err(Reject::Invalid);
        }
        let flags = tcp.flags();
        let (syn, ack) = (Slot::Syn(dport), Slot::Ack(dport));
        if ctx.probes(syn) {
            let sent = tcp.ack_number().wrapping_sub(1);
            if let Ok(epoch) = ctx.check_stamp(from, syn, sport, sent) {
                let code = if flags.contains(Flags::SYN) && flags.contains(Flags::ACK) {
                    SYN_ACK
                } else if flags.contains(Flags::RST) {
                    RESET
                } else {
                    return Err(Reject::Invalid);
                };
                return Ok(Verdict {
                    slot: syn,
                    code,
                    epoch: Some(epoch),
                });
            }
        }
        if ctx.probes(ack) && flags.contains(Flags::RST) {
            // The RST to an unexpected ACK takes its sequence number from that ACK.
            let epoch = ctx.check_stamp(from, ack, sport, tcp.seq_number())?;
            return Ok(Verdict {
                slot: ack,
                code: RESET,
                epoch: Some(epoch),
            });
        }
        Err(Reject::Invalid)
    }

    fn classify_quoted(&self, ctx: &Ctx, q: &QuotedProbe) -> Result<(Slot, u8), Reject> {
        let (sport, dport) = q.ports().ok_or(Reject::Invalid)?;
        let seq = q.tcp_seq().ok_or(Reject::Invalid)?;
        if !ctx.ours(sport) {
            return Err(Reject::NotOurs);
        }
        let slot = if ctx.probes(Slot::Syn(dport)) {
            Slot::Syn(dport)
        } else if ctx.probes(Slot::Ack(dport)) {
            Slot::Ack(dport)
        } else {
            return Err(Reject::NotOurs);
        };
        Ok((slot, ctx.check_stamp(q.dst, slot, sport, seq)?))
    }

    fn meaning(&self, _slot: Slot, code: u8) -> (PortState, &'static str) {
        match code {
            SYN_ACK => (PortState::Open, "syn-ack"),
            RESET => (PortState::Closed, "reset"),
            c => match unreach_reason(c) {
                Some((reason, _)) => (PortState::Filtered, reason),
                None => (PortState::Filtered, "no-response"),
            },
        }
    }

    fn describe(&self, text: &mut String, p: &Probe, _payload: PayloadFn) {
        let _ = match p.slot {
            Slot::Syn(port) => writeln!(
                text,
                "SENT TCP {} > {} S seq={}",
                Sock(p.src, p.sport),
                Sock(p.dst, port),
                p.stamp
            ),
            Slot::Ack(port) => writeln!(
                text,
                "SENT TCP {} > {} A seq={} ack={}",
                Sock(p.src, p.sport),
                Sock(p.dst, port),
                p.stamp,
                p.stamp
            ),
            _ => Ok(()),
        };
    }
}

/// The hot case, IPv4 SYNs, built from a template where only the destination, ports and
/// sequence number change from one probe to the next (with checksums patched, not summed
/// again). The packets are the same as [`Tcp`] builds.
#[derive(Debug, Clone)]
pub struct SynTemplateV4(TcpTemplateV4);

impl SynTemplateV4 {
    /// A template for SYNs from `src` with `ttl`; `None` for IPv6 sources.
    pub fn new(src: IpAddr, ttl: u8) -> Option<Self> {
        let IpAddr::V4(src) = src else {
            return None;
        };
        let ip = Ipv4Params {
            src,
            dst: src,
            ttl,
            ident: PROBE_IP_ID,
            dont_frag: false,
        };
        TcpTemplateV4::new(None, &ip, &TcpParams::syn(0, 0, 0))
            .ok()
            .map(Self)
    }

    /// The packet for `p` if it is an IPv4 SYN (else `None`: build it the general way).
    pub fn probe(&mut self, p: &Probe) -> Option<&[u8]> {
        match (p.dst, p.slot) {
            (IpAddr::V4(dst), Slot::Syn(port)) => Some(self.0.probe(dst, p.sport, port, p.stamp)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Answer, UNANSWERED, UNREACH_V4, UNREACH_V6};
    use super::*;
    use portolan_wire::{ipv4, ipv6};

    fn reply_to(p: &Probe, flags: Flags, seq: u32, ack: u32) -> Vec<u8> {
        let port = p.slot.port().unwrap();
        tcp_from_target(p, port, p.sport, flags, seq, ack)
    }

    #[test]
    fn syn_builds_and_parses_back() {
        for (src, dst) in [(SRC4, DST4), (SRC6, DST6)] {
            let p = probe(src, dst, Slot::Syn(443), 61_234, 0x1234_5678);
            let pkt = build(&p);
            let seg = transport(&pkt, IpProtocol::TCP);
            let t = tcp::Packet::new_checked(seg).unwrap();
            assert_eq!((t.src_port(), t.dst_port()), (61_234, 443));
            assert_eq!(t.seq_number(), 0x1234_5678);
            assert_eq!(t.ack_number(), 0);
            assert_eq!(t.flags(), Flags::SYN);
            assert_eq!(t.options(), &[2, 4, 0x05, 0xb4][..], "Nmap's MSS 1460");
        }
        let pkt = build(&probe(SRC4, DST4, Slot::Syn(1), 61_000, 7));
        let ip = ipv4::Packet::new_checked(&pkt[..]).unwrap();
        assert_eq!((ip.ident(), ip.ttl()), (PROBE_IP_ID, 64));
        let pkt = build(&probe(SRC6, DST6, Slot::Syn(1), 61_000, 7));
        let ip = ipv6::Packet::new_checked(&pkt[..]).unwrap();
        assert_eq!((ip.flow_label(), ip.hop_limit()), (0, 64));
    }

    #[test]
    fn ack_builds_and_parses_back() {
        let p = probe(SRC4, DST4, Slot::Ack(80), 62_000, 0xdead_beef);
        let pkt = build(&p);
        let t = tcp::Packet::new_checked(transport(&pkt, IpProtocol::TCP)).unwrap();
        assert_eq!((t.seq_number(), t.ack_number()), (0xdead_beef, 0xdead_beef));
        assert_eq!(t.flags(), Flags::ACK);
    }

    #[test]
    fn the_template_builds_the_same_syns() {
        let mut t = SynTemplateV4::new(SRC4, 64).unwrap();
        for (port, sport, stamp) in [(22, 61_000, 1), (443, 64_999, 0xffff_ff00), (1, 62_345, 42)] {
            let p = probe(SRC4, DST4, Slot::Syn(port), sport, stamp);
            assert_eq!(t.probe(&p).unwrap(), &build(&p)[..]);
        }
        assert!(t
            .probe(&probe(SRC4, DST4, Slot::Ack(1), 61_000, 1))
            .is_none());
        assert!(SynTemplateV4::new(SRC6, 64).is_none());
    }

    #[test]
    fn syn_ack_and_reset_classify() {
        let slots = [Slot::Syn(22), Slot::Syn(23)];
        for (src, dst) in [(SRC4, DST4), (SRC6, DST6)] {
            let e = Engine::new(src, &slots);
            let open = e.probe(dst, Slot::Syn(22), 3);
            let a = e.classify(&reply_to(&open, Flags::SYN | Flags::ACK, 1, open.stamp + 1));
            let a = a.unwrap();
            assert_eq!((a.host, a.slot, a.epoch), (dst, Slot::Syn(22), Some(3)));
            assert!(a.from_target);
            assert_eq!(Tcp.meaning(a.slot, a.code), (PortState::Open, "syn-ack"));
            let closed = e.probe(dst, Slot::Syn(23), 4);
            let a = e
                .classify(&reply_to(
                    &closed,
                    Flags::RST | Flags::ACK,
                    0,
                    closed.stamp + 1,
                ))
                .unwrap();
            assert_eq!((a.slot, a.epoch), (Slot::Syn(23), Some(4)));
            assert_eq!(Tcp.meaning(a.slot, a.code), (PortState::Closed, "reset"));
        }
    }

    #[test]
    fn rst_to_an_ack_classifies() {
        let e = Engine::new(SRC4, &[Slot::Ack(80)]);
        let p = e.probe(DST4, Slot::Ack(80), 9);
        let a = e.classify(&reply_to(&p, Flags::RST, p.stamp, 0)).unwrap();
        assert_eq!((a.slot, a.epoch), (Slot::Ack(80), Some(9)));
        assert_eq!(Tcp.meaning(a.slot, a.code).1, "reset");
        // A RST whose sequence number is not our stamp is forged.
        let forged = reply_to(&p, Flags::RST, p.stamp ^ 0x100, 0);
        assert_eq!(e.classify(&forged), Err(Reject::Invalid));
    }

    #[test]
    fn forged_and_stray_replies_are_rejected() {
        let e = Engine::new(SRC4, &[Slot::Syn(22)]);
        let p = e.probe(DST4, Slot::Syn(22), 3);
        let ok = |ack| reply_to(&p, Flags::SYN | Flags::ACK, 1, ack);
        // Wrong acknowledgement (cookie bits).
        assert_eq!(e.classify(&ok(p.stamp ^ 0x1000)), Err(Reject::Invalid));
        // Not to one of our source ports: somebody else's connection.
        let other = tcp_from_target(&p, 22, 40_000, Flags::SYN | Flags::ACK, 1, p.stamp + 1);
        assert_eq!(e.classify(&other), Err(Reject::NotOurs));
        // Our source port range, but not the port any pass used to this target.
        let wrong_sport = p.sport.wrapping_add(17).clamp(61_000, 64_999);
        let odd = tcp_from_target(&p, 22, wrong_sport, Flags::SYN | Flags::ACK, 1, p.stamp + 1);
        assert_eq!(e.classify(&odd), Err(Reject::Invalid));
        // From a port that was never probed.
        let unprobed = tcp_from_target(&p, 21, p.sport, Flags::SYN | Flags::ACK, 1, p.stamp + 1);
        assert_eq!(e.classify(&unprobed), Err(Reject::Invalid));
        // Neither SYN-ACK nor RST.
        assert_eq!(
            e.classify(&reply_to(&p, Flags::ACK, 1, p.stamp + 1)),
            Err(Reject::Invalid)
        );
        // Truncated segment.
        let mut short = ok(p.stamp + 1);
        let len = short.len() - 10;
        short.truncate(len);
        short[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        assert!(e.classify(&short).is_err());
        // Addressed to someone else.
        let mut elsewhere = ok(p.stamp + 1);
        elsewhere[19] ^= 1;
        assert_eq!(e.classify(&elsewhere), Err(Reject::NotOurs));
    }

    #[test]
    fn a_quoted_syn_finds_its_slot() {
        let e = Engine::new(SRC4, &[Slot::Syn(80), Slot::Ack(81)]);
        for (slot, epoch) in [(Slot::Syn(80), 5), (Slot::Ack(81), 6)] {
            let p = e.probe(DST4, slot, epoch);
            let pkt = build(&p);
            let icmp = unreach4(13, &pkt[..28]);
            let err = from_router4(&icmp);
            let a: Answer = e.classify(&err).unwrap();
            assert_eq!((a.host, a.slot, a.epoch), (DST4, slot, Some(epoch)));
            assert_eq!(
                (a.code, a.from_target, a.ttl),
                (UNREACH_V4 + 13, false, 250)
            );
            assert_eq!(
                Tcp.meaning(slot, a.code),
                (PortState::Filtered, "admin-prohibited")
            );
        }
        // The same quote with a sequence number not ours.
        let p = e.probe(DST4, Slot::Syn(80), 5);
        let mut pkt = build(&p);
        pkt[24] ^= 0x80;
        let icmp = unreach4(13, &pkt[..28]);
        assert_eq!(e.classify(&from_router4(&icmp)), Err(Reject::Invalid));
    }

    #[test]
    fn a_quoted_syn_over_ipv6_finds_its_slot() {
        let e = Engine::new(SRC6, &[Slot::Syn(80)]);
        let p = e.probe(DST6, Slot::Syn(80), 7);
        let pkt = build(&p);
        let icmp = unreach6(1, &pkt[..48]);
        let a = e.classify(&from_router6(&icmp)).unwrap();
        assert_eq!(
            (a.slot, a.epoch, a.code),
            (Slot::Syn(80), Some(7), UNREACH_V6 + 1)
        );
        assert_eq!(
            Tcp.meaning(a.slot, a.code),
            (PortState::Filtered, "admin-prohibited")
        );
    }

    #[test]
    fn unanswered_is_filtered() {
        assert_eq!(
            Tcp.meaning(Slot::Syn(1), UNANSWERED),
            (PortState::Filtered, "no-response")
        );
    }

    #[test]
    fn describe_lines() {
        let mut text = String::new();
        let p = probe(SRC4, DST4, Slot::Syn(443), 61_000, 77);
        Tcp.describe(&mut text, &p, &|_| &[]);
        let p = probe(SRC6, DST6, Slot::Ack(80), 61_001, 78);
        Tcp.describe(&mut text, &p, &|_| &[]);
        assert_eq!(
            text,
            "SENT TCP 198.18.0.1:61000 > 198.18.0.10:443 S seq=77\n\
             SENT TCP [2001:2::1]:61001 > [2001:2::10]:80 A seq=78 ack=78\n"
        );
    }
}
