//! Turning what the engine learnt about a host into the result model that every output
//! and the store read: ports with their service names, and timing.

use crate::core::scheduler::HostDone;
use crate::data::services::ServiceTable;
use crate::plan::timing::RttEstimator;
use portolan_model::{Host, Port, PortState, Protocol, Service, Times};
use std::time::Duration;

/// Fills `host` (already carrying its address, names and status) with a finished TCP scan:
/// every port in ascending order, named from `services` as Nmap does without -sV
/// (`unknown` when the table has no name), and the host's timing.
pub fn fill_tcp_ports(host: &mut Host, done: &HostDone, services: &ServiceTable) {
    let ports: Vec<(u16, PortState, &str, u8)> = done
        .ports
        .iter()
        .map(|&(p, state, reason)| (p, state, reason, 0))
        .collect();
    fill_ports(host, Protocol::Tcp, &ports, services, &done.rtt);
}

/// The same from any scan: (port, state, reason, reply TTL) per port.
pub fn fill_ports(
    host: &mut Host,
    proto: Protocol,
    results: &[(u16, PortState, &str, u8)],
    services: &ServiceTable,
    rtt: &RttEstimator,
) {
    let mut ports: Vec<Port> = results
        .iter()
        .map(|&(p, state, reason, ttl)| {
            let mut port = Port::new(proto, p, state, reason);
            port.reason_ttl = ttl;
            let name = services.lookup(p, proto).unwrap_or("unknown");
            port.service = Some(Service::from_table(name));
            port
        })
        .collect();
    ports.sort_by_key(|p| p.portid);
    host.ports = ports;
    if let Some(t) = times_from_estimator(rtt) {
        host.times = Some(t);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::timing::Template;
    use portolan_model::HostStatus;
    use std::time::Instant;

    #[test]
    fn ports_sorted_named_and_timed() {
        let mut rtt = RttEstimator::new(&Template::Aggressive.timing());
        rtt.sample(Duration::from_millis(2));
        let now = Instant::now();
        let done = HostDone {
            ip: "198.18.0.10".parse().unwrap(),
            tag: 0,
            ports: vec![
                (443, PortState::Open, "syn-ack"),
                (22, PortState::Closed, "conn-refused"),
                (47_999, PortState::Filtered, "no-response"),
            ],
            rtt,
            started: now,
            finished: now,
            timed_out: false,
            replies: 2,
        };
        let mut host = Host::new(done.ip, HostStatus::up("user-set"));
        fill_tcp_ports(&mut host, &done, &ServiceTable::builtin());
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
    fn ping_times_have_nmaps_floors() {
        let t = times_from_rtt(Duration::from_micros(100));
        assert_eq!((t.srtt, t.rttvar, t.to), (100, 5000, 100_000));
    }
}
