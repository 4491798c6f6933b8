//! ICMP for IPv4 (RFC 792, RFC 950): echo (`-PE`), timestamp (`-PP`) and address mask (`-PM`)
//! requests and replies, and the errors a scan reads: destination unreachable and time
//! exceeded, whose quoted original packet identifies the probe they answer.
//!
//! The view's buffer must be exactly the ICMP message (the IP payload): the checksum covers
//! all of it.

use std::fmt;
use std::net::Ipv4Addr;

use crate::{
    checksum, ensure_room, get_u32, ipv4, read_u16, read_u32, write_u16, write_u32, ChecksumMode,
    Error, Quoted, Result,
};

/// ICMP message type.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message(pub u8);

impl Message {
    pub const ECHO_REPLY: Self = Self(0);
    pub const DST_UNREACHABLE: Self = Self(3);
    pub const SOURCE_QUENCH: Self = Self(4);
    pub const REDIRECT: Self = Self(5);
    pub const ECHO_REQUEST: Self = Self(8);
    pub const ROUTER_ADVERT: Self = Self(9);
    pub const ROUTER_SOLICIT: Self = Self(10);
    pub const TIME_EXCEEDED: Self = Self(11);
    pub const PARAM_PROBLEM: Self = Self(12);
    pub const TIMESTAMP_REQUEST: Self = Self(13);
    pub const TIMESTAMP_REPLY: Self = Self(14);
    pub const ADDRESS_MASK_REQUEST: Self = Self(17);
    pub const ADDRESS_MASK_REPLY: Self = Self(18);

    /// Error messages carry the start of the packet that caused them.
    pub fn is_error(self) -> bool {
        matches!(self.0, 3 | 4 | 5 | 11 | 12)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message({})", self.0)
    }
}

/// Destination unreachable codes (RFC 792, RFC 1812); Nmap reads 1, 2, 3, 9, 10 and 13 as
/// "filtered" (3 from the target itself as "closed" for UDP).
pub mod unreachable {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
    pub const SOURCE_ROUTE_FAILED: u8 = 5;
    pub const NET_UNKNOWN: u8 = 6;
    pub const HOST_UNKNOWN: u8 = 7;
    pub const NET_PROHIBITED: u8 = 9;
    pub const HOST_PROHIBITED: u8 = 10;
    pub const ADMIN_PROHIBITED: u8 = 13;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    // The second word: identifier and sequence number for queries, unused or type-specific
    // (next-hop MTU, pointer, gateway) for errors.
    pub const IDENT: usize = 4;
    pub const SEQ_NO: usize = 6;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const DATA: usize = 8;
    pub const ORIGINATE: usize = 8;
    pub const RECEIVE: usize = 12;
    pub const TRANSMIT: usize = 16;
    pub const ADDRESS_MASK: usize = 8;
}

/// Length of the header common to all messages.
pub const HEADER_LEN: usize = 8;
const TIMESTAMP_LEN: usize = 20;
const ADDRESS_MASK_LEN: usize = 12;

/// A view of an ICMP message.
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
    /// have accessors that return `None` when absent.
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

    /// Identifier of an echo, timestamp or address mask message.
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Sequence number of an echo, timestamp or address mask message.
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SEQ_NO)
    }

    /// The whole second word, whatever the type makes of it.
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::IDENT)
    }

    /// Next-hop MTU of a "fragmentation needed" unreachable (RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Originate, receive and transmit timestamps, if the message is long enough to hold them.
    pub fn timestamps(&self) -> Option<(u32, u32, u32)> {
        let buf = self.buffer.as_ref();
        Some((
            get_u32(buf, field::ORIGINATE)?,
            get_u32(buf, field::RECEIVE)?,
            get_u32(buf, field::TRANSMIT)?,
        ))
    }

    /// The address mask field, if the message is long enough to hold it.
    pub fn address_mask(&self) -> Option<Ipv4Addr> {
        get_u32(self.buffer.as_ref(), field::ADDRESS_MASK).map(Ipv4Addr::from)
    }

    /// True if the checksum over the whole buffer is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::is_valid(checksum::sum(self.buffer.as_ref()))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Everything after the 8-byte header: echo data, or what an error quotes.
    pub fn data(&self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer.as_ref();
        &buffer[field::DATA..]
    }

    /// The quoted original packet of an error message (`None` for queries and replies).
    pub fn inner(&self) -> Option<&'a [u8]> {
        self.msg_type().is_error().then(|| self.data())
    }

    /// The quoted packet of an error, parsed: see [`parse_quoted`].
    pub fn quoted(&self) -> Result<Quoted<'a, ipv4::Repr>> {
        parse_quoted(self.inner().ok_or(Error::Malformed("not an ICMP error"))?)
    }
}

/// Parses the IPv4 packet an ICMP error quotes. The quoted header's checksum is not verified:
/// NATs rewrite quoted headers and do not always fix it, and matching the probe needs only
/// addresses, protocol and ports.
pub fn parse_quoted(inner: &[u8]) -> Result<Quoted<'_, ipv4::Repr>> {
    let packet = ipv4::Packet::new_checked_quoted(inner)?;
    Ok(Quoted {
        ip: ipv4::Repr::parse(&packet, ChecksumMode::Ignore)?,
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

    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SEQ_NO, value);
    }

    pub fn set_rest_of_header(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::IDENT, value);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes and writes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(value);
    }
}

/// A parsed ICMP message.
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
    /// `inner` is the quoted packet ([`parse_quoted`] reads it); `next_hop_mtu` is meaningful
    /// only for code 4.
    DstUnreachable {
        code: u8,
        next_hop_mtu: u16,
        inner: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        inner: &'a [u8],
    },
    /// Timestamps are milliseconds since midnight UT.
    TimestampRequest {
        ident: u16,
        seq_no: u16,
        originate: u32,
        receive: u32,
        transmit: u32,
    },
    TimestampReply {
        ident: u16,
        seq_no: u16,
        originate: u32,
        receive: u32,
        transmit: u32,
    },
    AddressMaskRequest {
        ident: u16,
        seq_no: u16,
        mask: Ipv4Addr,
    },
    AddressMaskReply {
        ident: u16,
        seq_no: u16,
        mask: Ipv4Addr,
    },
    /// Any other type (redirect, parameter problem, source quench, ...), kept raw.
    Other {
        msg_type: Message,
        code: u8,
        rest_of_header: u32,
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses a checked view, verifying the checksum unless told not to.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        checksum: ChecksumMode,
    ) -> Result<Self> {
        packet.check_len()?;
        if checksum == ChecksumMode::Verify && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let (ident, seq_no, code) = (packet.echo_ident(), packet.echo_seq_no(), packet.msg_code());
        let timestamps = || packet.timestamps().ok_or(Error::Truncated);
        let mask = || packet.address_mask().ok_or(Error::Truncated);
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
                next_hop_mtu: packet.next_hop_mtu(),
                inner: packet.data(),
            },
            Message::TIME_EXCEEDED => Self::TimeExceeded {
                code,
                inner: packet.data(),
            },
            Message::TIMESTAMP_REQUEST | Message::TIMESTAMP_REPLY => {
                let (originate, receive, transmit) = timestamps()?;
                if packet.msg_type() == Message::TIMESTAMP_REQUEST {
                    Self::TimestampRequest {
                        ident,
                        seq_no,
                        originate,
                        receive,
                        transmit,
                    }
                } else {
                    Self::TimestampReply {
                        ident,
                        seq_no,
                        originate,
                        receive,
                        transmit,
                    }
                }
            }
            Message::ADDRESS_MASK_REQUEST => Self::AddressMaskRequest {
                ident,
                seq_no,
                mask: mask()?,
            },
            Message::ADDRESS_MASK_REPLY => Self::AddressMaskReply {
                ident,
                seq_no,
                mask: mask()?,
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
            Self::DstUnreachable { inner, .. } | Self::TimeExceeded { inner, .. } => {
                HEADER_LEN + inner.len()
            }
            Self::TimestampRequest { .. } | Self::TimestampReply { .. } => TIMESTAMP_LEN,
            Self::AddressMaskRequest { .. } | Self::AddressMaskReply { .. } => ADDRESS_MASK_LEN,
        }
    }

    /// Writes the message into the first `buffer_len()` bytes, checksum included.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        ensure_room(packet.buffer.as_ref(), len)?;
        let mut out = Packet::new_unchecked(&mut packet.buffer.as_mut()[..len]);
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
            Self::DstUnreachable {
                code,
                next_hop_mtu,
                inner,
            } => (
                Message::DST_UNREACHABLE,
                code,
                u32::from(next_hop_mtu),
                inner,
            ),
            Self::TimeExceeded { code, inner } => (Message::TIME_EXCEEDED, code, 0, inner),
            Self::TimestampRequest {
                ident,
                seq_no,
                originate,
                receive,
                transmit,
            }
            | Self::TimestampReply {
                ident,
                seq_no,
                originate,
                receive,
                transmit,
            } => {
                let data = out.data_mut();
                write_u32(data, 0, originate);
                write_u32(data, 4, receive);
                write_u32(data, 8, transmit);
                let msg_type = if matches!(self, Self::TimestampRequest { .. }) {
                    Message::TIMESTAMP_REQUEST
                } else {
                    Message::TIMESTAMP_REPLY
                };
                (msg_type, 0, pair(ident, seq_no), &[])
            }
            Self::AddressMaskRequest {
                ident,
                seq_no,
                mask,
            }
            | Self::AddressMaskReply {
                ident,
                seq_no,
                mask,
            } => {
                out.data_mut().copy_from_slice(&mask.octets());
                let msg_type = if matches!(self, Self::AddressMaskRequest { .. }) {
                    Message::ADDRESS_MASK_REQUEST
                } else {
                    Message::ADDRESS_MASK_REPLY
                };
                (msg_type, 0, pair(ident, seq_no), &[])
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
        out.fill_checksum();
        Ok(())
    }
}

fn pair(ident: u16, seq_no: u16) -> u32 {
    (u32::from(ident) << 16) | u32::from(seq_no)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{self, hammer, marked};
    use crate::IpProtocol;

    fn icmp_of(frame: &[u8]) -> &[u8] {
        &frame[34..]
    }

    fn parse(frame: &[u8]) -> Repr<'_> {
        let packet = Packet::new_checked(icmp_of(frame)).unwrap();
        Repr::parse(&packet, ChecksumMode::Verify).unwrap()
    }

    #[test]
    fn parse_golden_echo() {
        let Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = parse(&testutil::ICMPV4_ECHO_REQUEST)
        else {
            panic!("not an echo request")
        };
        assert_eq!((ident, seq_no, data.len()), (11816, 1, 56));
        assert!(matches!(
            parse(&testutil::ICMPV4_ECHO_REPLY),
            Repr::EchoReply {
                ident: 11816,
                seq_no: 1,
                ..
            }
        ));
    }

    #[test]
    fn parse_golden_port_unreachable() {
        let packet = Packet::new_checked(icmp_of(&testutil::ICMPV4_PORT_UNREACH)).unwrap();
        assert_eq!(packet.msg_type(), Message::DST_UNREACHABLE);
        assert_eq!(packet.msg_code(), unreachable::PORT);
        let quoted = packet.quoted().unwrap();
        assert_eq!(quoted.ip.protocol, IpProtocol::UDP);
        assert_eq!(quoted.ip.dst_addr, Ipv4Addr::LOCALHOST);
        assert_eq!(quoted.ports(), Some((43560, 5558)));
        assert_eq!(quoted.transport.len(), 13); // Linux quotes the whole datagram
        assert!(matches!(
            parse(&testutil::ICMPV4_PORT_UNREACH),
            Repr::DstUnreachable { code: 3, next_hop_mtu: 0, inner } if inner.len() == 33
        ));
    }

    #[test]
    fn parse_golden_time_exceeded() {
        let packet = Packet::new_checked(icmp_of(&testutil::ICMPV4_TIME_EXCEEDED)).unwrap();
        let quoted = packet.quoted().unwrap();
        assert_eq!(quoted.ip.protocol, IpProtocol::ICMP);
        assert_eq!(quoted.ip.ttl, 1);
        assert_eq!(quoted.echo_ident_seq(), Some((11835, 1)));
        assert_eq!(quoted.tcp_seq(), Some(0x2e3b_0001)); // same bytes, read as TCP would
        let echo = Packet::new_checked(icmp_of(&testutil::ICMPV4_ECHO_REQUEST)).unwrap();
        assert_eq!(echo.inner(), None);
        assert!(echo.quoted().is_err());
    }

    #[test]
    fn parse_golden_timestamp_and_mask() {
        assert_eq!(
            parse(&testutil::ICMPV4_TIMESTAMP_REQUEST),
            Repr::TimestampRequest {
                ident: 0x1234,
                seq_no: 1,
                originate: 0x0289_e2b8,
                receive: 0,
                transmit: 0
            }
        );
        assert!(matches!(
            parse(&testutil::ICMPV4_TIMESTAMP_REPLY),
            Repr::TimestampReply {
                receive: 0x0289_e2c1,
                ..
            }
        ));
        assert_eq!(
            parse(&testutil::ICMPV4_MASK_REPLY),
            Repr::AddressMaskReply {
                ident: 0xbeef,
                seq_no: 2,
                mask: Ipv4Addr::new(255, 255, 255, 0)
            }
        );
        // A timestamp request cut to 12 bytes (checksum fixed) is truncated, not misread.
        let mut short = icmp_of(&testutil::ICMPV4_TIMESTAMP_REQUEST)[..12].to_vec();
        Packet::new_unchecked(&mut short[..]).fill_checksum();
        let packet = Packet::new_checked(&short[..]).unwrap();
        assert_eq!(packet.timestamps(), None);
        assert_eq!(
            Repr::parse(&packet, ChecksumMode::Verify),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn emit_golden() {
        for frame in [
            &testutil::ICMPV4_ECHO_REQUEST[..],
            &testutil::ICMPV4_ECHO_REPLY[..],
            &testutil::ICMPV4_PORT_UNREACH[..],
            &testutil::ICMPV4_TIME_EXCEEDED[..],
            &testutil::ICMPV4_TIMESTAMP_REQUEST[..],
            &testutil::ICMPV4_TIMESTAMP_REPLY[..],
            &testutil::ICMPV4_MASK_REQUEST[..],
            &testutil::ICMPV4_MASK_REPLY[..],
        ] {
            let repr = parse(frame);
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
            assert_eq!(buf, icmp_of(frame), "{repr:?}");
        }
    }

    #[test]
    fn round_trip_every_variant() {
        let data = [1, 2, 3, 4, 5];
        let reprs = [
            Repr::EchoRequest {
                ident: 1,
                seq_no: 2,
                data: &data,
            },
            Repr::EchoReply {
                ident: 3,
                seq_no: 4,
                data: &[],
            },
            Repr::DstUnreachable {
                code: unreachable::FRAG_NEEDED,
                next_hop_mtu: 1400,
                inner: &data,
            },
            Repr::TimeExceeded {
                code: 1,
                inner: &data,
            },
            Repr::TimestampRequest {
                ident: 5,
                seq_no: 6,
                originate: 7,
                receive: 8,
                transmit: 9,
            },
            Repr::TimestampReply {
                ident: 5,
                seq_no: 6,
                originate: 7,
                receive: 8,
                transmit: u32::MAX,
            },
            Repr::AddressMaskRequest {
                ident: 9,
                seq_no: 9,
                mask: Ipv4Addr::UNSPECIFIED,
            },
            Repr::AddressMaskReply {
                ident: 9,
                seq_no: 10,
                mask: Ipv4Addr::new(255, 255, 0, 0),
            },
            Repr::Other {
                msg_type: Message::PARAM_PROBLEM,
                code: 0,
                rest_of_header: 0x1400_0000,
                data: &data,
            },
        ];
        for repr in reprs {
            let mut buf = marked(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
            let packet = Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(Repr::parse(&packet, ChecksumMode::Verify), Ok(repr));
        }
    }

    #[test]
    fn checked_never_panics() {
        let goldens = [
            &testutil::ICMPV4_TIME_EXCEEDED[..],
            &testutil::ICMPV4_TIMESTAMP_REPLY[..],
            &testutil::ICMPV4_MASK_REQUEST[..],
        ];
        for golden in goldens {
            hammer(icmp_of(golden), |buf| {
                if let Ok(p) = Packet::new_checked(buf) {
                    let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident());
                    let _ = (p.echo_seq_no(), p.rest_of_header(), p.next_hop_mtu());
                    let _ = (p.timestamps(), p.address_mask(), p.verify_checksum());
                    let _ = (p.data(), p.inner());
                    if let Ok(q) = p.quoted() {
                        let _ = (q.ports(), q.tcp_seq(), q.echo_ident_seq());
                    }
                    let _ = Repr::parse(&p, ChecksumMode::Ignore);
                }
            });
        }
    }
}
