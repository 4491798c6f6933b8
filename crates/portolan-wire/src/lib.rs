//! Packet formats for Portolan's raw probes, after smoltcp's `wire` module: no I/O and no
//! state; nothing allocates except [`build::TcpTemplateV4`], once.
//!
//! Each protocol module owns one header format and offers two layers:
//!
//! - `Packet<T: AsRef<[u8]>>`, a zero-copy view over a buffer. `new_checked` validates every
//!   length and header-length field once, so that afterwards no accessor can panic; this is the
//!   constructor for bytes from the network. `new_unchecked` skips that (for buffers the caller
//!   built itself): its accessors panic if the buffer is too short. Setters exist when
//!   `T: AsMut<[u8]>`.
//! - `Repr`, a plain typed summary. `Repr::parse` reads a checked view (verifying checksums
//!   unless told not to), `Repr::buffer_len` says how many bytes `Repr::emit` writes, and
//!   `emit` writes them, returning an error rather than panicking if the buffer is too small.
//!
//! [`build`] assembles complete probes (Ethernet, IP, transport) into a caller's buffer;
//! [`cookie`] makes them verifiable without per-probe state.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub mod arp;
pub mod build;
pub mod checksum;
pub mod cookie;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod testutil;

/// Why bytes could not be parsed or a packet could not be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before a header or a length field says it should.
    #[error("packet truncated")]
    Truncated,
    /// A field holds a value the format forbids.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The checksum does not match the contents.
    #[error("checksum mismatch")]
    Checksum,
    /// Well-formed, but not a variant this crate represents (e.g. ARP for non-Ethernet).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The output buffer is shorter than `buffer_len()`.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// A value does not fit its field (e.g. a payload longer than a 16-bit length allows).
    #[error("value too large for its field: {0}")]
    TooLarge(&'static str),
    /// The operating system could not supply random bytes for a cookie key.
    #[error("no randomness from the operating system")]
    Entropy,
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Whether `Repr::parse` verifies checksums.
///
/// `Ignore` exists because captures of locally sent packets (and loopback traffic) often carry
/// only the pseudo-header sum: the kernel leaves the rest to the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// Reject packets whose checksum is wrong with [`Error::Checksum`].
    #[default]
    Verify,
    /// Accept any checksum.
    Ignore,
}

/// An IP protocol number (IPv4 `protocol`, IPv6 `next header`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const HOP_BY_HOP: Self = Self(0);
    pub const ICMP: Self = Self(1);
    pub const IGMP: Self = Self(2);
    pub const TCP: Self = Self(6);
    pub const UDP: Self = Self(17);
    pub const IPV6_ROUTE: Self = Self(43);
    pub const IPV6_FRAG: Self = Self(44);
    pub const ICMPV6: Self = Self(58);
    pub const IPV6_NO_NEXT: Self = Self(59);
    pub const IPV6_OPTS: Self = Self(60);
    pub const SCTP: Self = Self(132);
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::ICMP => "ICMP",
            Self::TCP => "TCP",
            Self::UDP => "UDP",
            Self::ICMPV6 => "ICMPv6",
            Self::SCTP => "SCTP",
            _ => return write!(f, "IpProtocol({})", self.0),
        };
        f.write_str(name)
    }
}

/// Source and destination of an IP packet, of one family: what the TCP, UDP and ICMPv6
/// checksums cover besides the segment itself (the pseudo-header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpPair {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl IpPair {
    /// `None` if the two addresses are of different families.
    pub fn new(src: IpAddr, dst: IpAddr) -> Option<Self> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(Self::V4 { src, dst }),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(Self::V6 { src, dst }),
            _ => None,
        }
    }

    pub fn src(&self) -> IpAddr {
        match *self {
            Self::V4 { src, .. } => src.into(),
            Self::V6 { src, .. } => src.into(),
        }
    }

    pub fn dst(&self) -> IpAddr {
        match *self {
            Self::V4 { dst, .. } => dst.into(),
            Self::V6 { dst, .. } => dst.into(),
        }
    }

    /// Folded one's-complement sum of the pseudo-header for an upper-layer packet of `len`
    /// bytes. IPv4's length field is 16 bits: `None` if `len` does not fit.
    pub fn pseudo_sum(&self, protocol: IpProtocol, len: usize) -> Option<u16> {
        match *self {
            Self::V4 { src, dst } => {
                let len = u16::try_from(len).ok()?;
                Some(checksum::pseudo_header_v4(src, dst, protocol, len))
            }
            Self::V6 { src, dst } => {
                let len = u32::try_from(len).ok()?;
                Some(checksum::pseudo_header_v6(src, dst, protocol, len))
            }
        }
    }
}

/// The part of an offending packet that an ICMP error quotes: its IP header and the start of
/// its payload (at least 8 bytes by RFC 792, as much as fits by RFC 1812 and RFC 4443).
///
/// The quoted header describes the original packet, so its length fields usually exceed what
/// was quoted; `transport` is only what is actually there. For IPv6, extension headers are not
/// parsed: check `ip.next_header` before trusting `transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted<'a, Ip> {
    pub ip: Ip,
    pub transport: &'a [u8],
}

impl<Ip> Quoted<'_, Ip> {
    /// Source and destination ports of a quoted TCP, UDP or SCTP header (the first 4 bytes of
    /// each); the caller checks the protocol.
    pub fn ports(&self) -> Option<(u16, u16)> {
        Some((get_u16(self.transport, 0)?, get_u16(self.transport, 2)?))
    }

    /// Sequence number of a quoted TCP header: for matching an error to a cookie-stamped SYN.
    pub fn tcp_seq(&self) -> Option<u32> {
        get_u32(self.transport, 4)
    }

    /// Identifier and sequence number of a quoted ICMP or ICMPv6 echo request.
    pub fn echo_ident_seq(&self) -> Option<(u16, u16)> {
        Some((get_u16(self.transport, 4)?, get_u16(self.transport, 6)?))
    }
}

// Big-endian field access. The indexing versions are for views whose length was checked (or
// documented as the caller's duty, for `new_unchecked`); the `get_` versions never panic.

fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn write_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn write_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

fn get_u16(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn get_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn ipv4_at(buf: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(buf[at], buf[at + 1], buf[at + 2], buf[at + 3])
}

fn ipv6_at(buf: &[u8], at: usize) -> Ipv6Addr {
    let mut octets = [0; 16];
    octets.copy_from_slice(&buf[at..at + 16]);
    Ipv6Addr::from(octets)
}

/// `Err(BufferTooSmall)` unless `buf` holds at least `needed` bytes: every `emit` starts here,
/// so emitting never panics.
fn ensure_room(buf: &[u8], needed: usize) -> Result<()> {
    if buf.len() < needed {
        Err(Error::BufferTooSmall)
    } else {
        Ok(())
    }
}
