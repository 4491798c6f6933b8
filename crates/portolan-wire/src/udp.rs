//! UDP datagrams (RFC 768): ports, length, and the checksum over IPv4 or IPv6 pseudo-headers.
//! A zero checksum means "none" over IPv4 and is invalid over IPv6 (RFC 8200 section 8.1).

use crate::{
    checksum, ensure_room, read_u16, write_u16, ChecksumMode, Error, IpPair, IpProtocol, Result,
};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram. The datagram ends at its length field; trailing bytes are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks: accessors panic if it is shorter than the length field.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking the length field is at least 8 and fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            Err(Error::Truncated)
        } else if usize::from(self.len()) < HEADER_LEN {
            Err(Error::Malformed("UDP length below 8"))
        } else if len < usize::from(self.len()) {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// True if the checksum is correct, or absent (zero) over IPv4.
    pub fn verify_checksum(&self, ips: &IpPair) -> bool {
        if self.checksum() == 0 {
            return matches!(ips, IpPair::V4 { .. });
        }
        let data = &self.buffer.as_ref()[..usize::from(self.len())];
        match ips.pseudo_sum(IpProtocol::UDP, data.len()) {
            Some(pseudo) => checksum::is_valid(checksum::combine(pseudo, checksum::sum(data))),
            None => false,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer.as_ref();
        &buffer[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    pub fn set_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Computes and writes the checksum over the datagram (as long as its length field).
    pub fn fill_checksum(&mut self, ips: &IpPair) -> Result<()> {
        self.set_checksum(0);
        let end = usize::from(self.len());
        let value = datagram_checksum(&self.buffer.as_ref()[..end], ips)?;
        self.set_checksum(value);
        Ok(())
    }
}

fn datagram_checksum(datagram: &[u8], ips: &IpPair) -> Result<u16> {
    let pseudo = ips
        .pseudo_sum(IpProtocol::UDP, datagram.len())
        .ok_or(Error::TooLarge("UDP length"))?;
    let value = checksum::finish(checksum::combine(pseudo, checksum::sum(datagram)));
    // A computed zero is sent as all ones: zero on the wire means "no checksum".
    Ok(if value == 0 { 0xffff } else { value })
}

/// A parsed UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a checked view, verifying the checksum against `ips` unless told not to.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        ips: &IpPair,
        checksum: ChecksumMode,
    ) -> Result<Self> {
        packet.check_len()?;
        if checksum == ChecksumMode::Verify && !packet.verify_checksum(ips) {
            return Err(Error::Checksum);
        }
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload: packet.payload(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes the datagram into the first `buffer_len()` bytes, checksum included.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        ips: &IpPair,
    ) -> Result<()> {
        let total = self.buffer_len();
        let len = u16::try_from(total).map_err(|_| Error::TooLarge("UDP length"))?;
        ensure_room(packet.buffer.as_ref(), total)?;
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.payload_mut().copy_from_slice(self.payload);
        packet.fill_checksum(ips)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::testutil::{self, hammer, marked};

    const LO4: IpPair = IpPair::V4 {
        src: Ipv4Addr::LOCALHOST,
        dst: Ipv4Addr::LOCALHOST,
    };
    const LO6: IpPair = IpPair::V6 {
        src: Ipv6Addr::LOCALHOST,
        dst: Ipv6Addr::LOCALHOST,
    };

    #[test]
    fn parse_golden() {
        let packet = Packet::new_checked(&testutil::UDP_V4[34..]).unwrap();
        assert_eq!(packet.len(), 13);
        assert_eq!(packet.checksum(), 0x525a);
        let repr = Repr::parse(&packet, &LO4, ChecksumMode::Verify).unwrap();
        assert_eq!(
            (repr.src_port, repr.dst_port, repr.payload),
            (43560, 5558, &b"udp4\n"[..])
        );

        let packet = Packet::new_checked(&testutil::UDP_V6[54..]).unwrap();
        let repr = Repr::parse(&packet, &LO6, ChecksumMode::Verify).unwrap();
        assert_eq!(
            (repr.src_port, repr.dst_port, repr.payload),
            (44748, 5559, &b"udp6\n"[..])
        );
    }

    #[test]
    fn emit_golden() {
        for (seg, ips) in [
            (&testutil::UDP_V4[34..], LO4),
            (&testutil::UDP_V6[54..], LO6),
        ] {
            let repr = Repr::parse(
                &Packet::new_checked(seg).unwrap(),
                &ips,
                ChecksumMode::Verify,
            );
            let repr = repr.unwrap();
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &ips)
                .unwrap();
            assert_eq!(buf, seg);
        }
    }

    #[test]
    fn zero_checksum() {
        let mut seg = testutil::UDP_V4[34..].to_vec();
        seg[6..8].fill(0);
        let ok = Repr::parse(
            &Packet::new_checked(&seg[..]).unwrap(),
            &LO4,
            ChecksumMode::Verify,
        );
        assert!(ok.is_ok());
        let bad = Repr::parse(
            &Packet::new_checked(&seg[..]).unwrap(),
            &LO6,
            ChecksumMode::Verify,
        );
        assert_eq!(bad, Err(Error::Checksum));
    }

    #[test]
    fn trailing_bytes_ignored_and_round_trip() {
        let repr = Repr {
            src_port: 53,
            dst_port: 33434,
            payload: &[0, 1, 2],
        };
        let mut buf = marked(repr.buffer_len() + 5);
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &LO4)
            .unwrap();
        assert_eq!(buf[11..], [0xa5; 5]);
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&packet, &LO4, ChecksumMode::Verify), Ok(repr));
        buf[5] = 7; // length 7 < header
        assert!(matches!(
            Packet::new_checked(&buf[..]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn checked_never_panics() {
        hammer(&testutil::UDP_V6[54..], |buf| {
            if let Ok(p) = Packet::new_checked(buf) {
                let _ = (
                    p.src_port(),
                    p.dst_port(),
                    p.len(),
                    p.checksum(),
                    p.payload(),
                );
                let _ = (p.verify_checksum(&LO4), p.verify_checksum(&LO6));
                let _ = Repr::parse(&p, &LO6, ChecksumMode::Verify);
            }
        });
    }
}
