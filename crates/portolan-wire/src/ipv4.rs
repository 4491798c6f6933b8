//! IPv4 headers (RFC 791). Options are exposed as raw bytes and skipped; the `Repr` emits a
//! 20-byte header without options.
//!
//! Two checked constructors: [`Packet::new_checked`] for a packet as received, whose total
//! length must fit the buffer, and [`Packet::new_checked_quoted`] for the header an ICMP error
//! quotes, whose total length describes the original packet rather than the quoted bytes.

use std::net::Ipv4Addr;

use crate::{
    checksum, ensure_room, ipv4_at, read_u16, write_u16, ChecksumMode, Error, IpProtocol, Result,
};

mod field {
    use std::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const OPTIONS: usize = 20;
    pub const CHECKSUM_RANGE: Range<usize> = 10..12;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks: accessors panic if it is shorter than the header length
    /// field says.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a received packet: the header length and total length must be consistent and
    /// fit the buffer. Bytes past the total length (link-layer padding) are ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check(false)?;
        Ok(packet)
    }

    /// Wraps the header quoted by an ICMP error: as [`Self::new_checked`], except that the
    /// total length may exceed the buffer; [`Packet::payload`] is then what was quoted.
    pub fn new_checked_quoted(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check(true)?;
        Ok(packet)
    }

    fn check(&self, quoted: bool) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed("IPv4 header length below 20"));
        }
        if len < header_len {
            return Err(Error::Truncated);
        }
        if usize::from(self.total_len()) < header_len {
            return Err(Error::Malformed("IPv4 total length below header length"));
        }
        if !quoted && len < usize::from(self.total_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL times 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    fn flags_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) * 8
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SRC)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::DST)
    }

    /// True if the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::is_valid(checksum::sum(&self.buffer.as_ref()[..self.header_len()]))
    }

    /// End of the payload: the total length, or the buffer's end if that comes first (a
    /// quoted packet).
    fn payload_end(&self) -> usize {
        usize::from(self.total_len()).min(self.buffer.as_ref().len())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Raw option bytes between the fixed header and the payload.
    pub fn options(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer.as_ref();
        &buffer[field::OPTIONS..self.header_len()]
    }

    /// The payload up to the total length (or as much as a quoted packet holds).
    pub fn payload(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer.as_ref();
        &buffer[self.header_len()..self.payload_end()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, at most 60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = (dscp << 2) | (ecn & 0x03);
    }

    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    /// Sets DF, MF and the fragment offset in bytes (truncated to a multiple of 8).
    pub fn set_flags_and_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut value = (offset / 8) & OFFSET_MASK;
        if dont_frag {
            value |= FLAG_DF;
        }
        if more_frags {
            value |= FLAG_MF;
        }
        write_u16(self.buffer.as_mut(), field::FLG_OFF, value);
    }

    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.0;
    }

    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&addr.octets());
    }

    /// Computes and writes the header checksum.
    pub fn fill_checksum(&mut self) {
        let header_len = self.header_len();
        let buf = self.buffer.as_mut();
        buf[field::CHECKSUM_RANGE].fill(0);
        let value = checksum::checksum(&buf[..header_len]);
        write_u16(buf, field::CHECKSUM, value);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.payload_end());
        &mut self.buffer.as_mut()[start..end]
    }
}

/// A parsed IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Total length minus header length (for a quoted packet: of the original packet).
    pub payload_len: usize,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// In bytes; a multiple of 8.
    pub frag_offset: u16,
    /// 6 bits; emit masks the rest.
    pub dscp: u8,
    /// 2 bits; emit masks the rest.
    pub ecn: u8,
}

impl Repr {
    /// Parses a checked view (either constructor). Options are skipped.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        checksum: ChecksumMode,
    ) -> Result<Self> {
        // Re-check in quoted mode (the weaker one) so a view from new_unchecked cannot panic.
        packet.check(true)?;
        if packet.version() != 4 {
            return Err(Error::Malformed("IP version is not 4"));
        }
        if checksum == ChecksumMode::Verify && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
        })
    }

    /// Header length: the payload goes at this offset.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with its checksum. The payload is the caller's (its length is
    /// `payload_len`); the buffer need only hold the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        ensure_room(packet.buffer.as_ref(), HEADER_LEN)?;
        let total = HEADER_LEN
            .checked_add(self.payload_len)
            .and_then(|t| u16::try_from(t).ok())
            .ok_or(Error::TooLarge("IPv4 total length"))?;
        if self.frag_offset & 7 != 0 {
            return Err(Error::Malformed("fragment offset not a multiple of 8"));
        }
        packet.set_version_and_header_len(HEADER_LEN);
        packet.set_dscp_ecn(self.dscp, self.ecn);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        packet.set_flags_and_offset(self.dont_frag, self.more_frags, self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
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
    fn parse_golden_syn() {
        let packet = Packet::new_checked(ip_of(&testutil::TCP_SYN_V4)).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len(), 60);
        assert_eq!(packet.ident(), 0xc053);
        assert!(packet.dont_frag() && !packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert_eq!(packet.checksum(), 0x7c66);
        assert!(packet.verify_checksum());
        let repr = Repr::parse(&packet, ChecksumMode::Verify).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_addr: Ipv4Addr::LOCALHOST,
                dst_addr: Ipv4Addr::LOCALHOST,
                protocol: IpProtocol::TCP,
                payload_len: 40,
                ttl: 64,
                ident: 0xc053,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                dscp: 0,
                ecn: 0,
            }
        );
        assert_eq!(packet.payload().len(), 40);
    }

    #[test]
    fn parse_golden_tos_and_checksum_error() {
        // The port-unreachable's header has TOS 0xc0 (DSCP 48, CS6).
        let mut ip = ip_of(&testutil::ICMPV4_PORT_UNREACH).to_vec();
        let repr = Repr::parse(&Packet::new_checked(&ip[..]).unwrap(), ChecksumMode::Verify);
        assert_eq!(repr.map(|r| (r.dscp, r.ecn)), Ok((48, 0)));
        ip[8] = 63; // TTL changed, checksum not
        let packet = Packet::new_checked(&ip[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet, ChecksumMode::Verify),
            Err(Error::Checksum)
        );
        assert!(Repr::parse(&packet, ChecksumMode::Ignore).is_ok());
    }

    #[test]
    fn emit_golden() {
        for frame in [
            &testutil::TCP_SYN_V4[..],
            &testutil::ICMPV4_TIME_EXCEEDED[..],
        ] {
            let ip = ip_of(frame);
            let repr = Repr::parse(&Packet::new_checked(ip).unwrap(), ChecksumMode::Verify);
            let repr = repr.unwrap();
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
            assert_eq!(buf, ip[..HEADER_LEN]);
        }
    }

    #[test]
    fn options_and_padding() {
        // A header with 4 bytes of options (NOP x3, EOL) and 2 bytes of link padding.
        let mut ip = vec![0x46, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1, 0]);
        ip.extend_from_slice(&[0xaa; 4]);
        ip.extend_from_slice(&[0, 0]);
        Packet::new_unchecked(&mut ip[..]).fill_checksum();
        let packet = Packet::new_checked(&ip[..]).unwrap();
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        assert_eq!(packet.payload(), &[0xaa; 4]);
        let repr = Repr::parse(&packet, ChecksumMode::Verify).unwrap();
        assert_eq!(repr.payload_len, 4);
    }

    #[test]
    fn quoted_header() {
        // The time-exceeded quotes a 84-byte packet but holds only 28 bytes of it.
        let icmp = &testutil::ICMPV4_TIME_EXCEEDED[34..];
        let quoted = &icmp[8..];
        assert_eq!(Packet::new_checked(quoted), Err(Error::Truncated));
        let packet = Packet::new_checked_quoted(quoted).unwrap();
        assert_eq!(packet.total_len(), 84);
        assert_eq!(packet.payload().len(), 8);
        let repr = Repr::parse(&packet, ChecksumMode::Verify).unwrap();
        assert_eq!(repr.ttl, 1);
        assert_eq!(repr.payload_len, 64);
    }

    #[test]
    fn round_trip() {
        let repr = Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 2),
            dst_addr: Ipv4Addr::new(198, 51, 100, 7),
            protocol: IpProtocol::UDP,
            payload_len: 8,
            ttl: 37,
            ident: 0xbeef,
            dont_frag: false,
            more_frags: true,
            frag_offset: 1480,
            dscp: 46,
            ecn: 2,
        };
        let mut buf = marked(repr.buffer_len() + repr.payload_len);
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&packet, ChecksumMode::Verify), Ok(repr));
        let big = Repr {
            payload_len: 65_516,
            ..repr
        };
        assert!(matches!(
            big.emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(Error::TooLarge(_))
        ));
    }

    #[test]
    fn checked_never_panics() {
        let check = |p: &Packet<&[u8]>| {
            let _ = (
                p.version(),
                p.header_len(),
                p.dscp(),
                p.ecn(),
                p.total_len(),
            );
            let _ = (p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset());
            let _ = (
                p.ttl(),
                p.protocol(),
                p.checksum(),
                p.src_addr(),
                p.dst_addr(),
            );
            let _ = (p.verify_checksum(), p.options(), p.payload());
            let _ = Repr::parse(p, ChecksumMode::Verify);
        };
        hammer(ip_of(&testutil::ICMPV4_TIME_EXCEEDED), |buf| {
            if let Ok(p) = Packet::new_checked(buf) {
                check(&p);
            }
            if let Ok(p) = Packet::new_checked_quoted(buf) {
                check(&p);
            }
        });
    }
}
