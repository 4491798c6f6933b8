//! Host discovery, as the plan asks: none for a list scan (-sL) or -Pn; the connect ping
//! without raw sockets; else ARP (IPv4) and neighbour discovery (IPv6) for on-link hosts,
//! as Nmap does on a LAN, and the raw probes (Nmap's default set, or the -P options) for
//! the rest, a host being up at its first answer. Our own addresses are up without a probe.

use crate::core::scan::{Mode, Share};
use crate::io::connect::Progress;
use crate::io::link_ping::{run_arp_ping, run_nd_ping, LinkPingError};
use crate::io::netif::{self, Interface};
use crate::io::ping::ping_hosts;
use crate::pipeline::{Batch, BoxFuture, HostRecord, ScanError, Stage, StageCx};
use crate::plan::{ScanKind, ScanPlan};
use crate::stages::{cancel_flag, raw_scan};
use portolan_model::{HostState, HostStatus};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Connect pings in flight at once (unprivileged discovery).
const CONNECT_PING_PARALLEL: usize = 256;

pub struct DiscoveryStage;

impl Stage for DiscoveryStage {
    fn wanted(&self, _plan: &ScanPlan) -> bool {
        true
    }

    fn applies(&self, _plan: &ScanPlan, _host: &HostRecord) -> bool {
        // Always first: never a later stage.
        false
    }

    fn run<'a>(
        &'a self,
        cx: &'a mut StageCx<'_>,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ScanError>> {
        Box::pin(async move {
            let plan = cx.plan;
            if plan.scan == ScanKind::List {
                for h in &mut batch.hosts {
                    h.status = HostStatus {
                        state: HostState::Unknown,
                        reason: String::new(),
                        reason_ttl: 0,
                    };
                }
            } else if plan.no_ping || (plan.dry_run && plan.port_scan()) {
                // A dry run of a port scan prints the port probes of every host, as with -Pn.
                for h in &mut batch.hosts {
                    h.status = HostStatus::up("user-set");
                }
            } else {
                discover(cx, &mut batch.hosts).await?;
            }
            if cx.cancel.is_cancelled() {
                // Interrupted before the batch was known: none of it is reported.
                batch.abandoned = true;
            }
            Ok(())
        })
    }
}

fn own_address(ifaces: &[Interface], ip: IpAddr) -> bool {
    ip.is_loopback()
        || ifaces.iter().any(|f| match ip {
            IpAddr::V4(a) => f.ipv4.iter().any(|(addr, _)| *addr == a),
            IpAddr::V6(a) => f.ipv6.iter().any(|(addr, _)| *addr == a),
        })
}

async fn discover(cx: &StageCx<'_>, hosts: &mut [HostRecord]) -> Result<(), ScanError> {
    let plan = cx.plan;
    let d = &plan.discovery;
    let ips: Vec<IpAddr> = hosts.iter().map(|h| h.ip).collect();
    // Hosts a link-layer ping has answered for (up or down): no IP probes for them.
    let mut settled = vec![false; hosts.len()];
    if !d.connect_ports.is_empty() {
        let pings = ping_hosts(
            &ips,
            &d.connect_ports,
            &plan.timing,
            CONNECT_PING_PARALLEL,
            cx.cancel.clone(),
        )
        .await;
        for (h, p) in hosts.iter_mut().zip(pings) {
            h.status = p.status;
            h.ping_rtt = p.rtt;
        }
    }
    let ifaces = if d.slots.is_empty() && !d.arp {
        Vec::new()
    } else {
        cx.backend
            .interfaces()
            .map_err(|e| ScanError::Network(e.to_string()))?
    };
    // Our own addresses answer without a probe, as in Nmap.
    if !d.slots.is_empty() {
        for (i, h) in hosts.iter_mut().enumerate() {
            if own_address(&ifaces, h.ip) {
                settled[i] = true;
                h.status = HostStatus::up("localhost-response");
                h.ping_rtt = None;
            }
        }
    }
    if d.arp && !plan.dry_run {
        // On-link hosts: neighbour discovery (IPv6), then ARP (IPv4).
        let v6 = |ip: &IpAddr| match ip {
            IpAddr::V6(a) if netif::on_link_v6_in(&ifaces, *a).is_some() => Some(*a),
            _ => None,
        };
        link_ping(cx, hosts, &mut settled, v6).await?;
        let v4 = |ip: &IpAddr| match ip {
            IpAddr::V4(a) if netif::on_link_in(&ifaces, *a).is_some() => Some(*a),
            _ => None,
        };
        link_ping(cx, hosts, &mut settled, v4).await?;
    }
    let rest: Vec<(usize, IpAddr)> = ips
        .iter()
        .copied()
        .enumerate()
        .filter(|&(i, _)| !settled[i])
        .collect();
    if d.slots.is_empty() || rest.is_empty() {
        return Ok(());
    }
    // A sweep (-sn) is the scan --shard divides; before a port scan every machine must
    // know every host.
    let share = if plan.scan == ScanKind::PingOnly {
        plan.share
    } else {
        Share::ALL
    };
    let run = raw_scan(
        cx,
        rest,
        d.slots.clone(),
        Mode::Discovery,
        share,
        Arc::new(Progress::default()),
    )
    .await?;
    for result in run.hosts {
        if let (Some(a), Some(h)) = (result.answer, hosts.get_mut(result.tag)) {
            if h.status.state != HostState::Up {
                h.status = HostStatus {
                    state: HostState::Up,
                    reason: a.reason.into(),
                    reason_ttl: a.ttl,
                };
                h.ping_slot = Some(a.slot);
            }
        }
    }
    Ok(())
}

/// Addresses of one family for a link-layer ping.
trait LinkAddr: Copy + Send + Sync + 'static {}
impl LinkAddr for Ipv4Addr {}
impl LinkAddr for Ipv6Addr {}

/// One link-layer ping (ARP or neighbour discovery) of the hosts not yet settled that
/// `pick` chooses (on-link, of its family): each is settled, and up with its MAC when it
/// answered.
async fn link_ping<A: LinkAddr>(
    cx: &StageCx<'_>,
    hosts: &mut [HostRecord],
    settled: &mut [bool],
    pick: impl Fn(&IpAddr) -> Option<A>,
) -> Result<(), ScanError>
where
    LinkTargets: From<Vec<A>>,
{
    let chosen: Vec<(usize, A)> = hosts
        .iter()
        .enumerate()
        .filter(|&(i, _)| !settled[i])
        .filter_map(|(i, h)| pick(&h.ip).map(|a| (i, a)))
        .collect();
    if chosen.is_empty() {
        return Ok(());
    }
    let targets = LinkTargets::from(chosen.iter().map(|&(_, a)| a).collect::<Vec<A>>());
    let reason = match targets {
        LinkTargets::V4(_) => "arp-response",
        LinkTargets::V6(_) => "nd-response",
    };
    let (timing, backend) = (cx.plan.timing.clone(), cx.backend.clone());
    let (flag, watcher) = cancel_flag(cx.cancel);
    let replies = tokio::task::spawn_blocking(move || match targets {
        LinkTargets::V4(t) => run_arp_ping(backend.as_ref(), &t, &timing, &flag),
        LinkTargets::V6(t) => run_nd_ping(backend.as_ref(), &t, &timing, &flag),
    })
    .await;
    watcher.abort();
    let replies = replies
        .map_err(|e| ScanError::Network(format!("link-layer ping thread: {e}")))?
        .map_err(|e: LinkPingError| ScanError::Network(e.to_string()))?;
    for ((i, _), reply) in chosen.into_iter().zip(replies) {
        settled[i] = true;
        if let Some(r) = reply {
            hosts[i].status = HostStatus::up(reason);
            hosts[i].ping_rtt = Some(r.rtt);
            hosts[i].mac = Some(r.mac);
        }
    }
    Ok(())
}

/// The hosts of a link-layer ping, by family.
enum LinkTargets {
    V4(Vec<Ipv4Addr>),
    V6(Vec<Ipv6Addr>),
}

impl From<Vec<Ipv4Addr>> for LinkTargets {
    fn from(v: Vec<Ipv4Addr>) -> Self {
        LinkTargets::V4(v)
    }
}

impl From<Vec<Ipv6Addr>> for LinkTargets {
    fn from(v: Vec<Ipv6Addr>) -> Self {
        LinkTargets::V6(v)
    }
}
