//! ICMPv6 (RFC 4443) and the neighbour discovery messages host discovery needs (RFC 4861):
//! echo request and reply, destination unreachable, packet too big and time exceeded (with the
//! quoted original packet), and neighbour solicitation and advertisement with their
//! link-layer address options.
//!
//! The view's buffer must be exactly the ICMPv6 message: the checksum covers all of it, and
//! an IPv6 pseudo-header. Hop limit 255 on neighbour discovery is the IP layer's to check.

use std::fmt;
use std::net::Ipv6Addr;

use crate::ethernet::MacAddr;
use crate::{
    checksum, ensure_room, ipv6, read_u16, read_u32, write_u16, write_u32, ChecksumMode, Error,
    IpProtocol, Quoted, Result,
};

/// ICMPv6 message type.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message(pub u8);

impl Message {
    pub const DST_UNREACHABLE: Self = Self(1);
    pub const PACKET_TOO_BIG: Self = Self(2);
    pub const TIME_EXCEEDED: Self = Self(3);
    pub const PARAM_PROBLEM: Self = Self(4);
    pub const ECHO_REQUEST: Self = Self(128);
    pub const ECHO_REPLY: Self = Self(129);
    pub const ROUTER_SOLICIT: Self = Self(133);
    pub const ROUTER_ADVERT: Self = Self(134);
    pub const NEIGHBOR_SOLICIT: Self = Self(135);
    pub const NEIGHBOR_ADVERT: Self = Self(136);
    pub const REDIRECT: Self = Self(137);

    /// Error messages (types below 128) carry the start of the packet that caused them.
    pub fn is_error(self) -> bool {
        self.0 < 128
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message({})", self.0)
    }
}

/// Destination unreachable codes (RFC 4443 section 3.1).
pub mod unreachable {
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const BEYOND_SCOPE: u8 = 2;
    pub const ADDRESS: u8 = 3;
    pub const PORT: u8 = 4;
    pub const POLICY_FAILED: u8 = 5;
    pub const REJECT_ROUTE: u8 = 6;
}

/// Flags of a neighbour advertisement (the top bits of its second word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags(pub u8);

impl NeighborFlags {
    pub const ROUTER: Self = Self(0x80);
    pub const SOLICITED: Self = Self(0x40);
    pub const OVERRIDE: Self = Self(0x20);
    const MASK: u8 = 0xe0;

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for NeighborFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    // Identifier and sequence number, MTU, pointer, or NA flags, depending on type.
    pub const REST: usize = 4;
    pub const SEQ_NO: usize = 6;
    pub const DATA: usize = 8;
    pub const TARGET: usize = 8;
    pub const NDP_OPTIONS: usize = 24;
}

/// Length of the header common to all messages.
pub const HEADER_LEN: usize = 8;
const NDP_LEN: usize = 24;
const NDP_SOURCE_LLADDR: u8 = 1;
const NDP_TARGET_LLADDR: u8 = 2;

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checks: accessors panic if it is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header. Type-specific fields past it
    /// have accessors that return `None` (or nothing) when absent.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> Message {
        Message(self.buffer.as_ref()[field::TYPE])
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::REST)
    }

    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SEQ_NO)
    }

    /// The second word: MTU of a packet-too-big, pointer of a parameter problem.
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST)
    }

    /// Flags of a neighbour advertisement.
    pub fn neighbor_flags(&self) -> NeighborFlags {
        NeighborFlags(self.buffer.as_ref()[field::REST] & NeighborFlags::MASK)
    }

    /// Target address of a neighbour solicitation or advertisement, if long enough.
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        let bytes = self.buffer.as_ref().get(field::TARGET..NDP_LEN)?;
        Some(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?))
    }

    /// True if the checksum over the pseudo-header and the whole buffer is correct.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let data = self.buffer.as_ref();
        match u32::try_from(data.len()) {
            Ok(len) => {
                let pseudo = checksum::pseudo_header_v6(*src, *dst, IpProtocol::ICMPV6, len);
                checksum::is_valid(checksum::combine(pseudo, checksum::sum(data)))
            }
            Err(_) => false,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Everything after the 8-byte header: echo data, or what an error quotes.
    pub fn data(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer.as_ref();
        &buffer[field::DATA..]
    }

    /// The quoted original packet of an error message (`None` for informational messages).
    pub fn inner(&self) -> Option<&'a [u8]> {
        self.msg_type().is_error().then(|| self.data())
    }

    /// The quoted packet of an error, parsed: see [`parse_quoted`].
    pub fn quoted(&self) -> Result<Quoted<'a, ipv6::Repr>> {
        parse_quoted(
            self.inner()
                .ok_or(Error::Malformed("not an ICMPv6 error"))?,
        )
    }

    /// Raw neighbour discovery options after the target address (empty if too short); see
    /// [`ndp_options`].
    pub fn ndp_options(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer.as_ref();
        buffer.get(field::NDP_OPTIONS..).unwrap_or_default()
    }
}

/// Parses the IPv6 packet an ICMPv6 error quotes (as much as fitted in the error).
pub fn parse_quoted(inner: &[u8]) -> Result<Quoted<'_, ipv6::Repr>> {
    let packet = ipv6::Packet::new_checked_quoted(inner)?;
    Ok(Quoted {
        ip: ipv6::Repr::parse(&packet)?,
        transport: packet.payload(),
    })
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.0;
    }

    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_rest_of_header(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::REST, value);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes and writes the checksum over the pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).map_err(|_| Error::TooLarge("ICMPv6 length"))?;
        let pseudo = checksum::pseudo_header_v6(*src, *dst, IpProtocol::ICMPV6, len);
        let value = checksum::finish(checksum::combine(pseudo, checksum::sum(data)));
        self.set_checksum(value);
        Ok(())
    }
}

/// One neighbour discovery option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpOption<'a> {
    SourceLinkLayerAddr(&'a [u8]),
    TargetLinkLayerAddr(&'a [u8]),
    /// `data` excludes the type and length bytes.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// Iterates over raw neighbour discovery options; a zero length (which RFC 4861 says must
/// discard the packet) or an overrun yields an error and ends iteration.
#[derive(Debug, Clone)]
pub struct NdpOptions<'a> {
    rest: &'a [u8],
}

pub fn ndp_options(raw: &[u8]) -> NdpOptions<'_> {
    NdpOptions { rest: raw }
}

impl<'a> Iterator for NdpOptions<'a> {
    type Item = Result<NdpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (kind, len) = match *self.rest {
            [] => return None,
            [kind, len, ..] => (kind, usize::from(len) * 8),
            [_] => (0, 2), // type without length: truncated below
        };
        let option = match self.rest.get(..len) {
            Some(option) if len > 0 => option,
            _ => {
                self.rest = &[];
                return Some(Err(if len == 0 {
                    Error::Malformed("NDP option length 0")
                } else {
                    Error::Truncated
                }));
            }
        };
        self.rest = self.rest.get(len..).unwrap_or_default();
        let data = option.get(2..).unwrap_or_default();
        Some(Ok(match kind {
            NDP_SOURCE_LLADDR => NdpOption::SourceLinkLayerAddr(data),
            NDP_TARGET_LLADDR => NdpOption::TargetLinkLayerAddr(data),
            kind => NdpOption::Unknown { kind, data },
        }))
    }
}

/// The first link-layer address option of `kind` that holds an Ethernet address.
fn find_lladdr(raw: &[u8], kind: u8) -> Result<Option<MacAddr>> {
    for option in ndp_options(raw) {
        let data = match option? {
            NdpOption::SourceLinkLayerAddr(d) if kind == NDP_SOURCE_LLADDR => d,
            NdpOption::TargetLinkLayerAddr(d) if kind == NDP_TARGET_LLADDR => d,
            _ => continue,
        };
        // Ethernet's option is 8 bytes: type, length, 6 address bytes.
        if let Some(mac) = MacAddr::from_bytes(data) {
            return Ok(Some(mac));
        }
    }
    Ok(None)
}

/// A parsed ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// `inner` is the quoted packet ([`parse_quoted`] reads it).
    DstUnreachable {
        code: u8,
        inner: &'a [u8],
    },
    PacketTooBig {
        mtu: u32,
        inner: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        inner: &'a [u8],
    },
    /// Options other than an Ethernet source link-layer address are skipped.
    NeighborSolicit {
        target_addr: Ipv6Addr,
        source_lladdr: Option<MacAddr>,
    },
    /// Options other than an Ethernet target link-layer address are skipped.
    NeighborAdvert {
        flags: NeighborFlags,
        target_addr: Ipv6Addr,
        target_lladdr: Option<MacAddr>,
    },
    /// Any other type (parameter problem, router discovery, redirect, ...), kept raw.
    Other {
        msg_type: Message,
        code: u8,
        rest_of_header: u32,
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses a checked view, verifying the checksum (pseudo-header from `src` and `dst`)
    /// unless told not to.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        checksum: ChecksumMode,
    ) -> Result<Self> {
        packet.check_len()?;
        if checksum == ChecksumMode::Verify && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        let (ident, seq_no, code) = (packet.echo_ident(), packet.echo_seq_no(), packet.msg_code());
        let target = || packet.target_addr().ok_or(Error::Truncated);
        Ok(match packet.msg_type() {
            Message::ECHO_REQUEST => Self::EchoRequest {
                ident,
                seq_no,
                data: packet.data(),
            },
            Message::ECHO_REPLY => Self::EchoReply {
                ident,
                seq_no,
                data: packet.data(),
            },
            Message::DST_UNREACHABLE => Self::DstUnreachable {
                code,
                inner: packet.data(),
            },
            Message::PACKET_TOO_BIG => Self::PacketTooBig {
                mtu: packet.rest_of_header(),
                inner: packet.data(),
            },
            Message::TIME_EXCEEDED => Self::TimeExceeded {
                code,
                inner: packet.data(),
            },
            Message::NEIGHBOR_SOLICIT => Self::NeighborSolicit {
                target_addr: target()?,
                source_lladdr: find_lladdr(packet.ndp_options(), NDP_SOURCE_LLADDR)?,
            },
            Message::NEIGHBOR_ADVERT => Self::NeighborAdvert {
                flags: packet.neighbor_flags(),
                target_addr: target()?,
                target_lladdr: find_lladdr(packet.ndp_options(), NDP_TARGET_LLADDR)?,
            },
            msg_type => Self::Other {
                msg_type,
                code,
                rest_of_header: packet.rest_of_header(),
                data: packet.data(),
            },
        })
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Self::EchoRequest { data, .. }
            | Self::EchoReply { data, .. }
            | Self::Other { data, .. } => HEADER_LEN + data.len(),
            Self::DstUnreachable { inner, .. }
            | Self::PacketTooBig { inner, .. }
            | Self::TimeExceeded { inner, .. } => HEADER_LEN + inner.len(),
            Self::NeighborSolicit {
                source_lladdr: lladdr,
                ..
            }
            | Self::NeighborAdvert {
                target_lladdr: lladdr,
                ..
            } => NDP_LEN + if lladdr.is_some() { 8 } else { 0 },
        }
    }

    /// Writes the message into the first `buffer_len()` bytes, checksum included.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<()> {
        let len = self.buffer_len();
        ensure_room(packet.buffer.as_ref(), len)?;
        let mut out = Packet::new_unchecked(&mut packet.buffer.as_mut()[..len]);
        let pair = |ident: u16, seq_no: u16| (u32::from(ident) << 16) | u32::from(seq_no);
        let (msg_type, code, rest, body): (Message, u8, u32, &[u8]) = match *self {
            Self::EchoRequest {
                ident,
                seq_no,
                data,
            } => (Message::ECHO_REQUEST, 0, pair(ident, seq_no), data),
            Self::EchoReply {
                ident,
                seq_no,
                data,
            } => (Message::ECHO_REPLY, 0, pair(ident, seq_no), data),
            Self::DstUnreachable { code, inner } => (Message::DST_UNREACHABLE, code, 0, inner),
            Self::PacketTooBig { mtu, inner } => (Message::PACKET_TOO_BIG, 0, mtu, inner),
            Self::TimeExceeded { code, inner } => (Message::TIME_EXCEEDED, code, 0, inner),
            Self::NeighborSolicit {
                target_addr,
                source_lladdr,
            } => {
                emit_ndp(
                    out.data_mut(),
                    target_addr,
                    NDP_SOURCE_LLADDR,
                    source_lladdr,
                );
                (Message::NEIGHBOR_SOLICIT, 0, 0, &[])
            }
            Self::NeighborAdvert {
                flags,
                target_addr,
                target_lladdr,
            } => {
                emit_ndp(
                    out.data_mut(),
                    target_addr,
                    NDP_TARGET_LLADDR,
                    target_lladdr,
                );
                let rest = u32::from(flags.0 & NeighborFlags::MASK) << 24;
                (Message::NEIGHBOR_ADVERT, 0, rest, &[])
            }
            Self::Other {
                msg_type,
                code,
                rest_of_header,
                data,
            } => (msg_type, code, rest_of_header, data),
        };
        out.set_msg_type(msg_type);
        out.set_msg_code(code);
        out.set_rest_of_header(rest);
        if !body.is_empty() {
            out.data_mut().copy_from_slice(body);
        }
        out.fill_checksum(src, dst)
    }
}

/// Writes the target address and an optional Ethernet link-layer address option into `data`
/// (the message after its first 8 bytes, sized by `buffer_len`).
fn emit_ndp(data: &mut [u8], target: Ipv6Addr, kind: u8, lladdr: Option<MacAddr>) {
    data[..16].copy_from_slice(&target.octets());
    if let Some(mac) = lladdr {
        data[16] = kind;
        data[17] = 1; // in units of 8 bytes
        data[18..24].copy_from_slice(&mac.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{self, hammer, marked};

    /// The ICMPv6 message of a frame and its IPv6 addresses.
    fn split(frame: &[u8]) -> (&[u8], Ipv6Addr, Ipv6Addr) {
        let ip = ipv6::Packet::new_checked(&frame[14..]).unwrap();
        (ip.payload(), ip.src_addr(), ip.dst_addr())
    }

    fn parse(frame: &[u8]) -> Repr<'_> {
        let (icmp, src, dst) = split(frame);
        let packet = Packet::new_checked(icmp).unwrap();
        Repr::parse(&packet, &src, &dst, ChecksumMode::Verify).unwrap()
    }

    const GOLDEN: [&[u8]; 8] = [
        &testutil::ICMPV6_ECHO_REQUEST,
        &testutil::ICMPV6_ECHO_REPLY,
        &testutil::ICMPV6_PORT_UNREACH,
        &testutil::ICMPV6_PACKET_TOO_BIG,
        &testutil::ICMPV6_TIME_EXCEEDED,
        &testutil::ICMPV6_NEIGHBOR_SOLICIT,
        &testutil::ICMPV6_NEIGHBOR_ADVERT,
        &testutil::TCP_SYN_V6, // not ICMPv6: parse must fail on the checksum
    ];

    #[test]
    fn parse_golden_echo_and_errors() {
        assert!(matches!(
            parse(GOLDEN[0]),
            Repr::EchoRequest { ident: 11817, seq_no: 1, data } if data.len() == 56
        ));
        assert!(matches!(
            parse(GOLDEN[1]),
            Repr::EchoReply { ident: 11817, .. }
        ));
        let (icmp, ..) = split(GOLDEN[2]);
        let packet = Packet::new_checked(icmp).unwrap();
        assert_eq!(packet.msg_code(), unreachable::PORT);
        let quoted = packet.quoted().unwrap();
        assert_eq!(quoted.ip.next_header, IpProtocol::UDP);
        assert_eq!(quoted.ports(), Some((44748, 5559)));
        assert!(
            matches!(parse(GOLDEN[3]), Repr::PacketTooBig { mtu: 1280, inner } if inner.len() == 53)
        );
        assert!(matches!(
            parse(GOLDEN[4]),
            Repr::TimeExceeded { code: 0, .. }
        ));
    }

    #[test]
    fn parse_golden_neighbor_discovery() {
        assert_eq!(
            parse(GOLDEN[5]),
            Repr::NeighborSolicit {
                target_addr: "fd00::1".parse().unwrap(),
                source_lladdr: Some(MacAddr([2, 0xfc, 0, 0, 0, 1])),
            }
        );
        let Repr::NeighborAdvert {
            flags,
            target_addr,
            target_lladdr,
        } = parse(GOLDEN[6])
        else {
            panic!("not an advertisement")
        };
        assert!(flags.contains(NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE));
        assert!(!flags.contains(NeighborFlags::ROUTER));
        assert_eq!(target_addr, "fd00::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(target_lladdr, Some(MacAddr([2, 0xfc, 0, 0, 0, 0xfe])));
    }

    #[test]
    fn checksum_covers_pseudo_header() {
        let (icmp, src, _) = split(GOLDEN[6]);
        let packet = Packet::new_checked(icmp).unwrap();
        let wrong_dst = Ipv6Addr::LOCALHOST;
        let parsed = Repr::parse(&packet, &src, &wrong_dst, ChecksumMode::Verify);
        assert_eq!(parsed, Err(Error::Checksum));
        let (tcp, src, dst) = split(GOLDEN[7]);
        let packet = Packet::new_checked(tcp).unwrap();
        assert!(Repr::parse(&packet, &src, &dst, ChecksumMode::Verify).is_err());
    }

    #[test]
    fn emit_golden() {
        for frame in &GOLDEN[..7] {
            let (icmp, src, dst) = split(frame);
            let repr = parse(frame);
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &src, &dst)
                .unwrap();
            assert_eq!(buf, icmp, "{repr:?}");
        }
    }

    #[test]
    fn ndp_option_errors() {
        let opts: Vec<_> = ndp_options(&[1, 0, 2, 3]).collect();
        assert_eq!(opts, [Err(Error::Malformed("NDP option length 0"))]);
        let opts: Vec<_> = ndp_options(&[1, 2, 0, 0, 0, 0, 0, 0]).collect();
        assert_eq!(opts, [Err(Error::Truncated)]);
        let opts: Vec<_> = ndp_options(&[9, 1, 0, 0, 0, 0, 0, 0, 5]).collect();
        assert_eq!(
            opts[0],
            Ok(NdpOption::Unknown {
                kind: 9,
                data: &[0; 6]
            })
        );
        assert_eq!(opts[1], Err(Error::Truncated));
    }

    #[test]
    fn round_trip_every_variant() {
        let (src, dst): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let data = [9, 8, 7];
        let reprs = [
            Repr::EchoRequest {
                ident: 1,
                seq_no: 2,
                data: &data,
            },
            Repr::EchoReply {
                ident: 1,
                seq_no: 2,
                data: &[],
            },
            Repr::DstUnreachable {
                code: unreachable::ADMIN_PROHIBITED,
                inner: &data,
            },
            Repr::PacketTooBig {
                mtu: 1280,
                inner: &data,
            },
            Repr::TimeExceeded {
                code: 1,
                inner: &[],
            },
            Repr::NeighborSolicit {
                target_addr: dst,
                source_lladdr: None,
            },
            Repr::NeighborAdvert {
                flags: NeighborFlags::ROUTER,
                target_addr: src,
                target_lladdr: Some(MacAddr([1, 2, 3, 4, 5, 6])),
            },
            Repr::Other {
                msg_type: Message::PARAM_PROBLEM,
                code: 1,
                rest_of_header: 40,
                data: &data,
            },
        ];
        for repr in reprs {
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &src, &dst)
                .unwrap();
            let packet = Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(
                Repr::parse(&packet, &src, &dst, ChecksumMode::Verify),
                Ok(repr)
            );
        }
    }

    #[test]
    fn checked_never_panics() {
        for frame in [GOLDEN[3], GOLDEN[5], GOLDEN[6]] {
            let (icmp, src, dst) = split(frame);
            hammer(icmp, |buf| {
                if let Ok(p) = Packet::new_checked(buf) {
                    let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident());
                    let _ = (p.echo_seq_no(), p.rest_of_header(), p.neighbor_flags());
                    let _ = (p.target_addr(), p.verify_checksum(&src, &dst), p.data());
                    let _ = (p.inner(), ndp_options(p.ndp_options()).count());
                    if let Ok(q) = p.quoted() {
                        let _ = (q.ports(), q.tcp_seq(), q.echo_ident_seq());
                    }
                    let _ = Repr::parse(&p, &src, &dst, ChecksumMode::Ignore);
                }
            });
        }
    }
}
