//! IPv6 fixed headers (RFC 8200). Extension headers are not parsed: `next_header` and
//! `payload` are exposed as they are, and callers that care walk the chain themselves.
//! Jumbograms (payload length 0 with a hop-by-hop option) are not supported.
//!
//! As in [`crate::ipv4`], `new_checked_quoted` accepts the header quoted by an ICMPv6 error,
//! whose payload length describes the original packet.

use std::net::Ipv6Addr;

use crate::Result;
use crate::{ensure_room, ipv6_at, read_u16, read_u32, write_u16, write_u32, Error, IpProtocol};

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks: accessors panic if it is shorter than 40 bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a received packet: header and payload length must fit the buffer (bytes past the
    /// payload length, link-layer padding, are ignored).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check(false)?;
        Ok(packet)
    }

    /// Wraps the header quoted by an ICMPv6 error: the payload length may exceed the buffer.
    pub fn new_checked_quoted(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check(true)?;
        Ok(packet)
    }

    fn check(&self, quoted: bool) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || (!quoted && len < HEADER_LEN + usize::from(self.payload_len())) {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn first_word(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), field::SRC)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), field::DST)
    }

    fn payload_end(&self) -> usize {
        (HEADER_LEN + usize::from(self.payload_len())).min(self.buffer.as_ref().len())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload up to the payload length (or as much as a quoted packet holds), extension
    /// headers included.
    pub fn payload(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer.as_ref();
        &buffer[HEADER_LEN..self.payload_end()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 6, traffic class and flow label (masked to 20 bits).
    pub fn set_version_class_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, word);
    }

    pub fn set_payload_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = value.0;
    }

    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&addr.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.payload_end();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A parsed IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: IpProtocol,
    /// Payload length field (for a quoted packet: of the original packet).
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits; emit masks the rest.
    pub flow_label: u32,
}

impl Repr {
    /// Parses a checked view (either constructor).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        packet.check(true)?;
        if packet.version() != 6 {
            return Err(Error::Malformed("IP version is not 6"));
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Header length: the payload goes at this offset.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header; the payload is the caller's.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        ensure_room(packet.buffer.as_ref(), HEADER_LEN)?;
        let len =
            u16::try_from(self.payload_len).map_err(|_| Error::TooLarge("IPv6 payload length"))?;
        packet.set_version_class_flow(self.traffic_class, self.flow_label);
        packet.set_payload_len(len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{self, hammer, marked};

    fn ip_of(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    #[test]
    fn parse_golden() {
        let packet = Packet::new_checked(ip_of(&testutil::TCP_SYN_V6)).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_addr: Ipv6Addr::LOCALHOST,
                dst_addr: Ipv6Addr::LOCALHOST,
                next_header: IpProtocol::TCP,
                payload_len: 40,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0x68b2d,
            }
        );
        assert_eq!(packet.payload().len(), 40);
        assert_eq!(packet.payload()[..2], [0xdf, 0xe4]); // source port 57316
    }

    #[test]
    fn emit_golden() {
        for frame in [
            &testutil::TCP_SYN_V6[..],
            &testutil::ICMPV6_NEIGHBOR_SOLICIT[..],
        ] {
            let ip = ip_of(frame);
            let repr = Repr::parse(&Packet::new_checked(ip).unwrap()).unwrap();
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
            assert_eq!(buf, ip[..HEADER_LEN]);
        }
    }

    #[test]
    fn quoted_and_truncated() {
        let ip = ip_of(&testutil::UDP_V6);
        assert_eq!(Packet::new_checked(&ip[..48]), Err(Error::Truncated));
        let quoted = Packet::new_checked_quoted(&ip[..48]).unwrap();
        assert_eq!(quoted.payload_len(), 13);
        assert_eq!(quoted.payload().len(), 8);
    }

    #[test]
    fn round_trip() {
        let repr = Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "fe80::2".parse().unwrap(),
            next_header: IpProtocol::UDP,
            payload_len: 12,
            hop_limit: 255,
            traffic_class: 0xb8,
            flow_label: 0xfffff,
        };
        let mut buf = marked(repr.buffer_len() + repr.payload_len);
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..]).unwrap()),
            Ok(repr)
        );
    }

    #[test]
    fn checked_never_panics() {
        let check = |p: &Packet<&[u8]>| {
            let _ = (
                p.version(),
                p.traffic_class(),
                p.flow_label(),
                p.payload_len(),
            );
            let _ = (p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr());
            let _ = (p.payload(), Repr::parse(p));
        };
        hammer(ip_of(&testutil::ICMPV6_PACKET_TOO_BIG), |buf| {
            if let Ok(p) = Packet::new_checked(buf) {
                check(&p);
            }
            if let Ok(p) = Packet::new_checked_quoted(buf) {
                check(&p);
            }
        });
    }
}
