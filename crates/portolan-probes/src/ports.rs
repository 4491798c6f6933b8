//! Port lists as written in `Exclude`, `ports` and `sslports` lines.

use crate::Proto;

/// A set of port numbers, kept as sorted, non-overlapping inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSet {
    ranges: Vec<(u16, u16)>,
}

impl PortSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        // Ranges are sorted and disjoint: binary search on the start.
        let i = self.ranges.partition_point(|&(lo, _)| lo <= port);
        i > 0 && self.ranges[i - 1].1 >= port
    }

    /// Whether the set holds no port.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The inclusive ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }

    /// Adds `lo..=hi` (`lo <= hi`).
    pub fn insert_range(&mut self, lo: u16, hi: u16) {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        self.ranges.push((lo, hi));
        self.ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(self.ranges.len());
        for &(a, b) in &self.ranges {
            match merged.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.ranges = merged;
    }
}

/// The ports excluded from version detection (`Exclude` directive), per protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Excludes {
    pub tcp: PortSet,
    pub udp: PortSet,
}

impl Excludes {
    /// Whether `port` of `proto` is excluded.
    pub fn contains(&self, proto: Proto, port: u16) -> bool {
        match proto {
            Proto::Tcp => self.tcp.contains(port),
            Proto::Udp => self.udp.contains(port),
        }
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` is not a port number"));
    }
    s.parse::<u16>()
        .map_err(|_| format!("port `{s}` is out of range"))
}

/// Parses `lo-hi` or a single port. An open end (`-100`, `100-`) stands for 0 or 65535, as
/// in Nmap's `-p`.
fn parse_range(s: &str) -> Result<(u16, u16), String> {
    match s.split_once('-') {
        Some((a, b)) => {
            let lo = if a.trim().is_empty() {
                0
            } else {
                parse_port(a)?
            };
            let hi = if b.trim().is_empty() {
                u16::MAX
            } else {
                parse_port(b)?
            };
            if lo > hi {
                return Err(format!("range `{s}` is backwards"));
            }
            Ok((lo, hi))
        }
        None => {
            let p = parse_port(s)?;
            Ok((p, p))
        }
    }
}

/// Parses a plain list (`ports` / `sslports`): `21,43,110,31416-31417`.
pub(crate) fn parse_port_list(s: &str) -> Result<PortSet, String> {
    let mut set = PortSet::new();
    let mut any = false;
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (lo, hi) = parse_range(item)?;
        set.insert_range(lo, hi);
        any = true;
    }
    if !any {
        return Err("empty port list".into());
    }
    Ok(set)
}

/// Parses an `Exclude` list, in the syntax of Nmap's `-p`: items without a prefix apply to
/// TCP and UDP; `T:` and `U:` switch the protocol for the items that follow; `S:` (SCTP) and
/// `P:` (IP protocols) items are accepted and ignored, version detection being TCP/UDP only.
pub(crate) fn parse_exclude(s: &str) -> Result<Excludes, String> {
    #[derive(Clone, Copy)]
    enum Cur {
        Both,
        Tcp,
        Udp,
        Ignored,
    }
    let mut ex = Excludes::default();
    let mut cur = Cur::Both;
    let mut any = false;
    for item in s.split(',') {
        let mut item = item.trim();
        if item.is_empty() {
            continue;
        }
        if let Some((prefix, rest)) = item.split_once(':') {
            cur = match prefix.trim() {
                "T" | "t" => Cur::Tcp,
                "U" | "u" => Cur::Udp,
                "S" | "s" | "P" | "p" => Cur::Ignored,
                other => return Err(format!("unknown protocol prefix `{other}:`")),
            };
            item = rest.trim();
        }
        let (lo, hi) = parse_range(item)?;
        any = true;
        match cur {
            Cur::Both => {
                ex.tcp.insert_range(lo, hi);
                ex.udp.insert_range(lo, hi);
            }
            Cur::Tcp => ex.tcp.insert_range(lo, hi),
            Cur::Udp => ex.udp.insert_range(lo, hi),
            Cur::Ignored => {}
        }
    }
    if !any {
        return Err("empty port list".into());
    }
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_set_merges_and_searches() {
        let mut s = PortSet::new();
        s.insert_range(10, 20);
        s.insert_range(21, 30);
        s.insert_range(5, 5);
        s.insert_range(100, 90);
        assert_eq!(s.ranges(), &[(5, 5), (10, 30), (90, 100)]);
        for p in [5, 10, 25, 30, 90, 100] {
            assert!(s.contains(p), "{p}");
        }
        for p in [0, 4, 6, 9, 31, 89, 101, 65535] {
            assert!(!s.contains(p), "{p}");
        }
    }

    #[test]
    fn port_list_syntax() {
        let s = parse_port_list("21, 43,110,31416-31417").unwrap();
        assert!(s.contains(21) && s.contains(43) && s.contains(31417));
        assert!(!s.contains(22));
        assert!(parse_port_list("").is_err());
        assert!(parse_port_list("80,http").is_err());
        assert!(parse_port_list("70000").is_err());
        assert!(parse_port_list("9-3").is_err());
    }

    #[test]
    fn exclude_prefixes() {
        let ex = parse_exclude("53,T:9100-9107,U:30000-40000,S:7").unwrap();
        assert!(ex.contains(Proto::Tcp, 53) && ex.contains(Proto::Udp, 53));
        assert!(ex.contains(Proto::Tcp, 9104) && !ex.contains(Proto::Udp, 9104));
        assert!(ex.contains(Proto::Udp, 35000) && !ex.contains(Proto::Tcp, 35000));
        assert!(!ex.contains(Proto::Tcp, 7));
        assert!(parse_exclude("X:1").is_err());
    }
}
