//! ARP (RFC 826). The view handles any hardware and protocol address lengths; the `Repr`
//! only Ethernet/IPv4, the one combination ARP host discovery (`-PR`) uses.

use std::net::Ipv4Addr;

use crate::ethernet::MacAddr;
use crate::{ensure_room, read_u16, write_u16, Error, Result};

/// ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation(pub u16);

impl Operation {
    pub const REQUEST: Self = Self(1);
    pub const REPLY: Self = Self(2);
}

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    // Addresses follow at offsets that depend on HLEN and PLEN.
    pub const SHA: usize = 8;
}

/// Length of the fixed part before the addresses.
pub const FIXED_LEN: usize = 8;
/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = 28;
const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

/// A view of an ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks: accessors panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds the fixed part and all four addresses.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN || len < self.packet_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Length implied by the address-length fields (trailing padding excluded).
    fn packet_len(&self) -> usize {
        FIXED_LEN + 2 * (usize::from(self.hardware_len()) + usize::from(self.protocol_len()))
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    pub fn operation(&self) -> Operation {
        Operation(read_u16(self.buffer.as_ref(), field::OPER))
    }

    /// Offsets of the four addresses: sender hardware, sender protocol, target hardware,
    /// target protocol.
    fn offsets(&self) -> [usize; 4] {
        let (h, p) = (
            usize::from(self.hardware_len()),
            usize::from(self.protocol_len()),
        );
        [
            field::SHA,
            field::SHA + h,
            field::SHA + h + p,
            field::SHA + 2 * h + p,
        ]
    }

    pub fn source_hardware_addr(&self) -> &[u8] {
        let at = self.offsets()[0];
        &self.buffer.as_ref()[at..at + usize::from(self.hardware_len())]
    }

    pub fn source_protocol_addr(&self) -> &[u8] {
        let at = self.offsets()[1];
        &self.buffer.as_ref()[at..at + usize::from(self.protocol_len())]
    }

    pub fn target_hardware_addr(&self) -> &[u8] {
        let at = self.offsets()[2];
        &self.buffer.as_ref()[at..at + usize::from(self.hardware_len())]
    }

    pub fn target_protocol_addr(&self) -> &[u8] {
        let at = self.offsets()[3];
        &self.buffer.as_ref()[at..at + usize::from(self.protocol_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_hardware_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, value);
    }

    pub fn set_protocol_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::PTYPE, value);
    }

    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    pub fn set_operation(&mut self, value: Operation) {
        write_u16(self.buffer.as_mut(), field::OPER, value.0);
    }

    /// Writes the four addresses; their lengths must match the length fields already set.
    pub fn set_addrs(&mut self, sha: &[u8], spa: &[u8], tha: &[u8], tpa: &[u8]) {
        let offsets = self.offsets();
        let buf = self.buffer.as_mut();
        for (at, addr) in offsets.into_iter().zip([sha, spa, tha, tpa]) {
            buf[at..at + addr.len()].copy_from_slice(addr);
        }
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub source_hardware_addr: MacAddr,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: MacAddr,
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != PTYPE_IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported("ARP other than Ethernet/IPv4"));
        }
        let ip = |b: &[u8]| <[u8; 4]>::try_from(b).map(Ipv4Addr::from);
        let mac = |b: &[u8]| MacAddr::from_bytes(b).ok_or(Error::Truncated);
        Ok(Self {
            operation: packet.operation(),
            source_hardware_addr: mac(packet.source_hardware_addr())?,
            source_protocol_addr: ip(packet.source_protocol_addr())
                .map_err(|_| Error::Truncated)?,
            target_hardware_addr: mac(packet.target_hardware_addr())?,
            target_protocol_addr: ip(packet.target_protocol_addr())
                .map_err(|_| Error::Truncated)?,
        })
    }

    pub fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        ensure_room(packet.buffer.as_ref(), self.buffer_len())?;
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(PTYPE_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_addrs(
            &self.source_hardware_addr.0,
            &self.source_protocol_addr.octets(),
            &self.target_hardware_addr.0,
            &self.target_protocol_addr.octets(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{self, hammer, marked};

    fn arp_of(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    #[test]
    fn parse_golden() {
        let packet = Packet::new_checked(arp_of(&testutil::ARP_REQUEST)).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr.operation, Operation::REQUEST);
        assert_eq!(repr.source_hardware_addr.to_string(), "02:fc:00:00:00:01");
        assert_eq!(repr.source_protocol_addr, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(repr.target_hardware_addr, MacAddr::ZERO);
        assert_eq!(repr.target_protocol_addr, Ipv4Addr::new(192, 0, 2, 1));

        let reply = Packet::new_checked(arp_of(&testutil::ARP_REPLY)).unwrap();
        let reply = Repr::parse(&reply).unwrap();
        assert_eq!(reply.operation, Operation::REPLY);
        assert_eq!(reply.source_hardware_addr.to_string(), "02:fc:00:00:00:fe");
    }

    #[test]
    fn emit_golden() {
        for frame in [&testutil::ARP_REQUEST, &testutil::ARP_REPLY] {
            let arp = arp_of(frame);
            let repr = Repr::parse(&Packet::new_checked(arp).unwrap()).unwrap();
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
            assert_eq!(buf, arp[..ETHERNET_IPV4_LEN]);
        }
    }

    #[test]
    fn round_trip_and_unsupported() {
        let repr = Repr {
            operation: Operation::REPLY,
            source_hardware_addr: MacAddr([1, 2, 3, 4, 5, 6]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: MacAddr([6, 5, 4, 3, 2, 1]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        };
        let mut buf = marked(repr.buffer_len());
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..]).unwrap()),
            Ok(repr)
        );
        buf[5] = 16; // IPv6-sized protocol addresses: the view accepts, the Repr does not
        buf.resize(FIXED_LEN + 2 * (6 + 16), 0);
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(packet.target_protocol_addr().len(), 16);
        assert!(matches!(Repr::parse(&packet), Err(Error::Unsupported(_))));
    }

    #[test]
    fn checked_never_panics() {
        hammer(arp_of(&testutil::ARP_REPLY), |buf| {
            if let Ok(p) = Packet::new_checked(buf) {
                let _ = (p.hardware_type(), p.protocol_type(), p.operation());
                let _ = (p.source_hardware_addr(), p.source_protocol_addr());
                let _ = (p.target_hardware_addr(), p.target_protocol_addr());
                let _ = Repr::parse(&p);
            }
        });
    }
}
