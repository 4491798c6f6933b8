//! What the kinds' tests share: addresses, a stand-in for the engine's cookie state, and
//! forged answers from targets and routers.

use super::{build_probe, classify, Answer, Ctx, Probe, Reject, Slot, SlotIndex};
use crate::core::scan::SOURCE_PORTS;
use portolan_wire::build::{
    build_icmpv4, build_icmpv6, build_tcp_v4, build_tcp_v6, Ipv4Params, Ipv6Params, TcpParams,
};
use portolan_wire::cookie::CookieKey;
use portolan_wire::tcp::Flags;
use portolan_wire::{icmpv4, icmpv6, ipv4, ipv6, IpProtocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

pub const SRC4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
pub const DST4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10));
pub const ROUTER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
pub const SRC6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1));
pub const DST6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10));
pub const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xfe);

pub fn probe(src: IpAddr, dst: IpAddr, slot: Slot, sport: u16, stamp: u32) -> Probe {
    Probe {
        src,
        dst,
        slot,
        sport,
        stamp,
    }
}

/// The packet for `p`, with payload "payload" for kinds that carry one.
pub fn build(p: &Probe) -> Vec<u8> {
    let mut buf = vec![0x5a; 256];
    let payload = super::kind_of(p.slot).payload(p, &|_| b"payload");
    let len = build_probe(&mut buf, p, payload, 64).unwrap();
    buf.truncate(len);
    buf
}

/// The transport part of a packet we built (IPv4 or IPv6), checking its protocol.
pub fn transport(pkt: &[u8], protocol: IpProtocol) -> &[u8] {
    match pkt[0] >> 4 {
        4 => {
            let ip = ipv4::Packet::new_checked(pkt).unwrap();
            assert_eq!(ip.protocol(), protocol);
            ip.payload()
        }
        _ => {
            let ip = ipv6::Packet::new_checked(pkt).unwrap();
            assert_eq!(ip.next_header(), protocol);
            ip.payload()
        }
    }
}

/// The engine's side of the cookie scheme, for one scan of `slots` from `src` in pass 0.
pub struct Engine {
    src: IpAddr,
    key: CookieKey,
    ports: RangeInclusive<u16>,
    index: SlotIndex,
}

impl Engine {
    pub fn new(src: IpAddr, slots: &[Slot]) -> Self {
        Engine {
            src,
            key: CookieKey::from_seed([5; 16]),
            ports: SOURCE_PORTS,
            index: SlotIndex::new(slots),
        }
    }

    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            src: self.src,
            key: &self.key,
            source_ports: &self.ports,
            pass: 0,
            index: &self.index,
        }
    }

    /// The probe the engine would send to `dst` in `slot` in pass 0, epoch `epoch`.
    pub fn probe(&self, dst: IpAddr, slot: Slot, epoch: u8) -> Probe {
        let ctx = self.ctx();
        let sport = slot.port().map_or(0, |port| ctx.sport_for(dst, port, 0));
        let cookie = ctx.cookie(dst, slot, sport);
        probe(
            self.src,
            dst,
            slot,
            sport,
            (cookie & !0xff) | u32::from(epoch),
        )
    }

    pub fn classify(&self, pkt: &[u8]) -> Result<Answer, Reject> {
        classify(&self.ctx(), pkt)
    }
}

/// A TCP segment from the target of `p` (port `sport`) to `p.src:dport`.
pub fn tcp_from_target(
    p: &Probe,
    sport: u16,
    dport: u16,
    flags: Flags,
    seq: u32,
    ack: u32,
) -> Vec<u8> {
    let tcp = TcpParams {
        sport,
        dport,
        seq,
        ack,
        flags,
        window: 0,
        options: &[],
        payload: &[],
    };
    let mut buf = vec![0u8; 128];
    let len = match (p.dst, p.src) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let ip = Ipv4Params {
                src,
                dst,
                ttl: 63,
                ident: 0,
                dont_frag: true,
            };
            build_tcp_v4(&mut buf, None, &ip, &tcp).unwrap()
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let ip = Ipv6Params {
                src,
                dst,
                hop_limit: 63,
                traffic_class: 0,
                flow_label: 0,
            };
            build_tcp_v6(&mut buf, None, &ip, &tcp).unwrap()
        }
        _ => panic!("mixed families"),
    };
    buf.truncate(len);
    buf
}

/// IPv4 header parameters from `from` to `to` (IPv4).
pub fn ip4(from: IpAddr, to: IpAddr, ttl: u8) -> Ipv4Params {
    match (from, to) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Ipv4Params {
            src,
            dst,
            ttl,
            ident: 0,
            dont_frag: false,
        },
        _ => panic!("IPv4 expected"),
    }
}

/// IPv6 header parameters from `from` to `to` (IPv6).
pub fn ip6(from: IpAddr, to: IpAddr, hop_limit: u8) -> Ipv6Params {
    match (from, to) {
        (IpAddr::V6(src), IpAddr::V6(dst)) => Ipv6Params {
            src,
            dst,
            hop_limit,
            traffic_class: 0,
            flow_label: 0,
        },
        _ => panic!("IPv6 expected"),
    }
}

/// An ICMP message from a router on the way (TTL 250) to SRC4.
pub fn from_router4(icmp: &icmpv4::Repr) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let len = build_icmpv4(&mut buf, None, &ip4(IpAddr::V4(ROUTER4), SRC4, 250), icmp).unwrap();
    buf.truncate(len);
    buf
}

/// A destination-unreachable message (code `code`) quoting `inner`.
pub fn unreach4(code: u8, inner: &[u8]) -> icmpv4::Repr<'_> {
    icmpv4::Repr::DstUnreachable {
        code,
        next_hop_mtu: 0,
        inner,
    }
}

/// The ICMPv6 destination-unreachable message (code `code`) quoting `inner`.
pub fn unreach6(code: u8, inner: &[u8]) -> icmpv6::Repr<'_> {
    icmpv6::Repr::DstUnreachable { code, inner }
}

/// An ICMPv6 message from a router on the way (hop limit 250) to SRC6.
pub fn from_router6(icmp: &icmpv6::Repr) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let len = build_icmpv6(&mut buf, None, &ip6(IpAddr::V6(ROUTER6), SRC6, 250), icmp).unwrap();
    buf.truncate(len);
    buf
}
