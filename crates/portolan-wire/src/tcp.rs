//! TCP segments (RFC 9293): header fields, all twelve flag bits (including the reserved ones
//! Nmap's OS detection sets and reports), the checksum over IPv4 and IPv6 pseudo-headers, and
//! options.
//!
//! Options stay raw bytes in the view and the `Repr` so that any list, in any order, can be
//! emitted and seen again exactly as sent: OS fingerprints depend on option order and padding.
//! [`TcpOption`] and [`options`] turn them into typed values and back.

use std::fmt;

use crate::{
    checksum, ensure_room, read_u16, read_u32, write_u16, write_u32, ChecksumMode, Error, IpPair,
    IpProtocol, Result,
};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    // Data offset (4 bits) and the 12 flag bits share this 16-bit word.
    pub const OFF_FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Most option bytes a header can hold (data offset 15).
pub const MAX_OPTIONS_LEN: usize = 40;

/// The 12 bits after the data offset: 8 classic flags, AE (formerly NS) and 3 reserved bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    pub const FIN: Self = Self(0x001);
    pub const SYN: Self = Self(0x002);
    pub const RST: Self = Self(0x004);
    pub const PSH: Self = Self(0x008);
    pub const ACK: Self = Self(0x010);
    pub const URG: Self = Self(0x020);
    pub const ECE: Self = Self(0x040);
    pub const CWR: Self = Self(0x080);
    /// Accurate ECN (RFC 9768); formerly the ECN nonce sum (NS).
    pub const AE: Self = Self(0x100);
    /// The three bits still reserved; Nmap's ECN probe sets one and its `Q` test looks at them.
    pub const RESERVED: Self = Self(0xe00);
    pub const ALL: Self = Self(0xfff);

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 9] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "AE"];
        f.write_str("Flags(")?;
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if self.intersects(Self::RESERVED) {
            write!(f, "{}res=0x{:x}", if first { "" } else { "|" }, self.0 >> 9)?;
        }
        f.write_str(")")
    }
}

/// A view of a TCP segment. The buffer must be exactly the segment (the IP payload): the
/// checksum covers all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks: accessors panic if it is shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking that the data offset is at least 5 and fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            Err(Error::Truncated)
        } else if self.header_len() < HEADER_LEN {
            Err(Error::Malformed("TCP data offset below 5"))
        } else if len < self.header_len() {
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

    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ)
    }

    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset times 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFF_FLAGS] >> 4) * 4
    }

    pub fn flags(&self) -> Flags {
        Flags(read_u16(self.buffer.as_ref(), field::OFF_FLAGS) & Flags::ALL.0)
    }

    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// True if the checksum over `ips`' pseudo-header and the whole buffer is correct.
    pub fn verify_checksum(&self, ips: &IpPair) -> bool {
        let data = self.buffer.as_ref();
        match ips.pseudo_sum(IpProtocol::TCP, data.len()) {
            Some(pseudo) => checksum::is_valid(checksum::combine(pseudo, checksum::sum(data))),
            None => false,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Raw option bytes, padding included; see [`options`] to iterate.
    pub fn options(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer.as_ref();
        &buffer[field::OPTIONS..self.header_len()]
    }

    pub fn payload(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer.as_ref();
        &buffer[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ, value);
    }

    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::ACK, value);
    }

    /// Sets the header length in bytes (a multiple of 4, 20 to 60) and the flags together:
    /// they share one 16-bit word.
    pub fn set_header_len_and_flags(&mut self, header_len: usize, flags: Flags) {
        let word = (((header_len / 4) as u16 & 0xf) << 12) | (flags.0 & Flags::ALL.0);
        write_u16(self.buffer.as_mut(), field::OFF_FLAGS, word);
    }

    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and writes the checksum over `ips`' pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, ips: &IpPair) -> Result<()> {
        self.set_checksum(0);
        let value = segment_checksum(self.buffer.as_ref(), ips)?;
        self.set_checksum(value);
        Ok(())
    }
}

fn segment_checksum(segment: &[u8], ips: &IpPair) -> Result<u16> {
    let pseudo = ips
        .pseudo_sum(IpProtocol::TCP, segment.len())
        .ok_or(Error::TooLarge("TCP segment length"))?;
    Ok(checksum::finish(checksum::combine(
        pseudo,
        checksum::sum(segment),
    )))
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Kind 0: ends the list; what follows is padding.
    EndOfList,
    /// Kind 1.
    NoOperation,
    /// Kind 2.
    MaxSegmentSize(u16),
    /// Kind 3: the shift count.
    WindowScale(u8),
    /// Kind 4.
    SackPermitted,
    /// Kind 8.
    Timestamps { tsval: u32, tsecr: u32 },
    /// Any other kind, or a known kind with an unexpected length (kept rather than rejected so
    /// that odd stacks can still be fingerprinted). `data` excludes kind and length bytes.
    Unknown { kind: u8, data: &'a [u8] },
}

impl<'a> TcpOption<'a> {
    /// Parses the option at the start of `buf`; returns it and the bytes it took.
    pub fn parse(buf: &'a [u8]) -> Result<(Self, usize)> {
        let (&kind, rest) = buf.split_first().ok_or(Error::Truncated)?;
        match kind {
            0 => return Ok((Self::EndOfList, 1)),
            1 => return Ok((Self::NoOperation, 1)),
            _ => {}
        }
        let &len = rest.first().ok_or(Error::Truncated)?;
        let len = usize::from(len);
        if len < 2 {
            return Err(Error::Malformed("TCP option length below 2"));
        }
        let data = buf.get(2..len).ok_or(Error::Truncated)?;
        let option = match (kind, data) {
            (2, &[a, b]) => Self::MaxSegmentSize(u16::from_be_bytes([a, b])),
            (3, &[shift]) => Self::WindowScale(shift),
            (4, []) => Self::SackPermitted,
            (8, &[a, b, c, d, e, f, g, h]) => Self::Timestamps {
                tsval: u32::from_be_bytes([a, b, c, d]),
                tsecr: u32::from_be_bytes([e, f, g, h]),
            },
            _ => Self::Unknown { kind, data },
        };
        Ok((option, len))
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Self::EndOfList | Self::NoOperation => 1,
            Self::MaxSegmentSize(_) => 4,
            Self::WindowScale(_) => 3,
            Self::SackPermitted => 2,
            Self::Timestamps { .. } => 10,
            Self::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// The option's kind byte.
    pub fn kind(&self) -> u8 {
        match *self {
            Self::EndOfList => 0,
            Self::NoOperation => 1,
            Self::MaxSegmentSize(_) => 2,
            Self::WindowScale(_) => 3,
            Self::SackPermitted => 4,
            Self::Timestamps { .. } => 8,
            Self::Unknown { kind, .. } => kind,
        }
    }

    /// Writes the option at the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let len_byte = u8::try_from(len).map_err(|_| Error::TooLarge("TCP option"))?;
        ensure_room(buf, len)?;
        buf[0] = self.kind();
        if len > 1 {
            buf[1] = len_byte;
        }
        let body = &mut buf[len.min(2)..len];
        match *self {
            Self::MaxSegmentSize(mss) => body.copy_from_slice(&mss.to_be_bytes()),
            Self::WindowScale(shift) => body.copy_from_slice(&[shift]),
            Self::Timestamps { tsval, tsecr } => {
                body[..4].copy_from_slice(&tsval.to_be_bytes());
                body[4..].copy_from_slice(&tsecr.to_be_bytes());
            }
            Self::Unknown { data, .. } => body.copy_from_slice(data),
            Self::EndOfList | Self::NoOperation | Self::SackPermitted => {}
        }
        Ok(len)
    }
}

/// Iterates over raw option bytes; stops after an end-of-list option (the rest is padding) or
/// at the first malformed option, which it yields as an error.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

/// Iterates over the options in `raw` (e.g. [`Packet::options`] or [`Repr::options`]).
pub fn options(raw: &[u8]) -> Options<'_> {
    Options { rest: raw }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match TcpOption::parse(self.rest) {
            Ok((option, len)) => {
                self.rest = match option {
                    TcpOption::EndOfList => &[],
                    _ => self.rest.get(len..).unwrap_or_default(),
                };
                Some(Ok(option))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Writes `list` into `buf`, zero-padded (end-of-list) to a multiple of 4 as the header needs;
/// returns the padded length.
pub fn emit_options(list: &[TcpOption], buf: &mut [u8]) -> Result<usize> {
    let mut at = 0;
    for option in list {
        at += option.emit(buf.get_mut(at..).ok_or(Error::BufferTooSmall)?)?;
    }
    let padded = at.next_multiple_of(4);
    buf.get_mut(at..padded)
        .ok_or(Error::BufferTooSmall)?
        .fill(0);
    Ok(padded)
}

/// A parsed TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    /// Kept even without the ACK flag: some stacks leak data there, and fingerprints look.
    pub ack_number: u32,
    pub flags: Flags,
    pub window_len: u16,
    pub urgent_at: u16,
    /// Raw option bytes; emit pads them with zeros to a multiple of 4 (at most 40 bytes).
    pub options: &'a [u8],
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
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            options: packet.options(),
            payload: packet.payload(),
        })
    }

    /// Typed view of [`Self::options`].
    pub fn options(&self) -> Options<'a> {
        options(self.options)
    }

    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len().next_multiple_of(4)
    }

    /// Header, options and payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Writes the segment into the first `buffer_len()` bytes, checksum included.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        ips: &IpPair,
    ) -> Result<()> {
        if self.options.len() > MAX_OPTIONS_LEN {
            return Err(Error::TooLarge("TCP options"));
        }
        let (header_len, total) = (self.header_len(), self.buffer_len());
        ensure_room(packet.buffer.as_ref(), total)?;
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.set_header_len_and_flags(header_len, self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(self.urgent_at);
        let buf = &mut packet.buffer.as_mut()[..total];
        let options = &mut buf[field::OPTIONS..header_len];
        options.fill(0);
        options[..self.options.len()].copy_from_slice(self.options);
        buf[header_len..].copy_from_slice(self.payload);
        let value = segment_checksum(buf, ips)?;
        packet.set_checksum(value);
        Ok(())
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

    fn v4(frame: &[u8]) -> &[u8] {
        &frame[34..]
    }

    #[test]
    fn parse_golden_syn() {
        let packet = Packet::new_checked(v4(&testutil::TCP_SYN_V4)).unwrap();
        assert_eq!(packet.checksum(), 0x0883);
        let repr = Repr::parse(&packet, &LO4, ChecksumMode::Verify).unwrap();
        assert_eq!((repr.src_port, repr.dst_port), (56470, 5555));
        assert_eq!(repr.seq_number, 2_517_985_612);
        assert_eq!(repr.flags, Flags::SYN);
        assert_eq!(repr.window_len, 65495);
        let opts: Vec<_> = repr.options().collect::<Result<_>>().unwrap();
        assert_eq!(
            opts,
            [
                TcpOption::MaxSegmentSize(65495),
                TcpOption::SackPermitted,
                TcpOption::Timestamps {
                    tsval: 1_728_769_733,
                    tsecr: 0
                },
                TcpOption::NoOperation,
                TcpOption::WindowScale(10),
            ]
        );
        assert!(repr.payload.is_empty());
    }

    #[test]
    fn parse_golden_synack_rst_psh_v6() {
        let synack = Packet::new_checked(v4(&testutil::TCP_SYNACK_V4)).unwrap();
        let synack = Repr::parse(&synack, &LO4, ChecksumMode::Verify).unwrap();
        assert_eq!(synack.flags, Flags::SYN | Flags::ACK);
        assert_eq!(synack.ack_number, 2_517_985_612 + 1);

        let rst = Packet::new_checked(v4(&testutil::TCP_RST_V4)).unwrap();
        let rst = Repr::parse(&rst, &LO4, ChecksumMode::Verify).unwrap();
        assert_eq!(rst.flags, Flags::RST | Flags::ACK);
        assert_eq!((rst.src_port, rst.window_len, rst.seq_number), (5556, 0, 0));

        let psh = Packet::new_checked(v4(&testutil::TCP_PSH_V4)).unwrap();
        let psh = Repr::parse(&psh, &LO4, ChecksumMode::Verify).unwrap();
        assert_eq!(psh.payload, b"hi\n");
        assert_eq!(
            psh.options,
            &[1, 1, 8, 10, 0x67, 0x0a, 0xee, 0xc5, 0xce, 0x22, 0x75, 0xd5]
        );

        let syn6 = Packet::new_checked(&testutil::TCP_SYN_V6[54..]).unwrap();
        let syn6 = Repr::parse(&syn6, &LO6, ChecksumMode::Verify).unwrap();
        assert_eq!((syn6.dst_port, syn6.seq_number), (5557, 3_252_334_959));
        // The same bytes checked against the wrong family's pseudo-header fail.
        let syn6 = Packet::new_checked(&testutil::TCP_SYN_V6[54..]).unwrap();
        assert!(!syn6.verify_checksum(&LO4));
    }

    #[test]
    fn emit_golden() {
        for frame in [
            &testutil::TCP_SYN_V4[..],
            &testutil::TCP_PSH_V4[..],
            &testutil::TCP_RST_V4[..],
        ] {
            let seg = v4(frame);
            let packet = Packet::new_checked(seg).unwrap();
            let repr = Repr::parse(&packet, &LO4, ChecksumMode::Verify).unwrap();
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &LO4)
                .unwrap();
            assert_eq!(buf, seg);
        }
        let seg = &testutil::TCP_SYN_V6[54..];
        let repr = Repr::parse(
            &Packet::new_checked(seg).unwrap(),
            &LO6,
            ChecksumMode::Verify,
        );
        let repr = repr.unwrap();
        let mut buf = marked(repr.buffer_len());
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &LO6)
            .unwrap();
        assert_eq!(buf, seg);
    }

    #[test]
    fn options_emit_and_parse() {
        // Nmap's OS detection probe T1-style list, with an unknown kind and a SACK block.
        let list = [
            TcpOption::WindowScale(10),
            TcpOption::NoOperation,
            TcpOption::MaxSegmentSize(1460),
            TcpOption::Timestamps {
                tsval: 0xffff_ffff,
                tsecr: 0,
            },
            TcpOption::SackPermitted,
            TcpOption::Unknown {
                kind: 5,
                data: &[0, 0, 0, 1, 0, 0, 0, 2],
            },
        ];
        let mut raw = marked(MAX_OPTIONS_LEN);
        let len = emit_options(&list, &mut raw).unwrap();
        assert_eq!(len, 32); // 30 bytes padded
        assert_eq!(raw[..3], [3, 3, 10]);
        assert_eq!(raw[30..32], [0, 0]);
        let parsed: Vec<_> = options(&raw[..len]).collect::<Result<_>>().unwrap();
        assert_eq!(parsed[..6], list);
        assert_eq!(parsed[6], TcpOption::EndOfList);
        assert_eq!(parsed.len(), 7);
        assert!(emit_options(&list, &mut [0u8; 31]).is_err());
    }

    #[test]
    fn odd_options() {
        // MSS with length 3 is kept as Unknown; length 1 is malformed; an overlong length is
        // truncation; each ends iteration with the error.
        let odd: Vec<_> = options(&[2, 3, 9, 1]).collect();
        assert_eq!(
            odd,
            [
                Ok(TcpOption::Unknown {
                    kind: 2,
                    data: &[9]
                }),
                Ok(TcpOption::NoOperation)
            ]
        );
        let bad: Vec<_> = options(&[1, 7, 1, 0]).collect();
        assert_eq!(bad[1], Err(Error::Malformed("TCP option length below 2")));
        assert_eq!(bad.len(), 2);
        let long: Vec<_> = options(&[8, 10, 0, 0]).collect();
        assert_eq!(long, [Err(Error::Truncated)]);
        assert_eq!(options(&[9]).collect::<Vec<_>>(), [Err(Error::Truncated)]);
    }

    #[test]
    fn round_trip_all_flags() {
        let ips = IpPair::V6 {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
        };
        for bit in 0..12 {
            let repr = Repr {
                src_port: 40000 + bit,
                dst_port: 443,
                seq_number: 0x0102_0304,
                ack_number: 0xa0b0_c0d0,
                flags: Flags(1 << bit),
                window_len: 1024,
                urgent_at: 7,
                options: &[2, 4, 5, 0xb4],
                payload: b"probe",
            };
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &ips)
                .unwrap();
            let packet = Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(Repr::parse(&packet, &ips, ChecksumMode::Verify), Ok(repr));
        }
        assert_eq!(
            format!("{:?}", Flags::SYN | Flags::ECE | Flags::CWR | Flags(0x800)),
            "Flags(SYN|ECE|CWR|res=0x4)"
        );
    }

    #[test]
    fn emit_errors() {
        let repr = Repr {
            src_port: 1,
            dst_port: 2,
            seq_number: 3,
            ack_number: 0,
            flags: Flags::SYN,
            window_len: 0,
            urgent_at: 0,
            options: &[1; 41],
            payload: &[],
        };
        let mut buf = [0u8; 80];
        let ips = LO4;
        assert!(matches!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &ips),
            Err(Error::TooLarge(_))
        ));
        let repr = Repr {
            options: &[],
            ..repr
        };
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..19]), &ips),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn checked_never_panics() {
        hammer(v4(&testutil::TCP_SYNACK_V4), |buf| {
            if let Ok(p) = Packet::new_checked(buf) {
                let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
                let _ = (p.header_len(), p.flags(), p.window_len(), p.checksum());
                let _ = (p.urgent_at(), p.verify_checksum(&LO4), p.payload());
                let _ = options(p.options()).count();
                let _ = Repr::parse(&p, &LO4, ChecksumMode::Ignore);
            }
            let _ = options(buf).count();
        });
    }
}
