//! The port scan of the hosts found up: the raw-packet scan (-sS, -sU, both) over the
//! backend, or the connect scan (-sT), whose hosts are handed on as each finishes.

use crate::core::scan::{Mode, Slot};
use crate::core::scheduler::HostDone;
use crate::io::connect::{ConnectScan, Progress};
use crate::pipeline::convert::{port_results, times_from_estimator};
use crate::pipeline::{
    now_epoch, Batch, BoxFuture, HostRecord, PortScan, ScanError, Stage, StageCx,
};
use crate::plan::{ScanKind, ScanPlan};
use crate::stages::raw_scan;
use portolan_model::{PortState, Protocol};
use std::net::IpAddr;
use std::sync::Arc;

pub struct PortScanStage;

impl Stage for PortScanStage {
    fn wanted(&self, plan: &ScanPlan) -> bool {
        plan.port_scan()
    }

    fn applies(&self, plan: &ScanPlan, host: &HostRecord) -> bool {
        plan.port_scan() && host.is_up()
    }

    fn run<'a>(
        &'a self,
        cx: &'a mut StageCx<'_>,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ScanError>> {
        Box::pin(async move {
            let up: Vec<usize> = (0..batch.hosts.len())
                .filter(|&i| batch.hosts[i].is_up() && !batch.hosts[i].written)
                .collect();
            if up.is_empty() {
                return Ok(());
            }
            if cx.plan.raw_port_scan() {
                raw(cx, batch, &up).await
            } else {
                connect(cx, batch, &up).await
            }
        })
    }
}

async fn raw(cx: &mut StageCx<'_>, batch: &mut Batch, up: &[usize]) -> Result<(), ScanError> {
    let plan = cx.plan;
    let targets: Vec<(usize, IpAddr)> = up.iter().map(|&i| (i, batch.hosts[i].ip)).collect();
    let counters = Arc::new(Progress::default());
    let label = match (plan.scan, plan.udp) {
        (ScanKind::Syn, false) => "SYN Stealth Scan",
        (ScanKind::Syn, true) => "SYN Stealth and UDP Scan",
        _ => "UDP Scan",
    };
    if !plan.dry_run {
        cx.observer.phase_started(label, counters.clone());
    }
    let started = now_epoch();
    let result = raw_scan(
        cx,
        targets,
        plan.port_slots(),
        Mode::Ports,
        plan.share,
        counters,
    )
    .await;
    if !plan.dry_run {
        cx.observer.phase_ended().await;
    }
    let run = result?;
    cx.add_raw_stats(&run.stats, run.receive_drops);
    if run.interrupted || plan.dry_run {
        // Nothing of an interrupted raw scan is reported (nor anything in a dry run).
        for &i in up {
            batch.hosts[i].written = true;
        }
        return Ok(());
    }
    if plan.mac_vendors.is_some() {
        // On-link hosts not ARP-pinged (-Pn, IP probes): the kernel resolved them to send
        // our probes, as Nmap's own ARP resolution does.
        let cache = cx.backend.neighbours();
        for &i in up {
            let h = &mut batch.hosts[i];
            if let (None, IpAddr::V4(a)) = (h.mac, h.ip) {
                h.mac = cache.iter().find(|(c, _)| *c == a).map(|&(_, m)| m);
            }
        }
    }
    let times = times_from_estimator(&run.rtt);
    for result in run.hosts {
        let Some(h) = batch.hosts.get_mut(result.tag) else {
            continue;
        };
        if result.slots.is_empty() {
            // Another shard's host.
            h.written = true;
            continue;
        }
        if run.stats.timed_out {
            cx.observer
                .note(&format!("Skipping host {} due to host timeout", h.ip));
        }
        let tcp = result.slots.iter().filter_map(|r| match r.slot {
            Slot::Syn(p) => Some((p, r.state, r.reason, r.ttl)),
            _ => None,
        });
        let udp = result.slots.iter().filter_map(|r| match r.slot {
            Slot::Udp(p) => Some((p, r.state, r.reason, r.ttl)),
            _ => None,
        });
        h.scan = Some(Box::new(PortScan {
            ports: port_results(Protocol::Tcp, tcp)
                .chain(port_results(Protocol::Udp, udp))
                .collect(),
            times,
            started,
            ended: None,
        }));
    }
    Ok(())
}

async fn connect(cx: &mut StageCx<'_>, batch: &mut Batch, up: &[usize]) -> Result<(), ScanError> {
    let plan = cx.plan;
    let counters = Arc::new(Progress::default());
    cx.observer.phase_started("Connect Scan", counters.clone());
    let scan = ConnectScan {
        timing: plan.timing.clone(),
        ports: plan.port_order(),
        host_group: plan.host_group,
        shards: ConnectScan::default_shards(),
    };
    let started = now_epoch();
    let targets: Vec<(usize, IpAddr)> = up.iter().map(|&i| (i, batch.hosts[i].ip)).collect();
    let cancel = cx.cancel.clone();
    let hosts = &mut batch.hosts;
    let summary = {
        let cx = &mut *cx;
        scan.run(targets, counters, cancel, |done: HostDone| {
            let Some(h) = hosts.get_mut(done.tag) else {
                return;
            };
            if done.timed_out {
                cx.observer
                    .note(&format!("Skipping host {} due to host timeout", done.ip));
            }
            let ports = done
                .ports
                .iter()
                .map(|&(p, state, reason): &(u16, PortState, &'static str)| (p, state, reason, 0));
            h.scan = Some(Box::new(PortScan {
                ports: port_results(Protocol::Tcp, ports).collect(),
                times: times_from_estimator(&done.rtt),
                started,
                ended: Some(now_epoch()),
            }));
            cx.host_finished(h);
        })
        .await
    };
    cx.observer.phase_ended().await;
    cx.connect_stats = Some(summary.stats);
    // Hosts an interrupt left unfinished are not reported.
    for &i in up {
        let h = &mut batch.hosts[i];
        if h.scan.is_none() {
            h.written = true;
        }
    }
    Ok(())
}
