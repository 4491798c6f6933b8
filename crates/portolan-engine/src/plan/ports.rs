//! Port specifications in Nmap's `-p` / `--exclude-ports` grammar.
//!
//! A comma-separated list of elements, each optionally preceded by a protocol prefix
//! (`T:`, `U:`, `S:`) that applies to it and every following element until the next
//! prefix. Elements before any prefix apply to every protocol being scanned.
//!
//! - `22`, `1-1024`, `-100` (1-100), `60000-` (60000-65535), `-` (1-65535); port 0 only
//!   when written explicitly (`0`, `0-10`, `0-`)
//! - service names and `*`/`?` wildcards: `http`, `http*` (every port of that name in the
//!   services table, per protocol; case-insensitive)
//! - brackets: `[1-1024]`, `[-]`, `[*]`: only ports that are in the services table; a
//!   bracket may span commas (`[1-5,7-9]`)
//!
//! No whitespace anywhere. Nmap's `P:` (IP protocols, `-sO`) is refused.

use portolan_model::Protocol;

use crate::data::services::ServiceTable;

/// Which protocols are being scanned (unprefixed port elements apply to each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protos {
    pub tcp: bool,
    pub udp: bool,
    pub sctp: bool,
}

impl Protos {
    pub const TCP: Protos = Protos {
        tcp: true,
        udp: false,
        sctp: false,
    };
    pub const UDP: Protos = Protos {
        tcp: false,
        udp: true,
        sctp: false,
    };
    pub const TCP_UDP: Protos = Protos {
        tcp: true,
        udp: true,
        sctp: false,
    };
    pub const ALL: Protos = Protos {
        tcp: true,
        udp: true,
        sctp: true,
    };

    pub fn has(&self, proto: Protocol) -> bool {
        match proto {
            Protocol::Tcp => self.tcp,
            Protocol::Udp => self.udp,
            Protocol::Sctp => self.sctp,
            Protocol::Ip => false,
        }
    }

    /// The selected protocols in Nmap's order (tcp, udp, sctp).
    pub fn list(&self) -> Vec<Protocol> {
        [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
            .into_iter()
            .filter(|p| self.has(*p))
            .collect()
    }
}

/// Ports per protocol, each list sorted ascending and deduplicated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortSet {
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    pub sctp: Vec<u16>,
}

/// Errors from [`parse_port_spec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("empty port specification")]
    Empty,
    #[error("port specification \"{0}\" must not contain whitespace")]
    Whitespace(String),
    #[error("invalid port \"{0}\": must be 0-65535")]
    OutOfRange(String),
    #[error("port range {lo}-{hi} is reversed; did you mean {hi}-{lo}?")]
    Reversed { lo: u16, hi: u16 },
    #[error("no service matches \"{0}\" for the protocols being scanned")]
    UnknownService(String),
    #[error("empty element in port specification \"{0}\"")]
    EmptyElement(String),
    #[error("unknown protocol prefix \"{0}:\" in port specification (use T:, U: or S:)")]
    UnknownPrefix(String),
    #[error("IP protocol ports (\"P:\", for -sO) are not supported")]
    IpProtocol,
    #[error("invalid port specification element \"{0}\"")]
    Syntax(String),
    #[error("nested \"[\" in port specification \"{0}\"")]
    NestedBracket(String),
    #[error("\"]\" without \"[\" in port specification \"{0}\"")]
    UnopenedBracket(String),
    #[error("\"[\" without \"]\" in port specification \"{0}\"")]
    UnclosedBracket(String),
    #[error("protocol prefix inside [ ] in port specification \"{0}\"")]
    PrefixInBracket(String),
    #[error("port specification \"{0}\" selects no ports")]
    NoPorts(String),
}

/// 65536-bit set, for building.
#[derive(Clone)]
struct Bits(Box<[u64; 1024]>);

impl Bits {
    fn new() -> Bits {
        Bits(Box::new([0; 1024]))
    }
    fn insert(&mut self, p: u16) {
        self.0[usize::from(p >> 6)] |= 1u64 << (p & 63);
    }
    fn insert_range(&mut self, lo: u16, hi: u16) {
        for p in lo..=hi {
            self.insert(p);
        }
    }
    fn to_vec(&self) -> Vec<u16> {
        let mut out = Vec::new();
        for (i, &w) in self.0.iter().enumerate() {
            let mut w = w;
            while w != 0 {
                let bit = w.trailing_zeros();
                // i < 1024 and bit < 64: fits in u16.
                out.push((i * 64 + bit as usize) as u16);
                w &= w - 1;
            }
        }
        out
    }
}

impl PortSet {
    pub fn new() -> PortSet {
        PortSet::default()
    }

    /// The ports of `proto` (always empty for `Protocol::Ip`).
    pub fn get(&self, proto: Protocol) -> &[u16] {
        match proto {
            Protocol::Tcp => &self.tcp,
            Protocol::Udp => &self.udp,
            Protocol::Sctp => &self.sctp,
            Protocol::Ip => &[],
        }
    }

    fn get_mut(&mut self, proto: Protocol) -> Option<&mut Vec<u16>> {
        match proto {
            Protocol::Tcp => Some(&mut self.tcp),
            Protocol::Udp => Some(&mut self.udp),
            Protocol::Sctp => Some(&mut self.sctp),
            Protocol::Ip => None,
        }
    }

    /// Replaces `proto`'s ports with `ports` (sorted and deduplicated here).
    pub fn set(&mut self, proto: Protocol, mut ports: Vec<u16>) {
        ports.sort_unstable();
        ports.dedup();
        if let Some(v) = self.get_mut(proto) {
            *v = ports;
        }
    }

    pub fn contains(&self, proto: Protocol, port: u16) -> bool {
        self.get(proto).binary_search(&port).is_ok()
    }

    pub fn len(&self) -> usize {
        self.tcp.len() + self.udp.len() + self.sctp.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every port of `other` (`--exclude-ports`), protocol by protocol.
    pub fn remove(&mut self, other: &PortSet) {
        for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
            let ex = other.get(proto).to_vec();
            if let Some(v) = self.get_mut(proto) {
                v.retain(|p| ex.binary_search(p).is_err());
            }
        }
    }

    /// Only the protocols in `protos` (prefixed elements such as `U:53` are kept by the
    /// parser even when UDP is not scanned, so the caller can warn as Nmap does).
    pub fn restrict(&self, protos: Protos) -> PortSet {
        let keep = |proto: Protocol, v: &Vec<u16>| {
            if protos.has(proto) {
                v.clone()
            } else {
                Vec::new()
            }
        };
        PortSet {
            tcp: keep(Protocol::Tcp, &self.tcp),
            udp: keep(Protocol::Udp, &self.udp),
            sctp: keep(Protocol::Sctp, &self.sctp),
        }
    }

    /// Protocols that have ports but are not in `protos` (for Nmap's "Your ports include
    /// U: but you haven't specified UDP scan" warning).
    pub fn unscanned_protocols(&self, protos: Protos) -> Vec<Protocol> {
        [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
            .into_iter()
            .filter(|p| !protos.has(*p) && !self.get(*p).is_empty())
            .collect()
    }

    /// Top-`n` ports of the services table for each protocol in `protos` (`-F`,
    /// `--top-ports`), skipping ports in `exclude` (Nmap picks after excluding). With
    /// `within`, only ports of that set are candidates (`-p` given with `--top-ports`).
    pub fn top(
        services: &ServiceTable,
        protos: Protos,
        n: usize,
        within: Option<&PortSet>,
        exclude: Option<&PortSet>,
    ) -> PortSet {
        let mut out = PortSet::new();
        for proto in protos.list() {
            let ports = services.top_ports_where(proto, n, |p| {
                let inside = match within {
                    Some(w) => w.contains(proto, p),
                    None => true,
                };
                let excluded = match exclude {
                    Some(e) => e.contains(proto, p),
                    None => false,
                };
                inside && !excluded
            });
            out.set(proto, ports);
        }
        out
    }

    /// Ports whose frequency is at least `ratio` (`--port-ratio`), per protocol.
    pub fn with_ratio(
        services: &ServiceTable,
        protos: Protos,
        ratio: f64,
        exclude: Option<&PortSet>,
    ) -> PortSet {
        let mut out = PortSet::new();
        for proto in protos.list() {
            let mut ports = services.ports_with_ratio(proto, ratio);
            if let Some(e) = exclude {
                ports.retain(|&p| !e.contains(proto, p));
            }
            out.set(proto, ports);
        }
        out
    }
}

/// Formats ports as Nmap's scaninfo `services` attribute: `21-23,25,80`.
pub fn format_port_ranges(ports: &[u16]) -> String {
    portolan_model::compact_port_list(ports)
}

/// Parses a port specification (see the module docs). Unprefixed elements apply to each
/// protocol in `default_protos`; prefixed ones to their protocol only. Never panics.
pub fn parse_port_spec(
    spec: &str,
    services: &ServiceTable,
    default_protos: Protos,
) -> Result<PortSet, PortError> {
    if spec.is_empty() {
        return Err(PortError::Empty);
    }
    if spec.chars().any(char::is_whitespace) {
        return Err(PortError::Whitespace(spec.to_string()));
    }
    let mut bits = [Bits::new(), Bits::new(), Bits::new()];
    let mut current: Option<Protocol> = None; // None = default protocols
    let mut in_bracket = false;

    // A single trailing comma is tolerated, as by Nmap.
    let body = spec.strip_suffix(',').unwrap_or(spec);
    for raw in body.split(',') {
        let mut elem = raw;
        // Protocol prefixes (the last one wins: "T:U:22" is UDP, as in Nmap).
        while let Some((head, rest)) = split_prefix(elem) {
            if in_bracket {
                return Err(PortError::PrefixInBracket(spec.to_string()));
            }
            current = Some(match head {
                'T' => Protocol::Tcp,
                'U' => Protocol::Udp,
                'S' => Protocol::Sctp,
                'P' => return Err(PortError::IpProtocol),
                other => return Err(PortError::UnknownPrefix(other.to_string())),
            });
            elem = rest;
        }
        let mut bracketed = in_bracket;
        if let Some(rest) = elem.strip_prefix('[') {
            if in_bracket {
                return Err(PortError::NestedBracket(spec.to_string()));
            }
            in_bracket = true;
            bracketed = true;
            elem = rest;
        }
        if elem.contains('[') {
            return Err(PortError::NestedBracket(spec.to_string()));
        }
        let mut closes = false;
        if let Some(rest) = elem.strip_suffix(']') {
            if !in_bracket {
                return Err(PortError::UnopenedBracket(spec.to_string()));
            }
            closes = true;
            elem = rest;
        }
        if elem.contains(']') {
            return Err(PortError::UnopenedBracket(spec.to_string()));
        }
        if elem.is_empty() {
            return Err(PortError::EmptyElement(spec.to_string()));
        }

        let protos: Vec<Protocol> = match current {
            Some(p) => vec![p],
            None => default_protos.list(),
        };
        let first = elem.chars().next().unwrap_or('0');
        if first.is_ascii_alphabetic() || first == '*' || first == '?' {
            if !elem.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | '?' | '+' | ':')
            }) {
                return Err(PortError::Syntax(elem.to_string()));
            }
            let mut found = false;
            for proto in &protos {
                for port in services.ports_named(elem, *proto) {
                    found = true;
                    insert(&mut bits, *proto, port, port);
                }
            }
            if !found {
                return Err(PortError::UnknownService(elem.to_string()));
            }
        } else {
            let (lo, hi) = parse_range(elem)?;
            for proto in &protos {
                if bracketed {
                    for port in services.ports_in_range(*proto, lo, hi) {
                        insert(&mut bits, *proto, port, port);
                    }
                } else {
                    insert(&mut bits, *proto, lo, hi);
                }
            }
        }
        if closes {
            in_bracket = false;
        }
    }
    if in_bracket {
        return Err(PortError::UnclosedBracket(spec.to_string()));
    }
    let [tcp, udp, sctp] = bits;
    Ok(PortSet {
        tcp: tcp.to_vec(),
        udp: udp.to_vec(),
        sctp: sctp.to_vec(),
    })
}

fn insert(bits: &mut [Bits; 3], proto: Protocol, lo: u16, hi: u16) {
    let idx = match proto {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Sctp => 2,
        Protocol::Ip => return,
    };
    bits[idx].insert_range(lo, hi);
}

/// `X:rest` with X a single ASCII letter.
fn split_prefix(elem: &str) -> Option<(char, &str)> {
    let mut chars = elem.chars();
    let head = chars.next()?;
    if head.is_ascii_alphabetic() && chars.next() == Some(':') {
        Some((head, &elem[2..]))
    } else {
        None
    }
}

fn parse_port(s: &str) -> Result<u16, PortError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::Syntax(s.to_string()));
    }
    let digits = s.trim_start_matches('0');
    if digits.len() > 5 {
        return Err(PortError::OutOfRange(s.to_string()));
    }
    if digits.is_empty() {
        return Ok(0);
    }
    digits
        .parse::<u32>()
        .ok()
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| PortError::OutOfRange(s.to_string()))
}

/// `N`, `N-M`, `N-`, `-M`, `-`.
fn parse_range(elem: &str) -> Result<(u16, u16), PortError> {
    let (lo, hi) = match elem.split_once('-') {
        None => {
            let p = parse_port(elem).map_err(|e| syntax_in(e, elem))?;
            return Ok((p, p));
        }
        Some((lo, hi)) => (lo, hi),
    };
    if hi.contains('-') {
        return Err(PortError::Syntax(elem.to_string()));
    }
    let lo = if lo.is_empty() {
        1
    } else {
        parse_port(lo).map_err(|e| syntax_in(e, elem))?
    };
    let hi = if hi.is_empty() {
        65535
    } else {
        parse_port(hi).map_err(|e| syntax_in(e, elem))?
    };
    if lo > hi {
        return Err(PortError::Reversed { lo, hi });
    }
    Ok((lo, hi))
}

/// Syntax errors report the whole element, range errors the number.
fn syntax_in(e: PortError, elem: &str) -> PortError {
    match e {
        PortError::Syntax(_) => PortError::Syntax(elem.to_string()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::services::load_nmap_services;

    const SAMPLE: &str = "tcpmux\t1/tcp\t0.001995\n\
        echo\t7/tcp\t0.004855\n\
        echo\t7/udp\t0.024679\n\
        ssh\t22/tcp\t0.182286\n\
        ssh\t22/udp\t0.003905\n\
        telnet\t23/tcp\t0.221265\n\
        domain\t53/tcp\t0.048463\n\
        domain\t53/udp\t0.213496\n\
        http\t80/tcp\t0.484143\n\
        http\t80/udp\t0.035767\n\
        snmp\t161/udp\t0.433467\n\
        https\t443/tcp\t0.208669\n\
        http\t8008/tcp\t0.000292\n\
        http-alt\t8080/tcp\t0.000292\n\
        m3ua\t2905/sctp\t0.000100\n";

    fn table() -> ServiceTable {
        load_nmap_services(SAMPLE).unwrap()
    }

    fn tcp(spec: &str) -> Vec<u16> {
        let s = parse_port_spec(spec, &table(), Protos::TCP).unwrap();
        assert!(s.udp.is_empty() && s.sctp.is_empty(), "{spec}: {s:?}");
        s.tcp
    }

    fn both(spec: &str) -> PortSet {
        parse_port_spec(spec, &table(), Protos::TCP_UDP).unwrap()
    }

    fn err(spec: &str) -> PortError {
        parse_port_spec(spec, &table(), Protos::TCP_UDP).unwrap_err()
    }

    #[test]
    fn numbers_and_ranges() {
        assert_eq!(tcp("22"), vec![22]);
        assert_eq!(tcp("1-5"), vec![1, 2, 3, 4, 5]);
        assert_eq!(tcp("22,80,443"), vec![22, 80, 443]);
        assert_eq!(tcp("443,22,80,22"), vec![22, 80, 443]);
        assert_eq!(tcp("1-3,2-5"), vec![1, 2, 3, 4, 5]);
        assert_eq!(tcp("-"), (1..=65535).collect::<Vec<u16>>());
        assert_eq!(tcp("-3"), vec![1, 2, 3]);
        assert_eq!(tcp("65533-"), vec![65533, 65534, 65535]);
        assert_eq!(tcp("0"), vec![0]);
        assert_eq!(tcp("0-2"), vec![0, 1, 2]);
        assert_eq!(tcp("0-").len(), 65536);
        assert_eq!(tcp("-65535").len(), 65535);
        assert_eq!(tcp("022"), vec![22]);
        assert_eq!(tcp("22-22"), vec![22]);
        assert_eq!(tcp("22,"), vec![22]);
        assert_eq!(tcp("00000000065535"), vec![65535]);
    }

    #[test]
    fn protocol_prefixes() {
        let s = both("T:22,80,U:53,161");
        assert_eq!(s.tcp, vec![22, 80]);
        assert_eq!(s.udp, vec![53, 161]);
        let s = both("U:53,T:22");
        assert_eq!((s.tcp, s.udp), (vec![22], vec![53]));
        let s = both("22,T:80,U:53");
        assert_eq!((s.tcp, s.udp), (vec![22, 80], vec![22, 53]));
        let s = both("T:U:22");
        assert_eq!((s.tcp, s.udp), (vec![], vec![22]));
        let s = both("S:2905");
        assert_eq!(s.sctp, vec![2905]);
        assert!(s.tcp.is_empty() && s.udp.is_empty());
        assert_eq!(s.unscanned_protocols(Protos::TCP_UDP), vec![Protocol::Sctp]);
        assert!(s.restrict(Protos::TCP_UDP).is_empty());
        // Unprefixed ports follow the scanned protocols.
        let s = parse_port_spec("22", &table(), Protos::ALL).unwrap();
        assert_eq!((s.tcp, s.udp, s.sctp), (vec![22], vec![22], vec![22]));
        let s = parse_port_spec("22", &table(), Protos::UDP).unwrap();
        assert_eq!((s.tcp, s.udp), (vec![], vec![22]));
        // Prefixed ports are kept even when that protocol is not scanned.
        let s = parse_port_spec("U:53", &table(), Protos::TCP).unwrap();
        assert_eq!(s.udp, vec![53]);
        assert_eq!(s.unscanned_protocols(Protos::TCP), vec![Protocol::Udp]);
    }

    #[test]
    fn names_and_wildcards() {
        let s = both("http");
        assert_eq!((s.tcp, s.udp), (vec![80, 8008], vec![80]));
        let s = both("ssh,http");
        assert_eq!((s.tcp, s.udp), (vec![22, 80, 8008], vec![22, 80]));
        assert_eq!(tcp("http*"), vec![80, 443, 8008, 8080]);
        assert_eq!(tcp("ss?"), vec![22]);
        assert_eq!(tcp("SSH"), vec![22]);
        assert_eq!(tcp("*"), vec![1, 7, 22, 23, 53, 80, 443, 8008, 8080]);
        let s = both("T:domain");
        assert_eq!((s.tcp, s.udp), (vec![53], vec![]));
        let s = both("U:snmp,22");
        assert_eq!((s.tcp, s.udp), (vec![], vec![22, 161]));
        // snmp is UDP-only: fine when UDP is scanned, unknown for a TCP scan.
        assert_eq!(both("snmp").udp, vec![161]);
        assert_eq!(
            parse_port_spec("snmp", &table(), Protos::TCP).unwrap_err(),
            PortError::UnknownService("snmp".into())
        );
        assert_eq!(
            err("T:snmp").to_string(),
            "no service matches \"snmp\" for the protocols being scanned"
        );
        assert_eq!(err("nosuch"), PortError::UnknownService("nosuch".into()));
        assert_eq!(
            err("http,nosuch*"),
            PortError::UnknownService("nosuch*".into())
        );
    }

    #[test]
    fn brackets_mean_ports_in_the_table() {
        let s = both("[1-30]");
        assert_eq!((s.tcp, s.udp), (vec![1, 7, 22, 23], vec![7, 22]));
        assert_eq!(tcp("[-]"), vec![1, 7, 22, 23, 53, 80, 443, 8008, 8080]);
        assert_eq!(tcp("[-30]"), vec![1, 7, 22, 23]);
        assert_eq!(tcp("[8000-]"), vec![8008, 8080]);
        assert_eq!(tcp("[22]"), vec![22]);
        assert_eq!(tcp("[24]"), Vec::<u16>::new());
        assert_eq!(tcp("[http]"), vec![80, 8008]);
        assert_eq!(tcp("[*]").len(), 9);
        assert_eq!(tcp("[1-5,7-9],24"), vec![1, 7, 24]);
        assert_eq!(tcp("[1-5],[7-9]"), vec![1, 7]);
        let s = both("T:[1-30],U:7");
        assert_eq!((s.tcp, s.udp), (vec![1, 7, 22, 23], vec![7]));
        assert_eq!(err("[[22]]"), PortError::NestedBracket("[[22]]".into()));
        assert_eq!(err("22[,]"), PortError::NestedBracket("22[,]".into()));
        assert_eq!(err("1-5]"), PortError::UnopenedBracket("1-5]".into()));
        assert_eq!(err("[1-5"), PortError::UnclosedBracket("[1-5".into()));
        assert_eq!(err("[1,T:2]"), PortError::PrefixInBracket("[1,T:2]".into()));
        assert_eq!(err("[]"), PortError::EmptyElement("[]".into()));
    }

    #[test]
    fn errors() {
        assert_eq!(err(""), PortError::Empty);
        assert_eq!(
            err("70000").to_string(),
            "invalid port \"70000\": must be 0-65535"
        );
        assert_eq!(err("65536"), PortError::OutOfRange("65536".into()));
        assert_eq!(
            err("1-99999999999999999999"),
            PortError::OutOfRange("99999999999999999999".into())
        );
        assert_eq!(
            err("5-3").to_string(),
            "port range 5-3 is reversed; did you mean 3-5?"
        );
        assert_eq!(err("-0"), PortError::Reversed { lo: 1, hi: 0 });
        assert_eq!(err("22-0"), PortError::Reversed { lo: 22, hi: 0 });
        assert_eq!(err("22,,80"), PortError::EmptyElement("22,,80".into()));
        assert_eq!(err(",22"), PortError::EmptyElement(",22".into()));
        assert_eq!(err(","), PortError::EmptyElement(",".into()));
        assert_eq!(err("T:"), PortError::EmptyElement("T:".into()));
        assert_eq!(err("22, 80"), PortError::Whitespace("22, 80".into()));
        assert_eq!(err("22\t"), PortError::Whitespace("22\t".into()));
        assert_eq!(err("t:22"), PortError::UnknownPrefix("t".into()));
        assert_eq!(err("X:22"), PortError::UnknownPrefix("X".into()));
        assert_eq!(err("P:6"), PortError::IpProtocol);
        assert_eq!(err("1-2-3"), PortError::Syntax("1-2-3".into()));
        assert_eq!(err("22:"), PortError::Syntax("22:".into()));
        assert_eq!(err(":22"), PortError::Syntax(":22".into()));
        assert_eq!(err("+22"), PortError::Syntax("+22".into()));
        assert_eq!(err("0x16"), PortError::Syntax("0x16".into()));
        assert_eq!(err("22-http"), PortError::Syntax("22-http".into()));
        assert_eq!(err("3com"), PortError::Syntax("3com".into()));
        assert_eq!(err("ht$tp"), PortError::Syntax("ht$tp".into()));
        assert_eq!(err("22-ü"), PortError::Syntax("22-ü".into()));
    }

    #[test]
    fn never_panics() {
        let pieces = [
            "",
            "0",
            "65535",
            "65536",
            "-",
            ",",
            "[",
            "]",
            "T:",
            "U:",
            "S:",
            "P:",
            "x:",
            "*",
            "?",
            "http",
            "é",
            ":",
            "99999999999999999999",
        ];
        let t = table();
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let s = format!("{a}{b}{c}");
                    let _ = parse_port_spec(&s, &t, Protos::ALL);
                    let _ = parse_port_spec(&format!("{a},{b}-{c}"), &t, Protos::TCP);
                }
            }
        }
    }

    #[test]
    fn exclude_ports() {
        let mut s = both("1-10,U:1-5");
        let ex = both("T:3-4,U:5,9");
        s.remove(&ex);
        // "1-10" is unprefixed (both protocols); the U: prefix is sticky, so 9 is UDP.
        assert_eq!(s.tcp, vec![1, 2, 5, 6, 7, 8, 9, 10]);
        assert_eq!(s.udp, vec![1, 2, 3, 4, 6, 7, 8, 10]);
        let mut all = both("-");
        all.remove(&both("-"));
        assert!(all.is_empty());
    }

    #[test]
    fn top_and_ratio_sets() {
        let t = table();
        let s = PortSet::top(&t, Protos::TCP_UDP, 2, None, None);
        assert_eq!(
            (s.tcp.clone(), s.udp.clone()),
            (vec![23, 80], vec![53, 161])
        );
        // Nmap picks the top N after --exclude-ports and within -p.
        let ex = both("T:80");
        let s = PortSet::top(&t, Protos::TCP, 2, None, Some(&ex));
        assert_eq!(s.tcp, vec![23, 443]);
        let within = both("1-100");
        let s = PortSet::top(&t, Protos::TCP, 2, Some(&within), None);
        assert_eq!(s.tcp, vec![23, 80]);
        let s = PortSet::top(&t, Protos::TCP, 3, Some(&both("1-30")), None);
        assert_eq!(s.tcp, vec![7, 22, 23]);
        let s = PortSet::with_ratio(&t, Protos::TCP_UDP, 0.2, None);
        assert_eq!((s.tcp, s.udp), (vec![23, 80, 443], vec![53, 161]));
        let s = PortSet::top(&t, Protos::ALL, 5, None, None);
        assert_eq!(s.sctp, vec![2905]);
    }

    #[test]
    fn format_ranges() {
        assert_eq!(format_port_ranges(&[]), "");
        assert_eq!(format_port_ranges(&[5]), "5");
        assert_eq!(
            format_port_ranges(&[21, 22, 23, 25, 80, 81]),
            "21-23,25,80-81"
        );
        assert_eq!(format_port_ranges(&[0, 1, 65534, 65535]), "0-1,65534-65535");
    }

    #[test]
    fn installed_nmap_services_agree_with_nmap() {
        // Results of `nmap -sT -sU -p SPEC -oX - -iL /dev/null` (no targets, no traffic)
        // with Nmap 7.93.
        let Some(t) = crate::data::services::tests::installed() else {
            return;
        };
        let p = |spec: &str| parse_port_spec(spec, &t, Protos::TCP_UDP).unwrap();
        let s = p("http");
        assert_eq!((s.tcp, s.udp), (vec![80, 8008], vec![80]));
        let s = p("http*");
        assert_eq!(
            format_port_ranges(&s.tcp),
            "80,280,443,591,593,4180,8000,8008,8080,8443,8990-8991"
        );
        assert_eq!(
            format_port_ranges(&s.udp),
            "80,280,443,591,593,4180,8008,8080,8990-8991"
        );
        let s = p("[1-100]");
        assert_eq!(format_port_ranges(&s.tcp), "1-35,37-100");
        assert_eq!(
            format_port_ranges(&s.udp),
            "1-3,5,7,9,11,13,17-25,27,29,31,33,35,37-39,41-59,61-86,88-99"
        );
        assert_eq!(p("[*]").tcp.len(), 8366);
        assert_eq!(p("[*]").udp.len(), 19022);
        assert_eq!(p("ftp?").tcp, vec![990]);
        assert_eq!(p("ms-wbt-server").tcp, vec![3389]);
        assert_eq!(p("microsoft-ds,netbios*").tcp, vec![137, 138, 139, 445]);
        assert_eq!(p("[22-]").tcp.len(), 8345);
        // -F with --exclude-ports 1-100 still gives 100 ports.
        let ex = p("1-100");
        let s = PortSet::top(&t, Protos::TCP, 100, None, Some(&ex));
        assert_eq!(s.tcp.len(), 100);
        assert_eq!(s.tcp[0], 106);
        // -p 1-100 --top-ports 5 → 21-23,25,80.
        let s = PortSet::top(&t, Protos::TCP, 5, Some(&p("1-100")), None);
        assert_eq!(format_port_ranges(&s.tcp), "21-23,25,80");
        // --port-ratio 0.01 → 36 tcp ports.
        assert_eq!(
            PortSet::with_ratio(&t, Protos::TCP, 0.01, None).tcp.len(),
            36
        );
    }
}
