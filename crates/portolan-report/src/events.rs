//! SIEM events (-oE): newline-delimited JSON, one event per line, with Elastic Common Schema
//! (ECS) field names so that Elasticsearch, OpenSearch, Splunk or any NDJSON shipper can take
//! them as they are. Fields ECS does not have live under `portolan.*`.
//!
//! - [`EventsWriter`] is a [`Sink`]: one `port-open` event per open port and one
//!   `script-result` event per script result, written as soon as each host is finished (pre-
//!   and post-scan script results at the start and the end of the run). A result holding a
//!   vulnerability found by Nmap's vulns library is an `alert` with ECS `vulnerability.*`.
//! - [`change_events`] compares two runs and says what changed (`port-opened`,
//!   `port-closed`, `host-appeared`, `host-disappeared`, `service-changed`); it knows
//!   nothing of where the runs came from.
//!
//! The mapping is documented in docs/events.md; docs/events.schema.json describes one event.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use portolan_model::{
    AddrType, Host, HostState, OsClass, Port, PortState, Protocol, ScanRun, Script, ScriptItem,
    Service,
};
use portolan_model::{OutputError, OutputOptions, Sink};

/// The ECS version the field names follow.
pub const ECS_VERSION: &str = "8.11.0";

/// `event.dataset` of every event Portolan writes.
pub const DATASET: &str = "portolan.scan";

/// What an event reports, as `event.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A port found open by a scan (one per open port, whatever the previous scans said).
    PortOpen,
    /// Open now, not open in the previous run.
    PortOpened,
    /// Open in the previous run, not open now (closed, filtered, or no longer listed).
    PortClosed,
    /// Up now, not up (or not there) in the previous run.
    HostAppeared,
    /// Up in the previous run, not up (or not there) now.
    HostDisappeared,
    /// Open in both runs, with a different service name, product, version or tunnel.
    ServiceChanged,
    /// What one NSE script returned (for a port, a host, or before or after the scan).
    ScriptResult,
    /// A known vulnerability (a `--vulns` finding) on a port open in both runs that the
    /// previous run did not have (`portolan changes --events`).
    VulnNew,
    /// One the previous run had and this one no longer has.
    VulnGone,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::PortOpen => "port-open",
            Action::PortOpened => "port-opened",
            Action::PortClosed => "port-closed",
            Action::HostAppeared => "host-appeared",
            Action::HostDisappeared => "host-disappeared",
            Action::ServiceChanged => "service-changed",
            Action::ScriptResult => "script-result",
            Action::VulnNew => "vuln-new",
            Action::VulnGone => "vuln-gone",
        }
    }

    /// `event.type`: `info` for what a scan saw, `change` for a difference between scans.
    fn event_type(self) -> &'static str {
        match self {
            Action::PortOpen | Action::ScriptResult => "info",
            Action::PortOpened
            | Action::PortClosed
            | Action::HostAppeared
            | Action::HostDisappeared
            | Action::ServiceChanged
            | Action::VulnNew
            | Action::VulnGone => "change",
        }
    }
}

/// One event, shaped as its JSON line (nested objects; the dotted ECS names are the paths).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC: when the host was finished (or the run, for a host that is gone).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// One line for people.
    pub message: String,
    pub ecs: Ecs,
    pub event: EventFields,
    pub observer: Observer,
    /// Absent only for pre- and post-scan script results, which belong to no host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceFields>,
    /// For a script result reporting a vulnerability (then `event.kind` is `alert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerability: Option<Vulnerability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<Related>,
    pub portolan: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ecs {
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFields {
    /// `alert` for a script result reporting a vulnerability, else `event`.
    pub kind: String,
    /// `["vulnerability"]` for an alert, else `["network"]`.
    pub category: Vec<String>,
    /// `["info"]` or `["change"]`.
    #[serde(rename = "type")]
    pub kind_type: Vec<String>,
    pub action: Action,
    pub dataset: String,
    pub module: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observer {
    pub product: String,
    pub vendor: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: String,
}

/// The scanned host (ECS `host.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFields {
    pub ip: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// ECS spelling: upper case, hyphens (`00-16-3E-12-34-56`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mac: Vec<String>,
    /// The best OS detection match, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<HostOs>,
}

/// ECS `host.os.*`, from the best OS match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOs {
    /// The match's name (`Linux 5.0 - 5.14`).
    pub full: String,
    /// The best class's OS family, lower case (`linux`, `windows`, `mac os x`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// ECS's allowed values only: `linux`, `macos`, `unix`, `windows`, `ios`, `android`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// ECS `vulnerability.*`: what the vulns library reported as (likely) vulnerable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// CVE identifiers, else the key the script reported each vulnerability under.
    pub id: Vec<String>,
    /// The description, when the result reports one vulnerability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its references (URLs), when the result reports one vulnerability.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference: Vec<String>,
    /// The CVSS base score, when the finding gives one (`--vulns` findings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<VulnScore>,
    /// `CRITICAL`, `HIGH`, `MEDIUM`, `LOW` (CVSS), when the finding gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// `CVSS` when a score is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    /// `CVE` for `--vulns` findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enumeration: Option<String>,
    /// Who found it: Portolan, for `--vulns` findings (matched offline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<VulnScanner>,
}

/// ECS `vulnerability.score.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnScore {
    /// A JSON number (kept exact, and comparable).
    pub base: serde_json::Number,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// ECS `vulnerability.scanner.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnScanner {
    pub vendor: String,
}

/// The script id of Portolan's offline findings (`--vulns`, docs/vulns.md): one table per
/// CVE, which the events split into one alert each.
pub const OFFLINE_VULNS_ID: &str = "vulns";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// `tcp`, `udp`, `sctp`.
    pub transport: String,
    /// `ipv4` or `ipv6`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The application protocol, lower case (the service name: `ssh`, `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// The service found on the port (ECS `service.name`, `service.version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFields {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    pub ip: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// Everything ECS has no field for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    pub scan: ScanFields,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostExtra>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortExtra>,
    /// Why the port is in its state (`syn-ack`, ...), for port events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_ttl: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceExtra>,
    /// For `script-result` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptFields>,
}

/// One script result, as -oJ writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptFields {
    pub id: String,
    /// Where the script ran: `port`, `host`, `prescan` or `postscan`.
    pub scope: String,
    /// Its text output.
    pub output: String,
    /// Its structured output (-oJ's ScriptItem); absent when the script returned text only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ScriptItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanFields {
    /// The command line of the run the event comes from.
    pub args: String,
    /// The run's start, RFC 3339.
    pub start: String,
    pub scanner: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostExtra {
    /// `up`, `down`, `unknown`, `skipped`, or `absent` (not in the run).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortExtra {
    /// Nmap's state words, or `unknown` when the run does not say.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceExtra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extrainfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
    /// `table` or `probed`.
    pub method: String,
    pub conf: u8,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpe: Vec<String>,
    /// For `service-changed`: what the previous run said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ServiceSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
}

impl Event {
    /// The event as one line of JSON, without the newline.
    pub fn to_line(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// RFC 3339 in UTC, seconds precision (`2026-11-22T10:37:24Z`).
pub fn rfc3339(epoch: i64) -> String {
    DateTime::<Utc>::from_timestamp(epoch, 0)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `00:16:3e:12:34:56` → `00-16-3E-12-34-56`, as ECS spells MAC addresses.
fn ecs_mac(mac: &str) -> String {
    mac.replace(':', "-").to_ascii_uppercase()
}

/// The service name as shown to people: `ssl/http` for HTTP inside TLS, as Nmap prints it.
fn service_label(s: &Service) -> String {
    match &s.tunnel {
        Some(t) if !t.is_empty() => format!("{t}/{}", s.name),
        _ => s.name.clone(),
    }
}

fn service_detail(s: &Service) -> String {
    let mut out = service_label(s);
    for part in [&s.product, &s.version].into_iter().flatten() {
        out.push(' ');
        out.push_str(part);
    }
    out
}

fn summary(s: &Service) -> ServiceSummary {
    ServiceSummary {
        name: s.name.clone(),
        product: s.product.clone(),
        version: s.version.clone(),
        tunnel: s.tunnel.clone(),
    }
}

/// Builds events for one run: the fields every event of the run shares.
struct Builder<'a> {
    run: &'a ScanRun,
}

impl Builder<'_> {
    /// An event of the run about no host (a pre- or post-scan script result).
    fn run_event(&self, action: Action, when: i64, message: String) -> Event {
        Event {
            timestamp: rfc3339(when),
            message,
            ecs: Ecs {
                version: ECS_VERSION.into(),
            },
            event: EventFields {
                kind: "event".into(),
                category: vec!["network".into()],
                kind_type: vec![action.event_type().into()],
                action,
                dataset: DATASET.into(),
                module: "portolan".into(),
            },
            observer: Observer {
                product: "Portolan".into(),
                vendor: "Portolan".into(),
                kind: "scanner".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            host: None,
            destination: None,
            network: None,
            service: None,
            vulnerability: None,
            related: None,
            portolan: Extra {
                scan: ScanFields {
                    args: self.run.args.clone(),
                    start: rfc3339(self.run.start),
                    scanner: self.run.scanner.clone(),
                },
                host: None,
                port: None,
                reason: None,
                reason_ttl: None,
                service: None,
                script: None,
            },
        }
    }

    /// An event about `host` (as this run saw it, or as the other run did when it is gone
    /// from this one), with no port fields yet.
    fn base(&self, action: Action, host: &Host, when: i64, message: String) -> Event {
        let ip = host.addr_str().to_string();
        let ips: Vec<String> = host
            .addresses
            .iter()
            .filter(|a| a.addrtype != AddrType::Mac)
            .map(|a| a.addr.clone())
            .collect();
        let macs: Vec<String> = host
            .addresses
            .iter()
            .filter(|a| a.addrtype == AddrType::Mac)
            .map(|a| ecs_mac(&a.addr))
            .collect();
        let hostname = host.hostname().map(str::to_string);
        let mut related_hosts: Vec<String> = Vec::new();
        for h in &host.hostnames {
            if !related_hosts.contains(&h.name) {
                related_hosts.push(h.name.clone());
            }
        }
        let mut e = self.run_event(action, when, message);
        e.host = Some(HostFields {
            ip: if ips.is_empty() && !ip.is_empty() {
                vec![ip.clone()]
            } else {
                ips.clone()
            },
            hostname: hostname.clone(),
            mac: macs,
            os: host_os(host),
        });
        e.destination = Some(Destination {
            ip: ip.clone(),
            port: None,
            domain: hostname,
        });
        e.related = Some(Related {
            ip: if ips.is_empty() { vec![ip] } else { ips },
            hosts: related_hosts,
        });
        e
    }

    /// An event about one port of `host`; `port` carries the state and service shown.
    fn port_event(&self, action: Action, host: &Host, port: &Port, when: i64) -> Event {
        let what = match action {
            Action::PortOpen => "open",
            Action::PortOpened => "newly open",
            Action::PortClosed => "no longer open",
            Action::ServiceChanged => "open with a changed service",
            Action::VulnNew => "open with a new known vulnerability",
            Action::VulnGone => "open without a known vulnerability it had",
            Action::HostAppeared | Action::HostDisappeared | Action::ScriptResult => "",
        };
        let mut message = format!(
            "{}/{} {what} on {}",
            port.portid,
            port.protocol,
            host.addr_str()
        );
        if let Some(name) = host.hostname() {
            message.push_str(&format!(" ({name})"));
        }
        if let Some(s) = &port.service {
            message.push_str(&format!(": {}", service_detail(s)));
        }
        let mut e = self.base(action, host, when, message);
        if let Some(d) = e.destination.as_mut() {
            d.port = Some(port.portid);
        }
        e.network = Some(Network {
            transport: port.protocol.as_str().into(),
            kind: if host.addr_str().contains(':') {
                "ipv6".into()
            } else {
                "ipv4".into()
            },
            protocol: port
                .service
                .as_ref()
                .filter(|s| !s.name.is_empty() && s.name != "unknown")
                .map(|s| s.name.to_ascii_lowercase()),
        });
        if let Some(s) = &port.service {
            e.service = Some(ServiceFields {
                name: s.name.clone(),
                version: s.version.clone(),
            });
            e.portolan.service = Some(ServiceExtra {
                product: s.product.clone(),
                extrainfo: s.extrainfo.clone(),
                tunnel: s.tunnel.clone(),
                method: s.method.as_str().into(),
                conf: s.conf,
                cpe: s.cpes.clone(),
                previous: None,
            });
        }
        e.portolan.port = Some(PortExtra {
            state: port.state.as_str().into(),
            previous_state: None,
        });
        e.portolan.reason = Some(port.reason.clone());
        e.portolan.reason_ttl = Some(port.reason_ttl);
        e
    }

    /// A `script-result` event: with the port fields when the script ran for a port, the
    /// host fields when it ran for a host, neither for a pre- or post-scan script.
    fn script_event(&self, script: &Script, place: Place, when: i64) -> Event {
        let (mut e, target) = match place {
            Place::Port(host, port) => {
                let mut e = self.port_event(Action::ScriptResult, host, port, when);
                // The port fields as a port event has them (a port not open keeps its state).
                e.message.clear();
                let target = format!("{}/{} on {}", port.portid, port.protocol, named(host));
                (e, target)
            }
            Place::Host(host) => (
                self.base(Action::ScriptResult, host, when, String::new()),
                format!("on {}", named(host)),
            ),
            Place::PreScan => (
                self.run_event(Action::ScriptResult, when, String::new()),
                "pre-scan".to_string(),
            ),
            Place::PostScan => (
                self.run_event(Action::ScriptResult, when, String::new()),
                "post-scan".to_string(),
            ),
        };
        let found = vulnerabilities(&script.content);
        let summary = if found.is_empty() {
            first_line(&script.output)
        } else {
            found
                .iter()
                .map(|v| format!("{} {} {}", v.state, v.ids.join(","), v.title))
                .collect::<Vec<_>>()
                .join("; ")
        };
        e.message = format!("{} {target}", script.id);
        if !summary.is_empty() {
            e.message.push_str(": ");
            e.message.push_str(&summary);
        }
        if !found.is_empty() {
            e.event.kind = "alert".into();
            e.event.category = vec!["vulnerability".into()];
            let mut ids: Vec<String> = Vec::new();
            for id in found.iter().flat_map(|v| &v.ids) {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            let one = match found.as_slice() {
                [v] => Some(v),
                _ => None,
            };
            let ours = script.id == OFFLINE_VULNS_ID;
            let table = match script.content.as_slice() {
                [ScriptItem::Table { items, .. }] if one.is_some() => Some(items.as_slice()),
                _ => None,
            };
            let score = table
                .and_then(|t| elem(t, "cvss"))
                .and_then(|c| c.parse::<f64>().ok())
                .and_then(serde_json::Number::from_f64)
                .map(|base| VulnScore {
                    base,
                    version: table.and_then(|t| elem(t, "cvss_version")).map(Into::into),
                });
            e.vulnerability = Some(Vulnerability {
                id: ids,
                description: one.and_then(|v| v.description.clone()),
                reference: one.map(|v| v.refs.clone()).unwrap_or_default(),
                classification: score.as_ref().map(|_| "CVSS".to_string()),
                score,
                severity: table.and_then(|t| elem(t, "severity")).map(Into::into),
                enumeration: ours.then(|| "CVE".to_string()),
                scanner: ours.then(|| VulnScanner {
                    vendor: "Portolan".into(),
                }),
            });
        }
        e.portolan.script = Some(ScriptFields {
            id: script.id.clone(),
            scope: place.scope().into(),
            output: script.output.clone(),
            content: script.content.clone(),
        });
        e
    }

    /// When `host` was finished in this run: its end time, else the run's.
    fn when(&self, host: Option<&Host>) -> i64 {
        host.and_then(|h| h.endtime)
            .or(self.run.runstats.as_ref().map(|r| r.finished))
            .unwrap_or(self.run.start)
    }
}

/// Where a script ran.
#[derive(Clone, Copy)]
enum Place<'a> {
    Port(&'a Host, &'a Port),
    Host(&'a Host),
    PreScan,
    PostScan,
}

impl Place<'_> {
    fn scope(self) -> &'static str {
        match self {
            Place::Port(..) => "port",
            Place::Host(_) => "host",
            Place::PreScan => "prescan",
            Place::PostScan => "postscan",
        }
    }
}

/// `192.0.2.10 (scanme.example)`, or the address alone.
fn named(host: &Host) -> String {
    match host.hostname() {
        Some(name) => format!("{} ({name})", host.addr_str()),
        None => host.addr_str().to_string(),
    }
}

/// The first line of a script's output with text on it, trimmed and cut to 200 characters.
fn first_line(output: &str) -> String {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out: String = line.chars().take(200).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

/// One vulnerability a script reported as vulnerable or likely vulnerable.
#[derive(Debug, PartialEq)]
struct Found {
    /// CVE identifiers from its `ids`, else the key it was reported under.
    ids: Vec<String>,
    state: String,
    title: String,
    description: Option<String>,
    refs: Vec<String>,
}

/// The vulnerabilities in a script's structured output, as Nmap's vulns library writes them
/// (`Report:make_output`): a table per vulnerability, keyed by its ID (the CVE when it has
/// one), holding `title`, `state` (`VULNERABLE`, `LIKELY VULNERABLE`, `VULNERABLE (DoS)`,
/// `VULNERABLE (Exploitable)`, `NOT VULNERABLE`, `UNKNOWN (unable to test)`), a list `ids`
/// (`CVE:CVE-2017-0143`), `description` and a list `refs`. Only the (likely) vulnerable ones.
fn vulnerabilities(content: &[ScriptItem]) -> Vec<Found> {
    let mut out = Vec::new();
    for item in content {
        let ScriptItem::Table {
            key: Some(key),
            items,
        } = item
        else {
            continue;
        };
        let (Some(state), Some(title)) = (elem(items, "state"), elem(items, "title")) else {
            continue;
        };
        if !(state.starts_with("VULNERABLE") || state == "LIKELY VULNERABLE") {
            continue;
        }
        let mut ids: Vec<String> = list(items, "ids")
            .filter_map(|id| id.strip_prefix("CVE:"))
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            ids.push(key.clone());
        }
        out.push(Found {
            ids,
            state: state.to_string(),
            title: title.to_string(),
            description: description(items),
            refs: list(items, "refs").map(str::to_string).collect(),
        });
    }
    out
}

/// A vulnerability's description: vulns.lua writes it as a list of lines (a table of one
/// element for a script's single string); a plain element is taken as well.
fn description(items: &[ScriptItem]) -> Option<String> {
    let text = match elem(items, "description") {
        Some(d) => d.to_string(),
        None => list(items, "description").collect::<Vec<_>>().join("\n"),
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The value of the element `key` of a table.
fn elem<'a>(items: &'a [ScriptItem], key: &str) -> Option<&'a str> {
    items.iter().find_map(|i| match i {
        ScriptItem::Elem {
            key: Some(k),
            value,
        } if k == key => Some(value.as_str()),
        _ => None,
    })
}

/// The values of the list (table of elements) `key` of a table.
fn list<'a>(items: &'a [ScriptItem], key: &'a str) -> impl Iterator<Item = &'a str> {
    items
        .iter()
        .filter_map(move |i| match i {
            ScriptItem::Table {
                key: Some(k),
                items,
            } if k == key => Some(items),
            _ => None,
        })
        .flatten()
        .filter_map(|i| match i {
            ScriptItem::Elem { value, .. } => Some(value.as_str()),
            ScriptItem::Table { .. } => None,
        })
}

/// ECS `host.os.*` from the best OS match (the first), with its most accurate class.
fn host_os(host: &Host) -> Option<HostOs> {
    let best = host.os.as_ref()?.matches.first()?;
    let class = best
        .classes
        .iter()
        .reduce(|a, b| if b.accuracy > a.accuracy { b } else { a });
    Some(HostOs {
        full: best.name.clone(),
        family: class
            .map(|c| c.osfamily.to_lowercase())
            .filter(|f| !f.is_empty()),
        kind: class.and_then(ecs_os_type).map(str::to_string),
    })
}

/// ECS `host.os.type` for an Nmap OS class, when ECS has a value for it. Case matters: Nmap
/// spells Apple's `iOS` and Cisco's `IOS` alike but for case.
fn ecs_os_type(class: &OsClass) -> Option<&'static str> {
    Some(match class.osfamily.as_str() {
        "Linux" => "linux",
        "Windows" => "windows",
        "Mac OS X" | "OS X" | "macOS" => "macos",
        "iOS" | "iPhone OS" => "ios",
        "Android" => "android",
        "FreeBSD" | "OpenBSD" | "NetBSD" | "DragonFly BSD" | "BSD/OS" | "Solaris"
        | "OpenSolaris" | "OpenIndiana" | "AIX" | "HP-UX" | "IRIX" | "Tru64 UNIX" | "UnixWare"
        | "OpenServer" => "unix",
        _ => return None,
    })
}

/// The events for one finished host, in the host's port order: for each port its
/// `port-open` event (when open) then a `script-result` per script that ran for it; then a
/// `script-result` per host script.
pub fn host_events(run: &ScanRun, host: &Host) -> Vec<Event> {
    let b = Builder { run };
    let when = b.when(Some(host));
    let mut out = Vec::new();
    for p in &host.ports {
        if p.state == PortState::Open {
            out.push(b.port_event(Action::PortOpen, host, p, when));
        }
        for s in &p.scripts {
            if s.id == OFFLINE_VULNS_ID && s.content.len() > 1 {
                // One alert per CVE, as a SIEM alerts and deduplicates on them.
                for one in split_findings(s) {
                    out.push(b.script_event(&one, Place::Port(host, p), when));
                }
            } else {
                out.push(b.script_event(s, Place::Port(host, p), when));
            }
        }
    }
    for s in &host.hostscripts {
        out.push(b.script_event(s, Place::Host(host), when));
    }
    out
}

/// A `--vulns` result cut into one result per finding (its table, and its line of text).
fn split_findings(s: &Script) -> Vec<Script> {
    s.content
        .iter()
        .map(|item| {
            let key = item.key().unwrap_or_default();
            let line = s
                .output
                .lines()
                .map(str::trim)
                .find(|l| !key.is_empty() && l.starts_with(key))
                .unwrap_or(key);
            Script {
                id: s.id.clone(),
                output: line.to_string(),
                content: vec![item.clone()],
            }
        })
        .collect()
}

/// The `script-result` events of the run's pre-scan scripts, stamped with the run's start.
pub fn prescan_events(run: &ScanRun) -> Vec<Event> {
    let b = Builder { run };
    run.prescripts
        .iter()
        .map(|s| b.script_event(s, Place::PreScan, run.start))
        .collect()
}

/// The `script-result` events of the run's post-scan scripts, stamped with its end.
pub fn postscan_events(run: &ScanRun) -> Vec<Event> {
    let b = Builder { run };
    let when = b.when(None);
    run.postscripts
        .iter()
        .map(|s| b.script_event(s, Place::PostScan, when))
        .collect()
}

/// The `port-open` events for one finished host: one per open port, in the host's order.
pub fn port_open_events(run: &ScanRun, host: &Host) -> Vec<Event> {
    let b = Builder { run };
    let when = b.when(Some(host));
    host.ports
        .iter()
        .filter(|p| p.state == PortState::Open)
        .map(|p| b.port_event(Action::PortOpen, host, p, when))
        .collect()
}

/// Where a host is found in a run, by its address.
fn hosts_by_addr(run: &ScanRun) -> BTreeMap<&str, &Host> {
    let mut map = BTreeMap::new();
    for h in &run.hosts {
        // The first listing of an address wins (a run lists each once).
        map.entry(h.addr_str()).or_insert(h);
    }
    map
}

/// A port's state in a run, from the listed ports or the collapsed lists; None when the run
/// does not say (the port was not scanned, or its list was not kept).
fn state_of(host: &Host, proto: Protocol, port: u16) -> Option<PortState> {
    if let Some(p) = host
        .ports
        .iter()
        .find(|p| p.protocol == proto && p.portid == port)
    {
        return Some(p.state);
    }
    host.extraports.iter().find_map(|ep| {
        ep.reasons
            .iter()
            .any(|r| (r.proto.is_none() || r.proto == Some(proto)) && r.port_list.contains(&port))
            .then_some(ep.state)
    })
}

fn open_ports(host: &Host) -> impl Iterator<Item = &Port> {
    host.ports.iter().filter(|p| p.state == PortState::Open)
}

/// Whether two services differ in what a person would call a different service.
fn service_differs(a: Option<&Service>, b: Option<&Service>) -> bool {
    let key = |s: Option<&Service>| {
        s.map(|s| {
            (
                s.name.clone(),
                s.product.clone(),
                s.version.clone(),
                s.tunnel.clone(),
            )
        })
    };
    match (a, b) {
        // A service that only one run names (e.g. one was run with -sn --open) is no change.
        (Some(_), Some(_)) => key(a) != key(b),
        _ => false,
    }
}

/// What changed from `old` to `new`, as events of `new` (time stamps and scan fields from
/// `new`). Hosts are matched by address, ports by (protocol, number). Only up hosts and
/// `open` ports count: `open|filtered` is not open.
///
/// Order: by host address, and for each host: host-appeared or host-disappeared first, then
/// port events by (protocol, port). A host that appeared also gets a `port-opened` event for
/// each of its open ports (each is a new exposure); a host that disappeared gets none for its
/// ports (nothing is known about them now).
pub fn change_events(old: &ScanRun, new: &ScanRun) -> Vec<Event> {
    let b = Builder { run: new };
    let before = hosts_by_addr(old);
    let after = hosts_by_addr(new);
    let mut addrs: Vec<&str> = before.keys().chain(after.keys()).copied().collect();
    addrs.sort_unstable_by_key(|a| addr_order(a));
    addrs.dedup();

    let mut out = Vec::new();
    for addr in addrs {
        let was = before.get(addr).copied();
        let now = after.get(addr).copied();
        let was_up = was.filter(|h| h.is_up());
        let is_up = now.filter(|h| h.is_up());
        let state = |h: Option<&Host>| h.map_or("absent", |h| h.status.state.as_str());
        match (was_up, is_up) {
            (None, None) => {}
            (None, Some(host)) => {
                let when = b.when(Some(host));
                let mut e = b.base(
                    Action::HostAppeared,
                    host,
                    when,
                    format!("host {} is up (was {})", addr, state(was)),
                );
                e.portolan.host = Some(HostExtra {
                    state: HostState::Up.as_str().into(),
                    previous_state: Some(state(was).into()),
                });
                out.push(e);
                for p in open_ports(host) {
                    let mut e = b.port_event(Action::PortOpened, host, p, when);
                    if let Some(pe) = e.portolan.port.as_mut() {
                        pe.previous_state = Some("unknown".into());
                    }
                    out.push(e);
                }
            }
            (Some(host), None) => {
                let when = b.when(now);
                let mut e = b.base(
                    Action::HostDisappeared,
                    now.unwrap_or(host),
                    when,
                    format!("host {} is no longer up (now {})", addr, state(now)),
                );
                e.portolan.host = Some(HostExtra {
                    state: state(now).into(),
                    previous_state: Some(HostState::Up.as_str().into()),
                });
                out.push(e);
            }
            (Some(old_h), Some(new_h)) => {
                out.extend(port_changes(&b, old_h, new_h));
            }
        }
    }
    out
}

/// The event of a finding that appeared (`gone` false) or went away on port `port` of
/// `host` as run `new` saw it (`portolan changes --events`, from the history store's
/// comparison of the ports' `vulns` results): a change event with the `vulnerability`
/// fields, an `alert` when it appeared.
pub fn finding_change_event(
    new: &ScanRun,
    host: &Host,
    port: &Port,
    cve: &str,
    cvss: Option<f64>,
    gone: bool,
) -> Event {
    let b = Builder { run: new };
    let action = if gone {
        Action::VulnGone
    } else {
        Action::VulnNew
    };
    let when = b.when(Some(host));
    let mut e = b.port_event(action, host, port, when);
    e.message = format!(
        "{}/{} on {}: {cve} {}",
        port.portid,
        port.protocol,
        named(host),
        if gone { "no longer found" } else { "found" }
    );
    if !gone {
        e.event.kind = "alert".into();
    }
    e.event.category = vec!["vulnerability".into()];
    let score = cvss
        .and_then(serde_json::Number::from_f64)
        .map(|base| VulnScore {
            base,
            version: None,
        });
    e.vulnerability = Some(Vulnerability {
        id: vec![cve.to_string()],
        description: None,
        reference: vec![format!("https://nvd.nist.gov/vuln/detail/{cve}")],
        classification: score.as_ref().map(|_| "CVSS".to_string()),
        score,
        severity: None,
        enumeration: Some("CVE".into()),
        scanner: Some(VulnScanner {
            vendor: "Portolan".into(),
        }),
    });
    e
}

/// Port events for a host up in both runs.
fn port_changes(b: &Builder, old_h: &Host, new_h: &Host) -> Vec<Event> {
    let when = b.when(Some(new_h));
    let mut keys: Vec<(Protocol, u16)> = open_ports(old_h)
        .chain(open_ports(new_h))
        .map(|p| (p.protocol, p.portid))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut out = Vec::new();
    for (proto, portid) in keys {
        let find = |h: &'_ Host| {
            h.ports
                .iter()
                .find(|p| p.protocol == proto && p.portid == portid)
                .cloned()
        };
        let old_p = find(old_h).filter(|p| p.state == PortState::Open);
        let new_p = find(new_h).filter(|p| p.state == PortState::Open);
        match (old_p, new_p) {
            (None, Some(np)) => {
                let mut e = b.port_event(Action::PortOpened, new_h, &np, when);
                if let Some(pe) = e.portolan.port.as_mut() {
                    pe.previous_state = Some(
                        state_of(old_h, proto, portid)
                            .map_or("unknown", PortState::as_str)
                            .into(),
                    );
                }
                out.push(e);
            }
            (Some(op), None) => {
                // Describe the port as the new run saw it, with the old service for context.
                let now_state = state_of(new_h, proto, portid);
                let mut shown = find(new_h).unwrap_or_else(|| Port {
                    state: now_state.unwrap_or(PortState::Closed),
                    reason: String::new(),
                    reason_ttl: 0,
                    ..op.clone()
                });
                if shown.service.is_none() {
                    shown.service = op.service.clone();
                }
                let mut e = b.port_event(Action::PortClosed, new_h, &shown, when);
                if let Some(pe) = e.portolan.port.as_mut() {
                    pe.state = now_state.map_or("unknown", PortState::as_str).into();
                    pe.previous_state = Some(PortState::Open.as_str().into());
                }
                if now_state.is_none() || e.portolan.reason.as_deref() == Some("") {
                    e.portolan.reason = None;
                    e.portolan.reason_ttl = None;
                }
                out.push(e);
            }
            (Some(op), Some(np)) => {
                if service_differs(op.service.as_ref(), np.service.as_ref()) {
                    let mut e = b.port_event(Action::ServiceChanged, new_h, &np, when);
                    if let (Some(se), Some(os)) = (e.portolan.service.as_mut(), &op.service) {
                        se.previous = Some(summary(os));
                    }
                    if let Some(pe) = e.portolan.port.as_mut() {
                        pe.previous_state = Some(PortState::Open.as_str().into());
                    }
                    if let (Some(os), Some(ns)) = (&op.service, &np.service) {
                        e.message = format!(
                            "{}/{} on {}: service changed from {} to {}",
                            portid,
                            proto,
                            new_h.addr_str(),
                            service_detail(os),
                            service_detail(ns)
                        );
                    }
                    out.push(e);
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// Sorts addresses as addresses (IPv4 before IPv6, numerically), text that is no address last.
fn addr_order(a: &str) -> (u8, std::net::IpAddr, String) {
    match a.parse::<std::net::IpAddr>() {
        Ok(ip) => (0, ip, String::new()),
        Err(_) => (1, std::net::Ipv4Addr::UNSPECIFIED.into(), a.to_string()),
    }
}

/// Writes events as NDJSON: the pre-scan script results first, then for each finished host
/// its [`host_events`], then the post-scan script results.
pub struct EventsWriter<W: Write> {
    out: W,
    opts: OutputOptions,
}

impl<W: Write> EventsWriter<W> {
    pub fn new(out: W, opts: OutputOptions) -> Self {
        EventsWriter { out, opts }
    }

    /// The options this writer was made with (events carry results, not their rendering).
    pub fn options(&self) -> &OutputOptions {
        &self.opts
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes events as NDJSON lines to `out` (for `portolan changes --events`).
pub fn write_events(out: &mut impl Write, events: &[Event]) -> Result<(), OutputError> {
    for e in events {
        serde_json::to_writer(&mut *out, e).map_err(OutputError::json)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

impl<W: Write> Sink for EventsWriter<W> {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        write_events(&mut self.out, &prescan_events(run))
    }

    fn host(&mut self, run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        write_events(&mut self.out, &host_events(run, host))
    }

    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        write_events(&mut self.out, &postscan_events(run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::*;

    fn host(ip: &str, ports: &[(u16, PortState, &str)]) -> Host {
        let mut h = Host::new(ip.parse().unwrap(), HostStatus::up("syn-ack"));
        h.endtime = Some(1_800_000_100);
        for (p, s, name) in ports {
            let mut port = Port::new(Protocol::Tcp, *p, *s, "syn-ack");
            port.service = Some(Service::from_table(*name));
            h.ports.push(port);
        }
        h
    }

    fn run(hosts: Vec<Host>) -> ScanRun {
        let mut r = ScanRun::new("portolan -sT 192.0.2.0/28", 1_800_000_000);
        r.hosts = hosts;
        r
    }

    fn actions(events: &[Event]) -> Vec<(String, Option<u16>, &'static str)> {
        events
            .iter()
            .map(|e| {
                let d = e.destination.as_ref().unwrap();
                (d.ip.clone(), d.port, e.event.action.as_str())
            })
            .collect()
    }

    #[test]
    fn one_line_per_open_port_with_ecs_names() {
        let mut h = host(
            "192.0.2.1",
            &[
                (22, PortState::Open, "ssh"),
                (23, PortState::Closed, "telnet"),
                (53, PortState::OpenFiltered, "domain"),
                (80, PortState::Open, "http"),
            ],
        );
        h.addresses.push(Address {
            addr: "00:16:3e:12:34:56".into(),
            addrtype: AddrType::Mac,
            vendor: None,
        });
        let r = run(vec![h.clone()]);
        let mut w = EventsWriter::new(Vec::new(), OutputOptions::default());
        w.begin(&r).unwrap();
        w.host(&r, &h).unwrap();
        w.end(&r).unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["@timestamp"], "2027-01-15T08:01:40Z");
        assert_eq!(v["event"]["action"], "port-open");
        assert_eq!(v["event"]["type"][0], "info");
        assert_eq!(v["destination"]["port"], 22);
        assert_eq!(v["network"]["transport"], "tcp");
        assert_eq!(v["network"]["protocol"], "ssh");
        assert_eq!(v["host"]["mac"][0], "00-16-3E-12-34-56");
        assert_eq!(v["observer"]["product"], "Portolan");
        assert_eq!(v["portolan"]["reason"], "syn-ack");
        let back: Event = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(back, port_open_events(&r, &h)[1]);
    }

    #[test]
    fn changes_between_runs() {
        let old = run(vec![
            host(
                "192.0.2.1",
                &[(22, PortState::Open, "ssh"), (80, PortState::Open, "http")],
            ),
            host("192.0.2.2", &[(25, PortState::Open, "smtp")]),
            host("192.0.2.10", &[]),
        ]);
        let mut a = host(
            "192.0.2.1",
            &[
                (22, PortState::Open, "ssh"),
                (80, PortState::Filtered, "http"),
                (443, PortState::Open, "https"),
            ],
        );
        a.ports[0].service.as_mut().unwrap().version = Some("9.2".into());
        let mut down = Host::new(
            "192.0.2.10".parse().unwrap(),
            HostStatus::down("no-response"),
        );
        down.endtime = None;
        let new = run(vec![
            a,
            host("192.0.2.3", &[(6379, PortState::Open, "redis")]),
            down,
        ]);
        let ev = change_events(&old, &new);
        assert_eq!(
            actions(&ev),
            vec![
                ("192.0.2.1".into(), Some(22), "service-changed"),
                ("192.0.2.1".into(), Some(80), "port-closed"),
                ("192.0.2.1".into(), Some(443), "port-opened"),
                ("192.0.2.2".into(), None, "host-disappeared"),
                ("192.0.2.3".into(), None, "host-appeared"),
                ("192.0.2.3".into(), Some(6379), "port-opened"),
                ("192.0.2.10".into(), None, "host-disappeared"),
            ]
        );
        let closed = &ev[1].portolan.port.as_ref().unwrap();
        assert_eq!(closed.state, "filtered");
        assert_eq!(closed.previous_state.as_deref(), Some("open"));
        let changed = ev[0].portolan.service.as_ref().unwrap();
        assert_eq!(changed.previous.as_ref().unwrap().version, None);
        assert_eq!(
            ev[0].service.as_ref().unwrap().version.as_deref(),
            Some("9.2")
        );
        assert_eq!(ev[3].portolan.host.as_ref().unwrap().state, "absent");
        assert_eq!(ev[6].portolan.host.as_ref().unwrap().state, "down");
        assert!(ev.iter().all(|e| e.event.kind_type == ["change"]));
        // Nothing changed: no events, either way round.
        assert!(change_events(&old, &old).is_empty());
        assert!(change_events(&new, &new).is_empty());
    }

    #[test]
    fn a_port_gone_from_the_listing_is_closed_with_unknown_state() {
        let old = run(vec![host(
            "192.0.2.1",
            &[(8080, PortState::Open, "http-proxy")],
        )]);
        let new = run(vec![host("192.0.2.1", &[])]);
        let ev = change_events(&old, &new);
        assert_eq!(
            actions(&ev),
            vec![("192.0.2.1".into(), Some(8080), "port-closed")]
        );
        assert_eq!(ev[0].portolan.port.as_ref().unwrap().state, "unknown");
        assert_eq!(ev[0].service.as_ref().unwrap().name, "http-proxy");
        assert_eq!(ev[0].portolan.reason, None);
    }

    fn elem(key: &str, value: &str) -> ScriptItem {
        ScriptItem::Elem {
            key: Some(key.into()),
            value: value.into(),
        }
    }

    fn table(key: Option<&str>, items: Vec<ScriptItem>) -> ScriptItem {
        ScriptItem::Table {
            key: key.map(str::to_string),
            items,
        }
    }

    /// A result as vulns.lua's `Report:make_output` shapes it.
    fn vuln_table(id: &str, state: &str, title: &str, cves: &[&str]) -> ScriptItem {
        let ids = cves
            .iter()
            .map(|c| ScriptItem::Elem {
                key: None,
                value: format!("CVE:{c}"),
            })
            .collect();
        table(
            Some(id),
            vec![
                elem("title", title),
                elem("state", state),
                table(Some("ids"), ids),
                table(
                    Some("description"),
                    vec![ScriptItem::Elem {
                        key: None,
                        value: "A flaw\n in two lines.\n".into(),
                    }],
                ),
                elem("disclosure", "2017-03-14"),
                table(
                    Some("refs"),
                    vec![ScriptItem::Elem {
                        key: None,
                        value: format!("https://cve.mitre.org/cgi-bin/cvename.cgi?name={id}"),
                    }],
                ),
            ],
        )
    }

    fn lines_of(r: &ScanRun) -> Vec<serde_json::Value> {
        let mut w = EventsWriter::new(Vec::new(), OutputOptions::default());
        w.begin(r).unwrap();
        for h in &r.hosts {
            w.host(r, h).unwrap();
        }
        w.end(r).unwrap();
        String::from_utf8(w.into_inner())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn script_results_for_ports_hosts_and_the_run() {
        let mut h = host(
            "192.0.2.1",
            &[
                (22, PortState::Open, "ssh"),
                (161, PortState::OpenFiltered, "snmp"),
            ],
        );
        h.ports[0].scripts.push(Script {
            id: "ssh-hostkey".into(),
            output: "\n  256 aa:bb (ECDSA)\n  256 cc:dd (ED25519)".into(),
            content: vec![table(
                None,
                vec![elem("type", "ecdsa-sha2-nistp256"), elem("bits", "256")],
            )],
        });
        h.ports[1]
            .scripts
            .push(Script::text("snmp-info", "engine id"));
        h.hostscripts.push(Script::text("clock-skew", "mean: 0s"));
        let mut r = run(vec![h]);
        r.prescripts
            .push(Script::text("broadcast-ping", "  IP: 192.0.2.7"));
        r.postscripts
            .push(Script::text("ssh-hostkey", "Possible duplicate hosts"));
        r.runstats = Some(RunStats {
            finished: 1_800_000_200,
            elapsed: 200.0,
            exit: RunExit::Success,
            errormsg: None,
            hosts_up: 1,
            hosts_down: 0,
            hosts_total: 1,
            completeness: None,
        });
        let ev = lines_of(&r);
        let seen: Vec<(String, String, String)> = ev
            .iter()
            .map(|e| {
                (
                    e["event"]["action"].as_str().unwrap().to_string(),
                    e["portolan"]["script"]["scope"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    e["destination"]["port"].to_string(),
                )
            })
            .collect();
        let want = [
            ("script-result", "prescan", "null"),
            ("port-open", "", "22"),
            ("script-result", "port", "22"),
            ("script-result", "port", "161"),
            ("script-result", "host", "null"),
            ("script-result", "postscan", "null"),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(seen, want);

        let pre = &ev[0];
        assert_eq!(pre["@timestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(pre["message"], "broadcast-ping pre-scan: IP: 192.0.2.7");
        for absent in ["host", "destination", "related", "network", "service"] {
            assert!(pre.get(absent).is_none(), "{absent} in {pre}");
        }
        assert_eq!(ev[5]["@timestamp"], "2027-01-15T08:03:20Z");

        let port = &ev[2];
        assert_eq!(port["event"]["kind"], "event");
        assert_eq!(port["event"]["category"][0], "network");
        assert_eq!(port["event"]["type"][0], "info");
        assert_eq!(
            port["message"],
            "ssh-hostkey 22/tcp on 192.0.2.1: 256 aa:bb (ECDSA)"
        );
        assert_eq!(port["network"]["transport"], "tcp");
        assert_eq!(port["service"]["name"], "ssh");
        assert_eq!(port["portolan"]["port"]["state"], "open");
        assert_eq!(port["portolan"]["script"]["id"], "ssh-hostkey");
        assert_eq!(
            port["portolan"]["script"]["output"],
            "\n  256 aa:bb (ECDSA)\n  256 cc:dd (ED25519)"
        );
        // The content is -oJ's ScriptItem, keys and all.
        assert_eq!(
            port["portolan"]["script"]["content"],
            serde_json::json!([{"type": "table", "key": null, "items": [
                {"type": "elem", "key": "type", "value": "ecdsa-sha2-nistp256"},
                {"type": "elem", "key": "bits", "value": "256"}
            ]}])
        );
        assert!(port.get("vulnerability").is_none());
        // A port that is not open keeps its own state; text-only output has no content.
        assert_eq!(ev[3]["portolan"]["port"]["state"], "open|filtered");
        assert!(ev[3]["portolan"]["script"].get("content").is_none());

        let host_script = &ev[4];
        assert_eq!(host_script["destination"]["ip"], "192.0.2.1");
        assert_eq!(host_script["host"]["ip"][0], "192.0.2.1");
        assert!(host_script.get("network").is_none());
        assert!(host_script["portolan"].get("port").is_none());
        assert_eq!(host_script["message"], "clock-skew on 192.0.2.1: mean: 0s");

        // Read back, every event is what was built.
        let back: Vec<Event> = ev
            .iter()
            .map(|v| serde_json::from_value(v.clone()).unwrap())
            .collect();
        let mut built = prescan_events(&r);
        built.extend(host_events(&r, &r.hosts[0]));
        built.extend(postscan_events(&r));
        assert_eq!(back, built);
    }

    #[test]
    fn a_vulnerable_result_is_an_alert_with_its_cve() {
        let mut h = host("192.0.2.1", &[(445, PortState::Open, "microsoft-ds")]);
        h.ports[0].scripts.push(Script {
            id: "smb-vuln-ms17-010".into(),
            output: "VULNERABLE: ...".into(),
            content: vec![vuln_table(
                "CVE-2017-0143",
                "VULNERABLE",
                "Remote Code Execution vulnerability in Microsoft SMBv1 servers (ms17-010)",
                &["CVE-2017-0143"],
            )],
        });
        h.hostscripts.push(Script {
            id: "smb-vuln-ms10-054".into(),
            output: "false".into(),
            content: vec![vuln_table(
                "CVE-2010-2550",
                "NOT VULNERABLE",
                "SMB Remote Memory Corruption Vulnerability",
                &["CVE-2010-2550"],
            )],
        });
        // Two findings in one result, one of them only likely, one without a CVE.
        h.hostscripts.push(Script {
            id: "two".into(),
            output: String::new(),
            content: vec![
                vuln_table(
                    "CVE-2014-0160",
                    "LIKELY VULNERABLE",
                    "Heartbleed",
                    &["CVE-2014-0160"],
                ),
                vuln_table("OSVDB-1", "VULNERABLE (DoS)", "Old bug", &[]),
                elem("state", "VULNERABLE"),
            ],
        });
        let r = run(vec![h]);
        let ev = lines_of(&r);
        assert_eq!(ev.len(), 4);
        let alert = &ev[1];
        assert_eq!(alert["event"]["kind"], "alert");
        assert_eq!(
            alert["event"]["category"],
            serde_json::json!(["vulnerability"])
        );
        assert_eq!(alert["event"]["type"], serde_json::json!(["info"]));
        assert_eq!(
            alert["vulnerability"]["id"],
            serde_json::json!(["CVE-2017-0143"])
        );
        assert_eq!(
            alert["vulnerability"]["description"],
            "A flaw\n in two lines."
        );
        assert_eq!(
            alert["vulnerability"]["reference"][0],
            "https://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2017-0143"
        );
        assert_eq!(alert["destination"]["port"], 445);
        assert_eq!(
            alert["message"],
            "smb-vuln-ms17-010 445/tcp on 192.0.2.1: VULNERABLE CVE-2017-0143 \
             Remote Code Execution vulnerability in Microsoft SMBv1 servers (ms17-010)"
        );

        let not = &ev[2];
        assert_eq!(not["event"]["kind"], "event");
        assert_eq!(not["event"]["category"][0], "network");
        assert!(not.get("vulnerability").is_none());

        let two = &ev[3];
        assert_eq!(two["event"]["kind"], "alert");
        assert_eq!(
            two["vulnerability"]["id"],
            serde_json::json!(["CVE-2014-0160", "OSVDB-1"])
        );
        // Which description would it be? None, rather than a wrong one.
        assert!(two["vulnerability"].get("description").is_none());
        assert!(two["vulnerability"].get("reference").is_none());
    }

    fn os_match(name: &str, classes: &[(&str, &str, u8)]) -> OsMatch {
        OsMatch {
            name: name.into(),
            accuracy: 96,
            line: 1,
            classes: classes
                .iter()
                .map(|(vendor, family, accuracy)| OsClass {
                    kind: Some("general purpose".into()),
                    vendor: vendor.to_string(),
                    osfamily: family.to_string(),
                    osgen: None,
                    accuracy: *accuracy,
                    cpes: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn os_fields_on_every_event_of_the_host() {
        let mut h = host("192.0.2.1", &[(22, PortState::Open, "ssh")]);
        h.hostscripts.push(Script::text("clock-skew", "0s"));
        h.os = Some(Os {
            matches: vec![
                os_match(
                    "Linux 4.15 - 5.8",
                    &[("Linux", "Linux", 90), ("Linux", "Linux", 96)],
                ),
                os_match("Microsoft Windows 10", &[("Microsoft", "Windows", 85)]),
            ],
            ..Os::default()
        });
        let r = run(vec![h.clone()]);
        let ev = lines_of(&r);
        assert_eq!(ev.len(), 2);
        for e in &ev {
            assert_eq!(
                e["host"]["os"],
                serde_json::json!({"full": "Linux 4.15 - 5.8", "family": "linux", "type": "linux"})
            );
        }
        // Change events carry it too.
        let gone = run(vec![]);
        let ch = change_events(&gone, &r);
        assert_eq!(
            ch[0].host.as_ref().unwrap().os.as_ref().unwrap().full,
            "Linux 4.15 - 5.8"
        );

        // No ECS type for Cisco's IOS (Apple's is iOS); family is kept, lower case.
        h.os = Some(Os {
            matches: vec![os_match("Cisco 2600 router", &[("Cisco", "IOS", 92)])],
            ..Os::default()
        });
        let os = host_os(&h).unwrap();
        assert_eq!(os.family.as_deref(), Some("ios"));
        assert_eq!(os.kind, None);
        h.os.as_mut().unwrap().matches[0].classes[0].osfamily = "iOS".into();
        assert_eq!(host_os(&h).unwrap().kind.as_deref(), Some("ios"));
        h.os.as_mut().unwrap().matches[0].classes[0].osfamily = "Mac OS X".into();
        assert_eq!(host_os(&h).unwrap().kind.as_deref(), Some("macos"));
        h.os.as_mut().unwrap().matches[0].classes[0].osfamily = "OpenBSD".into();
        assert_eq!(host_os(&h).unwrap().kind.as_deref(), Some("unix"));
        // A host with no match has no host.os.
        h.os = Some(Os::default());
        assert_eq!(host_os(&h), None);
        h.os = None;
        assert!(port_open_events(&run(vec![h.clone()]), &h)[0]
            .host
            .as_ref()
            .unwrap()
            .os
            .is_none());
    }
}
