//! Baseline policies: a TOML file of rules saying, per network or host, which open ports and
//! services are forbidden, which are the only ones allowed, and which hosts must be up; and
//! their evaluation against a [`ScanRun`]. The format is documented in docs/policy.md.
//!
//! Parsing never panics on user input: every error carries the line (and column) of the
//! file where it was found.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use portolan_model::{Host, PortState, Protocol, ScanRun, Script, ScriptItem, Service};

/// The policy format version this build reads.
pub const POLICY_VERSION: i64 = 1;

/// Why a policy file was refused. Lines and columns are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not TOML, or a key or value that the format does not allow.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed, but not a usable policy.
    #[error("line {line}: {message}")]
    Invalid { line: usize, message: String },
}

impl PolicyError {
    /// The line of the file where the problem was found.
    pub fn line(&self) -> usize {
        match self {
            PolicyError::Syntax { line, .. } | PolicyError::Invalid { line, .. } => *line,
        }
    }
}

/// Which hosts a rule applies to: every host, a network, one address, or a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    /// An address with a prefix length (a single address has the full length).
    Net(IpAddr, u8),
    /// A host name, lower case, matched against the names the scan reports.
    Name(String),
}

impl HostPattern {
    /// Whether `host` (any of its addresses or names) falls under the pattern.
    pub fn matches(&self, host: &Host) -> bool {
        let ips: Vec<IpAddr> = match self {
            HostPattern::Net(..) => host
                .addresses
                .iter()
                .filter_map(|a| a.addr.parse::<IpAddr>().ok())
                .collect(),
            _ => Vec::new(),
        };
        self.matches_with(host, &ips)
    }

    /// [`HostPattern::matches`] with the host's addresses already parsed.
    fn matches_with(&self, host: &Host, ips: &[IpAddr]) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Net(net, len) => ips.iter().any(|ip| in_net(*ip, *net, *len)),
            HostPattern::Name(name) => host
                .hostnames
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(name)),
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn looks_numeric(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !looks_numeric(s)
}

impl FromStr for HostPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(HostPattern::Any);
        }
        if let Some((addr, len)) = s.split_once('/') {
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len: u8 = len
                .parse()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?;
            return Ok(HostPattern::Net(ip, len));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(HostPattern::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        if valid_hostname(s) {
            return Ok(HostPattern::Name(s.to_ascii_lowercase()));
        }
        Err(format!(
            "{s:?} is not \"*\", an IP address, a network (10.0.20.0/24) or a host name"
        ))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Net(ip, len) if (ip.is_ipv4() && *len == 32) || *len == 128 => {
                write!(f, "{ip}")
            }
            HostPattern::Net(ip, len) => write!(f, "{ip}/{len}"),
            HostPattern::Name(n) => f.write_str(n),
        }
    }
}

/// Ports: `22`, `22/tcp`, `8000-8100/udp` (no protocol: any protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    pub first: u16,
    pub last: u16,
    pub protocol: Option<Protocol>,
}

impl PortSpec {
    pub fn matches(&self, protocol: Protocol, port: u16) -> bool {
        let proto_ok = match self.protocol {
            None => true,
            Some(p) => p == protocol,
        };
        proto_ok && (self.first..=self.last).contains(&port)
    }
}

impl FromStr for PortSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let (range, protocol) = match text.split_once('/') {
            Some((r, p)) => {
                let proto = match p.to_ascii_lowercase().as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    _ => return Err(format!("{s:?}: the protocol must be tcp, udp or sctp")),
                };
                (r, Some(proto))
            }
            None => (text, None),
        };
        let num = |t: &str| {
            t.trim()
                .parse::<u16>()
                .map_err(|_| format!("{s:?} is not a port (0-65535), a range (8000-8100), with /tcp, /udp or /sctp if wanted"))
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let p = num(range)?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!("{s:?}: the range is backwards"));
        }
        Ok(PortSpec {
            first,
            last,
            protocol,
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)?;
        } else {
            write!(f, "{}-{}", self.first, self.last)?;
        }
        if let Some(p) = self.protocol {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

/// Deserialises from a string through `FromStr` (the error lands on the value's span).
fn from_text<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: FromStr<Err = String>,
    D: Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(de::Error::custom)
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(d)
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number or a string like \"22/tcp\" or \"8000-8100\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortSpec, E> {
                let p = u16::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is not a port (0-65535)")))?;
                Ok(PortSpec {
                    first: p,
                    last: p,
                    protocol: None,
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortSpec, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A service name, matched without regard to case; `ssl/http` matches HTTP inside TLS only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName(pub String);

impl ServiceName {
    pub fn matches(&self, s: &Service) -> bool {
        let want = self.0.as_str();
        if s.name.is_empty() {
            return false;
        }
        s.name.eq_ignore_ascii_case(want)
            || s.tunnel
                .as_ref()
                .is_some_and(|t| format!("{t}/{}", s.name).eq_ignore_ascii_case(want))
    }
}

impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        if t.is_empty() || t.contains(char::is_whitespace) {
            return Err(de::Error::custom(format!(
                "{s:?} is not a service name (as Nmap names them: \"redis\", \"microsoft-ds\", \"ssl/http\")"
            )));
        }
        Ok(ServiceName(t.to_string()))
    }
}

/// A host that must be up: an address or a host name (no network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredHost(pub HostPattern);

impl<'de> Deserialize<'de> for RequiredHost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.parse::<HostPattern>().map_err(de::Error::custom)? {
            p @ HostPattern::Name(_) => Ok(RequiredHost(p)),
            HostPattern::Net(ip, len) if (ip.is_ipv4() && len == 32) || len == 128 => {
                Ok(RequiredHost(HostPattern::Net(ip, len)))
            }
            _ => Err(de::Error::custom(format!(
                "{s:?}: must_be_up takes addresses or host names, not networks"
            ))),
        }
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Option<Spanned<i64>>,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    hosts: Option<Vec<HostPattern>>,
    #[serde(default)]
    forbid_ports: Vec<PortSpec>,
    #[serde(default)]
    forbid_services: Vec<ServiceName>,
    allow_ports: Option<Vec<PortSpec>>,
    allow_services: Option<Vec<ServiceName>>,
    #[serde(default)]
    must_be_up: Vec<RequiredHost>,
    #[serde(default)]
    no_kev: bool,
    max_cvss: Option<Spanned<f64>>,
    why: Option<String>,
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// Where the rule's name is written (for messages).
    pub line: usize,
    /// The hosts the port checks apply to (`*` when the file gave none).
    pub hosts: Vec<HostPattern>,
    pub forbid_ports: Vec<PortSpec>,
    pub forbid_services: Vec<ServiceName>,
    /// When present, the only ports/services allowed open: anything else is unexpected.
    pub allow: Option<Allow>,
    pub must_be_up: Vec<HostPattern>,
    /// `no_kev = true`: no known exploited vulnerability (CISA KEV) among the `--vulns`
    /// findings of an open port (docs/vulns.md).
    pub no_kev: bool,
    /// `max_cvss = 8.9`: no `--vulns` finding with a CVSS base score above this.
    pub max_cvss: Option<Cvss>,
    /// The reason given in the file, repeated in every violation of the rule.
    pub why: Option<String>,
}

/// A CVSS base score, in tenths (scores have one decimal), so that rules compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cvss(pub u8);

impl Cvss {
    /// A score from 0 to 10, rounded to its tenth; None outside.
    pub fn from_score(score: f64) -> Option<Cvss> {
        (0.0..=10.0)
            .contains(&score)
            .then(|| Cvss((score * 10.0).round() as u8))
    }
}

impl fmt::Display for Cvss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allow {
    pub ports: Vec<PortSpec>,
    pub services: Vec<ServiceName>,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

/// 1-based line and column of a byte offset.
/// Line starts of a text, so that a byte offset's line is found by binary search: a policy
/// of many rules asks once per rule, and counting from the start each time was quadratic.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.starts.partition_point(|s| *s <= offset).max(1)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Policy {
    /// Parses a policy file's text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            PolicyError::Syntax {
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        if let Some(v) = &raw.version {
            if *v.get_ref() != POLICY_VERSION {
                return Err(PolicyError::Invalid {
                    line: line_col(text, v.span().start).0,
                    message: format!(
                        "policy version {} is not supported (this build reads version {POLICY_VERSION})",
                        v.get_ref()
                    ),
                });
            }
        }
        if raw.rules.is_empty() {
            return Err(PolicyError::Invalid {
                line: 1,
                message: "the policy has no [[rule]]: it would allow everything".into(),
            });
        }
        let lines = Lines::new(text);
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rules.len());
        // Each name's rule, to refuse a second use in constant time.
        let mut names: HashMap<String, usize> = HashMap::with_capacity(raw.rules.len());
        for r in raw.rules {
            let line = lines.line(r.name.span().start);
            let name = r.name.into_inner();
            if name.trim().is_empty() {
                return Err(PolicyError::Invalid {
                    line,
                    message: "a rule's name must not be empty".into(),
                });
            }
            if let Some(first) = names.get(&name).and_then(|i| rules.get(*i)) {
                return Err(PolicyError::Invalid {
                    line,
                    message: format!(
                        "two rules are named {name:?} (the other is on line {}): violations name their rule, so names must differ",
                        first.line
                    ),
                });
            }
            names.insert(name.clone(), rules.len());
            let allow = match (r.allow_ports, r.allow_services) {
                (None, None) => None,
                (p, s) => Some(Allow {
                    ports: p.unwrap_or_default(),
                    services: s.unwrap_or_default(),
                }),
            };
            let max_cvss =
                match r.max_cvss {
                    None => None,
                    Some(m) => Some(Cvss::from_score(*m.get_ref()).ok_or_else(|| {
                        PolicyError::Invalid {
                            line: lines.line(m.span().start),
                            message: format!(
                                "rule {name:?}: max_cvss {} is not a CVSS score (0 to 10)",
                                m.get_ref()
                            ),
                        }
                    })?),
                };
            if r.forbid_ports.is_empty()
                && r.forbid_services.is_empty()
                && allow.is_none()
                && r.must_be_up.is_empty()
                && !r.no_kev
                && max_cvss.is_none()
            {
                return Err(PolicyError::Invalid {
                    line,
                    message: format!(
                        "rule {name:?} checks nothing: give it forbid_ports, forbid_services, allow_ports, allow_services, must_be_up, no_kev or max_cvss"
                    ),
                });
            }
            let hosts = match r.hosts {
                None => vec![HostPattern::Any],
                Some(h) if h.is_empty() => {
                    return Err(PolicyError::Invalid {
                        line,
                        message: format!(
                            "rule {name:?}: hosts = [] matches no host (leave hosts out for every host)"
                        ),
                    })
                }
                Some(h) => h,
            };
            rules.push(Rule {
                name,
                line,
                hosts,
                forbid_ports: r.forbid_ports,
                forbid_services: r.forbid_services,
                allow,
                must_be_up: r.must_be_up.into_iter().map(|h| h.0).collect(),
                no_kev: r.no_kev,
                max_cvss,
                why: r.why.filter(|w| !w.trim().is_empty()),
            });
        }
        Ok(Policy { rules })
    }

    /// Every violation of the policy in `run`: for each host in the run's order, its open
    /// ports against every rule that applies; then the must-be-up hosts, rule by rule.
    pub fn evaluate(&self, run: &ScanRun) -> Vec<Violation> {
        let mut e = self.evaluation();
        for host in &run.hosts {
            e.host(host);
        }
        e.finish()
    }

    /// An evaluation fed one host at a time ([`Evaluation::host`]), so that a run need not
    /// be held whole: what it keeps is the violations and, for each must-be-up host, the
    /// first host seen that is it.
    pub fn evaluation(&self) -> Evaluation<'_> {
        let mut by_ip: HashMap<IpAddr, Vec<(usize, usize)>> = HashMap::new();
        let mut by_name: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        let mut wanted = Vec::with_capacity(self.rules.len());
        for (r, rule) in self.rules.iter().enumerate() {
            for (w, want) in rule.must_be_up.iter().enumerate() {
                match want {
                    HostPattern::Net(ip, _) => by_ip.entry(*ip).or_default().push((r, w)),
                    HostPattern::Name(n) => by_name
                        .entry(n.to_ascii_lowercase())
                        .or_default()
                        .push((r, w)),
                    // must_be_up holds single addresses and names only (RequiredHost).
                    HostPattern::Any => {}
                }
            }
            wanted.push(vec![Seen::default(); rule.must_be_up.len()]);
        }
        Evaluation {
            policy: self,
            out: Vec::new(),
            by_ip,
            by_name,
            wanted,
            hosts_up: 0,
        }
    }
}

/// What was seen of one must-be-up host.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// The first host that is it: address, host name, state, reason.
    first: Option<(String, Option<String>, &'static str, String)>,
    up: bool,
}

/// A policy's judgement of a run, one host at a time (see [`Policy::evaluation`]).
pub struct Evaluation<'p> {
    policy: &'p Policy,
    out: Vec<Violation>,
    /// The must-be-up hosts by address and by name: (rule, index in its must_be_up).
    by_ip: HashMap<IpAddr, Vec<(usize, usize)>>,
    by_name: HashMap<String, Vec<(usize, usize)>>,
    wanted: Vec<Vec<Seen>>,
    hosts_up: usize,
}

impl Evaluation<'_> {
    /// Judges the next host of the run, in the run's order.
    pub fn host(&mut self, host: &Host) {
        // The host's addresses parsed once, not once per rule.
        let ips: Vec<IpAddr> = host
            .addresses
            .iter()
            .filter_map(|a| a.addr.parse::<IpAddr>().ok())
            .collect();
        let mut hits: Vec<(usize, usize)> = ips
            .iter()
            .filter_map(|ip| self.by_ip.get(ip))
            .chain(
                host.hostnames
                    .iter()
                    .filter_map(|n| self.by_name.get(&n.name.to_ascii_lowercase())),
            )
            .flatten()
            .copied()
            .collect();
        hits.sort_unstable();
        hits.dedup();
        for (r, w) in hits {
            if let Some(seen) = self.wanted.get_mut(r).and_then(|v| v.get_mut(w)) {
                if seen.first.is_none() {
                    seen.first = Some((
                        host.addr_str().to_string(),
                        host.hostname().map(str::to_string),
                        host.status.state.as_str(),
                        host.status.reason.clone(),
                    ));
                }
                seen.up |= host.is_up();
            }
        }
        if !host.is_up() {
            return;
        }
        self.hosts_up += 1;
        let rules: Vec<&Rule> = self
            .policy
            .rules
            .iter()
            .filter(|r| r.hosts.iter().any(|p| p.matches_with(host, &ips)))
            .collect();
        for port in host.ports.iter().filter(|p| p.state == PortState::Open) {
            for rule in &rules {
                if let Some((kind, why)) =
                    rule.judge(port.protocol, port.portid, port.service.as_ref())
                {
                    self.out.push(Violation {
                        host: host.addr_str().to_string(),
                        hostname: host.hostname().map(str::to_string),
                        port: Some(port.portid),
                        protocol: Some(port.protocol),
                        service: port.service.as_ref().map(service_label),
                        rule: rule.name.clone(),
                        kind,
                        why: with_reason(why, rule),
                    });
                }
                for (kind, why) in rule.judge_vulns(&port.scripts) {
                    self.out.push(Violation {
                        host: host.addr_str().to_string(),
                        hostname: host.hostname().map(str::to_string),
                        port: Some(port.portid),
                        protocol: Some(port.protocol),
                        service: port.service.as_ref().map(service_label),
                        rule: rule.name.clone(),
                        kind,
                        why: with_reason(why, rule),
                    });
                }
            }
        }
    }

    /// Hosts up judged so far.
    pub fn hosts_up(&self) -> usize {
        self.hosts_up
    }

    /// Every violation: the hosts' in the run's order, then the must-be-up hosts, rule by
    /// rule.
    pub fn finish(self) -> Vec<Violation> {
        let mut out = self.out;
        for (rule, seen) in self.policy.rules.iter().zip(&self.wanted) {
            for (want, seen) in rule.must_be_up.iter().zip(seen) {
                if seen.up {
                    continue;
                }
                let (kind, why, host, first_name) = match &seen.first {
                    Some((addr, name, state, reason)) => (
                        ViolationKind::Down,
                        format!("must be up, but the scan found it {state} ({reason})"),
                        addr.clone(),
                        name.clone(),
                    ),
                    None => (
                        ViolationKind::Missing,
                        "must be up, but the scan does not list it (down, or not scanned)".into(),
                        want.to_string(),
                        None,
                    ),
                };
                out.push(Violation {
                    host,
                    hostname: match want {
                        HostPattern::Name(n) => Some(n.clone()),
                        _ => first_name,
                    },
                    port: None,
                    protocol: None,
                    service: None,
                    rule: rule.name.clone(),
                    kind,
                    why: with_reason(why, rule),
                });
            }
        }
        out
    }
}

fn with_reason(why: String, rule: &Rule) -> String {
    match &rule.why {
        Some(r) => format!("{why}: {r}"),
        None => why,
    }
}

fn service_label(s: &Service) -> String {
    match &s.tunnel {
        Some(t) if !t.is_empty() => format!("{t}/{}", s.name),
        _ => s.name.clone(),
    }
}

/// The script id of `--vulns` findings (docs/vulns.md): a table per CVE with `id`,
/// `cvss` and `is_exploit`.
const VULNS_SCRIPT: &str = "vulns";

impl Rule {
    /// What `no_kev` and `max_cvss` say of a port's `--vulns` findings: one violation per
    /// finding that breaks them, in the findings' order.
    fn judge_vulns(&self, scripts: &[Script]) -> Vec<(ViolationKind, String)> {
        if !self.no_kev && self.max_cvss.is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for item in scripts
            .iter()
            .filter(|s| s.id == VULNS_SCRIPT)
            .flat_map(|s| &s.content)
        {
            let ScriptItem::Table { key, items } = item else {
                continue;
            };
            let value = |k: &str| {
                items.iter().find_map(|i| match i {
                    ScriptItem::Elem {
                        key: Some(ik),
                        value,
                    } if ik == k => Some(value.as_str()),
                    _ => None,
                })
            };
            let Some(id) = value("id").or(key.as_deref()) else {
                continue;
            };
            if self.no_kev && value("is_exploit") == Some("true") {
                out.push((
                    ViolationKind::KnownExploited,
                    format!("{id} is a known exploited vulnerability (CISA KEV; no_kev)"),
                ));
            }
            let score = value("cvss")
                .and_then(|c| c.parse::<f64>().ok())
                .and_then(Cvss::from_score);
            if let (Some(max), Some(score)) = (self.max_cvss, score) {
                if score > max {
                    out.push((
                        ViolationKind::Cvss,
                        format!("{id} has CVSS {score}, above max_cvss {max}"),
                    ));
                }
            }
        }
        out
    }

    /// What this rule says of an open port: None when it has nothing against it.
    /// A forbidden port is reported as such only (not also as unexpected).
    fn judge(
        &self,
        protocol: Protocol,
        port: u16,
        service: Option<&Service>,
    ) -> Option<(ViolationKind, String)> {
        if let Some(spec) = self.forbid_ports.iter().find(|s| s.matches(protocol, port)) {
            return Some((
                ViolationKind::Forbidden,
                format!("port {port}/{protocol} is forbidden (forbid_ports {spec})"),
            ));
        }
        if let Some(svc) = service {
            if let Some(name) = self.forbid_services.iter().find(|n| n.matches(svc)) {
                return Some((
                    ViolationKind::Forbidden,
                    format!(
                        "service {} is forbidden (forbid_services {})",
                        service_label(svc),
                        name.0
                    ),
                ));
            }
        }
        let allow = self.allow.as_ref()?;
        let allowed = allow.ports.iter().any(|s| s.matches(protocol, port))
            || service.is_some_and(|svc| allow.services.iter().any(|n| n.matches(svc)));
        if allowed {
            return None;
        }
        let svc = service.map_or(String::new(), |s| format!(" ({})", service_label(s)));
        Some((
            ViolationKind::Unexpected,
            format!("port {port}/{protocol}{svc} is open but not allowed (only allow_ports and allow_services may be open)"),
        ))
    }
}

/// What kind of rule a violation broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    /// An open port or service that a `forbid_*` list names.
    Forbidden,
    /// An open port that a rule with `allow_*` lists does not allow.
    Unexpected,
    /// A must-be-up host that the scan reports down.
    Down,
    /// A must-be-up host that the scan does not list.
    Missing,
    /// A `--vulns` finding in CISA's known exploited catalog, under a `no_kev` rule.
    KnownExploited,
    /// A `--vulns` finding scored above a rule's `max_cvss`.
    Cvss,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::Forbidden => "forbidden",
            ViolationKind::Unexpected => "unexpected",
            ViolationKind::Down => "down",
            ViolationKind::Missing => "missing",
            ViolationKind::KnownExploited => "known-exploited",
            ViolationKind::Cvss => "cvss",
        }
    }
}

/// One breach of a policy: which host (and port), which rule, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The host's address (or, for a missing host, as the rule names it).
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub rule: String,
    pub kind: ViolationKind,
    pub why: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(n) = &self.hostname {
            if *n != self.host {
                write!(f, " ({n})")?;
            }
        }
        if let (Some(port), Some(proto)) = (self.port, self.protocol) {
            write!(f, " {port}/{proto}")?;
        }
        if let Some(s) = &self.service {
            write!(f, " {s}")?;
        }
        write!(
            f,
            ": {} [rule {:?}]: {}",
            self.kind.as_str(),
            self.rule,
            self.why
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::*;

    const GOOD: &str = r#"
version = 1

[[rule]]
name = "no datastores or SMB anywhere"
forbid_services = ["redis", "microsoft-ds", "MongoDB"]
forbid_ports = ["445/tcp", 139, "11211"]
why = "see the security standard, section 4"

[[rule]]
name = "database subnet"
hosts = ["10.0.20.0/24", "2001:db8:20::/48"]
allow_ports = ["5432/tcp", "22/tcp"]
must_be_up = ["10.0.20.5", "db-2.example.net"]

[[rule]]
name = "web front ends"
hosts = ["web-1.example.net", "192.0.2.10"]
allow_services = ["http", "ssl/http", "ssh"]
"#;

    fn host(ip: &str, ports: &[(u16, Protocol, &str)]) -> Host {
        let mut h = Host::new(ip.parse().unwrap(), HostStatus::up("syn-ack"));
        for (p, proto, name) in ports {
            let mut port = Port::new(*proto, *p, PortState::Open, "syn-ack");
            if !name.is_empty() {
                port.service = Some(Service::from_table(*name));
            }
            h.ports.push(port);
        }
        h
    }

    fn run(hosts: Vec<Host>) -> ScanRun {
        let mut r = ScanRun::new("portolan 10.0.20.0/24", 1);
        r.hosts = hosts;
        r
    }

    fn err(text: &str) -> PolicyError {
        Policy::parse(text).expect_err("should be refused")
    }

    /// A `--vulns` finding as portolan-vuln writes it (the fields the rules read).
    fn finding(cve: &str, cvss: &str, kev: bool) -> ScriptItem {
        let elem = |k: &str, v: &str| ScriptItem::Elem {
            key: Some(k.into()),
            value: v.into(),
        };
        ScriptItem::Table {
            key: Some(cve.into()),
            items: vec![
                elem("id", cve),
                elem("cvss", cvss),
                elem("is_exploit", &kev.to_string()),
            ],
        }
    }

    #[test]
    fn known_exploited_and_cvss_rules_judge_vulns_findings() {
        let p = Policy::parse(
            "[[rule]]\nname = \"no kev\"\nno_kev = true\n\
             [[rule]]\nname = \"cvss\"\nhosts = [\"10.0.20.0/24\"]\nmax_cvss = 8.9\n",
        )
        .unwrap();
        assert_eq!(p.rules[1].max_cvss, Some(Cvss(89)));
        let mut h = host(
            "10.0.20.5",
            &[(22, Protocol::Tcp, "ssh"), (6379, Protocol::Tcp, "redis")],
        );
        h.ports[0].scripts.push(Script {
            id: "vulns".into(),
            output: String::new(),
            content: vec![
                finding("CVE-2024-6387", "8.1", false),
                finding("CVE-2023-38408", "9.8", false),
                finding("CVE-2000-0001", "-", false),
            ],
        });
        h.ports[1].scripts.push(Script {
            id: "vulns".into(),
            output: String::new(),
            content: vec![finding("CVE-2022-0543", "10.0", true)],
        });
        // Another script's tables are not findings.
        h.ports[1].scripts.push(Script {
            id: "vulners".into(),
            output: String::new(),
            content: vec![finding("CVE-2099-0001", "10.0", true)],
        });
        let v = p.evaluate(&run(vec![h.clone()]));
        let got: Vec<(u16, &str, &str)> = v
            .iter()
            .map(|v| (v.port.unwrap(), v.kind.as_str(), v.rule.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (22, "cvss", "cvss"),
                (6379, "known-exploited", "no kev"),
                (6379, "cvss", "cvss"),
            ]
        );
        assert!(
            v[0].why
                .contains("CVE-2023-38408 has CVSS 9.8, above max_cvss 8.9"),
            "{}",
            v[0].why
        );
        assert!(v[1].why.contains("CVE-2022-0543"), "{}", v[1].why);
        // Out of the rule's hosts: only no_kev applies.
        let mut other = h;
        other.addresses[0].addr = "192.0.2.1".into();
        assert_eq!(p.evaluate(&run(vec![other])).len(), 1);
        // A score outside 0-10 is refused, with its line.
        let e = err("[[rule]]\nname = \"x\"\nmax_cvss = 11\n");
        assert!(e.to_string().contains("max_cvss"), "{e}");
        assert_eq!(e.line(), 3);
        assert!(Policy::parse("[[rule]]\nname = \"x\"\nno_kev = false\n").is_err());
    }

    #[test]
    fn good_policy_parses() {
        let p = Policy::parse(GOOD).unwrap();
        assert_eq!(p.rules.len(), 3);
        let r0 = &p.rules[0];
        assert_eq!(r0.line, 5);
        assert_eq!(r0.hosts, vec![HostPattern::Any]);
        assert_eq!(
            r0.forbid_ports[1],
            PortSpec {
                first: 139,
                last: 139,
                protocol: None
            }
        );
        assert_eq!(r0.forbid_ports[0].protocol, Some(Protocol::Tcp));
        let db = &p.rules[1];
        assert_eq!(
            db.hosts[0],
            HostPattern::Net("10.0.20.0".parse().unwrap(), 24)
        );
        assert_eq!(db.allow.as_ref().unwrap().services, vec![]);
        assert_eq!(
            db.must_be_up[1],
            HostPattern::Name("db-2.example.net".into())
        );
        assert_eq!(
            "8000-8100/udp".parse::<PortSpec>().unwrap().to_string(),
            "8000-8100/udp"
        );
    }

    #[test]
    fn malformed_policies_name_the_line() {
        // Not TOML.
        let e = err("[[rule]]\nname = \"x\"\nforbid_ports = [22\n");
        assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
        assert!(e.line() >= 3, "{e}");
        // An unknown key.
        let e = err("[[rule]]\nname = \"x\"\nforbid_port = [22]\n");
        assert_eq!(e.line(), 3, "{e}");
        assert!(e.to_string().contains("forbid_port"), "{e}");
        // Bad values, each on its own line.
        for (text, line, needle) in [
            ("[[rule]]\nname = \"x\"\nhosts = [\"10.0.0.0/33\"]\nforbid_ports = [1]\n", 3, "prefix length"),
            ("[[rule]]\nname = \"x\"\nhosts = [\"10.0.0.300\"]\nforbid_ports = [1]\n", 3, "10.0.0.300"),
            ("[[rule]]\nname = \"x\"\n\nforbid_ports = [\"22/icmp\"]\n", 4, "tcp, udp or sctp"),
            ("[[rule]]\nname = \"x\"\nforbid_ports = [70000]\n", 3, "70000"),
            ("[[rule]]\nname = \"x\"\nforbid_ports = [\"90-80\"]\n", 3, "backwards"),
            ("[[rule]]\nname = \"x\"\nforbid_services = [\"red is\"]\n", 3, "service name"),
            ("[[rule]]\nname = \"x\"\nmust_be_up = [\"10.0.0.0/8\"]\n", 3, "not networks"),
            ("version = 2\n[[rule]]\nname = \"x\"\nforbid_ports = [1]\n", 1, "version 2"),
            ("\n[[rule]]\nname = \"x\"\nwhy = \"nothing\"\n", 3, "checks nothing"),
            ("[[rule]]\nname = \"x\"\nhosts = []\nforbid_ports = [1]\n", 2, "matches no host"),
            ("[[rule]]\nname = \"x\"\nforbid_ports = [1]\n[[rule]]\nname = \"x\"\nforbid_ports = [2]\n", 5, "line 2"),
            ("# nothing\n", 1, "no [[rule]]"),
            ("[[rule]]\nname = \"x\"\nforbid_ports = \"22\"\n", 3, "sequence"),
        ] {
            let e = err(text);
            assert_eq!(e.line(), line, "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
        // A missing name: the line of the table.
        let e = err("version = 1\n\n[[rule]]\nforbid_ports = [1]\n");
        assert!(e.to_string().contains("name"), "{e}");
        assert!((3..=4).contains(&e.line()), "{e}");
    }

    #[test]
    fn evaluation_finds_forbidden_unexpected_and_missing() {
        let p = Policy::parse(GOOD).unwrap();
        let mut web = host(
            "192.0.2.10",
            &[
                (22, Protocol::Tcp, "ssh"),
                (443, Protocol::Tcp, "http"),
                (6379, Protocol::Tcp, "redis"),
            ],
        );
        web.ports[1].service.as_mut().unwrap().tunnel = Some("ssl".into());
        let mut closed = Port::new(Protocol::Tcp, 8080, PortState::Closed, "conn-refused");
        closed.service = Some(Service::from_table("http-proxy"));
        web.ports.push(closed);
        let db = host(
            "10.0.20.5",
            &[
                (22, Protocol::Tcp, "ssh"),
                (5432, Protocol::Tcp, "postgresql"),
                (8080, Protocol::Tcp, ""),
            ],
        );
        let mut smb = host(
            "10.0.30.7",
            &[
                (445, Protocol::Tcp, "microsoft-ds"),
                (139, Protocol::Udp, ""),
            ],
        );
        smb.hostnames.push(Hostname {
            name: "files".into(),
            kind: HostnameType::Ptr,
        });
        let mut down = Host::new(
            "10.0.20.6".parse().unwrap(),
            HostStatus::down("no-response"),
        );
        down.hostnames.push(Hostname {
            name: "DB-2.example.net".into(),
            kind: HostnameType::User,
        });
        // A down host's ports are not judged.
        down.ports
            .push(Port::new(Protocol::Tcp, 6379, PortState::Open, "syn-ack"));
        let v = p.evaluate(&run(vec![web, db, smb, down]));
        let got: Vec<(String, Option<u16>, &str, ViolationKind)> = v
            .iter()
            .map(|v| (v.host.clone(), v.port, v.rule.as_str(), v.kind))
            .collect();
        use ViolationKind::*;
        assert_eq!(
            got,
            vec![
                (
                    "192.0.2.10".into(),
                    Some(6379),
                    "no datastores or SMB anywhere",
                    Forbidden
                ),
                (
                    "192.0.2.10".into(),
                    Some(6379),
                    "web front ends",
                    Unexpected
                ),
                (
                    "10.0.20.5".into(),
                    Some(8080),
                    "database subnet",
                    Unexpected
                ),
                (
                    "10.0.30.7".into(),
                    Some(445),
                    "no datastores or SMB anywhere",
                    Forbidden
                ),
                (
                    "10.0.30.7".into(),
                    Some(139),
                    "no datastores or SMB anywhere",
                    Forbidden
                ),
                ("10.0.20.6".into(), None, "database subnet", Down),
            ]
        );
        assert!(
            v[0].why.contains("service redis is forbidden"),
            "{}",
            v[0].why
        );
        assert!(
            v[0].why.ends_with(": see the security standard, section 4"),
            "{}",
            v[0].why
        );
        assert!(
            v[3].why.contains("port 445/tcp is forbidden"),
            "{}",
            v[3].why
        );
        assert_eq!(v[5].hostname.as_deref(), Some("db-2.example.net"));
        assert_eq!(
            v[1].to_string(),
            "192.0.2.10 6379/tcp redis: unexpected [rule \"web front ends\"]: port 6379/tcp (redis) is open but not allowed (only allow_ports and allow_services may be open)"
        );
        // 10.0.20.5 (must be up) is up; with it gone, it is missing.
        let v = p.evaluate(&run(vec![]));
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].host.as_str(), v[0].kind), ("10.0.20.5", Missing));
        assert_eq!(
            (v[1].host.as_str(), v[1].kind),
            ("db-2.example.net", Missing)
        );
    }

    /// 100,000 rules: parsing and judging were quadratic in rules (40,000 took minutes), so
    /// this would not finish if they were again. Each rule is checked to have done its work.
    #[test]
    fn a_hundred_thousand_rules_are_parsed_and_judged() {
        const N: usize = 100_000;
        let mut text = String::from("version = 1\n");
        for i in 0..N {
            // 10.0.1.0 for rule 0, 10.0.2.0 for rule 1, ..., every rule its own /24.
            let (a, b) = (i / 250, i % 250 + 1);
            let (o, a) = (10 + a / 250, a % 250);
            if i % 2 == 0 {
                text.push_str(&format!(
                    "[[rule]]\nname = \"r{i}\"\nhosts = [\"{o}.{a}.{b}.0/24\"]\nforbid_ports = [{}]\n",
                    i % 1000 + 1
                ));
            } else {
                text.push_str(&format!(
                    "[[rule]]\nname = \"r{i}\"\nmust_be_up = [\"{o}.{a}.{b}.1\"]\nwhy = \"w\"\n"
                ));
            }
        }
        let p = Policy::parse(&text).unwrap();
        assert_eq!(p.rules.len(), N);
        // Every rule takes four lines after the version's: rule i's name is on line 3 + 4i.
        assert_eq!(p.rules[N - 1].line, 3 + 4 * (N - 1));

        // Even rules forbid port i%1000+1 on their /24; odd rules want .1 up. Host 10.0.b.1
        // for b = 1..=20 is up with port b (rule b-1's port).
        let hosts: Vec<Host> = (1..=20u16)
            .map(|b| host(&format!("10.0.{b}.1"), &[(b, Protocol::Tcp, "")]))
            .collect();
        let v = p.evaluate(&run(hosts));
        // Forbidden: b odd means rule b-1 is even and forbids port (b-1)%1000+1 = b. 10 hosts.
        let forbidden = v
            .iter()
            .filter(|x| x.kind == ViolationKind::Forbidden)
            .count();
        assert_eq!(forbidden, 10);
        // Missing: the odd rules' hosts not among the 20: N/2 odd rules, those with i < 20
        // (10 of them) satisfied.
        let missing = v
            .iter()
            .filter(|x| x.kind == ViolationKind::Missing)
            .count();
        assert_eq!(missing, N / 2 - 10);

        // A name used again is found among many, and both lines are right.
        let some: String = text
            .lines()
            .take(1 + 4 * 5000)
            .map(|l| format!("{l}\n"))
            .collect();
        let dup = format!("{some}[[rule]]\nname = \"r7\"\nforbid_ports = [1]\n");
        let e = Policy::parse(&dup).unwrap_err();
        assert_eq!(e.line(), 3 + 4 * 5000, "{e}");
        assert!(e.to_string().contains("other is on line 31"), "{e}");
    }

    #[test]
    fn allowed_hosts_pass_and_networks_match_by_prefix() {
        let p = Policy::parse(GOOD).unwrap();
        let mut ok = vec![
            host(
                "10.0.20.5",
                &[
                    (22, Protocol::Tcp, "ssh"),
                    (5432, Protocol::Tcp, "postgresql"),
                ],
            ),
            host("2001:db8:20::9", &[(5432, Protocol::Tcp, "postgresql")]),
            host("10.0.21.1", &[(8080, Protocol::Tcp, "http-proxy")]),
            host("192.0.2.10", &[(80, Protocol::Tcp, "HTTP")]),
        ];
        let mut db2 = host("10.0.20.6", &[]);
        db2.hostnames.push(Hostname {
            name: "db-2.example.net".into(),
            kind: HostnameType::Ptr,
        });
        ok.push(db2);
        assert_eq!(p.evaluate(&run(ok)), vec![]);
        let net = |s: &str| s.parse::<HostPattern>().unwrap();
        let h = host("10.0.20.200", &[]);
        assert!(net("10.0.20.0/24").matches(&h));
        assert!(net("10.0.0.0/8").matches(&h));
        assert!(net("0.0.0.0/0").matches(&h));
        assert!(!net("10.0.21.0/24").matches(&h));
        assert!(!net("::/0").matches(&h));
        assert!(net("*").matches(&h));
    }
}
