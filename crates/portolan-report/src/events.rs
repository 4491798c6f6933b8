//! SIEM events (-oE): newline-delimited JSON, one event per line, with Elastic Common Schema
//! (ECS) field names so that Elasticsearch, OpenSearch, Splunk or any NDJSON shipper can take
//! them as they are. Fields ECS does not have live under `portolan.*`.
//!
//! - [`EventsWriter`] is a [`Sink`]: one `port-open` event per open port, written as soon as
//!   each host is finished.
//! - [`change_events`] compares two runs and says what changed (`port-opened`,
//!   `port-closed`, `host-appeared`, `host-disappeared`, `service-changed`); it knows
//!   nothing of where the runs came from.
//!
//! The mapping is documented in docs/events.md; docs/events.schema.json describes one event.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use portolan_model::{AddrType, Host, HostState, Port, PortState, Protocol, ScanRun, Service};
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
        }
    }

    /// `event.type`: `info` for what a scan saw, `change` for a difference between scans.
    fn event_type(self) -> &'static str {
        match self {
            Action::PortOpen => "info",
            _ => "change",
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
    pub host: HostFields,
    pub destination: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceFields>,
    pub related: Related,
    pub portolan: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ecs {
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFields {
    /// Always `event`.
    pub kind: String,
    /// Always `["network"]`.
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
}

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
            host: HostFields {
                ip: if ips.is_empty() && !ip.is_empty() {
                    vec![ip.clone()]
                } else {
                    ips.clone()
                },
                hostname: hostname.clone(),
                mac: macs,
            },
            destination: Destination {
                ip: ip.clone(),
                port: None,
                domain: hostname,
            },
            network: None,
            service: None,
            related: Related {
                ip: if ips.is_empty() { vec![ip] } else { ips },
                hosts: related_hosts,
            },
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
            },
        }
    }

    /// An event about one port of `host`; `port` carries the state and service shown.
    fn port_event(&self, action: Action, host: &Host, port: &Port, when: i64) -> Event {
        let what = match action {
            Action::PortOpen => "open",
            Action::PortOpened => "newly open",
            Action::PortClosed => "no longer open",
            Action::ServiceChanged => "open with a changed service",
            Action::HostAppeared | Action::HostDisappeared => "",
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
        e.destination.port = Some(port.portid);
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

    /// When `host` was finished in this run: its end time, else the run's.
    fn when(&self, host: Option<&Host>) -> i64 {
        host.and_then(|h| h.endtime)
            .or(self.run.runstats.as_ref().map(|r| r.finished))
            .unwrap_or(self.run.start)
    }
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

/// Writes events as NDJSON: one `port-open` line per open port of each finished host.
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
    fn begin(&mut self, _run: &ScanRun) -> Result<(), OutputError> {
        Ok(())
    }

    fn host(&mut self, run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        write_events(&mut self.out, &port_open_events(run, host))
    }

    fn end(&mut self, _run: &ScanRun) -> Result<(), OutputError> {
        self.out.flush()?;
        Ok(())
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
                (
                    e.destination.ip.clone(),
                    e.destination.port,
                    e.event.action.as_str(),
                )
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
}
