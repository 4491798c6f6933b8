//! Complete probe packets written into a caller's buffer, checksums included: TCP, UDP and
//! ICMP echo over IPv4 and IPv6, ARP requests and neighbour solicitations.
//!
//! With `eth: Some(..)` a builder writes an Ethernet frame (for sending on a link-layer
//! socket); with `None`, a bare IP packet (for a raw IP socket). Each returns the number of
//! bytes written, or an error if the buffer is too small or a length overflows.
//!
//! [`TcpTemplateV4`] builds a probe once and re-aims it per target, patching checksums
//! incrementally, as ZMap does.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ethernet::{self, EtherType, MacAddr};
use crate::tcp::{self, Flags, TcpOption};
use crate::{arp, checksum, icmpv4, icmpv6, ipv4, ipv6, udp, IpPair, IpProtocol, Result};

/// Link-layer addresses of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetParams {
    pub src: MacAddr,
    pub dst: MacAddr,
}

/// The IPv4 header fields a probe chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Params {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

/// The IPv6 header fields a probe chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Params {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

/// Nmap's SYN scan options: MSS 1460 and nothing else.
pub const NMAP_SYN_OPTIONS: &[TcpOption<'static>] = &[TcpOption::MaxSegmentSize(1460)];

/// The TCP fields a probe chooses. `options` are padded to a multiple of 4 with zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpParams<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    pub window: u16,
    pub options: &'a [TcpOption<'a>],
    pub payload: &'a [u8],
}

impl TcpParams<'static> {
    /// A SYN as Nmap's `-sS` sends it: window 1024, MSS 1460.
    pub fn syn(sport: u16, dport: u16, seq: u32) -> Self {
        Self {
            sport,
            dport,
            seq,
            ack: 0,
            flags: Flags::SYN,
            window: 1024,
            options: NMAP_SYN_OPTIONS,
            payload: &[],
        }
    }
}

/// The UDP fields a probe chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpParams<'a> {
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
}

/// Writes the Ethernet header if asked; returns where the next layer starts.
fn link(buf: &mut [u8], eth: Option<&EthernetParams>, ethertype: EtherType) -> Result<usize> {
    let Some(eth) = eth else { return Ok(0) };
    let repr = ethernet::Repr {
        src_addr: eth.src,
        dst_addr: eth.dst,
        ethertype,
        vlan_tci: None,
    };
    repr.emit(&mut ethernet::Packet::new_unchecked(&mut *buf))?;
    Ok(repr.buffer_len())
}

/// Writes link and IPv4 headers for an upper layer of `l4_len` bytes, then lets `l4` write
/// into exactly those bytes. Returns the total length.
fn over_ipv4(
    buf: &mut [u8],
    eth: Option<&EthernetParams>,
    ip: &Ipv4Params,
    protocol: IpProtocol,
    l4_len: usize,
    l4: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<usize> {
    let at = link(buf, eth, EtherType::IPV4)?;
    let repr = ipv4::Repr {
        src_addr: ip.src,
        dst_addr: ip.dst,
        protocol,
        payload_len: l4_len,
        ttl: ip.ttl,
        ident: ip.ident,
        dont_frag: ip.dont_frag,
        more_frags: false,
        frag_offset: 0,
        dscp: 0,
        ecn: 0,
    };
    let end = at + repr.buffer_len() + l4_len;
    let packet = buf.get_mut(at..end).ok_or(crate::Error::BufferTooSmall)?;
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut *packet))?;
    l4(&mut packet[repr.buffer_len()..])?;
    Ok(end)
}

/// As [`over_ipv4`], for IPv6.
fn over_ipv6(
    buf: &mut [u8],
    eth: Option<&EthernetParams>,
    ip: &Ipv6Params,
    next_header: IpProtocol,
    l4_len: usize,
    l4: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<usize> {
    let at = link(buf, eth, EtherType::IPV6)?;
    let repr = ipv6::Repr {
        src_addr: ip.src,
        dst_addr: ip.dst,
        next_header,
        payload_len: l4_len,
        hop_limit: ip.hop_limit,
        traffic_class: ip.traffic_class,
        flow_label: ip.flow_label,
    };
    let end = at + repr.buffer_len() + l4_len;
    let packet = buf.get_mut(at..end).ok_or(crate::Error::BufferTooSmall)?;
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut *packet))?;
    l4(&mut packet[repr.buffer_len()..])?;
    Ok(end)
}

/// Serialises the option list, then hands the TCP `Repr` to `f`.
fn with_tcp_repr<R>(tcp: &TcpParams, f: impl FnOnce(&tcp::Repr) -> R) -> Result<R> {
    let mut options = [0u8; tcp::MAX_OPTIONS_LEN];
    let len = tcp::emit_options(tcp.options, &mut options)
        .map_err(|_| crate::Error::TooLarge("TCP options"))?;
    let repr = tcp::Repr {
        src_port: tcp.sport,
        dst_port: tcp.dport,
        seq_number: tcp.seq,
        ack_number: tcp.ack,
        flags: tcp.flags,
        window_len: tcp.window,
        urgent_at: 0,
        options: &options[..len],
        payload: tcp.payload,
    };
    Ok(f(&repr))
}

/// A TCP probe over IPv4 (SYN, ACK, FIN, Xmas, ... as `tcp.flags` says).
pub fn build_tcp_v4(
    buf: &mut [u8],
    eth: Option<&EthernetParams>,
    ip: &Ipv4Params,
    tcp: &TcpParams,
) -> Result<usize> {
    let ips = IpPair::V4 {
        src: ip.src,
        dst: ip.dst,
    };
    with_tcp_repr(tcp, |repr| {
        over_ipv4(buf, eth, ip, IpProtocol::TCP, repr.buffer_len(), |seg| {
            repr.emit(&mut tcp::Packet::new_unchecked(seg), &ips)
        })
    })?
}

/// A TCP probe over IPv6.
pub fn build_tcp_v6(
    buf: &mut [u8],
    eth: Option<&EthernetParams>,
    ip: &Ipv6Params,
    tcp: &TcpParams,
) -> Result<usize> {
    let ips = IpPair::V6 {
        src: ip.src,
        dst: ip.dst,
    };
    with_tcp_repr(tcp, |repr| {
        over_ipv6(buf, eth, ip, IpProtocol::TCP, repr.buffer_len(), |seg| {
            repr.emit(&mut tcp::Packet::new_unchecked(seg), &ips)
        })
    })?
}

fn udp_repr<'a>(udp: &UdpParams<'a>) -> udp::Repr<'a> {
    udp::Repr {
        src_port: udp.sport,
        dst_port: udp.dport,
        payload: udp.payload,
    }
}

/// A UDP probe over IPv4.
pub fn build_udp_v4(
    buf: &mut [u8],
    eth: Option<&EthernetParams>,
    ip: &Ipv4Params,
    udp: &UdpParams,
) -> Result<usize> {
    let (repr, ips) = (
        udp_repr(udp),
        IpPair::V4 {
            src: ip.src,
            dst: ip.dst,
        },
    );
    over_ipv4(buf, eth, ip, IpProtocol::UDP, repr.buffer_len(), |dgram| {
        repr.emit(&mut udp::Packet::new_unchecked(dgram), &ips)
    })
}

/// A UDP probe over IPv6.
pub fn build_udp_v6(
    buf: &mut [u8],
    eth: Option<&EthernetParams>,
    ip: &Ipv6Params,
    udp: &UdpParams,
) -> Result<usize> {
    let (repr, ips) = (
        udp_repr(udp),
        IpPair::V6 {
            src: ip.src,
            dst: ip.dst,
        },
    );
    over_ipv6(buf, eth, ip, IpProtocol::UDP, repr.buffer_len(), |dgram| {
        repr.emit(&mut udp::Packet::new_unchecked(dgram), &ips)
    })
}

/// Any ICMP message over IPv4 (echo, timestamp and address mask requests for `-PE`, `-PP`,
/// `-PM`).
pub fn build_icmpv4(
    buf: &mut [u8],
    eth: Option<&EthernetParams>,
    ip: &Ipv4Params,
    icmp: &icmpv4::Repr,
) -> Result<usize> {
    over_ipv4(buf, eth, ip, IpProtocol::ICMP, icmp.buffer_len(), |msg| {
        icmp.emit(&mut icmpv4::Packet::new_unchecked(msg))
    })
}

/// Any ICMPv6 message over IPv6.
pub fn build_icmpv6(
    buf: &mut [u8],
    eth: Option<&EthernetParams>,
    ip: &Ipv6Params,
    icmp: &icmpv6::Repr,
) -> Result<usize> {
    over_ipv6(buf, eth, ip, IpProtocol::ICMPV6, icmp.buffer_len(), |msg| {
        icmp.emit(&mut icmpv6::Packet::new_unchecked(msg), &ip.src, &ip.dst)
    })
}

/// An ICMP echo request over IPv4.
pub fn build_icmp_echo_v4(
    buf: &mut [u8],
    eth: Option<&EthernetParams>,
    ip: &Ipv4Params,
    ident: u16,
    seq_no: u16,
    data: &[u8],
) -> Result<usize> {
    let echo = icmpv4::Repr::EchoRequest {
        ident,
        seq_no,
        data,
    };
    build_icmpv4(buf, eth, ip, &echo)
}

/// An ICMPv6 echo request over IPv6.
pub fn build_icmp_echo_v6(
    buf: &mut [u8],
    eth: Option<&EthernetParams>,
    ip: &Ipv6Params,
    ident: u16,
    seq_no: u16,
    data: &[u8],
) -> Result<usize> {
    let echo = icmpv6::Repr::EchoRequest {
        ident,
        seq_no,
        data,
    };
    build_icmpv6(buf, eth, ip, &echo)
}

/// A broadcast ARP request asking who has `target_ip` (42 bytes; NICs pad short frames).
pub fn build_arp_request(
    buf: &mut [u8],
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
) -> Result<usize> {
    let eth = EthernetParams {
        src: src_mac,
        dst: MacAddr::BROADCAST,
    };
    let at = link(buf, Some(&eth), EtherType::ARP)?;
    let repr = arp::Repr {
        operation: arp::Operation::REQUEST,
        source_hardware_addr: src_mac,
        source_protocol_addr: src_ip,
        target_hardware_addr: MacAddr::ZERO,
        target_protocol_addr: target_ip,
    };
    let packet = buf.get_mut(at..).ok_or(crate::Error::BufferTooSmall)?;
    repr.emit(&mut arp::Packet::new_unchecked(packet))?;
    Ok(at + repr.buffer_len())
}

/// A neighbour solicitation for `target_ip`, sent to its solicited-node multicast address
/// (RFC 4291 section 2.7.1) with hop limit 255, as IPv6 neighbour discovery requires.
pub fn build_neighbor_solicit(
    buf: &mut [u8],
    src_mac: MacAddr,
    src_ip: Ipv6Addr,
    target_ip: Ipv6Addr,
) -> Result<usize> {
    let t = target_ip.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let g = group.octets();
    // Multicast MAC: 33:33 and the group's low 32 bits (RFC 2464 section 7).
    let eth = EthernetParams {
        src: src_mac,
        dst: MacAddr([0x33, 0x33, g[12], g[13], g[14], g[15]]),
    };
    let ip = Ipv6Params {
        src: src_ip,
        dst: group,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    };
    let ns = icmpv6::Repr::NeighborSolicit {
        target_addr: target_ip,
        source_lladdr: Some(src_mac),
    };
    build_icmpv6(buf, Some(&eth), &ip, &ns)
}

/// A TCP probe over IPv4 built once and re-aimed per target: [`Self::probe`] rewrites the
/// destination address, ports and sequence number and patches both checksums by RFC 1624
/// instead of summing the packet again.
#[derive(Debug, Clone)]
pub struct TcpTemplateV4 {
    frame: Vec<u8>,
    ip_at: usize,
    tcp_at: usize,
}

// Offsets of the patched fields within their headers.
const IP_CHECKSUM: usize = 10;
const IP_DST: usize = 16;
const TCP_PORTS_SEQ: usize = 0;
const TCP_CHECKSUM: usize = 16;

impl TcpTemplateV4 {
    /// Builds the template from a first probe's parameters.
    pub fn new(eth: Option<&EthernetParams>, ip: &Ipv4Params, tcp: &TcpParams) -> Result<Self> {
        let mut frame = vec![0u8; 18 + 20 + 20 + tcp::MAX_OPTIONS_LEN + tcp.payload.len()];
        let len = build_tcp_v4(&mut frame, eth, ip, tcp)?;
        frame.truncate(len);
        let ip_at = if eth.is_some() {
            ethernet::HEADER_LEN
        } else {
            0
        };
        Ok(Self {
            frame,
            ip_at,
            tcp_at: ip_at + ipv4::HEADER_LEN,
        })
    }

    /// The frame re-aimed at `dst:dport` from `sport` with sequence number `seq`.
    pub fn probe(&mut self, dst: Ipv4Addr, sport: u16, dport: u16, seq: u32) -> &[u8] {
        let (ip_at, tcp_at) = (self.ip_at, self.tcp_at);
        let dst_range = ip_at + IP_DST..ip_at + IP_DST + 4;
        let fields_range = tcp_at + TCP_PORTS_SEQ..tcp_at + TCP_PORTS_SEQ + 8;

        // Old and new bytes of every field the TCP checksum covers (the destination address
        // through the pseudo-header); each is 16-bit aligned, so their sums add up.
        let mut old = [0u8; 12];
        old[..4].copy_from_slice(&self.frame[dst_range.clone()]);
        old[4..].copy_from_slice(&self.frame[fields_range.clone()]);
        let mut new = [0u8; 12];
        new[..4].copy_from_slice(&dst.octets());
        new[4..6].copy_from_slice(&sport.to_be_bytes());
        new[6..8].copy_from_slice(&dport.to_be_bytes());
        new[8..].copy_from_slice(&seq.to_be_bytes());

        let patch = |frame: &mut [u8], at: usize, old: &[u8], new: &[u8]| {
            let current = u16::from_be_bytes([frame[at], frame[at + 1]]);
            let value = checksum::update(current, old, new);
            frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
        };
        patch(&mut self.frame, ip_at + IP_CHECKSUM, &old[..4], &new[..4]);
        patch(&mut self.frame, tcp_at + TCP_CHECKSUM, &old, &new);
        self.frame[dst_range].copy_from_slice(&new[..4]);
        self.frame[fields_range].copy_from_slice(&new[4..]);
        &self.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{marked, XorShift};
    use crate::{ChecksumMode, Error};

    const US: MacAddr = MacAddr([2, 0xfc, 0, 0, 0, 1]);
    const GW: MacAddr = MacAddr([2, 0xfc, 0, 0, 0, 0xfe]);
    const ETH: EthernetParams = EthernetParams { src: US, dst: GW };

    fn ip4() -> Ipv4Params {
        Ipv4Params {
            src: Ipv4Addr::new(192, 0, 2, 2),
            dst: Ipv4Addr::new(198, 51, 100, 9),
            ttl: 52,
            ident: 0x3039,
            dont_frag: false,
        }
    }

    fn ip6() -> Ipv6Params {
        Ipv6Params {
            src: "2001:db8::2".parse().unwrap(),
            dst: "2001:db8::9".parse().unwrap(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn nmap_style_syn_v4_golden() {
        // Hand-checked against Nmap's -sS probe layout: 44-byte IP packet, window 1024, one
        // MSS option; checksums (0x6a54 IP, 0x677c TCP) computed independently in Python.
        let mut buf = marked(100);
        let n = build_tcp_v4(
            &mut buf,
            None,
            &ip4(),
            &TcpParams::syn(41234, 443, 0xdead_beef),
        );
        assert_eq!(n, Ok(44));
        let golden: [u8; 44] = [
            0x45, 0x00, 0x00, 0x2c, 0x30, 0x39, 0x00, 0x00, 0x34, 0x06, 0x6a, 0x54, 0xc0, 0x00,
            0x02, 0x02, 0xc6, 0x33, 0x64, 0x09, 0xa1, 0x12, 0x01, 0xbb, 0xde, 0xad, 0xbe, 0xef,
            0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0x04, 0x00, 0x67, 0x7c, 0x00, 0x00, 0x02, 0x04,
            0x05, 0xb4,
        ];
        assert_eq!(buf[..44], golden);
        assert_eq!(buf[44..], [0xa5; 56]);
    }

    #[test]
    fn every_builder_parses_back() {
        let mut buf = [0u8; 200];
        let n = build_tcp_v6(&mut buf, Some(&ETH), &ip6(), &TcpParams::syn(1, 2, 3)).unwrap();
        let frame = ethernet::Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(frame.payload_ethertype(), EtherType::IPV6);
        let ip = ipv6::Packet::new_checked(frame.payload()).unwrap();
        let ips = IpPair::V6 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        };
        let seg = tcp::Packet::new_checked(ip.payload()).unwrap();
        let seg = tcp::Repr::parse(&seg, &ips, ChecksumMode::Verify).unwrap();
        assert_eq!(
            (seg.seq_number, seg.window_len, seg.options),
            (3, 1024, &[2, 4, 5, 0xb4][..])
        );

        let udp = UdpParams {
            sport: 5353,
            dport: 53,
            payload: b"\x00\x01",
        };
        let n = build_udp_v4(&mut buf, None, &ip4(), &udp).unwrap();
        let ip = ipv4::Packet::new_checked(&buf[..n]).unwrap();
        assert!(ip.verify_checksum());
        let ips = IpPair::V4 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        };
        let d = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(
            udp::Repr::parse(&d, &ips, ChecksumMode::Verify)
                .unwrap()
                .dst_port,
            53
        );

        let n = build_udp_v6(&mut buf, None, &ip6(), &udp).unwrap();
        let ip = ipv6::Packet::new_checked(&buf[..n]).unwrap();
        let ips = IpPair::V6 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        };
        let d = udp::Packet::new_checked(ip.payload()).unwrap();
        assert!(udp::Repr::parse(&d, &ips, ChecksumMode::Verify).is_ok());

        let n = build_icmp_echo_v4(&mut buf, Some(&ETH), &ip4(), 7, 8, b"x").unwrap();
        let ip = ipv4::Packet::new_checked(&buf[14..n]).unwrap();
        let m = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        let m = icmpv4::Repr::parse(&m, ChecksumMode::Verify).unwrap();
        assert!(matches!(
            m,
            icmpv4::Repr::EchoRequest {
                ident: 7,
                seq_no: 8,
                ..
            }
        ));

        let n = build_icmp_echo_v6(&mut buf, None, &ip6(), 7, 8, b"").unwrap();
        let ip = ipv6::Packet::new_checked(&buf[..n]).unwrap();
        let m = icmpv6::Packet::new_checked(ip.payload()).unwrap();
        let src_dst = (ip.src_addr(), ip.dst_addr());
        let m = icmpv6::Repr::parse(&m, &src_dst.0, &src_dst.1, ChecksumMode::Verify).unwrap();
        assert!(matches!(m, icmpv6::Repr::EchoRequest { ident: 7, .. }));
    }

    #[test]
    fn arp_request_matches_golden() {
        let mut buf = marked(64);
        let target = Ipv4Addr::new(192, 0, 2, 1);
        let n = build_arp_request(&mut buf, US, Ipv4Addr::new(192, 0, 2, 2), target).unwrap();
        assert_eq!(n, 42);
        // The golden frame is padded to 60 bytes with zeros; the builder leaves that to the NIC.
        assert_eq!(buf[..42], crate::testutil::ARP_REQUEST[..42]);
    }

    #[test]
    fn neighbor_solicit_matches_golden() {
        let mut buf = marked(100);
        let (src, target) = ("fd00::2".parse().unwrap(), "fd00::1".parse().unwrap());
        let n = build_neighbor_solicit(&mut buf, US, src, target).unwrap();
        assert_eq!(buf[..n], crate::testutil::ICMPV6_NEIGHBOR_SOLICIT);
    }

    #[test]
    fn small_buffers_are_errors() {
        let syn = TcpParams::syn(1, 2, 3);
        for len in 0..44 {
            let mut buf = vec![0u8; len];
            assert_eq!(
                build_tcp_v4(&mut buf, None, &ip4(), &syn),
                Err(Error::BufferTooSmall)
            );
        }
        let too_many = [TcpOption::Timestamps { tsval: 0, tsecr: 0 }; 5];
        let long = TcpParams {
            options: &too_many,
            ..syn
        };
        assert!(matches!(
            build_tcp_v4(&mut [0u8; 200], None, &ip4(), &long),
            Err(Error::TooLarge(_))
        ));
        assert_eq!(
            build_arp_request(&mut [0u8; 41], US, ip4().src, ip4().dst),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn template_matches_fresh_build() {
        let mut template =
            TcpTemplateV4::new(Some(&ETH), &ip4(), &TcpParams::syn(1, 2, 3)).unwrap();
        let mut rng = XorShift::new(3);
        let mut fresh = [0u8; 100];
        for _ in 0..2000 {
            let r = rng.next_u64();
            let dst = Ipv4Addr::from(r as u32);
            let (sport, dport, seq) = ((r >> 32) as u16, (r >> 48) as u16, rng.next_u64() as u32);
            let probe = template.probe(dst, sport, dport, seq).to_vec();
            let ip = Ipv4Params { dst, ..ip4() };
            let n = build_tcp_v4(
                &mut fresh,
                Some(&ETH),
                &ip,
                &TcpParams::syn(sport, dport, seq),
            );
            // Equal bytes, or (rarely) a checksum of 0x0000 where a full sum gives 0xffff:
            // both verify, so compare by verifying.
            assert_eq!(probe.len(), n.unwrap());
            let ipp = ipv4::Packet::new_checked(&probe[14..]).unwrap();
            assert!(ipp.verify_checksum());
            let ips = IpPair::V4 { src: ip.src, dst };
            assert!(tcp::Packet::new_checked(ipp.payload())
                .unwrap()
                .verify_checksum(&ips));
            assert_eq!(probe[..24], fresh[..24]);
            assert_eq!(probe[26..50], fresh[26..50]);
            assert_eq!(probe[52..], fresh[52..n.unwrap()]);
        }
    }
}
