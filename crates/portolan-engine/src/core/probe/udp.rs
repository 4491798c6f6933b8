//! UDP probes (-sU, -PU), over IPv4 and IPv6: a datagram `sport → port` with the port's
//! protocol payload (Nmap's payloads, so that services answer).
//!
//! A UDP answer carries nothing of ours but the ports, so the keyed source port is its
//! whole check, and it brings no epoch back. The stamp travels in the IP header, which ICMP
//! errors quote: the IPv4 identification (`stamp as u16`: 8 bits of cookie beside the
//! epoch) or the IPv6 flow label (`stamp & 0xfffff`: 12 bits of cookie). A port
//! unreachable says closed; other unreachables, filtered; silence, open|filtered.

use super::{
    unreach_reason, Ctx, PayloadFn, Probe, ProbeKind, QuotedProbe, Reject, Reply, Slot, Sock,
    Verdict, KIND_CODES,
};
use portolan_model::PortState;
use portolan_wire::build::{build_udp_v4, build_udp_v6, Ipv4Params, Ipv6Params, UdpParams};
use portolan_wire::{udp, IpProtocol};
use std::fmt::Write as _;
use std::net::IpAddr;

/// The UDP kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Udp;

/// A datagram came back: the port is open.
const UDP_REPLY: u8 = KIND_CODES;

impl ProbeKind for Udp {
    fn protocols(&self) -> &'static [IpProtocol] {
        &[IpProtocol::UDP]
    }

    fn cookie_port(&self, slot: Slot) -> u16 {
        slot.port().unwrap_or(0)
    }

    fn payload<'a>(&self, p: &Probe, payload: PayloadFn<'a>) -> &'a [u8] {
        match p.slot {
            Slot::Udp(port) => payload(port),
            _ => &[],
        }
    }

    fn build(
        &self,
        buf: &mut [u8],
        p: &Probe,
        payload: &[u8],
        ttl: u8,
    ) -> Result<usize, portolan_wire::Error> {
        let Slot::Udp(dport) = p.slot else {
            return Ok(0);
        };
        let udp = UdpParams {
            sport: p.sport,
            dport,
            payload,
        };
        match (p.src, p.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let ip = Ipv4Params {
                    src,
                    dst,
                    ttl,
                    ident: p.stamp as u16,
                    dont_frag: false,
                };
                build_udp_v4(buf, None, &ip, &udp)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let ip = Ipv6Params {
                    src,
                    dst,
                    hop_limit: ttl,
                    traffic_class: 0,
                    flow_label: p.stamp & 0xf_ffff,
                };
                build_udp_v6(buf, None, &ip, &udp)
            }
            _ => Ok(0),
        }
    }

    fn classify_reply(&self, ctx: &Ctx, reply: &Reply) -> Result<Verdict, Reject> {
        let udp = udp::Packet::new_checked(reply.payload).map_err(|_| Reject::Invalid)?;
        let (sport, dport) = (udp.dst_port(), udp.src_port());
        let slot = Slot::Udp(dport);
        if !ctx.ours(sport) || !ctx.probes(slot) {
            return Err(Reject::NotOurs);
        }
        if !ctx.sport_ok(reply.from, dport, sport) {
            return Err(Reject::Invalid);
        }
        Ok(Verdict {
            slot,
            code: UDP_REPLY,
            epoch: None,
        })
    }

    fn classify_quoted(&self, ctx: &Ctx, q: &QuotedProbe) -> Result<(Slot, u8), Reject> {
        let (sport, dport) = q.ports().ok_or(Reject::Invalid)?;
        let slot = Slot::Udp(dport);
        if !ctx.ours(sport) || !ctx.probes(slot) {
            return Err(Reject::NotOurs);
        }
        if !ctx.sport_ok(q.dst, dport, sport) {
            return Err(Reject::Invalid);
        }
        let cookie = ctx.cookie(q.dst, slot, sport);
        // Only 8 bits of cookie fit beside the epoch in the 16-bit identification.
        let mask = if q.dst.is_ipv4() { 0xff00 } else { 0xf_ff00 };
        if q.ip_id & mask != cookie & mask {
            return Err(Reject::Invalid);
        }
        Ok((slot, q.ip_id as u8))
    }

    fn meaning(&self, _slot: Slot, code: u8) -> (PortState, &'static str) {
        match code {
            UDP_REPLY => (PortState::Open, "udp-response"),
            c => match unreach_reason(c) {
                Some((reason, true)) => (PortState::Closed, reason),
                Some((reason, false)) => (PortState::Filtered, reason),
                None => (PortState::OpenFiltered, "no-response"),
            },
        }
    }

    fn describe(&self, text: &mut String, p: &Probe, payload: PayloadFn) {
        if let Slot::Udp(port) = p.slot {
            let _ = writeln!(
                text,
                "SENT UDP {} > {} len={}",
                Sock(p.src, p.sport),
                Sock(p.dst, port),
                payload(port).len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{UNANSWERED, UNREACH_V4, UNREACH_V6};
    use super::*;
    use portolan_wire::build::{build_udp_v4, build_udp_v6, UdpParams};
    use portolan_wire::{ipv4, ipv6};

    fn datagram_from(p: &Probe, sport: u16, dport: u16) -> Vec<u8> {
        let udp = UdpParams {
            sport,
            dport,
            payload: b"answer",
        };
        let mut buf = vec![0u8; 128];
        let len = if p.dst.is_ipv4() {
            build_udp_v4(&mut buf, None, &ip4(p.dst, p.src, 63), &udp).unwrap()
        } else {
            build_udp_v6(&mut buf, None, &ip6(p.dst, p.src, 63), &udp).unwrap()
        };
        buf.truncate(len);
        buf
    }

    #[test]
    fn builds_and_parses_back() {
        let p = probe(SRC4, DST4, Slot::Udp(161), 61_234, 0xdead_beef);
        let pkt = build(&p);
        let ip = ipv4::Packet::new_checked(&pkt[..]).unwrap();
        assert_eq!((ip.ident(), ip.ttl()), (0xbeef, 64));
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (61_234, 161));
        assert_eq!(u.payload(), b"payload");
        let p = probe(SRC6, DST6, Slot::Udp(53), 61_235, 0xdead_beef);
        let pkt = build(&p);
        let ip = ipv6::Packet::new_checked(&pkt[..]).unwrap();
        assert_eq!(ip.flow_label(), 0xd_beef);
        let u = udp::Packet::new_checked(transport(&pkt, IpProtocol::UDP)).unwrap();
        assert_eq!(
            (u.src_port(), u.dst_port(), u.payload()),
            (61_235, 53, &b"payload"[..])
        );
    }

    #[test]
    fn a_datagram_back_is_open() {
        for (src, dst) in [(SRC4, DST4), (SRC6, DST6)] {
            let e = Engine::new(src, &[Slot::Udp(53)]);
            let p = e.probe(dst, Slot::Udp(53), 1);
            let a = e.classify(&datagram_from(&p, 53, p.sport)).unwrap();
            assert_eq!((a.host, a.slot, a.epoch), (dst, Slot::Udp(53), None));
            assert_eq!(
                Udp.meaning(a.slot, a.code),
                (PortState::Open, "udp-response")
            );
        }
    }

    #[test]
    fn stray_and_forged_datagrams_are_rejected() {
        let e = Engine::new(SRC4, &[Slot::Udp(53)]);
        let p = e.probe(DST4, Slot::Udp(53), 1);
        // From a port not probed, or to a port not ours: not for us.
        assert_eq!(
            e.classify(&datagram_from(&p, 54, p.sport)),
            Err(Reject::NotOurs)
        );
        assert_eq!(
            e.classify(&datagram_from(&p, 53, 5353)),
            Err(Reject::NotOurs)
        );
        // Our range, but not the source port of any pass to this target.
        let other = if p.sport == 64_999 {
            61_000
        } else {
            p.sport + 1
        };
        assert_eq!(
            e.classify(&datagram_from(&p, 53, other)),
            Err(Reject::Invalid)
        );
    }

    #[test]
    fn port_unreachable_quoting_our_probe_is_closed() {
        let e = Engine::new(SRC4, &[Slot::Udp(7), Slot::Udp(9)]);
        let p = e.probe(DST4, Slot::Udp(9), 42);
        let pkt = build(&p);
        let icmp = |inner| unreach4(3, inner);
        // From the target itself.
        let mut buf = vec![0u8; 256];
        let len = portolan_wire::build::build_icmpv4(
            &mut buf,
            None,
            &ip4(DST4, SRC4, 61),
            &icmp(&pkt[..28]),
        )
        .unwrap();
        let a = e.classify(&buf[..len]).unwrap();
        assert_eq!(
            (a.slot, a.epoch, a.code),
            (Slot::Udp(9), Some(42), UNREACH_V4 + 3)
        );
        assert!(a.from_target);
        assert_eq!(a.ttl, 61);
        assert_eq!(
            Udp.meaning(a.slot, a.code),
            (PortState::Closed, "port-unreach")
        );
        // The identification's cookie bits altered: forged.
        let mut bad = pkt.clone();
        bad[4] ^= 0x01;
        assert_eq!(
            e.classify(&from_router4(&icmp(&bad[..28]))),
            Err(Reject::Invalid)
        );
        // Host unreachable from a router: filtered.
        let host = unreach4(1, &pkt[..28]);
        let a = e.classify(&from_router4(&host)).unwrap();
        assert!(!a.from_target);
        assert_eq!(
            Udp.meaning(a.slot, a.code),
            (PortState::Filtered, "host-unreach")
        );
    }

    #[test]
    fn port_unreachable_over_ipv6_reads_the_flow_label() {
        let e = Engine::new(SRC6, &[Slot::Udp(161)]);
        let p = e.probe(DST6, Slot::Udp(161), 200);
        let pkt = build(&p);
        let icmp = unreach6(4, &pkt[..48]);
        let a = e.classify(&from_router6(&icmp)).unwrap();
        assert_eq!(
            (a.slot, a.epoch, a.code),
            (Slot::Udp(161), Some(200), UNREACH_V6 + 4)
        );
        assert_eq!(
            Udp.meaning(a.slot, a.code),
            (PortState::Closed, "port-unreach")
        );
        let mut bad = pkt.clone();
        bad[1] ^= 0x08; // the flow label's top bits
        let icmp = unreach6(4, &bad[..48]);
        assert_eq!(e.classify(&from_router6(&icmp)), Err(Reject::Invalid));
    }

    #[test]
    fn silence_is_open_filtered() {
        assert_eq!(
            Udp.meaning(Slot::Udp(1), UNANSWERED),
            (PortState::OpenFiltered, "no-response")
        );
    }

    #[test]
    fn describe_line() {
        let mut text = String::new();
        let p = probe(SRC4, DST4, Slot::Udp(53), 61_000, 77);
        Udp.describe(&mut text, &p, &|port| {
            if port == 53 {
                b"abcd"
            } else {
                &[]
            }
        });
        assert_eq!(text, "SENT UDP 198.18.0.1:61000 > 198.18.0.10:53 len=4\n");
    }
}
