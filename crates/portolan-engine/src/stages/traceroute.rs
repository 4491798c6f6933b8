//! --traceroute (and -A): the route to every host found up, as Nmap traces it. Hosts on our
//! own link are one hop away without a probe; the others are traced together by
//! [`crate::core::trace`] with the probe that got the best answer from them during the
//! scan (Nmap's ping-probe choice), then their hops are named by reverse DNS unless -n.
//! IPv6 hosts beyond our link are not traced yet.

use crate::core::probe::Slot;
use crate::core::trace::{TraceConfig, TraceProbe, TraceTarget, Tracer, SOURCE_PORTS};
use crate::core::Poll;
use crate::io::backend::{Backend, Described};
use crate::io::dns::reverse_lookup_many;
use crate::io::drive::{drive, Core};
use crate::io::netif::{self, Interface};
use crate::io::raw::RawError;
use crate::pipeline::{Batch, BoxFuture, HostRecord, ScanError, Stage, StageCx};
use crate::plan::{Dns, ScanKind, ScanPlan, RDNS_DEADLINE};
use crate::stages::cancel_flag;
use portolan_model::{PortState, Protocol};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

pub struct TracerouteStage;

/// A host's route, as the stage found it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTrace {
    /// The probe used; `None` for a host on our link (nothing was sent).
    pub probe: Option<TraceProbe>,
    /// By ascending TTL, timed-out hops included.
    pub hops: Vec<HopRecord>,
    /// The TTL at which the host itself answered (Nmap then reports it as the host's
    /// distance, over OS detection's); `None` on our link or without an answer.
    pub distance: Option<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HopRecord {
    pub ttl: u8,
    /// `None`: the hop timed out.
    pub addr: Option<IpAddr>,
    pub rtt: Option<Duration>,
    /// Its reverse DNS name.
    pub name: Option<String>,
    /// The target whose trace found it (another's: the hop is shared).
    pub tag: IpAddr,
}

impl Stage for TracerouteStage {
    fn wanted(&self, plan: &ScanPlan) -> bool {
        plan.traceroute && plan.scan != ScanKind::List
    }

    fn applies(&self, plan: &ScanPlan, host: &HostRecord) -> bool {
        plan.traceroute && host.is_up()
    }

    fn run<'a>(
        &'a self,
        cx: &'a mut StageCx<'_>,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ScanError>> {
        Box::pin(async move {
            if cx.cancel.is_cancelled() {
                return Ok(());
            }
            let plan = cx.plan;
            let ifaces = cx
                .backend
                .interfaces()
                .map_err(|e| ScanError::Network(e.to_string()))?;
            let mut remote: Vec<(usize, TraceTarget)> = Vec::new();
            for (i, h) in batch.hosts.iter_mut().enumerate() {
                // A dry run's port scan marks its hosts written (nothing is reported), yet
                // their trace probes are printed.
                if !h.is_up() || (h.written && !plan.dry_run) {
                    continue;
                }
                let ip = match h.ip {
                    IpAddr::V4(ip) => ip,
                    // IPv6: on our link one hop as for IPv4; no probes beyond it (yet).
                    IpAddr::V6(ip) => {
                        if netif::on_link_v6_in(&ifaces, ip).is_some() {
                            h.trace = Some(Box::new(direct(h)));
                        }
                        continue;
                    }
                };
                if ip.is_loopback() || own_address(&ifaces, ip) {
                    continue;
                }
                if netif::on_link_in(&ifaces, ip).is_some() {
                    h.trace = Some(Box::new(direct(h)));
                } else {
                    remote.push((i, target_for(plan, h, ip)));
                }
            }
            if remote.is_empty() {
                return Ok(());
            }
            let config = TraceConfig {
                max_resends: plan.timing.max_retries.min(crate::core::trace::MAX_RESENDS),
                scan_delay: plan.timing.scan_delay,
                seed: plan.seed,
                ..TraceConfig::default()
            };
            let targets: Vec<TraceTarget> = remote.iter().map(|(_, t)| t.clone()).collect();
            let backend = cx.backend.clone();
            let (flag, watcher) = cancel_flag(cx.cancel);
            let traced = tokio::task::spawn_blocking(move || {
                trace_all(backend.as_ref(), config, targets, &flag)
            })
            .await;
            watcher.abort();
            let results = traced
                .map_err(|e| ScanError::Network(format!("traceroute thread: {e}")))?
                .map_err(|e| ScanError::Network(e.to_string()))?;
            if plan.dry_run {
                return Ok(());
            }
            let mut traces: Vec<(usize, HostTrace)> = remote
                .iter()
                .zip(results)
                .map(|((i, t), r)| {
                    let hops = r
                        .hops
                        .iter()
                        .map(|h| HopRecord {
                            ttl: h.ttl,
                            addr: h.addr.map(IpAddr::V4),
                            rtt: h.rtt,
                            name: None,
                            tag: IpAddr::V4(h.tag),
                        })
                        .collect();
                    (
                        *i,
                        HostTrace {
                            probe: Some(t.probe),
                            hops,
                            distance: r.distance,
                        },
                    )
                })
                .collect();
            if plan.dns != Dns::Never {
                name_hops(cx, &mut traces).await;
            }
            for (i, t) in traces {
                if let Some(h) = batch.hosts.get_mut(i) {
                    h.trace = Some(Box::new(t));
                }
            }
            Ok(())
        })
    }
}

fn own_address(ifaces: &[Interface], ip: Ipv4Addr) -> bool {
    ifaces.iter().any(|f| f.ipv4.iter().any(|(a, _)| *a == ip))
}

/// A host on our link: one hop, itself, at the round trip the scan measured (Nmap sends
/// nothing for it).
fn direct(h: &HostRecord) -> HostTrace {
    let srtt = h
        .scan
        .as_ref()
        .and_then(|s| s.times)
        .and_then(|t| u64::try_from(t.srtt).ok())
        .map(Duration::from_micros)
        .or(h.ping_rtt);
    HostTrace {
        probe: None,
        hops: vec![HopRecord {
            ttl: 1,
            addr: Some(h.ip),
            rtt: srtt,
            name: h.ptr.clone(),
            tag: h.ip,
        }],
        distance: None,
    }
}

/// Nmap's preference among probes that got an answer (pingprobe_score): a RST from a
/// closed port first, a SYN/ACK from an open one (SYN floods) after an ICMP echo reply.
fn score(probe: TraceProbe, state: PortState, udp_payloads: usize) -> u32 {
    match probe {
        TraceProbe::TcpSyn { .. } | TraceProbe::TcpAck { .. } if state == PortState::Filtered => 20,
        TraceProbe::TcpSyn { .. } if state == PortState::Open => 30,
        TraceProbe::TcpSyn { port } | TraceProbe::TcpAck { port } => {
            if [25, 113, 135, 139, 445].contains(&port) {
                50
            } else {
                60
            }
        }
        TraceProbe::IcmpEcho => 50,
        TraceProbe::Udp { .. } => match udp_payloads {
            0 | 1 => 20,
            n => 20u32.saturating_sub(n as u32),
        },
    }
}

/// The probe a host is traced with: the best-scoring one it answered during discovery or
/// the port scan (the first of equals), else an ICMP echo, as Nmap.
fn choose_probe(plan: &ScanPlan, h: &HostRecord) -> TraceProbe {
    let payloads = |port: u16| plan.payloads.for_port(port).len();
    let mut best: Option<(u32, TraceProbe)> = None;
    let mut consider = |probe: TraceProbe, state: PortState| {
        let udp = match probe {
            TraceProbe::Udp { port } => payloads(port),
            _ => 0,
        };
        let s = score(probe, state, udp);
        if best.is_none_or(|(b, _)| s > b) {
            best = Some((s, probe));
        }
    };
    // The discovery probe that found it up (an ICMP timestamp or mask reply: traced with
    // echo requests, our only ICMP trace probe).
    if let Some(slot) = h.ping_slot {
        let open = h.status.reason == "syn-ack";
        let (probe, state) = match slot {
            Slot::Syn(port) if open => (TraceProbe::TcpSyn { port }, PortState::Open),
            Slot::Syn(port) => (TraceProbe::TcpSyn { port }, PortState::Closed),
            Slot::Ack(port) => (TraceProbe::TcpAck { port }, PortState::Closed),
            Slot::Udp(port) => (TraceProbe::Udp { port }, PortState::Open),
            Slot::Echo | Slot::Timestamp | Slot::Netmask => (TraceProbe::IcmpEcho, PortState::Open),
        };
        consider(probe, state);
    }
    // The port scan's answers (a connect scan's count for less than any ping).
    let raw = matches!(plan.scan, ScanKind::Syn | ScanKind::Udp);
    for r in h.scan.iter().flat_map(|s| s.ports.iter()) {
        if r.reason == "no-response" || r.reason.is_empty() {
            continue;
        }
        match r.proto {
            Protocol::Tcp if raw && plan.scan == ScanKind::Syn => {
                consider(TraceProbe::TcpSyn { port: r.port }, r.state)
            }
            Protocol::Udp if raw && r.state != PortState::Filtered => {
                consider(TraceProbe::Udp { port: r.port }, r.state)
            }
            _ => {}
        }
    }
    best.map_or(TraceProbe::IcmpEcho, |(_, p)| p)
}

fn target_for(plan: &ScanPlan, h: &HostRecord, ip: Ipv4Addr) -> TraceTarget {
    let probe = choose_probe(plan, h);
    let payload = match probe {
        TraceProbe::Udp { port } => plan
            .payloads
            .for_port(port)
            .first()
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    TraceTarget {
        ip,
        probe,
        payload,
        // OS detection's distance, when it ran: the trace starts there, as Nmap's.
        distance: h
            .os
            .as_ref()
            .and_then(|o| o.distance)
            .and_then(|d| u8::try_from(d).ok()),
    }
}

impl Core for Tracer {
    type Probe = Described;
    fn poll(&mut self, now: Instant) -> Poll<Described> {
        Tracer::poll(self, now)
    }
    fn on_packet(&mut self, now: Instant, packet: &[u8]) {
        Tracer::on_packet(self, now, packet)
    }
}

/// Traces `targets` over the backend, one group per source address; returns their traces
/// in the order given.
fn trace_all(
    backend: &dyn Backend,
    config: TraceConfig,
    targets: Vec<TraceTarget>,
    cancel: &AtomicBool,
) -> Result<Vec<crate::core::trace::TraceResult>, RawError> {
    let mut groups: Vec<(Ipv4Addr, Vec<usize>)> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let src = match backend.source_for(IpAddr::V4(t.ip)) {
            Ok(IpAddr::V4(s)) => s,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        match groups.iter_mut().find(|g| g.0 == src) {
            Some(g) => g.1.push(i),
            None => groups.push((src, vec![i])),
        }
    }
    let mut out = vec![
        crate::core::trace::TraceResult {
            hops: Vec::new(),
            distance: None,
        };
        targets.len()
    ];
    for (src, members) in groups {
        let group: Vec<TraceTarget> = members.iter().map(|&i| targets[i].clone()).collect();
        let mut tracer = Tracer::new(config, group);
        let mut io = backend.open_ip_described(IpAddr::V4(src), SOURCE_PORTS)?;
        let mut encode = |t: &Tracer, d: &Described, buf: &mut Vec<u8>, build: bool| {
            t.encode(d, src, buf, build)
        };
        drive(&mut tracer, &mut encode, io.as_mut(), cancel, &mut |_| {})?;
        for (&i, r) in members.iter().zip(tracer.results()) {
            out[i] = r;
        }
    }
    Ok(out)
}

/// Names every hop that answered by reverse DNS (each address asked once).
async fn name_hops(cx: &StageCx<'_>, traces: &mut [(usize, HostTrace)]) {
    let addrs: Vec<IpAddr> = traces
        .iter()
        .flat_map(|(_, t)| t.hops.iter().filter_map(|h| h.addr))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let names = tokio::select! {
        names = reverse_lookup_many(&addrs, RDNS_DEADLINE) => names,
        _ = cx.cancel.cancelled() => return,
    };
    for (_, t) in traces.iter_mut() {
        for hop in t.hops.iter_mut() {
            if let Some(k) = hop.addr.and_then(|a| addrs.binary_search(&a).ok()) {
                hop.name = names.get(k).cloned().flatten();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::convert::tests::plan;
    use crate::pipeline::{PortResult, PortScan};
    use portolan_model::HostStatus;

    fn host(
        reason: &str,
        slot: Option<Slot>,
        ports: &[(u16, PortState, &'static str)],
    ) -> HostRecord {
        let mut h = HostRecord::new("198.18.2.10".parse().unwrap(), None);
        h.status = HostStatus::up(reason);
        h.ping_slot = slot;
        h.scan = Some(Box::new(PortScan {
            ports: ports
                .iter()
                .map(|&(port, state, reason)| PortResult {
                    proto: Protocol::Tcp,
                    port,
                    state,
                    reason,
                    ttl: 61,
                    detected: None,
                    servicefp: None,
                })
                .collect(),
            times: None,
            started: 0,
            ended: None,
        }));
        h
    }

    #[test]
    fn the_probe_is_the_one_nmap_would_pick() {
        let mut syn = plan();
        syn.scan = ScanKind::Syn;
        let echo = Some(Slot::Echo);
        let open = (80, PortState::Open, "syn-ack");
        let closed = (22, PortState::Closed, "reset");
        let spoofed = (25, PortState::Closed, "reset");
        let silent = (23, PortState::Filtered, "no-response");
        // A closed port's RST beats an echo reply, which beats a SYN/ACK.
        let h = host("echo-reply", echo, &[open, closed]);
        assert_eq!(choose_probe(&syn, &h), TraceProbe::TcpSyn { port: 22 });
        let h = host("echo-reply", echo, &[open, silent]);
        assert_eq!(choose_probe(&syn, &h), TraceProbe::IcmpEcho);
        // Ports often spoofed rank with echo; the first of equals stays.
        let h = host("echo-reply", echo, &[spoofed]);
        assert_eq!(choose_probe(&syn, &h), TraceProbe::IcmpEcho);
        let h = host("reset", Some(Slot::Ack(80)), &[closed]);
        assert_eq!(choose_probe(&syn, &h), TraceProbe::TcpAck { port: 80 });
        let h = host("syn-ack", Some(Slot::Syn(443)), &[]);
        assert_eq!(choose_probe(&syn, &h), TraceProbe::TcpSyn { port: 443 });
        // Nothing answered (-Pn, no port scan): an echo request.
        let h = host("user-set", None, &[silent]);
        assert_eq!(choose_probe(&syn, &h), TraceProbe::IcmpEcho);
        // A connect scan's ports are not raw probes.
        let connect = plan();
        let h = host("user-set", None, &[closed]);
        assert_eq!(choose_probe(&connect, &h), TraceProbe::IcmpEcho);
    }

    #[test]
    fn an_on_link_host_is_one_hop_at_its_round_trip() {
        let mut h = host("arp-response", None, &[]);
        h.ptr = Some("svc.lab.test".into());
        h.ping_rtt = Some(Duration::from_micros(250));
        let t = direct(&h);
        assert_eq!(t.probe, None);
        assert_eq!(
            t.hops,
            [HopRecord {
                ttl: 1,
                addr: Some(h.ip),
                rtt: Some(Duration::from_micros(250)),
                name: Some("svc.lab.test".into()),
                tag: h.ip,
            }]
        );
    }
}
