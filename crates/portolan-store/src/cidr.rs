//! An address block (`10.0.0.0/20`, `2001:db8::/64`, or one address) to filter queries.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address or an address block (like 10.0.0.0/24)")]
pub struct BadCidr(pub String);

impl FromStr for Cidr {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCidr(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` lies in the block (an IPv4 address is never in an IPv6 block).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// Whether the textual address `addr` lies in the block (false when it is no address).
    pub fn contains_str(&self, addr: &str) -> bool {
        addr.parse().is_ok_and(|ip| self.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_contain_their_addresses() {
        let c: Cidr = "10.0.16.0/20".parse().unwrap();
        assert!(c.contains_str("10.0.31.255"));
        assert!(!c.contains_str("10.0.32.0"));
        assert!(!c.contains_str("::1"));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains_str("8.8.8.8"));
        assert!("10.0.0.1".parse::<Cidr>().unwrap().contains_str("10.0.0.1"));
        assert!("2001:db8::/32"
            .parse::<Cidr>()
            .unwrap()
            .contains_str("2001:db8:1::5"));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example".parse::<Cidr>().is_err());
    }
}
