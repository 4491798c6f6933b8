//! Target specifications in Nmap's grammar, their lazy expansion, excludes and `-iL` lists.
//!
//! Forms (one command-line token each):
//! - addresses: `192.0.2.1`, `2001:db8::1` (IPv6 needs `-6`)
//! - CIDR: `10.0.0.0/24` (`/0`..`/32`), `fd00::/120` (`/0`..`/128`); the base need not be
//!   the network address (`10.0.0.7/30` is 10.0.0.4-7), network and broadcast included
//! - octet ranges: each of the four octets is a comma list of `N`, `N-M`, `N-` (N-255),
//!   `-M` (0-M), `-` or `*` (0-255): `10.0.0-3.1-254`, `10.0.0.*`, `10.0.0.1,3,5-7`;
//!   may carry a `/prefix` too, which widens every octet to the prefix (as Nmap)
//! - hostnames: `scanme.example`, `host/24` (the CIDR block around the resolved address)
//!
//! Order is Nmap's: ascending within each spec, octet ranges in odometer order.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

/// The most addresses one IPv6 spec may expand to (a /104); larger blocks are refused.
pub const MAX_IPV6_EXPANSION: u128 = 1 << 24;

/// Why a token is not a valid target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTarget {
    #[error("empty target")]
    Empty,
    #[error("octet {0} out of range 0-255")]
    OctetOutOfRange(String),
    #[error("expected 4 octets, found {0}")]
    OctetCount(usize),
    #[error("empty octet")]
    EmptyOctet,
    #[error("empty element in octet list \"{0}\"")]
    EmptyOctetElement(String),
    #[error("bad octet range \"{0}\"")]
    BadOctetRange(String),
    #[error("range {lo}-{hi} is reversed")]
    ReversedRange { lo: u32, hi: u32 },
    #[error("missing prefix length after \"/\"")]
    MissingPrefix,
    #[error("prefix /{prefix} is not a number")]
    BadPrefix { prefix: String },
    #[error("prefix /{prefix} out of range 0-{max}")]
    PrefixOutOfRange { prefix: String, max: u8 },
    #[error("not a valid IPv6 address")]
    BadIpv6,
    #[error("IPv6 zone identifiers (%{0}) are not supported")]
    Ipv6Zone(String),
    #[error("not an IP address, range or hostname")]
    Garbage,
    #[error("hostname is longer than 253 characters")]
    HostnameTooLong,
    #[error("hostname has an empty or over-long (63+) label")]
    BadHostnameLabel,
}

/// Errors about targets: every variant names the offending token, name or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("invalid target \"{token}\": {reason}")]
    Invalid {
        token: String,
        reason: InvalidTarget,
    },
    #[error("target \"{token}\" is an IPv6 address; add -6 to scan IPv6 targets")]
    Ipv6WithoutFlag { token: String },
    #[error("target \"{token}\" is an IPv4 address, but -6 was given; scan it without -6")]
    Ipv4WithIpv6Flag { token: String },
    #[error(
        "target \"{token}\" has {count} addresses; IPv6 blocks are limited to {limit} \
         addresses (prefix /104 or longer)"
    )]
    TooLarge {
        token: String,
        count: String,
        limit: u128,
    },
    #[error("failed to resolve \"{name}\": {message}")]
    Resolve { name: String, message: String },
    #[error("hostname \"{name}\" resolves, but not to any {wanted} address{hint}")]
    NoAddressOfFamily {
        name: String,
        wanted: &'static str,
        hint: &'static str,
    },
    #[error("hostname target \"{name}\" must be resolved before it can be expanded")]
    Unresolved { name: String },
    #[error("cannot read target file \"{path}\": {message}")]
    File { path: String, message: String },
    #[error("empty entry in exclude list \"{list}\"")]
    EmptyExclude { list: String },
}

fn invalid(token: &str, reason: InvalidTarget) -> TargetError {
    TargetError::Invalid {
        token: token.to_string(),
        reason,
    }
}

/// The set of values one IPv4 octet may take: a 256-bit bitmap.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OctetSet([u64; 4]);

impl OctetSet {
    pub const EMPTY: OctetSet = OctetSet([0; 4]);
    pub const ALL: OctetSet = OctetSet([u64::MAX; 4]);

    pub fn single(v: u8) -> OctetSet {
        let mut s = OctetSet::EMPTY;
        s.insert(v);
        s
    }

    pub fn range(lo: u8, hi: u8) -> OctetSet {
        let mut s = OctetSet::EMPTY;
        for v in lo..=hi {
            s.insert(v);
        }
        s
    }

    pub fn insert(&mut self, v: u8) {
        self.0[usize::from(v >> 6)] |= 1u64 << (v & 63);
    }

    pub fn contains(&self, v: u8) -> bool {
        self.0[usize::from(v >> 6)] & (1u64 << (v & 63)) != 0
    }

    pub fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    pub fn is_full(&self) -> bool {
        *self == OctetSet::ALL
    }

    /// Values in ascending order.
    pub fn values(&self) -> Vec<u8> {
        (0..=255u8).filter(|&v| self.contains(v)).collect()
    }

    /// Maximal runs of consecutive values, ascending.
    pub fn runs(&self) -> Vec<(u8, u8)> {
        let mut out: Vec<(u8, u8)> = Vec::new();
        for v in self.values() {
            match out.last_mut() {
                Some((_, hi)) if u16::from(*hi) + 1 == u16::from(v) => *hi = v,
                _ => out.push((v, v)),
            }
        }
        out
    }

    /// Widens to whole blocks: with `bits` host bits free (0..=8), every value is replaced
    /// by its aligned block of 2^bits values.
    fn widen(&self, bits: u32) -> OctetSet {
        if bits == 0 {
            return *self;
        }
        if bits >= 8 {
            return OctetSet::ALL;
        }
        let mask: u8 = 0xff << bits;
        let mut out = OctetSet::EMPTY;
        for v in self.values() {
            let base = v & mask;
            out = out.union(&OctetSet::range(base, base | !mask));
        }
        out
    }

    fn union(&self, other: &OctetSet) -> OctetSet {
        let mut w = self.0;
        for (a, b) in w.iter_mut().zip(other.0) {
            *a |= b;
        }
        OctetSet(w)
    }
}

impl fmt::Debug for OctetSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for OctetSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_full() {
            return write!(f, "*");
        }
        for (i, (lo, hi)) in self.runs().into_iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// One parsed target token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// A single address.
    Ip(IpAddr),
    /// An address with a prefix length; `base` is kept as written (host bits may be set).
    Cidr { base: IpAddr, prefix: u8 },
    /// IPv4 octet ranges (any `/prefix` already applied): the product of the four sets.
    OctetRange([OctetSet; 4]),
    /// A name to resolve; with a prefix, the block around the resolved address.
    Hostname { name: String, prefix: Option<u8> },
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Ip(ip) => write!(f, "{ip}"),
            TargetSpec::Cidr { base, prefix } => write!(f, "{base}/{prefix}"),
            TargetSpec::OctetRange(o) => write!(f, "{}.{}.{}.{}", o[0], o[1], o[2], o[3]),
            TargetSpec::Hostname { name, prefix } => match prefix {
                Some(p) => write!(f, "{name}/{p}"),
                None => write!(f, "{name}"),
            },
        }
    }
}

/// Parses one target token (see the module docs for the grammar). Never panics.
pub fn parse_target(token: &str) -> Result<TargetSpec, TargetError> {
    if token.is_empty() {
        return Err(invalid(token, InvalidTarget::Empty));
    }
    let (body, prefix_text) = match token.split_once('/') {
        Some((b, p)) => (b, Some(p)),
        None => (token, None),
    };
    if body.is_empty() {
        return Err(invalid(token, InvalidTarget::Garbage));
    }
    let prefix = match prefix_text {
        None => None,
        Some(p) => Some(parse_prefix(token, p)?),
    };
    if body.contains(':') || body.contains('%') {
        return parse_v6(token, body, prefix);
    }
    if body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b',' | b'-' | b'*'))
    {
        return parse_v4(token, body, prefix);
    }
    parse_hostname(token, body, prefix)
}

/// Digits only, at most 128 (the family check comes later).
fn parse_prefix(token: &str, p: &str) -> Result<u32, TargetError> {
    if p.is_empty() {
        return Err(invalid(token, InvalidTarget::MissingPrefix));
    }
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            token,
            InvalidTarget::BadPrefix {
                prefix: p.to_string(),
            },
        ));
    }
    match p.parse::<u32>() {
        Ok(v) if v <= 128 => Ok(v),
        _ => Err(invalid(
            token,
            InvalidTarget::PrefixOutOfRange {
                prefix: p.to_string(),
                max: 128,
            },
        )),
    }
}

fn check_prefix(token: &str, prefix: u32, max: u8) -> Result<u8, TargetError> {
    if prefix > u32::from(max) {
        return Err(invalid(
            token,
            InvalidTarget::PrefixOutOfRange {
                prefix: prefix.to_string(),
                max,
            },
        ));
    }
    // prefix <= max <= 128
    Ok(prefix as u8)
}

fn parse_v6(token: &str, body: &str, prefix: Option<u32>) -> Result<TargetSpec, TargetError> {
    if let Some((_, zone)) = body.split_once('%') {
        return Err(invalid(token, InvalidTarget::Ipv6Zone(zone.to_string())));
    }
    let addr: Ipv6Addr = body
        .parse()
        .map_err(|_| invalid(token, InvalidTarget::BadIpv6))?;
    Ok(match prefix {
        None => TargetSpec::Ip(IpAddr::V6(addr)),
        Some(p) => TargetSpec::Cidr {
            base: IpAddr::V6(addr),
            prefix: check_prefix(token, p, 128)?,
        },
    })
}

fn parse_v4(token: &str, body: &str, prefix: Option<u32>) -> Result<TargetSpec, TargetError> {
    let parts: Vec<&str> = body.split('.').collect();
    if parts.len() != 4 {
        return Err(invalid(token, InvalidTarget::OctetCount(parts.len())));
    }
    let mut sets = [OctetSet::EMPTY; 4];
    for (set, part) in sets.iter_mut().zip(&parts) {
        *set = parse_octet(token, part)?;
    }
    let prefix = match prefix {
        None => None,
        Some(p) => Some(check_prefix(token, p, 32)?),
    };
    let singles: Option<Vec<u8>> = sets
        .iter()
        .map(|s| {
            let v = s.values();
            (v.len() == 1).then(|| v[0])
        })
        .collect();
    if let Some(o) = singles {
        let ip = IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3]));
        return Ok(match prefix {
            None => TargetSpec::Ip(ip),
            Some(prefix) => TargetSpec::Cidr { base: ip, prefix },
        });
    }
    if let Some(p) = prefix {
        for (i, set) in sets.iter_mut().enumerate() {
            // Host bits inside octet i: bits beyond the prefix, clamped to 0..=8.
            let octet_end = 8 * (i as u32 + 1);
            let free = octet_end.saturating_sub(u32::from(p)).min(8);
            *set = set.widen(free);
        }
    }
    Ok(TargetSpec::OctetRange(sets))
}

fn parse_octet_value(token: &str, s: &str) -> Result<u8, TargetError> {
    // Decimal, leading zeros allowed (Nmap reads 010 as 10).
    let trimmed = s.trim_start_matches('0');
    if trimmed.len() > 3 {
        return Err(invalid(
            token,
            InvalidTarget::OctetOutOfRange(s.to_string()),
        ));
    }
    let v: u32 = if trimmed.is_empty() {
        0
    } else {
        trimmed
            .parse()
            .map_err(|_| invalid(token, InvalidTarget::BadOctetRange(s.to_string())))?
    };
    u8::try_from(v).map_err(|_| invalid(token, InvalidTarget::OctetOutOfRange(s.to_string())))
}

fn parse_octet(token: &str, part: &str) -> Result<OctetSet, TargetError> {
    if part.is_empty() {
        return Err(invalid(token, InvalidTarget::EmptyOctet));
    }
    let mut set = OctetSet::EMPTY;
    for elem in part.split(',') {
        if elem.is_empty() {
            return Err(invalid(
                token,
                InvalidTarget::EmptyOctetElement(part.to_string()),
            ));
        }
        set = set.union(&parse_octet_elem(token, elem)?);
    }
    Ok(set)
}

fn parse_octet_elem(token: &str, elem: &str) -> Result<OctetSet, TargetError> {
    if elem.is_empty() {
        return Err(invalid(token, InvalidTarget::EmptyOctet));
    }
    if elem.contains('*') {
        if elem == "*" {
            return Ok(OctetSet::ALL);
        }
        return Err(invalid(
            token,
            InvalidTarget::BadOctetRange(elem.to_string()),
        ));
    }
    match elem.split_once('-') {
        None => Ok(OctetSet::single(parse_octet_value(token, elem)?)),
        Some((lo, hi)) => {
            if hi.contains('-') {
                return Err(invalid(
                    token,
                    InvalidTarget::BadOctetRange(elem.to_string()),
                ));
            }
            let lo = if lo.is_empty() {
                0
            } else {
                parse_octet_value(token, lo)?
            };
            let hi = if hi.is_empty() {
                255
            } else {
                parse_octet_value(token, hi)?
            };
            if lo > hi {
                return Err(invalid(
                    token,
                    InvalidTarget::ReversedRange {
                        lo: u32::from(lo),
                        hi: u32::from(hi),
                    },
                ));
            }
            Ok(OctetSet::range(lo, hi))
        }
    }
}

fn parse_hostname(token: &str, name: &str, prefix: Option<u32>) -> Result<TargetSpec, TargetError> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(invalid(token, InvalidTarget::Garbage));
    }
    if name.len() > 253 {
        return Err(invalid(token, InvalidTarget::HostnameTooLong));
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed
        .split('.')
        .any(|label| label.is_empty() || label.len() > 63)
    {
        return Err(invalid(token, InvalidTarget::BadHostnameLabel));
    }
    Ok(TargetSpec::Hostname {
        name: name.to_string(),
        // <= 128 checked by parse_prefix; narrowed per family once resolved.
        prefix: prefix.map(|p| p.min(128) as u8),
    })
}

/// Maps an address into a u128 "index space" for linear ranges.
fn addr_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn u128_to_addr(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        // Values of v4 ranges never exceed u32::MAX.
        IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX)))
    }
}

/// First and last address (inclusive) of the block `base/prefix`, as u128 values.
fn cidr_block(base: IpAddr, prefix: u8) -> (u128, u128) {
    let bits: u32 = if base.is_ipv6() { 128 } else { 32 };
    let host_bits = bits - u32::from(prefix).min(bits);
    let host_mask: u128 = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let v = addr_to_u128(base);
    (v & !host_mask, v | host_mask)
}

/// Number of addresses in `start..=end`, saturating at `u128::MAX` for ::/0.
fn span(start: u128, end: u128) -> u128 {
    (end - start).saturating_add(1)
}

impl TargetSpec {
    /// `Some(true)` for IPv6 literals, `Some(false)` for IPv4 forms, `None` for hostnames.
    pub fn is_ipv6(&self) -> Option<bool> {
        match self {
            TargetSpec::Ip(ip) | TargetSpec::Cidr { base: ip, .. } => Some(ip.is_ipv6()),
            TargetSpec::OctetRange(_) => Some(false),
            TargetSpec::Hostname { .. } => None,
        }
    }

    /// Checks the literal's family against `-6`: IPv6 literals need it, IPv4 forms
    /// refuse it (Nmap 7.93 behaves the same). Hostnames always pass.
    pub fn check_family(&self, v6: bool) -> Result<(), TargetError> {
        match self.is_ipv6() {
            Some(true) if !v6 => Err(TargetError::Ipv6WithoutFlag {
                token: self.to_string(),
            }),
            Some(false) if v6 => Err(TargetError::Ipv4WithIpv6Flag {
                token: self.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// How many addresses the spec expands to (`None` for an unresolved hostname).
    /// IPv6 `::/0` saturates at `u128::MAX`.
    pub fn count(&self) -> Option<u128> {
        match self {
            TargetSpec::Ip(_) => Some(1),
            TargetSpec::Cidr { base, prefix } => {
                let (start, end) = cidr_block(*base, *prefix);
                Some(span(start, end))
            }
            TargetSpec::OctetRange(o) => Some(o.iter().map(|s| u128::from(s.len())).product()),
            TargetSpec::Hostname { .. } => None,
        }
    }

    /// The addresses, lazily, in Nmap's order. Hostnames must be resolved first
    /// ([`TargetSpec::with_address`] or [`TargetSpec::expand`]); IPv6 blocks larger than
    /// [`MAX_IPV6_EXPANSION`] are refused.
    pub fn iter_addrs(&self) -> Result<AddrIter, TargetError> {
        match self {
            TargetSpec::Ip(ip) => Ok(AddrIter::linear(addr_to_u128(*ip), 1, ip.is_ipv6())),
            TargetSpec::Cidr { base, prefix } => {
                let (start, end) = cidr_block(*base, *prefix);
                let count = span(start, end);
                if base.is_ipv6() && count > MAX_IPV6_EXPANSION {
                    return Err(TargetError::TooLarge {
                        token: self.to_string(),
                        count: format!("2^{}", 128 - u32::from(*prefix)),
                        limit: MAX_IPV6_EXPANSION,
                    });
                }
                Ok(AddrIter::linear(start, count, base.is_ipv6()))
            }
            TargetSpec::OctetRange(o) => Ok(AddrIter::octets(o)),
            TargetSpec::Hostname { name, .. } => {
                Err(TargetError::Unresolved { name: name.clone() })
            }
        }
    }

    /// A hostname spec made concrete with its resolved address: `Ip`, or `Cidr` around it
    /// when the hostname carried a prefix (checked against the address family). Other
    /// specs are returned unchanged.
    pub fn with_address(&self, addr: IpAddr) -> Result<TargetSpec, TargetError> {
        match self {
            TargetSpec::Hostname { name, prefix } => match prefix {
                None => Ok(TargetSpec::Ip(addr)),
                Some(p) => {
                    let max = if addr.is_ipv6() { 128 } else { 32 };
                    let prefix = check_prefix(&format!("{name}/{p}"), u32::from(*p), max)?;
                    Ok(TargetSpec::Cidr { base: addr, prefix })
                }
            },
            other => Ok(other.clone()),
        }
    }

    /// Checks the family, resolves a hostname with `resolver` (first address of the wanted
    /// family is scanned, the rest are reported as not scanned) and returns the lazy
    /// expansion.
    pub fn expand(&self, v6: bool, resolver: &dyn Resolve) -> Result<Expansion, TargetError> {
        self.check_family(v6)?;
        match self {
            TargetSpec::Hostname { name, .. } => {
                let addrs = resolver.resolve(name, v6)?;
                let Some((&first, rest)) = addrs.split_first() else {
                    return Err(TargetError::Resolve {
                        name: name.clone(),
                        message: "no addresses".to_string(),
                    });
                };
                let concrete = self.with_address(first)?;
                let addrs = concrete.iter_addrs().map_err(|e| match e {
                    TargetError::TooLarge { count, limit, .. } => TargetError::TooLarge {
                        token: self.to_string(),
                        count,
                        limit,
                    },
                    other => other,
                })?;
                Ok(Expansion {
                    hostname: Some(name.clone()),
                    primary: Some(first),
                    other_addrs: rest.to_vec(),
                    addrs,
                })
            }
            _ => Ok(Expansion {
                hostname: None,
                primary: None,
                other_addrs: Vec::new(),
                addrs: self.iter_addrs()?,
            }),
        }
    }

    /// Whether `ip` falls in this spec (hostnames never match: resolve them first).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self {
            TargetSpec::Ip(a) => *a == ip,
            TargetSpec::Cidr { base, prefix } => {
                if base.is_ipv6() != ip.is_ipv6() {
                    return false;
                }
                let (start, end) = cidr_block(*base, *prefix);
                (start..=end).contains(&addr_to_u128(ip))
            }
            TargetSpec::OctetRange(o) => match ip {
                IpAddr::V4(v4) => v4.octets().iter().zip(o).all(|(b, s)| s.contains(*b)),
                IpAddr::V6(_) => false,
            },
            TargetSpec::Hostname { .. } => false,
        }
    }
}

/// A target expanded for scanning.
#[derive(Debug, Clone)]
pub struct Expansion {
    /// The hostname the user gave, if any.
    pub hostname: Option<String>,
    /// For a hostname: the resolved address that is scanned (the one the name belongs to).
    pub primary: Option<IpAddr>,
    /// For a hostname: the other addresses of the wanted family, not scanned
    /// (Nmap: "Other addresses for NAME (not scanned): ...").
    pub other_addrs: Vec<IpAddr>,
    pub addrs: AddrIter,
}

/// Lazy iterator over a spec's addresses; O(1) state apart from octet value lists.
#[derive(Debug, Clone)]
pub struct AddrIter {
    inner: IterInner,
}

#[derive(Debug, Clone)]
enum IterInner {
    Linear {
        next: u128,
        remaining: u128,
        v6: bool,
    },
    Octets {
        values: [Vec<u8>; 4],
        idx: [usize; 4],
        remaining: u128,
    },
}

impl AddrIter {
    fn linear(start: u128, count: u128, v6: bool) -> AddrIter {
        AddrIter {
            inner: IterInner::Linear {
                next: start,
                remaining: count,
                v6,
            },
        }
    }

    fn octets(o: &[OctetSet; 4]) -> AddrIter {
        let values = [o[0].values(), o[1].values(), o[2].values(), o[3].values()];
        let remaining = values.iter().map(|v| v.len() as u128).product();
        AddrIter {
            inner: IterInner::Octets {
                values,
                idx: [0; 4],
                remaining,
            },
        }
    }

    /// Addresses not yet yielded.
    pub fn remaining(&self) -> u128 {
        match &self.inner {
            IterInner::Linear { remaining, .. } | IterInner::Octets { remaining, .. } => *remaining,
        }
    }
}

impl Iterator for AddrIter {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        match &mut self.inner {
            IterInner::Linear {
                next,
                remaining,
                v6,
            } => {
                if *remaining == 0 {
                    return None;
                }
                let ip = u128_to_addr(*next, *v6);
                *remaining -= 1;
                *next = next.wrapping_add(1);
                Some(ip)
            }
            IterInner::Octets {
                values,
                idx,
                remaining,
            } => {
                if *remaining == 0 {
                    return None;
                }
                let ip = Ipv4Addr::new(
                    values[0][idx[0]],
                    values[1][idx[1]],
                    values[2][idx[2]],
                    values[3][idx[3]],
                );
                *remaining -= 1;
                // Odometer: last octet fastest.
                for i in (0..4).rev() {
                    idx[i] += 1;
                    if idx[i] < values[i].len() {
                        break;
                    }
                    idx[i] = 0;
                }
                Some(IpAddr::V4(ip))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let r = self.remaining();
        match usize::try_from(r) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }
}

/// Name resolution, swappable for tests.
pub trait Resolve {
    /// Addresses of the wanted family (`v6` → AAAA, else A), in resolver order, deduplicated.
    fn resolve(&self, name: &str, v6: bool) -> Result<Vec<IpAddr>, TargetError>;
}

/// The system resolver (getaddrinfo through std), as Nmap uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: &str, v6: bool) -> Result<Vec<IpAddr>, TargetError> {
        resolve(name, v6)
    }
}

/// Resolves `name` with the system resolver. Returns every address of the wanted family
/// (first = the one scanned); errors name the host, and say so when the name only has
/// addresses of the other family.
pub fn resolve(name: &str, v6: bool) -> Result<Vec<IpAddr>, TargetError> {
    if name.is_empty() || name.contains('\0') {
        return Err(TargetError::Resolve {
            name: name.to_string(),
            message: "empty or invalid name".to_string(),
        });
    }
    let all: Vec<IpAddr> = (name, 0u16)
        .to_socket_addrs()
        .map_err(|e| TargetError::Resolve {
            name: name.to_string(),
            message: e.to_string(),
        })?
        .map(|sa| sa.ip())
        .collect();
    filter_family(name, &all, v6)
}

/// Keeps the addresses of the wanted family, deduplicated in order.
pub fn filter_family(name: &str, all: &[IpAddr], v6: bool) -> Result<Vec<IpAddr>, TargetError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in all {
        if ip.is_ipv6() == v6 && !out.contains(ip) {
            out.push(*ip);
        }
    }
    if out.is_empty() {
        if all.is_empty() {
            return Err(TargetError::Resolve {
                name: name.to_string(),
                message: "no addresses".to_string(),
            });
        }
        return Err(TargetError::NoAddressOfFamily {
            name: name.to_string(),
            wanted: if v6 { "IPv6" } else { "IPv4" },
            hint: if v6 {
                "; try scanning without -6"
            } else {
                "; try scanning with -6"
            },
        });
    }
    Ok(out)
}

/// Addresses excluded from a scan (`--exclude`, `--excludefile`).
///
/// Plain addresses and CIDR blocks are merged into sorted intervals (binary search);
/// octet ranges become intervals when that takes few of them, else are tested octet by
/// octet. Memory does not grow with the size of the excluded blocks.
#[derive(Debug, Clone, Default)]
pub struct ExcludeSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    octet_ranges: Vec<[OctetSet; 4]>,
}

/// Octet ranges needing more intervals than this stay bitmaps.
const MAX_INTERVALS_PER_RANGE: u128 = 4096;

impl ExcludeSet {
    pub fn new() -> ExcludeSet {
        ExcludeSet::default()
    }

    /// Builds the set from parsed specs; hostnames are resolved with `resolver` and all
    /// their addresses of the wanted family are excluded.
    pub fn build(
        specs: &[TargetSpec],
        v6: bool,
        resolver: &dyn Resolve,
    ) -> Result<ExcludeSet, TargetError> {
        let mut set = ExcludeSet::new();
        for spec in specs {
            match spec {
                TargetSpec::Hostname { name, .. } => {
                    for addr in resolver.resolve(name, v6)? {
                        set.add_unsorted(&spec.with_address(addr)?)?;
                    }
                }
                other => set.add_unsorted(other)?,
            }
        }
        set.normalize();
        Ok(set)
    }

    /// Adds a literal spec (hostnames: [`TargetError::Unresolved`]).
    pub fn add(&mut self, spec: &TargetSpec) -> Result<(), TargetError> {
        self.add_unsorted(spec)?;
        self.normalize();
        Ok(())
    }

    /// Adds many literal specs, sorting once.
    pub fn extend(&mut self, specs: &[TargetSpec]) -> Result<(), TargetError> {
        for spec in specs {
            self.add_unsorted(spec)?;
        }
        self.normalize();
        Ok(())
    }

    fn add_unsorted(&mut self, spec: &TargetSpec) -> Result<(), TargetError> {
        match spec {
            TargetSpec::Ip(IpAddr::V4(a)) => self.v4.push((u32::from(*a), u32::from(*a))),
            TargetSpec::Ip(IpAddr::V6(a)) => self.v6.push((u128::from(*a), u128::from(*a))),
            TargetSpec::Cidr { base, prefix } => {
                let (start, end) = cidr_block(*base, *prefix);
                match base {
                    IpAddr::V4(_) => self.v4.push((
                        u32::try_from(start).unwrap_or(u32::MAX),
                        u32::try_from(end).unwrap_or(u32::MAX),
                    )),
                    IpAddr::V6(_) => self.v6.push((start, end)),
                }
            }
            TargetSpec::OctetRange(o) => self.add_octets(o),
            TargetSpec::Hostname { name, .. } => {
                return Err(TargetError::Unresolved { name: name.clone() })
            }
        }
        Ok(())
    }

    fn add_octets(&mut self, o: &[OctetSet; 4]) {
        // Trailing full octets make contiguous blocks.
        let mut k = 3;
        while k > 0 && o[k].is_full() {
            k -= 1;
        }
        let runs = o[k].runs();
        let combos: u128 =
            o[..k].iter().map(|s| u128::from(s.len())).product::<u128>() * runs.len() as u128;
        if combos > MAX_INTERVALS_PER_RANGE {
            self.octet_ranges.push(*o);
            return;
        }
        let shift = 8 * (3 - k as u32);
        let prefix_iter = AddrIter::octets(&[
            if k > 0 { o[0] } else { OctetSet::single(0) },
            if k > 1 { o[1] } else { OctetSet::single(0) },
            if k > 2 { o[2] } else { OctetSet::single(0) },
            OctetSet::single(0),
        ]);
        for ip in prefix_iter {
            let IpAddr::V4(v4) = ip else { continue };
            let base = u32::from(v4);
            for &(lo, hi) in &runs {
                // shift <= 24, so neither shift overflows.
                let start = base | (u32::from(lo) << shift);
                let end = base | (u32::from(hi) << shift) | ((1u32 << shift) - 1);
                self.v4.push((start, end));
            }
        }
    }

    fn normalize(&mut self) {
        fn merge<T: Copy + Ord + num_like::Succ>(v: &mut Vec<(T, T)>) {
            v.sort_unstable();
            let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
            for &(lo, hi) in v.iter() {
                match out.last_mut() {
                    Some(last) if lo <= last.1.succ() => {
                        if hi > last.1 {
                            last.1 = hi;
                        }
                    }
                    _ => out.push((lo, hi)),
                }
            }
            *v = out;
        }
        merge(&mut self.v4);
        merge(&mut self.v6);
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty() && self.octet_ranges.is_empty()
    }

    /// Whether `ip` is excluded: O(log n) over intervals plus the few large octet ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let v = u32::from(a);
                in_intervals(&self.v4, v)
                    || self
                        .octet_ranges
                        .iter()
                        .any(|o| a.octets().iter().zip(o).all(|(b, s)| s.contains(*b)))
            }
            IpAddr::V6(a) => in_intervals(&self.v6, u128::from(a)),
        }
    }
}

fn in_intervals<T: Copy + Ord>(v: &[(T, T)], x: T) -> bool {
    // First interval whose start is > x; the one before it may contain x.
    let i = v.partition_point(|&(lo, _)| lo <= x);
    i > 0 && v[i - 1].1 >= x
}

mod num_like {
    /// Saturating successor, for merging adjacent intervals.
    pub trait Succ {
        fn succ(self) -> Self;
    }
    impl Succ for u32 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
}

/// Parses an `--exclude` argument: comma-separated specs (so octet lists with commas
/// cannot be used here, as in Nmap; use `--excludefile`).
pub fn parse_exclude_arg(arg: &str) -> Result<Vec<TargetSpec>, TargetError> {
    arg.split(',')
        .map(|tok| {
            if tok.is_empty() {
                Err(TargetError::EmptyExclude {
                    list: arg.to_string(),
                })
            } else {
                parse_target(tok)
            }
        })
        .collect()
}

/// Splits `-iL` / `--excludefile` text into tokens: separated by whitespace, `#` starts a
/// comment to the end of the line. Tokens are returned unparsed (see [`parse_target`]).
pub fn parse_target_list(text: &str) -> Vec<String> {
    text.lines()
        .flat_map(|line| {
            let line = match line.find('#') {
                Some(i) => &line[..i],
                None => line,
            };
            line.split_whitespace().map(str::to_string)
        })
        .collect()
}

/// Reads a target list file; `-` reads standard input. Errors name the file.
pub fn read_target_file(path: &str) -> Result<String, TargetError> {
    let err = |e: std::io::Error| TargetError::File {
        path: path.to_string(),
        message: e.to_string(),
    };
    if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(err)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().unwrap())
    }

    fn addrs(token: &str) -> Vec<String> {
        parse_target(token)
            .unwrap()
            .iter_addrs()
            .unwrap()
            .map(|a| a.to_string())
            .collect()
    }

    fn reason(token: &str) -> InvalidTarget {
        match parse_target(token) {
            Err(TargetError::Invalid { token: t, reason }) => {
                assert_eq!(t, token);
                reason
            }
            other => panic!("{token}: expected Invalid, got {other:?}"),
        }
    }

    struct FakeResolver(HashMap<&'static str, Vec<IpAddr>>);

    impl Resolve for FakeResolver {
        fn resolve(&self, name: &str, v6: bool) -> Result<Vec<IpAddr>, TargetError> {
            match self.0.get(name) {
                Some(all) => filter_family(name, all, v6),
                None => Err(TargetError::Resolve {
                    name: name.to_string(),
                    message: "Name or service not known".to_string(),
                }),
            }
        }
    }

    fn fake() -> FakeResolver {
        FakeResolver(HashMap::from([
            (
                "scanme.example",
                vec![v4("192.0.2.10"), v4("192.0.2.11"), v6("2001:db8::10")],
            ),
            ("v6only.example", vec![v6("2001:db8::1"), v6("2001:db8::2")]),
        ]))
    }

    #[test]
    fn single_addresses() {
        assert_eq!(
            parse_target("10.0.0.1").unwrap(),
            TargetSpec::Ip(v4("10.0.0.1"))
        );
        assert_eq!(
            parse_target("010.0.0.01").unwrap(),
            TargetSpec::Ip(v4("10.0.0.1"))
        );
        assert_eq!(parse_target("::1").unwrap(), TargetSpec::Ip(v6("::1")));
        assert_eq!(
            parse_target("::ffff:1.2.3.4").unwrap(),
            TargetSpec::Ip(v6("::ffff:1.2.3.4"))
        );
        assert_eq!(addrs("10.0.0.1"), ["10.0.0.1"]);
        assert_eq!(addrs("10.0.0.1-1"), ["10.0.0.1"]);
        assert_eq!(addrs("10.0.0.1,1,1"), ["10.0.0.1"]);
    }

    #[test]
    fn cidr() {
        assert_eq!(
            parse_target("10.0.0.0/24").unwrap(),
            TargetSpec::Cidr {
                base: v4("10.0.0.0"),
                prefix: 24
            }
        );
        assert_eq!(
            addrs("10.0.0.0/30"),
            ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"]
        );
        // Host bits are ignored for the block (Nmap: 10.0.0.7/30 → .4-.7).
        assert_eq!(
            addrs("10.0.0.7/30"),
            ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"]
        );
        assert_eq!(addrs("10.0.0.1/030").len(), 4);
        assert_eq!(addrs("10.0.0.9/32"), ["10.0.0.9"]);
        assert_eq!(addrs("10.0.0.9/31"), ["10.0.0.8", "10.0.0.9"]);
        let all = parse_target("10.0.0.0/0").unwrap();
        assert_eq!(all.count(), Some(1 << 32));
        let mut it = all.iter_addrs().unwrap();
        assert_eq!(it.remaining(), 1 << 32);
        assert_eq!(it.next(), Some(v4("0.0.0.0")));
        assert_eq!(it.next(), Some(v4("0.0.0.1")));
        let slash8 = parse_target("10.1.2.3/8").unwrap().iter_addrs().unwrap();
        assert_eq!(slash8.size_hint(), (1 << 24, Some(1 << 24)));
        assert_eq!(slash8.last(), Some(v4("10.255.255.255")));
        assert_eq!(addrs("fd00::5/127"), ["fd00::4", "fd00::5"]);
        assert_eq!(
            addrs("fd00::/126"),
            ["fd00::", "fd00::1", "fd00::2", "fd00::3"]
        );
        assert_eq!(addrs("fd00::1/128"), ["fd00::1"]);
        assert_eq!(
            parse_target("fd00::/104")
                .unwrap()
                .iter_addrs()
                .unwrap()
                .remaining(),
            1 << 24
        );
        assert_eq!(parse_target("ff::/0").unwrap().count(), Some(u128::MAX));
    }

    #[test]
    fn v6_blocks_over_the_limit_are_refused() {
        let err = parse_target("fd00::/64").unwrap().iter_addrs().unwrap_err();
        assert_eq!(
            err.to_string(),
            "target \"fd00::/64\" has 2^64 addresses; IPv6 blocks are limited to 16777216 \
             addresses (prefix /104 or longer)"
        );
        assert!(parse_target("::/0").unwrap().iter_addrs().is_err());
        assert!(parse_target("fd00::/103").unwrap().iter_addrs().is_err());
        // Via a hostname prefix too.
        let spec = parse_target("v6only.example/64").unwrap();
        assert!(matches!(
            spec.expand(true, &fake()),
            Err(TargetError::TooLarge { token, .. }) if token == "v6only.example/64"
        ));
    }

    #[test]
    fn octet_ranges_in_nmap_order() {
        assert_eq!(
            addrs("10.0.0-1.1-2"),
            ["10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2"]
        );
        assert_eq!(
            addrs("10.0.0.1,3,5-7"),
            ["10.0.0.1", "10.0.0.3", "10.0.0.5", "10.0.0.6", "10.0.0.7"]
        );
        // Lists are sets: sorted and deduplicated, as Nmap.
        assert_eq!(addrs("10.0.0.3,1,3"), ["10.0.0.1", "10.0.0.3"]);
        let star = addrs("10.0.0.*");
        assert_eq!(star.len(), 256);
        assert_eq!(star[0], "10.0.0.0");
        assert_eq!(star[255], "10.0.0.255");
        let dash = addrs("10.0.-.1");
        assert_eq!(dash.len(), 256);
        assert_eq!(&dash[..2], ["10.0.0.1", "10.0.1.1"]);
        assert_eq!(addrs("10.0.0.-2"), ["10.0.0.0", "10.0.0.1", "10.0.0.2"]);
        assert_eq!(
            addrs("10.0.0.253-"),
            ["10.0.0.253", "10.0.0.254", "10.0.0.255"]
        );
        // Nmap: "10.0.0.1-" means 1-255.
        assert_eq!(addrs("10.0.0.1-").len(), 255);
        assert_eq!(
            parse_target("1-2.0-255.*.1,2").unwrap().count(),
            Some(2 * 256 * 256 * 2)
        );
        assert_eq!(parse_target("*.*.*.*").unwrap().count(), Some(1 << 32));
        assert_eq!(
            parse_target("10.0.0.1-5").unwrap().to_string(),
            "10.0.0.1-5"
        );
        assert_eq!(
            parse_target("10.*.0.1,3").unwrap().to_string(),
            "10.*.0.1,3"
        );
    }

    #[test]
    fn octet_ranges_with_prefix_widen_like_nmap() {
        // Nmap 7.93: 10.0.0.5,7/30 → .4-.7; 10.0.0.1-5/31 → .0-.5; 10.0.1-2.5/23 → 1024.
        assert_eq!(
            addrs("10.0.0.5,7/30"),
            ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"]
        );
        assert_eq!(addrs("10.0.0.1-5/31").len(), 6);
        assert_eq!(parse_target("10.0.1-2.5/23").unwrap().count(), Some(1024));
        assert_eq!(parse_target("10.0.1-2.5/16").unwrap().count(), Some(65536));
        assert_eq!(parse_target("10.0.0.*/30").unwrap().count(), Some(256));
        assert_eq!(parse_target("10.0.0.0-255/24").unwrap().count(), Some(256));
        assert_eq!(parse_target("10.0.0.1-3/32").unwrap().count(), Some(3));
    }

    #[test]
    fn hostnames() {
        assert_eq!(
            parse_target("scanme.example").unwrap(),
            TargetSpec::Hostname {
                name: "scanme.example".into(),
                prefix: None
            }
        );
        assert_eq!(
            parse_target("host/24").unwrap(),
            TargetSpec::Hostname {
                name: "host".into(),
                prefix: Some(24)
            }
        );
        for ok in [
            "localhost",
            "a-b.c_d.example.",
            "0x0a.0.0.1",
            "10.0.0.1a",
            "xn--bcher-kva.example",
        ] {
            assert!(
                matches!(parse_target(ok), Ok(TargetSpec::Hostname { .. })),
                "{ok}"
            );
        }
        assert!(parse_target("h/24").unwrap().iter_addrs().is_err());
        assert_eq!(parse_target("h").unwrap().count(), None);
    }

    #[test]
    fn hostname_expansion() {
        let r = fake();
        let e = parse_target("scanme.example")
            .unwrap()
            .expand(false, &r)
            .unwrap();
        assert_eq!(e.hostname.as_deref(), Some("scanme.example"));
        assert_eq!(e.primary, Some(v4("192.0.2.10")));
        assert_eq!(e.other_addrs, vec![v4("192.0.2.11")]);
        assert_eq!(e.addrs.collect::<Vec<_>>(), vec![v4("192.0.2.10")]);

        let e = parse_target("scanme.example")
            .unwrap()
            .expand(true, &r)
            .unwrap();
        assert_eq!(e.primary, Some(v6("2001:db8::10")));
        assert!(e.other_addrs.is_empty());

        let e = parse_target("scanme.example/30")
            .unwrap()
            .expand(false, &r)
            .unwrap();
        assert_eq!(
            e.addrs.map(|a| a.to_string()).collect::<Vec<_>>(),
            ["192.0.2.8", "192.0.2.9", "192.0.2.10", "192.0.2.11"]
        );

        let err = parse_target("scanme.example/33")
            .unwrap()
            .expand(false, &r)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid target \"scanme.example/33\": prefix /33 out of range 0-32"
        );
        assert!(parse_target("scanme.example/120")
            .unwrap()
            .expand(true, &r)
            .is_ok());

        let err = parse_target("v6only.example")
            .unwrap()
            .expand(false, &r)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hostname \"v6only.example\" resolves, but not to any IPv4 address; try scanning with -6"
        );
        let err = parse_target("nosuch.example")
            .unwrap()
            .expand(false, &r)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to resolve \"nosuch.example\": Name or service not known"
        );
    }

    #[test]
    fn family_rules() {
        let r = fake();
        let err = parse_target("::1").unwrap().expand(false, &r).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target \"::1\" is an IPv6 address; add -6 to scan IPv6 targets"
        );
        assert!(parse_target("::1").unwrap().expand(true, &r).is_ok());
        for t in ["10.0.0.1", "10.0.0.0/30", "10.0.0.*"] {
            let err = parse_target(t).unwrap().check_family(true).unwrap_err();
            assert!(matches!(err, TargetError::Ipv4WithIpv6Flag { .. }), "{t}");
            assert!(err.to_string().contains("without -6"));
            assert!(parse_target(t).unwrap().check_family(false).is_ok());
        }
        assert!(parse_target("fd00::/120")
            .unwrap()
            .check_family(false)
            .is_err());
        assert!(parse_target("host").unwrap().check_family(true).is_ok());
        assert!(parse_target("host").unwrap().check_family(false).is_ok());
    }

    #[test]
    fn system_resolver_on_literals_and_hosts_file() {
        // Numeric names never leave the process.
        assert_eq!(resolve("127.0.0.1", false).unwrap(), vec![v4("127.0.0.1")]);
        assert_eq!(resolve("::1", true).unwrap(), vec![v6("::1")]);
        assert!(matches!(
            resolve("127.0.0.1", true),
            Err(TargetError::NoAddressOfFamily { .. })
        ));
        assert!(resolve("", false).is_err());
        assert!(resolve("a\0b", false).is_err());
    }

    #[test]
    fn errors_name_the_token() {
        assert_eq!(
            parse_target("10.0.0.300").unwrap_err().to_string(),
            "invalid target \"10.0.0.300\": octet 300 out of range 0-255"
        );
        assert_eq!(reason(""), InvalidTarget::Empty);
        assert_eq!(
            parse_target("").unwrap_err().to_string(),
            "invalid target \"\": empty target"
        );
        assert_eq!(reason("1.2.3"), InvalidTarget::OctetCount(3));
        assert_eq!(reason("1.2.3.4.5"), InvalidTarget::OctetCount(5));
        assert_eq!(reason("10"), InvalidTarget::OctetCount(1));
        assert_eq!(
            parse_target("10.0.0.5-3").unwrap_err().to_string(),
            "invalid target \"10.0.0.5-3\": range 5-3 is reversed"
        );
        assert_eq!(
            reason("10.0.0.0/33"),
            InvalidTarget::PrefixOutOfRange {
                prefix: "33".into(),
                max: 32
            }
        );
        assert_eq!(
            parse_target("fd00::/129").unwrap_err().to_string(),
            "invalid target \"fd00::/129\": prefix /129 out of range 0-128"
        );
        assert_eq!(
            reason("10.0.0.0/99999999999999999999"),
            InvalidTarget::PrefixOutOfRange {
                prefix: "99999999999999999999".into(),
                max: 128
            }
        );
        assert_eq!(reason("10.0.0.1/"), InvalidTarget::MissingPrefix);
        assert_eq!(
            reason("10.0.0.1/-1"),
            InvalidTarget::BadPrefix {
                prefix: "-1".into()
            }
        );
        assert_eq!(
            reason("10.0.0.1/+3"),
            InvalidTarget::BadPrefix {
                prefix: "+3".into()
            }
        );
        assert_eq!(
            reason("10.0.0.1/24/24"),
            InvalidTarget::BadPrefix {
                prefix: "24/24".into()
            }
        );
        assert_eq!(reason("/24"), InvalidTarget::Garbage);
        assert_eq!(reason("/"), InvalidTarget::Garbage);
        assert_eq!(reason("10.0.0."), InvalidTarget::EmptyOctet);
        assert_eq!(reason("10..0.1"), InvalidTarget::EmptyOctet);
        assert_eq!(
            reason("10.0.0.1,"),
            InvalidTarget::EmptyOctetElement("1,".into())
        );
        assert_eq!(
            reason("10.0.0.,1"),
            InvalidTarget::EmptyOctetElement(",1".into())
        );
        assert_eq!(
            reason("10.0.0.1-2-3"),
            InvalidTarget::BadOctetRange("1-2-3".into())
        );
        assert_eq!(
            reason("10.0.0.1*"),
            InvalidTarget::BadOctetRange("1*".into())
        );
        assert_eq!(
            reason("10.0.0.256-300"),
            InvalidTarget::OctetOutOfRange("256".into())
        );
        assert_eq!(
            reason("10.0.0.*,999"),
            InvalidTarget::OctetOutOfRange("999".into())
        );
        assert_eq!(
            reason("10.0.0.99999999999999999999"),
            InvalidTarget::OctetOutOfRange("99999999999999999999".into())
        );
        assert_eq!(
            parse_target("10.0.0.0001").unwrap(),
            TargetSpec::Ip(v4("10.0.0.1"))
        );
        assert_eq!(reason("fd00::1::2"), InvalidTarget::BadIpv6);
        assert_eq!(reason("fd00::1-3"), InvalidTarget::BadIpv6);
        assert_eq!(reason("[fd00::1]"), InvalidTarget::BadIpv6);
        assert_eq!(
            parse_target("fe80::1%eth0").unwrap_err().to_string(),
            "invalid target \"fe80::1%eth0\": IPv6 zone identifiers (%eth0) are not supported"
        );
        assert_eq!(reason("foo$bar"), InvalidTarget::Garbage);
        assert_eq!(reason("a b"), InvalidTarget::Garbage);
        assert_eq!(reason("ex..ample"), InvalidTarget::BadHostnameLabel);
        assert_eq!(reason(&"a".repeat(64)), InvalidTarget::BadHostnameLabel);
        assert_eq!(reason(&"a.".repeat(130)), InvalidTarget::HostnameTooLong);
    }

    #[test]
    fn parser_never_panics() {
        let pieces = [
            "",
            "0",
            "1",
            "255",
            "256",
            "-",
            "*",
            ",",
            ".",
            "/",
            ":",
            "%",
            "a",
            "ü",
            "::",
            "99999999999999999999",
            "/0",
            "/128",
            "/999",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let tok = format!("{a}{b}.{c}{a}.{b}{c}");
                    if let Ok(spec) = parse_target(&tok) {
                        let _ = spec.count();
                        if let Ok(it) = spec.iter_addrs() {
                            it.take(3).for_each(drop);
                        }
                        let _ = spec.to_string();
                    }
                    let _ = parse_target(&format!("{a}{b}{c}"));
                }
            }
        }
    }

    #[test]
    fn exclude_set() {
        let specs =
            parse_exclude_arg("10.0.0.1,192.168.0.0/16,10.9.9.1-3,fd00::/64,scanme.example")
                .unwrap();
        let ex = ExcludeSet::build(&specs, false, &fake()).unwrap();
        for yes in [
            "10.0.0.1",
            "192.168.0.0",
            "192.168.255.255",
            "10.9.9.2",
            "192.0.2.10",
            "192.0.2.11",
        ] {
            assert!(ex.contains(v4(yes)), "{yes}");
        }
        for no in [
            "10.0.0.2",
            "192.169.0.0",
            "10.9.9.4",
            "192.0.2.12",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert!(!ex.contains(v4(no)), "{no}");
        }
        assert!(ex.contains(v6("fd00::ffff:1")));
        assert!(!ex.contains(v6("fd01::")));
        // Hostnames resolve per the -6 flag.
        assert!(!ex.contains(v6("2001:db8::10")));

        // Huge blocks cost nothing.
        let mut big = ExcludeSet::new();
        big.add(&parse_target("10.0.0.0/8").unwrap()).unwrap();
        big.add(&parse_target("::/0").unwrap()).unwrap();
        big.add(&parse_target("0.0.0.0/0").unwrap()).unwrap();
        assert!(big.contains(v4("1.2.3.4")) && big.contains(v6("::")));
        assert_eq!(big.v4.len(), 1);

        // Octet ranges: as intervals, or as bitmaps when sparse.
        let mut oct = ExcludeSet::new();
        oct.add(&parse_target("10.0.0-3.*").unwrap()).unwrap();
        oct.add(&parse_target("*.*.*.1").unwrap()).unwrap();
        oct.add(&parse_target("172.16.1,3.5-6").unwrap()).unwrap();
        assert_eq!(oct.octet_ranges.len(), 1);
        assert!(oct.contains(v4("10.0.3.200")));
        assert!(!oct.contains(v4("10.0.4.0")));
        assert!(oct.contains(v4("8.8.8.1")));
        assert!(!oct.contains(v4("8.8.8.2")));
        assert!(oct.contains(v4("172.16.3.6")));
        assert!(!oct.contains(v4("172.16.2.6")));
        assert!(!oct.contains(v4("172.16.3.7")));
        // Compare against per-address truth on a sample.
        let spec = parse_target("10.0-1.2,4-5.*").unwrap();
        let mut one = ExcludeSet::new();
        one.add(&spec).unwrap();
        for ip in parse_target("10.0-2.0-6.0-1")
            .unwrap()
            .iter_addrs()
            .unwrap()
        {
            assert_eq!(one.contains(ip), spec.contains(ip), "{ip}");
        }
        // Adjacent intervals merge.
        let mut adj = ExcludeSet::new();
        adj.add(&parse_target("10.0.0.0/25").unwrap()).unwrap();
        adj.add(&parse_target("10.0.0.128/25").unwrap()).unwrap();
        assert_eq!(adj.v4, vec![(0x0a00_0000, 0x0a00_00ff)]);
        assert!(ExcludeSet::new().is_empty());
        assert!(matches!(
            ExcludeSet::new().add(&parse_target("host").unwrap()),
            Err(TargetError::Unresolved { .. })
        ));
    }

    #[test]
    fn exclude_arg_errors() {
        assert_eq!(
            parse_exclude_arg("10.0.0.1,,10.0.0.2")
                .unwrap_err()
                .to_string(),
            "empty entry in exclude list \"10.0.0.1,,10.0.0.2\""
        );
        assert!(parse_exclude_arg("10.0.0.300").is_err());
        // Nmap splits --exclude on commas: "10.0.0.1,3" is two entries, "3" being invalid here.
        assert!(parse_exclude_arg("10.0.0.1,3").is_err());
        let err = ExcludeSet::build(
            &parse_exclude_arg("nosuch.example").unwrap(),
            false,
            &fake(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("nosuch.example"));
    }

    #[test]
    fn target_lists() {
        let text =
            "10.0.0.1 # comment here\n#10.0.0.2\n10.0.0.3#x\n\t10.0.0.4\r\n  a  b\n\n10.0.0.1,3\n";
        assert_eq!(
            parse_target_list(text),
            ["10.0.0.1", "10.0.0.3", "10.0.0.4", "a", "b", "10.0.0.1,3"]
        );
        assert!(parse_target_list("").is_empty());
        assert!(parse_target_list("# only\n   \n").is_empty());
    }

    #[test]
    fn read_target_file_errors_name_the_file() {
        let err = read_target_file("/nonexistent/portolan-targets.txt").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot read target file \"/nonexistent/portolan-targets.txt\": "));
        let path =
            std::env::temp_dir().join(format!("portolan-targets-{}.txt", std::process::id()));
        std::fs::write(&path, "10.0.0.1\n").unwrap();
        let text = read_target_file(path.to_str().unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(parse_target_list(&text), ["10.0.0.1"]);
    }

    #[test]
    fn octet_set_basics() {
        let s = OctetSet::range(3, 6);
        assert_eq!(s.len(), 4);
        assert_eq!(s.runs(), vec![(3, 6)]);
        assert_eq!(OctetSet::ALL.len(), 256);
        assert_eq!(OctetSet::ALL.runs(), vec![(0, 255)]);
        assert_eq!(s.widen(2).values(), vec![0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(OctetSet::single(9).widen(8), OctetSet::ALL);
        assert!(OctetSet::EMPTY.is_empty());
        assert_eq!(OctetSet::single(255).to_string(), "255");
    }
}
