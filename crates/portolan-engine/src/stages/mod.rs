//! The stages of a scan, each one module behind [`crate::pipeline::Stage`], run in
//! [`crate::pipeline::STAGES`] order: discovery, reverse DNS, port scan, version detection, OS
//! detection, traceroute.

pub mod discovery;
pub mod os;
pub mod portscan;
pub mod rdns;
pub mod traceroute;
pub mod version;

use crate::core::scan::{Mode, Share, Slot};
use crate::io::connect::Progress;
use crate::io::driver::{run_raw, RawJob, RawRun};
use crate::pipeline::{ScanError, StageCx};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A flag for blocking loops that follows the cancellation token (Ctrl-C), and the task
/// that sets it; abort the task when the loop is done.
pub(crate) fn cancel_flag(
    cancel: &CancellationToken,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let flag = Arc::new(AtomicBool::new(cancel.is_cancelled()));
    let (f, c) = (flag.clone(), cancel.clone());
    let watcher = tokio::spawn(async move {
        c.cancelled().await;
        f.store(true, Ordering::Relaxed);
    });
    (flag, watcher)
}

/// A raw-packet scan of `hosts` × `slots` over the scan's backend, on a blocking thread,
/// cancellation aware.
pub(crate) async fn raw_scan(
    cx: &StageCx<'_>,
    hosts: Vec<(usize, IpAddr)>,
    slots: Vec<Slot>,
    mode: Mode,
    share: Share,
    progress: Arc<Progress>,
) -> Result<RawRun, ScanError> {
    let plan = cx.plan;
    let (timing, seed, payloads) = (plan.timing.clone(), plan.seed, plan.payloads.clone());
    let backend = cx.backend.clone();
    let (flag, watcher) = cancel_flag(cx.cancel);
    let result = tokio::task::spawn_blocking(move || {
        let payload = |port: u16| {
            payloads
                .for_port(port)
                .first()
                .map_or(&[][..], Vec::as_slice)
        };
        let job = RawJob {
            hosts: &hosts,
            slots: &slots,
            mode,
            timing: &timing,
            seed,
            share,
            payload: &payload,
        };
        run_raw(&job, backend.as_ref(), &progress, &flag)
    })
    .await;
    watcher.abort();
    match result {
        Ok(Ok(run)) => Ok(run),
        Ok(Err(e)) => Err(ScanError::Network(e.to_string())),
        Err(e) => Err(ScanError::Network(format!("raw scan thread: {e}"))),
    }
}
