//! The one conversion from what the engine learnt about a host ([`HostRecord`]) to the
//! result model that every output and the store read: addresses and names, ports with
//! their service names (Nmap's table without -sV, the detected service with it), timing,
//! and the completeness of the scan.

use crate::core::scan::ScanStats;
use crate::data::macvendor::MacPrefixTable;
use crate::pipeline::{now_epoch, HostRecord, PortResult, StageCx};
use crate::plan::timing::RttEstimator;
use crate::plan::{ScanKind, ScanPlan};
use crate::stages::traceroute::HostTrace;
use crate::stages::version::Detected;
use portolan_model::{
    AddrType, Address, Completeness, Hop, Host, Hostname, HostnameType, Port, PortState, Protocol,
    Service, ServiceMethod, Times, Trace,
};
use portolan_wire::ethernet::MacAddr;
use std::time::Duration;

/// Nmap reports collapsed states once more than this many ports share them.
const COLLAPSE_THRESHOLD: usize = 25;

/// Whether `host` appears in the report at all, as Nmap decides: every host of a list
/// scan; hosts found up (and, with -v, the others); nothing in a dry run.
pub fn reported(plan: &ScanPlan, host: &HostRecord) -> bool {
    if plan.dry_run {
        return false;
    }
    match plan.scan {
        ScanKind::List => true,
        _ => host.is_up() || plan.out_opts.verbose > 0,
    }
}

/// The model's view of `host`, shaped for output.
pub fn host(plan: &ScanPlan, rec: &HostRecord) -> Host {
    let mut h = Host::new(rec.ip, rec.status.clone());
    if let (Some(mac), Some(vendors)) = (rec.mac, &plan.mac_vendors) {
        h.addresses.push(mac_address(mac, vendors));
    }
    if let Some(n) = &rec.user_name {
        h.hostnames.push(Hostname {
            name: n.clone(),
            kind: HostnameType::User,
        });
    }
    if let Some(n) = &rec.ptr {
        h.hostnames.push(Hostname {
            name: n.clone(),
            kind: HostnameType::Ptr,
        });
    }
    if let Some(found) = &rec.os {
        let f = &**found;
        h.os = Some(f.os.clone());
        h.uptime = f.uptime.clone();
        h.distance = f.distance;
        h.tcpsequence = f.tcpsequence.clone();
        h.ipidsequence = f.ipidsequence.clone();
        h.tcptssequence = f.tcptssequence.clone();
    }
    h.trace = rec.trace.as_deref().map(trace);
    // OS detection's distance gives way to the trace's, as in Nmap.
    if let (Some(_), Some(d)) = (&rec.os, rec.trace.as_ref().and_then(|t| t.distance)) {
        h.distance = Some(u32::from(d));
    }
    let now = now_epoch();
    let Some(scan) = &rec.scan else {
        // Not port scanned: the ping's timing.
        h.times = rec.ping_rtt.map(times_from_rtt);
        h.starttime = Some(now);
        h.endtime = Some(now);
        return h;
    };
    h.starttime = Some(scan.started);
    h.endtime = Some(scan.ended.unwrap_or(now));
    h.times = scan.times;
    let mut ports: Vec<&PortResult> = scan.ports.iter().collect();
    ports.sort_by_key(|p| (p.proto != Protocol::Tcp, p.port));
    h.ports = ports.into_iter().map(|p| port(plan, p)).collect();
    h.collapse_ports(COLLAPSE_THRESHOLD, plan.out_opts.open_only);
    h
}

/// A host's route as Nmap's `<trace>`: the probe's port and protocol (none for a host on
/// our link), the hops with their round trip in milliseconds (`%.2f`, `--` unknown) and
/// the target whose trace found them; timed-out hops have no address (the XML leaves them
/// out, normal output shows them).
fn trace(t: &HostTrace) -> Trace {
    let (port, proto) = match t.probe {
        Some(p) => {
            let (port, proto) = p.port_proto();
            (port, Some(proto.to_string()))
        }
        None => (None, None),
    };
    let hops = t
        .hops
        .iter()
        .map(|h| Hop {
            ttl: u32::from(h.ttl),
            ipaddr: h.addr.map(|a| a.to_string()),
            rtt: h.addr.map(|_| match h.rtt {
                Some(d) => format!("{:.2}", d.as_secs_f64() * 1000.0),
                None => "--".to_string(),
            }),
            host: h.name.clone(),
            tag: Some(h.tag.to_string()),
        })
        .collect();
    Trace { port, proto, hops }
}

/// One port: named from the services table as Nmap does without -sV (`unknown` when the
/// table has no name), or as -sV found it.
fn port(plan: &ScanPlan, r: &PortResult) -> Port {
    let mut port = Port::new(r.proto, r.port, r.state, r.reason);
    port.reason_ttl = r.ttl;
    let table = || {
        let name = plan.services.lookup(r.port, r.proto).unwrap_or("unknown");
        Service::from_table(name)
    };
    port.service = Some(match &r.detected {
        Some(Detected::Match { found, ssl }) => {
            let found = (**found).clone();
            Service {
                name: found.service,
                product: found.product,
                version: found.version,
                extrainfo: found.info,
                hostname: found.hostname,
                ostype: found.ostype,
                devicetype: found.devicetype,
                method: ServiceMethod::Probed,
                conf: 10,
                tunnel: ssl.then(|| "ssl".to_string()),
                servicefp: r.servicefp.clone(),
                cpes: found.cpes,
            }
        }
        Some(Detected::TcpWrapped) => Service {
            name: "tcpwrapped".into(),
            method: ServiceMethod::Probed,
            conf: 8,
            ..Service::default()
        },
        Some(Detected::SslUnknown) => Service {
            tunnel: Some("ssl".into()),
            servicefp: r.servicefp.clone(),
            ..table()
        },
        Some(Detected::Unknown) => Service {
            servicefp: r.servicefp.clone(),
            ..table()
        },
        None => table(),
    });
    port
}

/// A MAC address as Nmap writes it: upper-case hex, with its vendor.
fn mac_address(mac: MacAddr, vendors: &MacPrefixTable) -> Address {
    let b = mac.0;
    Address {
        addr: format!(
            "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        ),
        addrtype: AddrType::Mac,
        vendor: vendors.lookup(mac).map(str::to_string),
    }
}

/// The completeness of a batch's port scan (raw or connect), from its counters.
pub fn completeness(cx: &StageCx<'_>) -> Vec<Completeness> {
    let mut out = Vec::new();
    if let Some((s, _)) = &cx.raw_stats {
        out.push(Completeness::estimate(
            s.probes_sent,
            s.retransmissions,
            s.answers,
            s.unanswered,
            s.late_answers,
            s.passes,
        ));
    }
    if let Some(s) = &cx.connect_stats {
        out.push(Completeness::estimate(
            s.probes_sent,
            s.retransmissions,
            s.answered,
            s.ports_done.saturating_sub(s.answered),
            s.drops_detected,
            s.max_tries,
        ));
    }
    out
}

/// The counters behind [`completeness`], as -d prints them.
pub fn completeness_notes(cx: &StageCx<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((s, drops)) = &cx.raw_stats {
        out.push(raw_note(s, *drops));
    }
    if let Some(s) = &cx.connect_stats {
        out.push(format!(
            "Completeness: {} probes sent, {} retransmissions, {} answered, {} timed out, {} drops detected, {} local errors",
            s.probes_sent, s.retransmissions, s.answered, s.timeouts, s.drops_detected, s.local_errors
        ));
    }
    out
}

fn raw_note(s: &ScanStats, drops: u64) -> String {
    format!(
        "Completeness: {} probes sent, {} retransmissions in {} passes, {} answered, {} unanswered, {} rate cuts, {} invalid, {} receive drops",
        s.probes_sent, s.retransmissions, s.passes, s.answers, s.unanswered, s.rate_cuts, s.invalid, drops
    )
}

/// Nmap's `times` element (microseconds) from an RTT estimator, once it has a sample.
pub fn times_from_estimator(rtt: &RttEstimator) -> Option<Times> {
    let srtt = rtt.srtt()?;
    Some(Times {
        srtt: srtt.as_micros() as i64,
        rttvar: rtt.rttvar().as_micros() as i64,
        to: rtt.timeout().as_micros() as i64,
    })
}

/// `times` from a single round trip (a ping), with Nmap's floor on the variance.
pub fn times_from_rtt(rtt: Duration) -> Times {
    let us = rtt.as_micros() as i64;
    Times {
        srtt: us,
        rttvar: us.max(5000),
        to: (us + 4 * us.max(5000)).max(100_000),
    }
}

/// Port results from a scan: (port, state, reason, reply TTL) per port of `proto`.
pub fn port_results(
    proto: Protocol,
    results: impl IntoIterator<Item = (u16, PortState, &'static str, u8)>,
) -> impl Iterator<Item = PortResult> {
    results
        .into_iter()
        .map(move |(port, state, reason, ttl)| PortResult {
            proto,
            port,
            state,
            reason,
            ttl,
            detected: None,
            servicefp: None,
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::services::ServiceTable;
    use crate::pipeline::PortScan;
    use crate::plan::timing::Template;
    use crate::plan::ScanPlan;
    use portolan_model::HostStatus;

    pub(crate) fn plan() -> ScanPlan {
        ScanPlan {
            args_line: "portolan test".into(),
            start: 0,
            scan: ScanKind::Connect,
            udp: false,
            no_ping: true,
            discovery: Default::default(),
            dns: crate::plan::Dns::Never,
            services: ServiceTable::builtin(),
            ports: Vec::new(),
            udp_ports: Vec::new(),
            share: crate::core::scan::Share::ALL,
            dry_run: false,
            payloads: Default::default(),
            version: None,
            mac_vendors: None,
            sequential_ports: true,
            timing: Template::Aggressive.timing(),
            host_group: 64,
            out_opts: Default::default(),
            targets: Default::default(),
            seed: 1,
            os: None,
            traceroute: false,
            carried: Vec::new(),
        }
    }

    #[test]
    fn ports_sorted_named_and_timed() {
        let mut rtt = RttEstimator::new(&Template::Aggressive.timing());
        rtt.sample(Duration::from_millis(2));
        let mut rec = HostRecord::new("198.18.0.10".parse().unwrap(), None);
        rec.status = HostStatus::up("user-set");
        rec.scan = Some(Box::new(PortScan {
            started: 1,
            ended: None,
            times: times_from_estimator(&rtt),
            ports: port_results(
                Protocol::Tcp,
                [
                    (443, PortState::Open, "syn-ack", 0),
                    (22, PortState::Closed, "conn-refused", 0),
                    (47_999, PortState::Filtered, "no-response", 0),
                ],
            )
            .collect(),
        }));
        let host = host(&plan(), &rec);
        let ids: Vec<u16> = host.ports.iter().map(|p| p.portid).collect();
        assert_eq!(ids, vec![22, 443, 47_999]);
        let names: Vec<&str> = host
            .ports
            .iter()
            .map(|p| p.service.as_ref().map(|s| s.name.as_str()).unwrap_or(""))
            .collect();
        assert_eq!(names, vec!["ssh", "https", "unknown"]);
        assert_eq!(host.ports[0].service.as_ref().map(|s| s.conf), Some(3));
        assert_eq!(host.times.map(|t| t.srtt), Some(2000));
    }

    #[test]
    fn traces_as_nmaps_xml_has_them() {
        use crate::core::trace::TraceProbe;
        use crate::stages::traceroute::HopRecord;
        let hop = |ttl, addr: Option<&str>, rtt: Option<u64>, name: Option<&str>| HopRecord {
            ttl,
            addr: addr.map(|a| a.parse().unwrap()),
            rtt: rtt.map(Duration::from_micros),
            name: name.map(str::to_string),
            tag: "198.18.2.10".parse().unwrap(),
        };
        let t = HostTrace {
            probe: Some(TraceProbe::IcmpEcho),
            hops: vec![
                hop(1, Some("198.18.0.2"), Some(140), Some("r1.lab.test")),
                hop(2, None, None, None),
                hop(3, Some("198.18.1.6"), None, None),
                hop(4, Some("198.18.2.10"), Some(12_345), None),
            ],
            distance: Some(4),
        };
        let m = trace(&t);
        assert_eq!((m.port, m.proto.as_deref()), (None, Some("icmp")));
        type Row<'a> = (u32, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let hops: Vec<Row> = m
            .hops
            .iter()
            .map(|h| {
                let (a, r) = (h.ipaddr.as_deref(), h.rtt.as_deref());
                (h.ttl, a, r, h.host.as_deref())
            })
            .collect();
        assert_eq!(
            hops,
            [
                (1, Some("198.18.0.2"), Some("0.14"), Some("r1.lab.test")),
                (2, None, None, None),
                (3, Some("198.18.1.6"), Some("--"), None),
                (4, Some("198.18.2.10"), Some("12.35"), None),
            ]
        );
        assert!(m
            .hops
            .iter()
            .all(|h| h.tag.as_deref() == Some("198.18.2.10")));
        let syn = HostTrace {
            probe: Some(TraceProbe::TcpSyn { port: 22 }),
            hops: Vec::new(),
            distance: None,
        };
        let m = trace(&syn);
        assert_eq!((m.port, m.proto.as_deref()), (Some(22), Some("tcp")));
        let direct = HostTrace {
            probe: None,
            hops: Vec::new(),
            distance: None,
        };
        assert_eq!((trace(&direct).port, trace(&direct).proto), (None, None));
    }

    #[test]
    fn ping_times_have_nmaps_floors() {
        let t = times_from_rtt(Duration::from_micros(100));
        assert_eq!((t.srtt, t.rttvar, t.to), (100, 5000, 100_000));
    }

    #[test]
    fn tcp_ports_come_before_udp_and_detected_services_replace_the_table() {
        let mut rec = HostRecord::new("198.18.0.10".parse().unwrap(), None);
        rec.status = HostStatus::up("arp-response");
        let mut ports: Vec<PortResult> =
            port_results(Protocol::Udp, [(53, PortState::Open, "udp-response", 64)])
                .chain(port_results(
                    Protocol::Tcp,
                    [(80, PortState::Open, "syn-ack", 64)],
                ))
                .collect();
        ports[1].detected = Some(Detected::TcpWrapped);
        rec.scan = Some(Box::new(PortScan {
            started: 1,
            ended: None,
            times: None,
            ports,
        }));
        let host = host(&plan(), &rec);
        let order: Vec<(Protocol, u16)> =
            host.ports.iter().map(|p| (p.protocol, p.portid)).collect();
        assert_eq!(order, vec![(Protocol::Tcp, 80), (Protocol::Udp, 53)]);
        let svc = host.ports[0].service.as_ref().unwrap();
        assert_eq!((svc.name.as_str(), svc.conf), ("tcpwrapped", 8));
        assert_eq!(host.ports[1].service.as_ref().unwrap().name, "domain");
        assert_eq!(host.ports[1].reason_ttl, 64);
    }

    #[test]
    fn an_unrecognised_service_carries_its_fingerprint() {
        let mut rec = HostRecord::new("198.18.0.10".parse().unwrap(), None);
        rec.status = HostStatus::up("arp-response");
        let mut ports: Vec<PortResult> =
            port_results(Protocol::Tcp, [(80, PortState::Open, "syn-ack", 64)]).collect();
        ports[0].detected = Some(Detected::Unknown);
        ports[0].servicefp = Some("SF-Port80-TCP:V=7.93%r(NULL,1,\"x\");".into());
        rec.scan = Some(Box::new(PortScan {
            started: 1,
            ended: None,
            times: None,
            ports,
        }));
        let host = host(&plan(), &rec);
        let svc = host.ports[0].service.as_ref().unwrap();
        // Named from the table, as Nmap does, with the fingerprint beside it.
        assert_eq!((svc.name.as_str(), svc.conf), ("http", 3));
        assert_eq!(
            svc.servicefp.as_deref(),
            Some("SF-Port80-TCP:V=7.93%r(NULL,1,\"x\");")
        );
    }
}
