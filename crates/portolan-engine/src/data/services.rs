//! The services table: port/protocol → service name, and how often each port is found open.
//!
//! Two sources fill it: Nmap's `nmap-services` file, read at run time from where it is
//! installed ([`load_nmap_services`]), and Portolan's own built-in table
//! ([`ServiceTable::builtin`]), used when no Nmap data is available.
//!
//! Top-N rule (as in Nmap): stable sort of one protocol's entries by frequency, descending,
//! ties keeping file order (ascending port in `nmap-services`); the first N are the top N.

use std::collections::HashMap;

use portolan_model::Protocol;

/// One line of a services table.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEntry {
    pub name: String,
    pub port: u16,
    pub proto: Protocol,
    /// How often the port is found open (`nmap-services`), or for the built-in table a
    /// score made up from Portolan's own rank (`1 / rank`, 0 when unranked).
    pub frequency: f64,
}

/// A malformed line skipped while loading a services file: (1-based line number, message).
pub type ServicesWarning = (usize, String);

/// Failure to load a services table at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServicesError {
    /// The text held no usable entry (an empty, truncated or unrelated file).
    #[error("no service entries found ({skipped} malformed lines skipped)")]
    NoEntries { skipped: usize },
}

/// A services table: entries in file order plus indexes.
#[derive(Debug, Clone, Default)]
pub struct ServiceTable {
    entries: Vec<ServiceEntry>,
    /// (proto, port) → index of the first entry for it.
    by_port: HashMap<(Protocol, u16), usize>,
    warnings: Vec<ServicesWarning>,
    /// Built-in table: `top_ports` fills past the ranked entries with ascending ports.
    fill_unranked: bool,
}

const BUILTIN_TEXT: &str = include_str!("../../data/builtin-services.txt");

/// Parses `nmap-services` text: `name<ws>port/proto<ws>frequency[<ws># comment]`.
///
/// `#` starts a comment anywhere; blank lines are ignored. Malformed lines, unknown
/// protocols and repeated port/proto pairs are skipped and reported in
/// [`ServiceTable::warnings`]. Fails only when no entry at all could be read.
pub fn load_nmap_services(text: &str) -> Result<ServiceTable, ServicesError> {
    let mut table = ServiceTable::default();
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = strip_comment(raw);
        let mut fields = line.split_ascii_whitespace();
        let Some(name) = fields.next() else { continue };
        let Some(port_proto) = fields.next() else {
            table
                .warnings
                .push((line_no, format!("missing port/protocol after \"{name}\"")));
            continue;
        };
        let (port, proto) = match parse_port_proto(port_proto) {
            Ok(pp) => pp,
            Err(msg) => {
                table.warnings.push((line_no, msg));
                continue;
            }
        };
        let frequency = match fields.next() {
            None => 0.0,
            Some(f) => match f.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => v,
                _ => {
                    table
                        .warnings
                        .push((line_no, format!("bad frequency \"{f}\"")));
                    continue;
                }
            },
        };
        if let Some(extra) = fields.next() {
            table
                .warnings
                .push((line_no, format!("unexpected field \"{extra}\"")));
            continue;
        }
        if table.by_port.contains_key(&(proto, port)) {
            table.warnings.push((
                line_no,
                format!("duplicate entry for {port}/{}", proto.as_str()),
            ));
            continue;
        }
        table.push(ServiceEntry {
            name: name.to_string(),
            port,
            proto,
            frequency,
        });
    }
    if table.entries.is_empty() {
        return Err(ServicesError::NoEntries {
            skipped: table.warnings.len(),
        });
    }
    Ok(table)
}

fn strip_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    }
}

fn parse_proto(s: &str) -> Option<Protocol> {
    match s {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "sctp" => Some(Protocol::Sctp),
        _ => None,
    }
}

fn parse_port_proto(s: &str) -> Result<(u16, Protocol), String> {
    let Some((port, proto)) = s.split_once('/') else {
        return Err(format!("bad port/protocol \"{s}\""));
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad port \"{port}\""));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port \"{port}\" out of range 0-65535"))?;
    let proto = parse_proto(proto).ok_or_else(|| format!("unknown protocol \"{proto}\""))?;
    Ok((port, proto))
}

impl ServiceTable {
    /// Portolan's own built-in table (see `data/builtin-services.txt`).
    pub fn builtin() -> ServiceTable {
        let (table, _warnings) = parse_builtin(BUILTIN_TEXT);
        table
    }

    fn push(&mut self, entry: ServiceEntry) {
        self.by_port
            .entry((entry.proto, entry.port))
            .or_insert(self.entries.len());
        self.entries.push(entry);
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[ServiceEntry] {
        &self.entries
    }

    /// Lines skipped while loading: (1-based line number, message).
    pub fn warnings(&self) -> &[ServicesWarning] {
        &self.warnings
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether this is the built-in table (which fills `top_ports` past its ranked entries).
    pub fn is_builtin(&self) -> bool {
        self.fill_unranked
    }

    /// The service name of the first entry for `port`/`proto`.
    pub fn lookup(&self, port: u16, proto: Protocol) -> Option<&str> {
        self.by_port
            .get(&(proto, port))
            .and_then(|&i| self.entries.get(i))
            .map(|e| e.name.as_str())
    }

    /// Whether the table has an entry for `port`/`proto`.
    pub fn contains(&self, port: u16, proto: Protocol) -> bool {
        self.by_port.contains_key(&(proto, port))
    }

    /// Ports of `proto` whose service name matches `pattern` (`*` = any run of characters,
    /// `?` = one character; case-insensitive), ascending and deduplicated.
    pub fn ports_named(&self, pattern: &str, proto: Protocol) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .entries
            .iter()
            .filter(|e| e.proto == proto && glob_match(pattern, &e.name))
            .map(|e| e.port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Ports of `proto` in the table within `lo..=hi`, ascending.
    pub fn ports_in_range(&self, proto: Protocol, lo: u16, hi: u16) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .entries
            .iter()
            .filter(|e| e.proto == proto && (lo..=hi).contains(&e.port))
            .map(|e| e.port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// `proto`'s entries in top-ports order: frequency descending, ties in file order.
    fn ranked(&self, proto: Protocol) -> Vec<&ServiceEntry> {
        let mut v: Vec<&ServiceEntry> = self.entries.iter().filter(|e| e.proto == proto).collect();
        // Stable sort; frequencies are finite (checked on load), so total_cmp is exact.
        v.sort_by(|a, b| b.frequency.total_cmp(&a.frequency));
        v
    }

    /// The `n` most frequently open ports of `proto`, most frequent first.
    ///
    /// For a loaded `nmap-services` table, at most the number of entries of `proto` (as
    /// Nmap). For the built-in table, the ranked entries and then, if `n` exceeds them, the
    /// remaining ports ascending from 1.
    pub fn top_ports(&self, proto: Protocol, n: usize) -> Vec<u16> {
        self.top_ports_where(proto, n, |_| true)
    }

    /// Like [`top_ports`](Self::top_ports) but only among ports for which `allowed` holds
    /// (Nmap picks `--top-ports` after `--exclude-ports` and within `-p`).
    pub fn top_ports_where(
        &self,
        proto: Protocol,
        n: usize,
        allowed: impl Fn(u16) -> bool,
    ) -> Vec<u16> {
        let mut out = Vec::with_capacity(n.min(65536));
        let mut seen = vec![false; 65536];
        for e in self.ranked(proto) {
            if out.len() >= n {
                break;
            }
            if self.fill_unranked && e.frequency <= 0.0 {
                break;
            }
            let p = usize::from(e.port);
            if !seen[p] && allowed(e.port) {
                seen[p] = true;
                out.push(e.port);
            }
        }
        if self.fill_unranked && proto != Protocol::Ip {
            for port in 1..=u16::MAX {
                if out.len() >= n {
                    break;
                }
                if !seen[usize::from(port)] && allowed(port) {
                    seen[usize::from(port)] = true;
                    out.push(port);
                }
            }
        }
        out
    }

    /// Ports of `proto` whose frequency is at least `ratio` (`--port-ratio`), most
    /// frequent first. A ratio of 0 gives every entry of `proto`.
    pub fn ports_with_ratio(&self, proto: Protocol, ratio: f64) -> Vec<u16> {
        self.ranked(proto)
            .into_iter()
            .filter(|e| e.frequency >= ratio)
            .map(|e| e.port)
            .collect()
    }
}

/// Parses the built-in format: `<proto> <rank|-> <port> <name>`.
fn parse_builtin(text: &str) -> (ServiceTable, Vec<ServicesWarning>) {
    let mut table = ServiceTable {
        fill_unranked: true,
        ..ServiceTable::default()
    };
    let mut warnings = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let fields: Vec<&str> = strip_comment(raw).split_ascii_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let [proto, rank, port, name] = fields[..] else {
            warnings.push((line_no, "expected 4 fields".to_string()));
            continue;
        };
        let Some(proto) = parse_proto(proto) else {
            warnings.push((line_no, format!("unknown protocol \"{proto}\"")));
            continue;
        };
        let frequency = if rank == "-" {
            0.0
        } else {
            match rank.parse::<u32>() {
                Ok(r) if r > 0 => 1.0 / f64::from(r),
                _ => {
                    warnings.push((line_no, format!("bad rank \"{rank}\"")));
                    continue;
                }
            }
        };
        let Ok(port) = port.parse::<u16>() else {
            warnings.push((line_no, format!("bad port \"{port}\"")));
            continue;
        };
        if table.contains(port, proto) {
            warnings.push((line_no, format!("duplicate entry for {port}")));
            continue;
        }
        table.push(ServiceEntry {
            name: name.to_string(),
            port,
            proto,
            frequency,
        });
    }
    table.warnings = warnings.clone();
    (table, warnings)
}

/// Case-insensitive glob match: `*` matches any run (including empty), `?` one character.
/// Iterative with single-star backtracking: O(len(pattern) * len(text)) worst case.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const NMAP_SERVICES: &str = "/usr/share/nmap/nmap-services";

    /// The installed nmap-services, or `None` (test skipped, with a message) when absent.
    /// Panics when absent under PORTOLAN_LAB=required (scripts/test.sh as root installs it).
    pub(crate) fn installed() -> Option<ServiceTable> {
        match std::fs::read_to_string(NMAP_SERVICES) {
            Ok(text) => Some(load_nmap_services(&text).expect("installed nmap-services parses")),
            Err(e) => {
                if std::env::var("PORTOLAN_LAB").as_deref() == Ok("required") {
                    panic!("{NMAP_SERVICES} unavailable ({e}) and PORTOLAN_LAB=required: run scripts/install-lab-deps.sh as root");
                }
                eprintln!(
                    "skipped: needs {NMAP_SERVICES} ({e}; package nmap); run scripts/test.sh as root to install it"
                );
                None
            }
        }
    }

    const SAMPLE: &str = "# comment line\n\
        \n\
        echo\t7/tcp\t0.004855\t# Echo\n\
        echo\t7/udp\t0.024679\n\
        ssh\t22/tcp\t0.182286\t# Secure Shell\n\
        telnet\t23/tcp\t0.221265\r\n\
        smtp\t25/tcp\t0.131314\n\
        tie-a\t30/tcp\t0.004855\n\
        http\t80/tcp\t0.484143\n\
        http\t8008/tcp\t0.000292\n\
        http-alt\t8080/tcp\t0.000292\n\
        HTTP-x\t8081/tcp\t0.000100\n\
        nofreq\t9999/tcp\n";

    #[test]
    fn parses_sample() {
        let t = load_nmap_services(SAMPLE).unwrap();
        assert_eq!(t.len(), 11);
        assert!(t.warnings().is_empty(), "{:?}", t.warnings());
        assert_eq!(t.lookup(22, Protocol::Tcp), Some("ssh"));
        assert_eq!(t.lookup(23, Protocol::Tcp), Some("telnet"));
        assert_eq!(t.lookup(7, Protocol::Udp), Some("echo"));
        assert_eq!(t.lookup(22, Protocol::Udp), None);
        assert_eq!(t.lookup(9999, Protocol::Tcp), Some("nofreq"));
        assert_eq!(t.entries()[9].frequency, 0.0001);
        assert!(!t.is_builtin());
    }

    #[test]
    fn malformed_lines_are_warnings_with_line_numbers() {
        let text = "ok\t1/tcp\t0.5\n\
            lonely\n\
            badport\tx/tcp\t0.1\n\
            bigport\t70000/tcp\t0.1\n\
            noslash\t80\t0.1\n\
            badproto\t80/icmp\t0.1\n\
            badfreq\t80/tcp\tabc\n\
            negfreq\t80/tcp\t-1\n\
            nanfreq\t80/tcp\tNaN\n\
            dup\t1/tcp\t0.2\n\
            extra\t81/tcp\t0.1\tjunk\n\
            fine\t82/udp\t0.1 # trailing comment\n";
        let t = load_nmap_services(text).unwrap();
        assert_eq!(t.len(), 2);
        let lines: Vec<usize> = t.warnings().iter().map(|w| w.0).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert!(t.warnings()[3].1.contains("80"), "{:?}", t.warnings()[3]);
        assert!(t.warnings()[8].1.contains("duplicate"));
        assert_eq!(t.lookup(1, Protocol::Tcp), Some("ok"));
    }

    #[test]
    fn empty_or_garbage_is_an_error() {
        assert_eq!(
            load_nmap_services("").unwrap_err(),
            ServicesError::NoEntries { skipped: 0 }
        );
        assert_eq!(
            load_nmap_services("# only comments\n\n").unwrap_err(),
            ServicesError::NoEntries { skipped: 0 }
        );
        assert_eq!(
            load_nmap_services("<html>\n<body>\n").unwrap_err(),
            ServicesError::NoEntries { skipped: 2 }
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "\0\0\0",
            "a\t/tcp",
            "a\t1/\t1",
            "a 1/tcp 1e400",
            "a 65535/sctp 0",
            "ü\t1/tcp\t0.1",
            "a\t1/tcp/x\t0.1",
            "#",
            "a\t+1/tcp\t1",
        ] {
            let _ = load_nmap_services(s);
        }
        assert_eq!(
            load_nmap_services("a 65535/sctp 0")
                .unwrap()
                .lookup(65535, Protocol::Sctp),
            Some("a")
        );
        // 1e400 is infinite: rejected.
        assert!(load_nmap_services("a 1/tcp 1e400").is_err());
    }

    #[test]
    fn names_and_wildcards() {
        let t = load_nmap_services(SAMPLE).unwrap();
        assert_eq!(t.ports_named("http", Protocol::Tcp), vec![80, 8008]);
        assert_eq!(
            t.ports_named("http*", Protocol::Tcp),
            vec![80, 8008, 8080, 8081]
        );
        assert_eq!(t.ports_named("HTTP", Protocol::Tcp), vec![80, 8008]);
        assert_eq!(t.ports_named("ech?", Protocol::Udp), vec![7]);
        assert_eq!(t.ports_named("*", Protocol::Udp), vec![7]);
        assert!(t.ports_named("nosuch", Protocol::Tcp).is_empty());
        assert_eq!(
            t.ports_in_range(Protocol::Tcp, 1, 30),
            vec![7, 22, 23, 25, 30]
        );
    }

    #[test]
    fn glob() {
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*ssh", "ssh"));
        assert!(glob_match("s?h", "SSH"));
        assert!(!glob_match("s?h", "sh"));
        assert!(glob_match("**a**", "bab"));
        // Pathological pattern stays fast.
        let text = "a".repeat(2000);
        assert!(!glob_match(&format!("{}b", "*a".repeat(50)), &text));
    }

    #[test]
    fn top_ports_tie_rule_on_sample() {
        let t = load_nmap_services(SAMPLE).unwrap();
        assert_eq!(t.top_ports(Protocol::Tcp, 3), vec![80, 23, 22]);
        // 7/tcp and 30/tcp tie: file order.
        assert_eq!(
            t.top_ports(Protocol::Tcp, 100),
            vec![80, 23, 22, 25, 7, 30, 8008, 8080, 8081, 9999]
        );
        assert_eq!(t.top_ports(Protocol::Tcp, 0), Vec::<u16>::new());
        assert_eq!(t.top_ports(Protocol::Sctp, 10), Vec::<u16>::new());
        assert_eq!(t.top_ports(Protocol::Ip, 10), Vec::<u16>::new());
        assert_eq!(
            t.top_ports_where(Protocol::Tcp, 3, |p| p != 23),
            vec![80, 22, 25]
        );
        assert_eq!(
            t.ports_with_ratio(Protocol::Tcp, 0.13),
            vec![80, 23, 22, 25]
        );
        assert_eq!(t.ports_with_ratio(Protocol::Tcp, 0.0).len(), 10);
        assert_eq!(t.ports_with_ratio(Protocol::Tcp, 1.0), Vec::<u16>::new());
    }

    #[test]
    fn installed_top_ports() {
        let Some(t) = installed() else { return };
        assert_eq!(
            t.top_ports(Protocol::Tcp, 10),
            vec![80, 23, 443, 21, 22, 25, 3389, 110, 445, 139]
        );
        assert_eq!(
            t.top_ports(Protocol::Udp, 10),
            vec![631, 161, 137, 123, 138, 1434, 445, 135, 67, 53]
        );
        assert_eq!(t.top_ports(Protocol::Tcp, 1000).len(), 1000);
        assert_eq!(t.top_ports(Protocol::Udp, 1000).len(), 1000);
        assert_eq!(t.top_ports(Protocol::Tcp, 100).len(), 100);
        assert_eq!(t.top_ports(Protocol::Sctp, 10).len(), 10);
        assert_eq!(
            sorted(t.top_ports(Protocol::Sctp, 10)),
            vec![7, 9, 20, 21, 22, 80, 179, 443, 1167, 1812]
        );
        // More than there are entries: all entries (Nmap caps at the table).
        let tcp_entries = t
            .entries()
            .iter()
            .filter(|e| e.proto == Protocol::Tcp)
            .count();
        assert_eq!(t.top_ports(Protocol::Tcp, 65536).len(), tcp_entries);
        assert_eq!(t.ports_with_ratio(Protocol::Tcp, 0.0).len(), tcp_entries);
        assert_eq!(t.warnings(), &[] as &[ServicesWarning]);
    }

    fn sorted(mut v: Vec<u16>) -> Vec<u16> {
        v.sort_unstable();
        v
    }

    /// FNV-1a over the sorted list, to compare with what `nmap` reports (scaninfo
    /// services) without storing Nmap's data here.
    fn fingerprint(ports: &[u16]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for p in ports {
            for b in p.to_be_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    #[test]
    fn installed_top_ports_match_nmap_boundary_rule() {
        let Some(t) = installed() else { return };
        let top = t.top_ports(Protocol::Tcp, 1000);
        let freq = |p: u16| {
            t.entries()
                .iter()
                .find(|e| e.proto == Protocol::Tcp && e.port == p)
                .map(|e| e.frequency)
                .unwrap()
        };
        let boundary = freq(top[999]);
        let tied: Vec<u16> = t
            .entries()
            .iter()
            .filter(|e| e.proto == Protocol::Tcp && e.frequency == boundary)
            .map(|e| e.port)
            .collect();
        let tied_in: Vec<u16> = sorted(
            top.iter()
                .copied()
                .filter(|&p| freq(p) == boundary)
                .collect(),
        );
        // Nmap 7.93 facts: 326 tcp ports share the boundary frequency, the 70 lowest are in.
        assert_eq!(tied.len(), 326);
        assert_eq!(tied_in.len(), 70);
        assert_eq!(tied_in[..], sorted(tied.clone())[..70]);
        // Every port above the boundary frequency is in.
        assert!(t
            .entries()
            .iter()
            .filter(|e| e.proto == Protocol::Tcp && e.frequency > boundary)
            .all(|e| top.contains(&e.port)));
        // Same sets as `nmap -sT/-sU [-F] -oX - -iL /dev/null` reported (Nmap 7.93).
        assert_eq!(fingerprint(&sorted(top)), 0x0dab_e4f1_aeb0_b464);
        assert_eq!(
            fingerprint(&sorted(t.top_ports(Protocol::Tcp, 100))),
            0xf4ca_67d6_1240_beeb
        );
        assert_eq!(
            fingerprint(&sorted(t.top_ports(Protocol::Udp, 1000))),
            0x483b_8cd1_4f8b_156d
        );
        assert_eq!(
            fingerprint(&sorted(t.top_ports(Protocol::Udp, 100))),
            0x90cb_5df6_c150_091d
        );
    }

    #[test]
    fn builtin_table_is_clean() {
        let (t, warnings) = parse_builtin(BUILTIN_TEXT);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(t.is_builtin());
        assert!((150..=300).contains(&t.len()), "{}", t.len());
        // Ranks are 1..=k without gaps within each protocol.
        for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
            let mut ranks: Vec<u32> = BUILTIN_TEXT
                .lines()
                .map(strip_comment)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_ascii_whitespace().collect();
                    (f.len() == 4 && f[0] == proto.as_str() && f[1] != "-")
                        .then(|| f[1].parse().unwrap())
                })
                .collect();
            let n = ranks.len() as u32;
            ranks.sort_unstable();
            assert_eq!(ranks, (1..=n).collect::<Vec<u32>>(), "{proto:?}");
        }
        for (port, proto, name) in [
            (22, Protocol::Tcp, "ssh"),
            (80, Protocol::Tcp, "http"),
            (443, Protocol::Tcp, "https"),
            (21, Protocol::Tcp, "ftp"),
            (53, Protocol::Udp, "domain"),
            (161, Protocol::Udp, "snmp"),
            (445, Protocol::Tcp, "microsoft-ds"),
            (139, Protocol::Tcp, "netbios-ssn"),
            (3389, Protocol::Tcp, "ms-wbt-server"),
            (3306, Protocol::Tcp, "mysql"),
            (5432, Protocol::Tcp, "postgresql"),
            (6379, Protocol::Tcp, "redis"),
        ] {
            assert_eq!(t.lookup(port, proto), Some(name), "{port}");
        }
    }

    #[test]
    fn builtin_top_ports_fill() {
        let t = ServiceTable::builtin();
        let top = t.top_ports(Protocol::Tcp, 5);
        assert_eq!(top, vec![80, 443, 22, 21, 25]);
        let ranked = t
            .entries()
            .iter()
            .filter(|e| e.proto == Protocol::Tcp && e.frequency > 0.0)
            .count();
        let all = t.top_ports(Protocol::Tcp, 1000);
        assert_eq!(all.len(), 1000);
        let mut dedup = sorted(all.clone());
        dedup.dedup();
        assert_eq!(dedup.len(), 1000);
        // After the ranked entries come the rest ascending from 1.
        let rest = &all[ranked..];
        assert!(rest.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(rest[0], 1);
        assert_eq!(t.top_ports(Protocol::Tcp, 100_000).len(), 65535);
        assert_eq!(t.top_ports(Protocol::Udp, 1)[0], 53);
        assert_eq!(t.top_ports(Protocol::Udp, 3000).len(), 3000);
        assert!(t.top_ports(Protocol::Ip, 3).is_empty());
        assert_eq!(t.ports_with_ratio(Protocol::Tcp, 0.5), vec![80, 443]);
    }
}
