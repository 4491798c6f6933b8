//! The scan result model: `ScanRun` → `Host` → `Port` → `Service` / `Script`, with a host's
//! OS detection (`Os`), sequence analyses, traceroute (`Trace`) and host scripts, and the
//! run's pre- and post-scan scripts.
//!
//! It mirrors the structure of Nmap's XML (nmap.dtd, xmloutputversion 1.05) so that
//! every writer can render it and the XML reader can rebuild it from files Nmap wrote.
//! Engines fill it; writers, the history store and `diff` only read it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One whole scan: what was asked, and every host that was reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRun {
    /// `nmaprun@scanner`: "portolan" for our scans, "nmap" for imported ones.
    pub scanner: String,
    /// Version of the scanner that produced the run.
    pub version: String,
    /// The command line as typed, joined with spaces.
    pub args: String,
    /// Start time, Unix epoch seconds.
    pub start: i64,
    pub scaninfo: Vec<ScanInfo>,
    pub verbose: u8,
    pub debugging: u8,
    /// `prescript`: results of scripts run before any host (Nmap's "Pre-scan script results").
    #[serde(default)]
    pub prescripts: Vec<Script>,
    pub hosts: Vec<Host>,
    /// `postscript`: results of scripts run after every host ("Post-scan script results").
    #[serde(default)]
    pub postscripts: Vec<Script>,
    /// Present once the scan has ended (normally or not).
    pub runstats: Option<RunStats>,
}

impl ScanRun {
    pub fn new(args: impl Into<String>, start: i64) -> Self {
        ScanRun {
            scanner: "portolan".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            args: args.into(),
            start,
            scaninfo: Vec::new(),
            verbose: 0,
            debugging: 0,
            prescripts: Vec::new(),
            hosts: Vec::new(),
            postscripts: Vec::new(),
            runstats: None,
        }
    }
}

/// `scaninfo`: one per scan type and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanInfo {
    pub scan_type: ScanType,
    pub protocol: Protocol,
    pub numservices: u32,
    /// Nmap's compact range list, e.g. `1-1000,8080`.
    pub services: String,
}

/// Scan techniques, named as in nmap.dtd's scaninfo@type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanType {
    Syn,
    Ack,
    Bounce,
    Connect,
    Null,
    Xmas,
    Window,
    Maimon,
    Fin,
    Udp,
    Sctpinit,
    Sctpcookieecho,
    Ipproto,
}

impl ScanType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanType::Syn => "syn",
            ScanType::Ack => "ack",
            ScanType::Bounce => "bounce",
            ScanType::Connect => "connect",
            ScanType::Null => "null",
            ScanType::Xmas => "xmas",
            ScanType::Window => "window",
            ScanType::Maimon => "maimon",
            ScanType::Fin => "fin",
            ScanType::Udp => "udp",
            ScanType::Sctpinit => "sctpinit",
            ScanType::Sctpcookieecho => "sctpcookieecho",
            ScanType::Ipproto => "ipproto",
        }
    }
}

impl FromStr for ScanType {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "syn" => ScanType::Syn,
            "ack" => ScanType::Ack,
            "bounce" => ScanType::Bounce,
            "connect" => ScanType::Connect,
            "null" => ScanType::Null,
            "xmas" => ScanType::Xmas,
            "window" => ScanType::Window,
            "maimon" => ScanType::Maimon,
            "fin" => ScanType::Fin,
            "udp" => ScanType::Udp,
            "sctpinit" => ScanType::Sctpinit,
            "sctpcookieecho" => ScanType::Sctpcookieecho,
            "ipproto" => ScanType::Ipproto,
            _ => return Err(UnknownValue(s.to_string())),
        })
    }
}

/// A value that is not one of an enumeration's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Ip,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
            Protocol::Ip => "ip",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            "ip" => Protocol::Ip,
            _ => return Err(UnknownValue(s.to_string())),
        })
    }
}

/// One host as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Epoch seconds when this host's scan started / ended.
    pub starttime: Option<i64>,
    pub endtime: Option<i64>,
    pub status: HostStatus,
    pub addresses: Vec<Address>,
    pub hostnames: Vec<Hostname>,
    /// Ports that are collapsed into counts ("Not shown: 995 closed tcp ports").
    pub extraports: Vec<ExtraPorts>,
    /// Ports listed one by one, in ascending (protocol, port) order.
    pub ports: Vec<Port>,
    /// OS detection (`-O`): ports used, matches, and the fingerprint when Nmap printed one.
    #[serde(default)]
    pub os: Option<Os>,
    #[serde(default)]
    pub uptime: Option<Uptime>,
    /// `distance@value`: network distance in hops.
    #[serde(default)]
    pub distance: Option<u32>,
    #[serde(default)]
    pub tcpsequence: Option<TcpSequence>,
    #[serde(default)]
    pub ipidsequence: Option<IpIdSequence>,
    #[serde(default)]
    pub tcptssequence: Option<TcpTsSequence>,
    /// `hostscript`: results of scripts run against the host rather than a port.
    #[serde(default)]
    pub hostscripts: Vec<Script>,
    #[serde(default)]
    pub trace: Option<Trace>,
    pub times: Option<Times>,
}

impl Host {
    /// A host with one address and nothing else known yet.
    pub fn new(ip: IpAddr, status: HostStatus) -> Self {
        Host {
            starttime: None,
            endtime: None,
            status,
            addresses: vec![Address::ip(ip)],
            hostnames: Vec::new(),
            extraports: Vec::new(),
            ports: Vec::new(),
            os: None,
            uptime: None,
            distance: None,
            tcpsequence: None,
            ipidsequence: None,
            tcptssequence: None,
            hostscripts: Vec::new(),
            trace: None,
            times: None,
        }
    }

    /// The first IP address of the host, if any.
    pub fn ip(&self) -> Option<IpAddr> {
        self.addresses
            .iter()
            .filter(|a| a.addrtype != AddrType::Mac)
            .find_map(|a| a.addr.parse().ok())
    }

    /// The first address of any kind, as text (for messages).
    pub fn addr_str(&self) -> &str {
        self.addresses
            .iter()
            .find(|a| a.addrtype != AddrType::Mac)
            .or(self.addresses.first())
            .map(|a| a.addr.as_str())
            .unwrap_or("")
    }

    /// The first hostname: a user-supplied name first, else the PTR name.
    pub fn hostname(&self) -> Option<&str> {
        self.hostnames
            .iter()
            .find(|h| h.kind == HostnameType::User)
            .or(self.hostnames.first())
            .map(|h| h.name.as_str())
    }

    pub fn is_up(&self) -> bool {
        self.status.state == HostState::Up
    }

    /// Moves every port whose state is not open and occurs more than `threshold` times
    /// for this host into `extraports`, as Nmap does before output ("Not shown: ...").
    /// With `only_open`, every non-open state is collapsed whatever its count.
    pub fn collapse_ports(&mut self, threshold: usize, only_open: bool) {
        let mut counts: Vec<(PortState, usize)> = Vec::new();
        for p in &self.ports {
            match counts.iter_mut().find(|(s, _)| *s == p.state) {
                Some((_, n)) => *n += 1,
                None => counts.push((p.state, 1)),
            }
        }
        let collapsed: Vec<PortState> = counts
            .iter()
            .filter(|(s, n)| *s != PortState::Open && (*n > threshold || only_open))
            .map(|(s, _)| *s)
            .collect();
        if collapsed.is_empty() {
            return;
        }
        // Most numerous first, as Nmap prints them.
        let mut order: Vec<(PortState, usize)> = counts
            .into_iter()
            .filter(|(s, _)| collapsed.contains(s))
            .collect();
        order.sort_by_key(|o| std::cmp::Reverse(o.1));
        for (state, count) in order {
            let mut reasons: Vec<ExtraReason> = Vec::new();
            for p in self.ports.iter().filter(|p| p.state == state) {
                match reasons
                    .iter_mut()
                    .find(|r| r.reason == p.reason && r.proto == Some(p.protocol))
                {
                    Some(r) => {
                        r.count += 1;
                        r.port_list.push(p.portid);
                    }
                    None => reasons.push(ExtraReason {
                        reason: p.reason.clone(),
                        count: 1,
                        proto: Some(p.protocol),
                        port_list: vec![p.portid],
                    }),
                }
            }
            reasons.sort_by_key(|r| std::cmp::Reverse(r.count));
            self.extraports.push(ExtraPorts {
                state,
                count: count as u32,
                reasons,
            });
        }
        self.ports.retain(|p| !collapsed.contains(&p.state));
    }

    /// All ports of the host, listed or collapsed, by state (listed ones only carry detail).
    pub fn count_state(&self, state: PortState) -> usize {
        self.ports.iter().filter(|p| p.state == state).count()
            + self
                .extraports
                .iter()
                .filter(|e| e.state == state)
                .map(|e| e.count as usize)
                .sum::<usize>()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    pub state: HostState,
    /// Why we believe it, in Nmap's words: `syn-ack`, `conn-refused`, `user-set`,
    /// `localhost-response`, `no-response`, `reset`, `echo-reply`, ...
    pub reason: String,
    pub reason_ttl: u8,
}

impl HostStatus {
    pub fn up(reason: impl Into<String>) -> Self {
        HostStatus {
            state: HostState::Up,
            reason: reason.into(),
            reason_ttl: 0,
        }
    }
    pub fn down(reason: impl Into<String>) -> Self {
        HostStatus {
            state: HostState::Down,
            reason: reason.into(),
            reason_ttl: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    Up,
    Down,
    Unknown,
    Skipped,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Up => "up",
            HostState::Down => "down",
            HostState::Unknown => "unknown",
            HostState::Skipped => "skipped",
        }
    }
}

impl FromStr for HostState {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "up" => HostState::Up,
            "down" => HostState::Down,
            "unknown" => HostState::Unknown,
            "skipped" => HostState::Skipped,
            _ => return Err(UnknownValue(s.to_string())),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub addr: String,
    pub addrtype: AddrType,
    /// MAC vendor, for `addrtype == Mac`.
    pub vendor: Option<String>,
}

impl Address {
    pub fn ip(ip: IpAddr) -> Self {
        Address {
            addr: ip.to_string(),
            addrtype: if ip.is_ipv4() {
                AddrType::Ipv4
            } else {
                AddrType::Ipv6
            },
            vendor: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddrType {
    Ipv4,
    Ipv6,
    Mac,
}

impl AddrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AddrType::Ipv4 => "ipv4",
            AddrType::Ipv6 => "ipv6",
            AddrType::Mac => "mac",
        }
    }
}

impl FromStr for AddrType {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ipv4" => AddrType::Ipv4,
            "ipv6" => AddrType::Ipv6,
            "mac" => AddrType::Mac,
            _ => return Err(UnknownValue(s.to_string())),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hostname {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: HostnameType,
}

/// `user`: the name the user typed; `PTR`: found by reverse DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostnameType {
    #[serde(rename = "user")]
    User,
    #[serde(rename = "PTR")]
    Ptr,
}

impl HostnameType {
    pub fn as_str(self) -> &'static str {
        match self {
            HostnameType::User => "user",
            HostnameType::Ptr => "PTR",
        }
    }
}

/// Ports folded into a count, with the reasons that explain them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraPorts {
    pub state: PortState,
    pub count: u32,
    pub reasons: Vec<ExtraReason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraReason {
    pub reason: String,
    pub count: u32,
    pub proto: Option<Protocol>,
    /// The ports concerned (rendered by writers as Nmap's compact list `1-21,23-79`).
    pub port_list: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub protocol: Protocol,
    pub portid: u16,
    pub state: PortState,
    /// Nmap's reason words: `syn-ack`, `conn-refused`, `no-response`, `reset`, `udp-response`,
    /// `port-unreach`, `host-unreach`, ...
    pub reason: String,
    pub reason_ttl: u8,
    /// The address of the host that sent the reply, when it is not the target.
    pub reason_ip: Option<String>,
    pub service: Option<Service>,
    pub scripts: Vec<Script>,
}

impl Port {
    pub fn new(
        protocol: Protocol,
        portid: u16,
        state: PortState,
        reason: impl Into<String>,
    ) -> Self {
        Port {
            protocol,
            portid,
            state,
            reason: reason.into(),
            reason_ttl: 0,
            reason_ip: None,
            service: None,
            scripts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PortState {
    #[serde(rename = "open")]
    Open,
    #[serde(rename = "closed")]
    Closed,
    #[serde(rename = "filtered")]
    Filtered,
    #[serde(rename = "unfiltered")]
    Unfiltered,
    #[serde(rename = "open|filtered")]
    OpenFiltered,
    #[serde(rename = "closed|filtered")]
    ClosedFiltered,
}

impl PortState {
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::Unfiltered => "unfiltered",
            PortState::OpenFiltered => "open|filtered",
            PortState::ClosedFiltered => "closed|filtered",
        }
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PortState {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "open" => PortState::Open,
            "closed" => PortState::Closed,
            "filtered" => PortState::Filtered,
            "unfiltered" => PortState::Unfiltered,
            "open|filtered" => PortState::OpenFiltered,
            "closed|filtered" => PortState::ClosedFiltered,
            _ => return Err(UnknownValue(s.to_string())),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub product: Option<String>,
    pub version: Option<String>,
    pub extrainfo: Option<String>,
    pub hostname: Option<String>,
    pub ostype: Option<String>,
    pub devicetype: Option<String>,
    /// `table` (name from the services table) or `probed`.
    pub method: ServiceMethod,
    /// 0–10: 3 for a table lookup, 10 for a probe match, 8 for tcpwrapped.
    pub conf: u8,
    /// `ssl` when the service was found inside TLS.
    pub tunnel: Option<String>,
    pub servicefp: Option<String>,
    pub cpes: Vec<String>,
}

impl Service {
    /// A name from the services table, as Nmap reports it without -sV.
    pub fn from_table(name: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            method: ServiceMethod::Table,
            conf: 3,
            ..Service::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMethod {
    #[default]
    Table,
    Probed,
}

impl ServiceMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceMethod::Table => "table",
            ServiceMethod::Probed => "probed",
        }
    }
}

/// One script's result: its text (`output`, what normal output prints) and, when the script
/// returned a table, the same result as structure (`<elem>`/`<table>`), in the order Nmap
/// wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    pub id: String,
    pub output: String,
    /// Structured output; empty for scripts that returned only text.
    #[serde(default)]
    pub content: Vec<ScriptItem>,
}

impl Script {
    /// A result with text only.
    pub fn text(id: impl Into<String>, output: impl Into<String>) -> Self {
        Script {
            id: id.into(),
            output: output.into(),
            content: Vec::new(),
        }
    }
}

/// One piece of a script's structured output: a value (`<elem>`) or a nested table, each with
/// a key when the script gave one (list members have none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ScriptItem {
    Elem {
        key: Option<String>,
        value: String,
    },
    Table {
        key: Option<String>,
        items: Vec<ScriptItem>,
    },
}

impl ScriptItem {
    pub fn key(&self) -> Option<&str> {
        match self {
            ScriptItem::Elem { key, .. } | ScriptItem::Table { key, .. } => key.as_deref(),
        }
    }
}

/// `os`: what OS detection used and concluded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Os {
    /// `portused`: the open and closed ports the probes went to.
    pub ports_used: Vec<PortUsed>,
    /// `osmatch`, best first.
    pub matches: Vec<OsMatch>,
    /// `osfingerprint@fingerprint`: the submission fingerprint (`OS:` lines), when printed.
    pub fingerprints: Vec<String>,
    /// Without nmap-os-db: our own coarse guess (family and why), never an Nmap match.
    /// Not in Nmap's XML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coarse: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortUsed {
    pub state: PortState,
    pub proto: Protocol,
    pub portid: u16,
}

/// One reference fingerprint that matched (nmap-os-db entry at `line`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsMatch {
    pub name: String,
    /// Percent, 0–100.
    pub accuracy: u8,
    pub line: u32,
    pub classes: Vec<OsClass>,
}

/// `osclass`: one classification line of a match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsClass {
    /// Device type: "general purpose", "WAP", "webcam", ...
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub vendor: String,
    pub osfamily: String,
    pub osgen: Option<String>,
    /// Percent, 0–100.
    pub accuracy: u8,
    pub cpes: Vec<String>,
}

/// `uptime`: the uptime guessed from TCP timestamps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uptime {
    pub seconds: u64,
    /// As Nmap prints it (ctime, local time of the scanner).
    pub lastboot: Option<String>,
}

/// `tcpsequence`: predictability of the initial sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpSequence {
    pub index: u32,
    /// Nmap's words: "Good luck!", "Worthy challenge", "Trivial joke", ...
    pub difficulty: String,
    /// The sequence numbers seen, hex, comma-separated.
    pub values: String,
}

/// `ipidsequence`: how the IP IDs were generated ("All zeros", "Incremental", ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpIdSequence {
    pub class: String,
    pub values: String,
}

/// `tcptssequence`: the TCP timestamp clock ("1000HZ", "other", "none returned (unsupported)").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpTsSequence {
    pub class: String,
    pub values: Option<String>,
}

/// `trace`: the route to the host and the probe used to find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub port: Option<u16>,
    /// "tcp", "udp", "sctp", or a protocol name such as "icmp".
    pub proto: Option<String>,
    /// Hops by ttl. Nmap's XML has only the ones that answered; a scan's own trace also
    /// holds the ones that timed out (no address), which Nmap's normal output shows.
    pub hops: Vec<Hop>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hop {
    pub ttl: u32,
    /// `None`: the hop timed out (never written to XML, as Nmap).
    pub ipaddr: Option<String>,
    /// Milliseconds as Nmap writes them (`0.23`), or `--` when unknown.
    pub rtt: Option<String>,
    /// Reverse DNS name of the hop.
    pub host: Option<String>,
    /// The target whose trace found this hop, when the scan knows it (Nmap's XML does not
    /// say): normal output folds a host's first hops that another target's trace found
    /// into one "Hops 1-N are the same as for" row, as Nmap does.
    #[serde(default)]
    pub tag: Option<String>,
}

/// Timing of a host, microseconds, as Nmap's `times` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Times {
    pub srtt: i64,
    pub rttvar: i64,
    pub to: i64,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    /// End time, Unix epoch seconds.
    pub finished: i64,
    /// Seconds from start to end.
    pub elapsed: f64,
    pub exit: RunExit,
    pub errormsg: Option<String>,
    pub hosts_up: u32,
    pub hosts_down: u32,
    pub hosts_total: u32,
    /// How complete the port scan is, for scans that can tell (absent in Nmap's files).
    #[serde(default)]
    pub completeness: Option<Completeness>,
}

/// How complete a scan is: what was sent, what was answered, and how many responsive
/// ports probably went unseen because every try to them was lost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Completeness {
    pub probes_sent: u64,
    pub retransmissions: u64,
    /// Probes (ports) that got an answer.
    pub answered: u64,
    /// Ports that never got one (reported filtered, reason no-response).
    pub unanswered: u64,
    /// Expected number of responsive ports among the unanswered, from the loss seen.
    pub estimated_missed: f64,
}

impl Completeness {
    /// `late`: answers that came only to a retransmission (their first try was lost), and
    /// `tries`: the most tries any port got. The share of answers that needed a retry
    /// estimates the per-try loss p; a responsive port is missed when all its tries were
    /// lost (p^tries), so about answered · p^tries / (1 − p^tries) were missed.
    pub fn estimate(
        probes_sent: u64,
        retransmissions: u64,
        answered: u64,
        unanswered: u64,
        late: u64,
        tries: u32,
    ) -> Self {
        let p = if answered == 0 {
            0.0
        } else {
            (late as f64 / answered as f64).min(1.0)
        };
        let miss = p.powi(tries.max(1) as i32);
        let estimated_missed = if unanswered == 0 || miss >= 1.0 {
            0.0
        } else {
            (answered as f64 * miss / (1.0 - miss)).min(unanswered as f64)
        };
        Completeness {
            probes_sent,
            retransmissions,
            answered,
            unanswered,
            estimated_missed,
        }
    }

    /// Sums two scans' figures (e.g. groups of hosts).
    pub fn add(&mut self, other: &Completeness) {
        self.probes_sent += other.probes_sent;
        self.retransmissions += other.retransmissions;
        self.answered += other.answered;
        self.unanswered += other.unanswered;
        self.estimated_missed += other.estimated_missed;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunExit {
    Success,
    Error,
}

impl RunExit {
    pub fn as_str(self) -> &'static str {
        match self {
            RunExit::Success => "success",
            RunExit::Error => "error",
        }
    }
}

/// Nmap's compact port list: sorted, runs folded into ranges (`1-21,23,25-79`).
pub fn compact_port_list(ports: &[u16]) -> String {
    let mut sorted: Vec<u16> = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end.wrapping_add(1) && end != u16::MAX {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// Parses a compact port list back (`1-21,23`); `None` on any malformed piece.
pub fn parse_port_list(s: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Some(out);
    }
    for piece in s.split(',') {
        let piece = piece.trim();
        match piece.split_once('-') {
            Some((a, b)) => {
                let a: u16 = a.parse().ok()?;
                let b: u16 = b.parse().ok()?;
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(piece.parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_with(states: &[(u16, PortState, &str)]) -> Host {
        let mut h = Host::new("198.18.0.10".parse().unwrap(), HostStatus::up("syn-ack"));
        for (p, s, r) in states {
            h.ports.push(Port::new(Protocol::Tcp, *p, *s, *r));
        }
        h
    }

    #[test]
    fn compact_list_folds_runs() {
        assert_eq!(compact_port_list(&[5, 1, 2, 3, 7, 8, 10]), "1-3,5,7-8,10");
        assert_eq!(compact_port_list(&[]), "");
        assert_eq!(compact_port_list(&[65534, 65535]), "65534-65535");
        assert_eq!(parse_port_list("1-3,5"), Some(vec![1, 2, 3, 5]));
        assert_eq!(parse_port_list("3-1"), None);
        assert_eq!(parse_port_list("x"), None);
    }

    #[test]
    fn collapse_keeps_open_and_small_groups() {
        let mut states: Vec<(u16, PortState, &str)> = (1..=30)
            .map(|p| (p, PortState::Closed, "conn-refused"))
            .collect();
        states.push((80, PortState::Open, "syn-ack"));
        states.push((81, PortState::Filtered, "no-response"));
        let mut h = host_with(&states);
        h.collapse_ports(25, false);
        assert_eq!(h.extraports.len(), 1);
        assert_eq!(h.extraports[0].state, PortState::Closed);
        assert_eq!(h.extraports[0].count, 30);
        assert_eq!(h.extraports[0].reasons[0].port_list.len(), 30);
        let listed: Vec<u16> = h.ports.iter().map(|p| p.portid).collect();
        assert_eq!(listed, vec![80, 81]);
        assert_eq!(h.count_state(PortState::Closed), 30);
    }

    #[test]
    fn collapse_only_open_hides_everything_else() {
        let mut h = host_with(&[
            (22, PortState::Open, "syn-ack"),
            (23, PortState::Closed, "conn-refused"),
            (24, PortState::Filtered, "no-response"),
        ]);
        h.collapse_ports(25, true);
        assert_eq!(h.ports.len(), 1);
        assert_eq!(h.extraports.len(), 2);
    }

    #[test]
    fn completeness_estimates_misses_from_the_loss_seen() {
        // 3% of answers needed a retry; 5 tries each: misses are negligible.
        let c = Completeness::estimate(67_500, 2_000, 65_531, 4, 1_966, 5);
        assert!(c.estimated_missed < 0.01, "{c:?}");
        // Half the answers needed a retry and only 2 tries: many misses are likely.
        let c = Completeness::estimate(3_000, 1_000, 1_000, 500, 500, 2);
        assert!((c.estimated_missed - 333.3).abs() < 1.0, "{c:?}");
        // Never more than the ports left unanswered, and none when nothing was lost.
        assert_eq!(
            Completeness::estimate(10, 0, 10, 0, 0, 2).estimated_missed,
            0.0
        );
        assert!(Completeness::estimate(100, 90, 10, 3, 10, 1).estimated_missed <= 3.0);
    }

    #[test]
    fn enums_round_trip_through_text() {
        for s in [
            PortState::Open,
            PortState::Closed,
            PortState::Filtered,
            PortState::Unfiltered,
            PortState::OpenFiltered,
            PortState::ClosedFiltered,
        ] {
            assert_eq!(s.as_str().parse::<PortState>(), Ok(s));
        }
        assert!("opne".parse::<PortState>().is_err());
        assert_eq!("connect".parse::<ScanType>(), Ok(ScanType::Connect));
    }
}

/// What decides which known vulnerability a defender acts on first: one order for the
/// findings matched now, those kept with a scan, and every list of them.
#[derive(Debug, Clone, Copy)]
pub struct Urgency<'a> {
    /// On CISA's known-exploited list.
    pub kev: bool,
    pub epss: Option<f64>,
    pub cvss: Option<f64>,
    pub cve: &'a str,
}

impl Urgency<'_> {
    /// Known exploited first, then the higher EPSS, then the higher CVSS (an unknown score
    /// below every known one), then the id: `Less` when `self` comes first.
    pub fn first(&self, other: &Urgency) -> std::cmp::Ordering {
        let f = |x: Option<f64>| x.unwrap_or(-1.0);
        other
            .kev
            .cmp(&self.kev)
            .then_with(|| f(other.epss).total_cmp(&f(self.epss)))
            .then_with(|| f(other.cvss).total_cmp(&f(self.cvss)))
            .then_with(|| self.cve.cmp(other.cve))
    }
}
