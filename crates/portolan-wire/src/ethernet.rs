//! Ethernet II frames: MAC addresses, EtherTypes, and one 802.1Q/802.1ad VLAN tag, which is
//! recognised and skipped so that tagged captures still reach the IP layer.
//!
//! The frame check sequence is not part of the view: capture interfaces strip it.

use std::fmt;

use crate::{ensure_room, read_u16, write_u16, Error, Result};

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: Self = Self([0xff; 6]);
    pub const ZERO: Self = Self([0; 6]);

    /// `None` unless `bytes` is exactly 6 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit set (includes broadcast).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The type field of an Ethernet II frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: Self = Self(0x0800);
    pub const ARP: Self = Self(0x0806);
    pub const VLAN: Self = Self(0x8100);
    pub const IPV6: Self = Self(0x86dd);
    /// 802.1ad service tag (outer tag of Q-in-Q).
    pub const QINQ: Self = Self(0x88a8);

    /// True for the tag protocol identifiers that announce a VLAN tag.
    pub fn is_vlan_tag(self) -> bool {
        self == Self::VLAN || self == Self::QINQ
    }
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EtherType(0x{:04x})", self.0)
    }
}

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    // Present only when ETHERTYPE is a tag protocol identifier.
    pub const VLAN_TCI: usize = 14;
    pub const VLAN_ETHERTYPE: usize = 16;
}

/// Length of an untagged header.
pub const HEADER_LEN: usize = 14;
/// Extra length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks: accessors panic if it is shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds the whole header, VLAN tag included.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> MacAddr {
        MacAddr(
            self.buffer.as_ref()[field::DST]
                .try_into()
                .unwrap_or_default(),
        )
    }

    pub fn src_addr(&self) -> MacAddr {
        MacAddr(
            self.buffer.as_ref()[field::SRC]
                .try_into()
                .unwrap_or_default(),
        )
    }

    /// The type field at offset 12: a tag protocol identifier if the frame is tagged.
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Tag control information (PCP, DEI, VLAN id) of a tagged frame.
    pub fn vlan_tci(&self) -> Option<u16> {
        if self.ethertype().is_vlan_tag() {
            Some(read_u16(self.buffer.as_ref(), field::VLAN_TCI))
        } else {
            None
        }
    }

    /// The type of the payload: the inner type if the frame carries one VLAN tag.
    pub fn payload_ethertype(&self) -> EtherType {
        if self.ethertype().is_vlan_tag() {
            EtherType(read_u16(self.buffer.as_ref(), field::VLAN_ETHERTYPE))
        } else {
            self.ethertype()
        }
    }

    pub fn header_len(&self) -> usize {
        // Reading the type field needs 14 bytes; a shorter buffer fails check_len anyway.
        match self.buffer.as_ref().get(field::ETHERTYPE..HEADER_LEN) {
            Some(&[a, b]) if EtherType(u16::from_be_bytes([a, b])).is_vlan_tag() => {
                HEADER_LEN + VLAN_TAG_LEN
            }
            _ => HEADER_LEN,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Everything after the header (and tag), including any padding to the minimum frame
    /// size: the IP layer trims by its own length field.
    pub fn payload(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer.as_ref();
        &buffer[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.0);
    }

    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    /// Sets the type field at offset 12 (use [`Self::set_vlan`] for a tagged frame).
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.0);
    }

    /// Makes the frame 802.1Q-tagged with `tci`, carrying `inner`.
    pub fn set_vlan(&mut self, tci: u16, inner: EtherType) {
        let buf = self.buffer.as_mut();
        write_u16(buf, field::ETHERTYPE, EtherType::VLAN.0);
        write_u16(buf, field::VLAN_TCI, tci);
        write_u16(buf, field::VLAN_ETHERTYPE, inner.0);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// A parsed Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: MacAddr,
    pub dst_addr: MacAddr,
    /// The payload's type (inside the tag, if any).
    pub ethertype: EtherType,
    /// Tag control information of one 802.1Q tag.
    pub vlan_tci: Option<u16>,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            ethertype: packet.payload_ethertype(),
            vlan_tci: packet.vlan_tci(),
        })
    }

    /// Header length, tag included.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + if self.vlan_tci.is_some() {
                VLAN_TAG_LEN
            } else {
                0
            }
    }

    /// Writes the header; the payload follows at `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        ensure_room(packet.buffer.as_ref(), self.buffer_len())?;
        packet.set_dst_addr(self.dst_addr);
        packet.set_src_addr(self.src_addr);
        match self.vlan_tci {
            Some(tci) => packet.set_vlan(tci, self.ethertype),
            None => packet.set_ethertype(self.ethertype),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{self, hammer, marked};

    #[test]
    fn parse_golden_arp_request() {
        let packet = Packet::new_checked(&testutil::ARP_REQUEST[..]).unwrap();
        assert_eq!(packet.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(packet.src_addr().to_string(), "02:fc:00:00:00:01");
        assert_eq!(packet.ethertype(), EtherType::ARP);
        assert_eq!(packet.vlan_tci(), None);
        assert_eq!(packet.payload().len(), 46);
    }

    #[test]
    fn parse_golden_vlan() {
        let frame = &testutil::VLAN_ICMPV4_ECHO_REQUEST[..];
        let packet = Packet::new_checked(frame).unwrap();
        assert_eq!(packet.ethertype(), EtherType::VLAN);
        assert_eq!(packet.payload_ethertype(), EtherType::IPV4);
        assert_eq!(packet.vlan_tci(), Some(0x2064));
        assert_eq!(packet.vlan_tci().map(|t| t & 0xfff), Some(100));
        assert_eq!(packet.payload(), &testutil::ICMPV4_ECHO_REQUEST[14..]);
        // A tag announced but cut off is truncation, not an untagged frame.
        assert_eq!(Packet::new_checked(&frame[..16]), Err(Error::Truncated));
    }

    #[test]
    fn emit_golden() {
        for frame in [
            &testutil::ARP_REPLY[..],
            &testutil::VLAN_ICMPV4_ECHO_REQUEST[..],
        ] {
            let repr = Repr::parse(&Packet::new_checked(frame).unwrap()).unwrap();
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
            assert_eq!(buf, frame[..repr.buffer_len()]);
        }
    }

    #[test]
    fn round_trip() {
        let repr = Repr {
            src_addr: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_addr: MacAddr::BROADCAST,
            ethertype: EtherType::IPV6,
            vlan_tci: Some(0xe00a),
        };
        let mut buf = marked(repr.buffer_len());
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..]).unwrap()),
            Ok(repr)
        );
        let mut short = [0u8; 17];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut short[..])),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn checked_never_panics() {
        hammer(&testutil::VLAN_ICMPV4_ECHO_REQUEST, |buf| {
            if let Ok(p) = Packet::new_checked(buf) {
                let _ = (p.dst_addr(), p.src_addr(), p.ethertype(), p.vlan_tci());
                let _ = (p.payload_ethertype(), p.header_len(), p.payload());
                let _ = Repr::parse(&p);
            }
        });
    }
}
