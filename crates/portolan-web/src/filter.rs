//! The filter language of the Hosts, Changes and Vulnerabilities pages (docs/serve.md):
//! `port:22 product:openssh net:198.18.0.0/16 os:linux changed:7d`, free words matching
//! anywhere, `-` before a term to exclude what it matches, `"quoted words"` for spaces;
//! `cve:`, `kev:` and `cvss:` ask the vulnerability findings stored with the ports.
//!
//! This module owns the parser and the matching of a term against a host or a change; it
//! never reads the store.

use portolan_store::findings::{self, StoredFinding};
use portolan_store::{Change, Cidr, InventoryHost, PortRecord};
use std::collections::HashSet;

/// What one term asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// An open port in this range (`port:22`, `port:8000-8099`).
    Port(u16, u16),
    /// Service name containing this text (`service:http`).
    Service(String),
    /// Product or version containing this text (`product:openssh`).
    Product(String),
    /// Address in this network (`net:198.18.0.0/16`, or one address).
    Net(Cidr),
    /// OS match containing this text (`os:linux`).
    Os(String),
    /// Address or hostname containing this text (`host:web`).
    Host(String),
    /// Change kind (`kind:opened`, Changes page only; on hosts it matches nothing).
    Kind(String),
    /// A free word: anywhere (address, names, MAC, vendor, OS, services, products, and
    /// a finding's CVE and title).
    Word(String),
    /// A finding whose CVE id contains this text (`cve:CVE-2024-6387`).
    Cve(String),
    /// A finding known exploited, or not (`kev:yes`, `kev:no`).
    Kev(bool),
    /// A finding whose CVSS base score compares so (`cvss:>=9`, `cvss:<4`; `cvss:7` is
    /// 7 or more). A finding without a score never passes.
    Cvss(Cmp, Score),
}

/// How `cvss:` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

/// A CVSS score in tenths (0 to 100), so that terms compare exactly and stay `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score(pub u8);

impl Cmp {
    fn holds(self, cvss: Option<f64>, s: Score) -> bool {
        let Some(c) = cvss else { return false };
        let c = (c * 10.0).round();
        let s = f64::from(s.0);
        match self {
            Cmp::Ge => c >= s,
            Cmp::Gt => c > s,
            Cmp::Le => c <= s,
            Cmp::Lt => c < s,
            Cmp::Eq => c == s,
        }
    }
}

fn parse_cvss(v: &str) -> Option<(Cmp, Score)> {
    let (cmp, n) = [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
        ("=", Cmp::Eq),
    ]
    .iter()
    .find_map(|(op, c)| v.strip_prefix(op).map(|rest| (*c, rest)))
    .unwrap_or((Cmp::Ge, v));
    let n: f64 = n.parse().ok()?;
    (0.0..=10.0)
        .contains(&n)
        .then(|| (cmp, Score((n * 10.0).round() as u8)))
}

/// A term: a test, maybe negated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub negated: bool,
    pub test: Test,
}

/// A parsed filter: every term must hold; `changed` is the `changed:AGE` window in seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub terms: Vec<Term>,
    pub changed: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "unknown key {0:?} (keys: port, service, product, net, os, host, kind, changed, cve, kev, cvss)"
    )]
    UnknownKey(String),
    #[error("{key}: needs a value")]
    Empty { key: String },
    #[error("port: {0:?} is not a port or a range (22, 8000-8099)")]
    BadPort(String),
    #[error("net: {0}")]
    BadNet(String),
    #[error("changed: {0:?} is not an age (45m, 12h, 7d, 2w)")]
    BadAge(String),
    #[error("kev: {0:?} is not yes or no")]
    BadKev(String),
    #[error("cvss: {0:?} is not a score from 0 to 10, maybe after >=, >, <=, < or =")]
    BadCvss(String),
    #[error("a quote is not closed")]
    OpenQuote,
    #[error("the filter is too long (at most {MAX_LEN} bytes)")]
    TooLong,
}

/// Longer filters are refused: nobody types them, and matching cost grows with terms.
pub const MAX_LEN: usize = 1000;

/// Splits `s` into words, keeping `"quoted text"` (also after `key:`) as one word.
fn words(s: &str) -> Result<Vec<String>, FilterError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err(FilterError::OpenQuote);
    }
    if any {
        out.push(cur);
    }
    Ok(out)
}

/// An age: a number and a unit (s, m, h, d, w), in seconds.
pub fn parse_age(s: &str) -> Option<i64> {
    let unit_at = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(unit_at);
    let n: i64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn parse_port(v: &str) -> Option<(u16, u16)> {
    match v.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => v.parse().ok().map(|p| (p, p)),
    }
}

impl Filter {
    /// Parses a filter; the empty string is the filter that keeps everything.
    pub fn parse(s: &str) -> Result<Filter, FilterError> {
        if s.len() > MAX_LEN {
            return Err(FilterError::TooLong);
        }
        let mut f = Filter::default();
        for w in words(s)? {
            let (negated, w) = match w.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (true, rest.to_string()),
                _ => (false, w),
            };
            let Some((key, value)) = w.split_once(':').filter(|(k, _)| {
                // "fe80::1" or "10:00" are words, not keys.
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphabetic())
            }) else {
                f.terms.push(Term {
                    negated,
                    test: Test::Word(w.to_lowercase()),
                });
                continue;
            };
            let key = key.to_ascii_lowercase();
            if value.is_empty() {
                return Err(FilterError::Empty { key });
            }
            let lower = value.to_lowercase();
            let test = match key.as_str() {
                "port" => {
                    let (a, b) =
                        parse_port(value).ok_or_else(|| FilterError::BadPort(value.into()))?;
                    Test::Port(a, b)
                }
                "service" => Test::Service(lower),
                "product" => Test::Product(lower),
                "os" => Test::Os(lower),
                "host" => Test::Host(lower),
                "kind" => Test::Kind(lower),
                "cve" => Test::Cve(lower),
                "kev" => match lower.as_str() {
                    "yes" | "true" | "1" => Test::Kev(true),
                    "no" | "false" | "0" => Test::Kev(false),
                    _ => return Err(FilterError::BadKev(value.into())),
                },
                "cvss" => {
                    let (c, n) =
                        parse_cvss(value).ok_or_else(|| FilterError::BadCvss(value.into()))?;
                    Test::Cvss(c, n)
                }
                "net" => {
                    let c = if value.contains('/') {
                        value.parse::<Cidr>()
                    } else {
                        format!("{value}/{}", if value.contains(':') { 128 } else { 32 })
                            .parse::<Cidr>()
                    };
                    Test::Net(c.map_err(|e| FilterError::BadNet(e.to_string()))?)
                }
                "changed" => {
                    let age = parse_age(value).ok_or_else(|| FilterError::BadAge(value.into()))?;
                    f.changed = Some(age);
                    continue;
                }
                _ => return Err(FilterError::UnknownKey(key)),
            };
            f.terms.push(Term { negated, test });
        }
        Ok(f)
    }

    /// Whether `h` passes every term; `changed` holds the addresses that changed in the
    /// `changed:` window (ignored when the filter has none).
    pub fn matches_host(&self, h: &InventoryHost, changed: &HashSet<String>) -> bool {
        if self.changed.is_some() && !changed.contains(&h.address) {
            return false;
        }
        self.terms
            .iter()
            .all(|t| host_test(&t.test, h) != t.negated)
    }

    /// Whether change `c` passes every term. `os:` asks the host's current OS, found by
    /// `os_of` (None: not in the inventory, or no OS detection).
    pub fn matches_change<'a>(&self, c: &Change, os_of: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.terms
            .iter()
            .all(|t| change_test(&t.test, c, &os_of) != t.negated)
    }

    /// Whether finding `f` of port `p` of host `h` passes every term (the Vulnerabilities
    /// page): port, service and product ask that port, cve, kev and cvss the finding, the
    /// rest the host; `changed` as in [`Filter::matches_host`].
    pub fn matches_finding(
        &self,
        h: &InventoryHost,
        p: &PortRecord,
        f: &StoredFinding,
        changed: &HashSet<String>,
    ) -> bool {
        if self.changed.is_some() && !changed.contains(&h.address) {
            return false;
        }
        self.terms.iter().all(|t| {
            let yes = match &t.test {
                Test::Port(..) | Test::Service(_) | Test::Product(_) => port_test(&t.test, p),
                Test::Cve(_) | Test::Kev(_) | Test::Cvss(..) => finding_test(&t.test, f),
                // The host's own fields, this port's (not its other ports'), the finding's.
                Test::Word(w) => {
                    host_word(h, w)
                        || port_word(p, w)
                        || has(Some(&f.cve), w)
                        || has(Some(&f.title), w)
                }
                Test::Kind(_) => false,
                _ => host_test(&t.test, h),
            };
            yes != t.negated
        })
    }
}

/// A port-level term against one port.
fn port_test(t: &Test, p: &PortRecord) -> bool {
    match t {
        Test::Port(a, b) => (*a..=*b).contains(&p.port),
        Test::Service(n) => has(p.service.as_deref(), n),
        Test::Product(n) => has(p.product.as_deref(), n) || has(p.version.as_deref(), n),
        _ => false,
    }
}

/// A finding-level term against one finding.
fn finding_test(t: &Test, f: &StoredFinding) -> bool {
    match t {
        Test::Cve(n) => has(Some(&f.cve), n),
        Test::Kev(k) => f.kev == *k,
        Test::Cvss(c, n) => c.holds(f.cvss, *n),
        _ => false,
    }
}

fn has(hay: Option<&str>, needle: &str) -> bool {
    hay.is_some_and(|h| h.to_lowercase().contains(needle))
}

fn host_test(t: &Test, h: &InventoryHost) -> bool {
    match t {
        Test::Port(..) | Test::Service(_) | Test::Product(_) => {
            h.ports.iter().any(|p| port_test(t, p))
        }
        // A host with a finding that passes.
        Test::Cve(_) | Test::Kev(_) | Test::Cvss(..) => h
            .ports
            .iter()
            .any(|p| findings::of_port(p).is_some_and(|fs| fs.iter().any(|f| finding_test(t, f)))),
        Test::Net(c) => c.contains_str(&h.address),
        Test::Os(n) => has(h.os.as_deref(), n),
        Test::Host(n) => has(Some(&h.address), n) || h.hostnames.iter().any(|x| has(Some(x), n)),
        Test::Kind(_) => false,
        Test::Word(w) => host_word(h, w) || h.ports.iter().any(|p| port_word(p, w)),
    }
}

/// A free word in a host's own fields: address, names, MAC, vendor, OS.
fn host_word(h: &InventoryHost, w: &str) -> bool {
    has(Some(&h.address), w)
        || h.hostnames.iter().any(|x| has(Some(x), w))
        || has(h.mac.as_deref(), w)
        || has(h.vendor.as_deref(), w)
        || has(h.os.as_deref(), w)
}

/// A free word in a port's service text or its `22/tcp`.
fn port_word(p: &PortRecord, w: &str) -> bool {
    has(Some(&p.service_text()), w) || has(Some(&format!("{}/{}", p.port, p.protocol)), w)
}

fn change_test<'a>(t: &Test, c: &Change, os_of: &impl Fn(&str) -> Option<&'a str>) -> bool {
    let texts = || [c.before.as_deref(), c.after.as_deref()];
    match t {
        Test::Port(a, b) => c.port.is_some_and(|p| (*a..=*b).contains(&p)),
        Test::Service(n) | Test::Product(n) => texts().iter().any(|x| has(*x, n)),
        Test::Net(cidr) => cidr.contains_str(&c.address),
        Test::Os(n) => has(os_of(&c.address), n),
        Test::Host(n) => has(Some(&c.address), n),
        Test::Kind(n) => has(Some(c.kind.as_str()), n),
        // Only the changes of findings (vuln new / vuln gone) carry a CVE.
        Test::Cve(n) => has(c.cve.as_deref(), n),
        Test::Kev(k) => {
            c.cve.is_some()
                && texts()
                    .iter()
                    .any(|x| x.is_some_and(|x| x.contains(", KEV)")))
                    == *k
        }
        Test::Cvss(cmp, n) => c.cve.is_some() && cmp.holds(c.cvss, *n),
        Test::Word(w) => {
            has(Some(&c.address), w)
                || has(Some(c.kind.as_str()), w)
                || texts().iter().any(|x| has(*x, w))
                || c.port.is_some_and(|p| p.to_string() == *w)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_store::{ChangeKind, PortRecord};

    fn port(n: u16, service: &str, product: Option<&str>) -> PortRecord {
        PortRecord {
            protocol: "tcp".into(),
            port: n,
            state: "open".into(),
            reason: "syn-ack".into(),
            service: Some(service.into()),
            product: product.map(Into::into),
            version: None,
            extrainfo: None,
            tunnel: None,
            scripts: "[]".into(),
        }
    }

    fn host(addr: &str, os: Option<&str>, ports: Vec<PortRecord>) -> InventoryHost {
        InventoryHost {
            address: addr.into(),
            hostnames: vec!["web.example".into()],
            mac: None,
            vendor: None,
            last_seen: 0,
            scan_id: 1,
            os: os.map(Into::into),
            ports,
        }
    }

    fn keeps(f: &str, h: &InventoryHost) -> bool {
        Filter::parse(f).unwrap().matches_host(h, &HashSet::new())
    }

    #[test]
    fn parses_keys_words_quotes_and_negation() {
        let f = Filter::parse(r#"port:22 product:"Open SSH" -os:windows web changed:7d"#).unwrap();
        assert_eq!(f.changed, Some(7 * 86_400));
        assert_eq!(
            f.terms,
            vec![
                Term {
                    negated: false,
                    test: Test::Port(22, 22)
                },
                Term {
                    negated: false,
                    test: Test::Product("open ssh".into())
                },
                Term {
                    negated: true,
                    test: Test::Os("windows".into())
                },
                Term {
                    negated: false,
                    test: Test::Word("web".into())
                },
            ]
        );
        assert_eq!(Filter::parse("  ").unwrap(), Filter::default());
        // An IPv6 address is a word, not a key.
        assert_eq!(
            Filter::parse("fe80::1").unwrap().terms[0].test,
            Test::Word("fe80::1".into())
        );
        assert_eq!(
            Filter::parse("port:8000-8099").unwrap().terms[0].test,
            Test::Port(8000, 8099)
        );
    }

    #[test]
    fn refuses_bad_terms_with_a_reason() {
        assert_eq!(
            Filter::parse("colour:red"),
            Err(FilterError::UnknownKey("colour".into()))
        );
        assert_eq!(
            Filter::parse("port:99999"),
            Err(FilterError::BadPort("99999".into()))
        );
        assert_eq!(
            Filter::parse("port:90-80"),
            Err(FilterError::BadPort("90-80".into()))
        );
        assert!(matches!(
            Filter::parse("net:10.0.0.0/99"),
            Err(FilterError::BadNet(_))
        ));
        assert_eq!(
            Filter::parse("changed:7y"),
            Err(FilterError::BadAge("7y".into()))
        );
        assert_eq!(Filter::parse("\"open"), Err(FilterError::OpenQuote));
        assert_eq!(
            Filter::parse("port:"),
            Err(FilterError::Empty { key: "port".into() })
        );
        assert_eq!(Filter::parse(&"a ".repeat(600)), Err(FilterError::TooLong));
        assert_eq!(parse_age("99999999999999999999d"), None);
    }

    #[test]
    fn matches_hosts_by_each_key() {
        let h = host(
            "198.18.0.5",
            Some("Linux 5.4"),
            vec![port(22, "ssh", Some("OpenSSH")), port(80, "http", None)],
        );
        for yes in [
            "",
            "port:22",
            "port:20-25",
            "product:openssh",
            "service:http",
            "net:198.18.0.0/16",
            "net:198.18.0.5",
            "os:linux",
            "host:web.ex",
            "openssh 198.18",
            "-port:443",
            "22/tcp",
        ] {
            assert!(keeps(yes, &h), "{yes:?} should keep the host");
        }
        for no in [
            "port:443",
            "product:nginx",
            "net:10.0.0.0/8",
            "os:windows",
            "-os:linux",
            "nothere",
            "kind:opened",
        ] {
            assert!(!keeps(no, &h), "{no:?} should drop the host");
        }
        let f = Filter::parse("changed:1d").unwrap();
        assert!(!f.matches_host(&h, &HashSet::new()));
        assert!(f.matches_host(&h, &HashSet::from(["198.18.0.5".to_string()])));
    }

    #[test]
    fn parses_finding_terms() {
        let t = |f: &str| Filter::parse(f).map(|f| f.terms[0].test.clone());
        assert_eq!(
            t("cve:CVE-2024-6387"),
            Ok(Test::Cve("cve-2024-6387".into()))
        );
        assert_eq!(t("kev:yes"), Ok(Test::Kev(true)));
        assert_eq!(t("kev:No"), Ok(Test::Kev(false)));
        assert_eq!(t("cvss:>=9"), Ok(Test::Cvss(Cmp::Ge, Score(90))));
        assert_eq!(t("cvss:7.5"), Ok(Test::Cvss(Cmp::Ge, Score(75))));
        assert_eq!(t("cvss:<4"), Ok(Test::Cvss(Cmp::Lt, Score(40))));
        assert_eq!(t("cvss:=10"), Ok(Test::Cvss(Cmp::Eq, Score(100))));
        assert_eq!(t("kev:perhaps"), Err(FilterError::BadKev("perhaps".into())));
        for bad in ["cvss:>=10.5", "cvss:-1", "cvss:>>9", "cvss:NaN", "cvss:inf"] {
            assert!(matches!(t(bad), Err(FilterError::BadCvss(_))), "{bad}");
        }
        // Scores compare in tenths: 8.95 from a feed is 9.0 (NVD gives one decimal).
        assert!(Cmp::Ge.holds(Some(9.0), Score(90)));
        assert!(!Cmp::Gt.holds(Some(9.0), Score(90)));
        assert!(!Cmp::Ge.holds(None, Score(0)), "no score never passes");
    }

    #[test]
    fn matches_changes() {
        let c = Change {
            first_seen: 0,
            scan_id: 2,
            previous_scan_id: 1,
            address: "198.18.0.5".into(),
            kind: ChangeKind::PortOpened,
            protocol: Some("tcp".into()),
            port: Some(22),
            before: None,
            after: Some("ssh OpenSSH 9.6".into()),
            cve: None,
            cvss: None,
        };
        let os = |_: &str| Some("Linux 5.4");
        let keep = |f: &str| Filter::parse(f).unwrap().matches_change(&c, os);
        assert!(keep(
            "port:22 product:openssh kind:opened net:198.18.0.0/15 os:linux"
        ));
        assert!(keep("opened"));
        assert!(!keep("kind:closed"));
        assert!(!keep("port:80"));
        assert!(!keep("-product:openssh"));
    }
}
