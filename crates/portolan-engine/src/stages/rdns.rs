//! Reverse DNS: names for the hosts found up (Nmap's default), for every host with -R, and
//! for every host of a list scan; none with -n. A lookup that takes longer than
//! [`RDNS_DEADLINE`] leaves its host without a name.

use crate::io::dns::reverse_lookup_many;
use crate::pipeline::{Batch, BoxFuture, HostRecord, ScanError, Stage, StageCx};
use crate::plan::{Dns, ScanKind, ScanPlan, RDNS_DEADLINE};
use std::net::IpAddr;

pub struct ReverseDnsStage;

/// Whether `host` gets a reverse lookup.
fn wants_name(plan: &ScanPlan, host: &HostRecord) -> bool {
    match plan.dns {
        Dns::Never => false,
        Dns::Always => true,
        Dns::Default => plan.scan == ScanKind::List || host.is_up(),
    }
}

impl Stage for ReverseDnsStage {
    fn wanted(&self, plan: &ScanPlan) -> bool {
        plan.dns != Dns::Never
    }

    fn applies(&self, _plan: &ScanPlan, host: &HostRecord) -> bool {
        // Hosts are reported in target order once the batch's names are known, so every
        // host waits for this stage.
        !host.written
    }

    fn run<'a>(
        &'a self,
        cx: &'a mut StageCx<'_>,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ScanError>> {
        Box::pin(async move {
            let want: Vec<usize> = (0..batch.hosts.len())
                .filter(|&i| wants_name(cx.plan, &batch.hosts[i]))
                .collect();
            let ips: Vec<IpAddr> = want.iter().map(|&i| batch.hosts[i].ip).collect();
            // An interrupt does not wait for slow lookups: the hosts go without names.
            let names = tokio::select! {
                names = reverse_lookup_many(&ips, RDNS_DEADLINE) => names,
                _ = cx.cancel.cancelled() => Vec::new(),
            };
            for (i, name) in want.into_iter().zip(names) {
                batch.hosts[i].ptr = name;
            }
            Ok(())
        })
    }
}
