//! Stateless probe validation, as masscan and ZMap do it: a keyed hash of the probe's 4-tuple
//! goes into fields the target must echo, so a reply can be checked without remembering the
//! probe, and forged or stray replies are rejected.
//!
//! How a scan uses it:
//!
//! - At scan start, make one [`CookieKey`] with [`CookieKey::random`] (tests use
//!   [`CookieKey::from_seed`]).
//! - TCP: the SYN's sequence number is [`CookieKey::cookie`] of (our address, our port, target
//!   address, target port). A SYN-ACK or an RST answering it acknowledges `cookie + 1` (the SYN
//!   takes one sequence number), so a reply is genuine iff `ack - 1 == cookie`:
//!   [`CookieKey::validate_ack`], called with the tuple as *we* sent it (the reply's
//!   destination is our source). An ICMP error quoting the probe carries the SYN itself:
//!   compare its quoted sequence number with the cookie directly.
//! - The source port can be derived from the cookie too ([`CookieKey::source_port`]), which
//!   spreads probes over a port range (so that a target's per-tuple state does not collide)
//!   and lets UDP and ICMP replies, which echo no sequence number, be checked by port.
//! - ICMP echo: identifier and sequence number can carry the cookie's two halves.
//!
//! SipHash-2-4 with a 128-bit key from the OS: unpredictable to anyone who does not hold the
//! key, so an off-path host cannot forge a reply that validates.

use std::hash::Hasher;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use siphasher::sip::SipHasher24;

use crate::{Error, Result};

/// The secret key of one scan.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieKey([u8; 16]);

// Keep the key out of logs.
impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

/// Separates the hashes used for different purposes, so one never reveals another.
#[derive(Clone, Copy)]
enum Purpose {
    Cookie = 1,
    SourcePort = 2,
}

impl CookieKey {
    /// A fresh key from the operating system's random source.
    pub fn random() -> Result<Self> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).map_err(|_| Error::Entropy)?;
        Ok(Self(key))
    }

    /// A fixed key, for tests and reproducible runs.
    pub const fn from_seed(seed: [u8; 16]) -> Self {
        Self(seed)
    }

    fn hash(&self, purpose: Purpose, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> u32 {
        let mut hasher = SipHasher24::new_with_key(&self.0);
        hasher.write_u8(purpose as u8);
        // Length-prefixing by family keeps an IPv4 tuple from colliding with an IPv6 one.
        for addr in [src, dst] {
            match addr {
                IpAddr::V4(a) => {
                    hasher.write_u8(4);
                    hasher.write(&a.octets());
                }
                IpAddr::V6(a) => {
                    hasher.write_u8(6);
                    hasher.write(&a.octets());
                }
            }
        }
        hasher.write(&sport.to_be_bytes());
        hasher.write(&dport.to_be_bytes());
        // The low 32 bits: a sequence number's worth.
        hasher.finish() as u32
    }

    /// The cookie of a probe from `src:sport` to `dst:dport`: use it as the SYN's sequence
    /// number (or split it over an ICMP echo's identifier and sequence number).
    pub fn cookie(&self, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> u32 {
        self.hash(Purpose::Cookie, src, sport, dst, dport)
    }

    /// True if `ack`, from a SYN-ACK or RST answering our SYN from `src:sport` to `dst:dport`,
    /// acknowledges that SYN: `ack - 1 == cookie` (modulo 2^32).
    pub fn validate_ack(&self, src: IpAddr, sport: u16, dst: IpAddr, dport: u16, ack: u32) -> bool {
        ack.wrapping_sub(1) == self.cookie(src, sport, dst, dport)
    }

    /// A source port in `range` for probes from `src` to `dst:dport`, derived from a keyed
    /// hash (the port cannot hash itself). An empty range yields its start.
    pub fn source_port(
        &self,
        src: IpAddr,
        dst: IpAddr,
        dport: u16,
        range: RangeInclusive<u16>,
    ) -> u16 {
        let (start, end) = (*range.start(), *range.end());
        if start >= end {
            return start;
        }
        let span = u32::from(end - start) + 1;
        let offset = self.hash(Purpose::SourcePort, src, 0, dst, dport) % span;
        // offset < span <= 65536 - start, so the sum fits.
        start + offset as u16
    }

    /// True if `port` (a reply's destination port) is the one [`Self::source_port`] gives.
    pub fn validate_source_port(
        &self,
        src: IpAddr,
        dst: IpAddr,
        dport: u16,
        range: RangeInclusive<u16>,
        port: u16,
    ) -> bool {
        self.source_port(src, dst, dport, range) == port
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const KEY: CookieKey = CookieKey::from_seed(*b"portolan-test-k!");

    fn a(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn deterministic_with_fixed_key() {
        let c = KEY.cookie(a(2), 40000, a(1), 80);
        assert_eq!(c, KEY.cookie(a(2), 40000, a(1), 80));
        assert_eq!(c, KEY.clone().cookie(a(2), 40000, a(1), 80));
        let other = CookieKey::from_seed([0; 16]);
        assert_ne!(c, other.cookie(a(2), 40000, a(1), 80));
        assert_eq!(format!("{KEY:?}"), "CookieKey(..)");
    }

    #[test]
    fn different_tuples_differ() {
        let mut seen = HashSet::new();
        for last in 0..50u8 {
            for port in [22u16, 80, 443, 8080] {
                assert!(seen.insert(KEY.cookie(a(2), 40000, a(last), port)));
            }
        }
        // Swapping ends, or the family, changes the cookie.
        assert_ne!(
            KEY.cookie(a(2), 80, a(1), 80),
            KEY.cookie(a(1), 80, a(2), 80)
        );
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_ne!(KEY.cookie(a(2), 1, a(1), 2), KEY.cookie(a(2), 1, mapped, 2));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_ne!(KEY.cookie(v6, 1, v6, 2), KEY.cookie(v6, 2, v6, 1));
    }

    #[test]
    fn validate_ack_accepts_only_cookie_plus_one() {
        let (src, dst) = (a(2), a(1));
        let c = KEY.cookie(src, 40000, dst, 443);
        assert!(KEY.validate_ack(src, 40000, dst, 443, c.wrapping_add(1)));
        assert!(!KEY.validate_ack(src, 40000, dst, 443, c));
        assert!(!KEY.validate_ack(src, 40000, dst, 443, c.wrapping_add(2)));
        assert!(!KEY.validate_ack(src, 40001, dst, 443, c.wrapping_add(1)));
    }

    #[test]
    fn source_port_in_range() {
        let mut seen = HashSet::new();
        for dport in 0..2000u16 {
            let p = KEY.source_port(a(2), a(1), dport, 40000..=40099);
            assert!((40000..=40099).contains(&p));
            assert!(KEY.validate_source_port(a(2), a(1), dport, 40000..=40099, p));
            seen.insert(p);
        }
        assert!(seen.len() > 90, "ports should spread: {}", seen.len());
        assert_eq!(KEY.source_port(a(2), a(1), 80, 5..=5), 5);
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 9..=3;
        assert_eq!(KEY.source_port(a(2), a(1), 80, empty), 9);
        let full = KEY.source_port(a(2), a(1), 80, 0..=u16::MAX);
        assert!(KEY.validate_source_port(a(2), a(1), 80, 0..=u16::MAX, full));
    }

    #[test]
    fn random_keys_differ() {
        let (k1, k2) = (CookieKey::random().unwrap(), CookieKey::random().unwrap());
        assert_ne!(k1, k2);
    }
}
