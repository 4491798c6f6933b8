//! Running a plan: [`Scanner::run`] takes hosts in batches through the stages in
//! [`STAGES`] order, and writes each host to the sink as soon as no later stage has work
//! for it (so a connect scan's hosts stream out as they finish). Engine results become
//! model hosts in one place, [`convert`].
//!
//! A stage is one module behind [`Stage`]; adding one (scripts, OS detection, traceroute)
//! is that module plus one line in [`STAGES`].

pub mod convert;

use crate::core::scan::{ScanStats, Slot};
use crate::core::scheduler::Stats as ConnectStats;
use crate::io::backend::Backend;
use crate::io::connect::Progress;
use crate::plan::ScanPlan;
use crate::stages::os::OsStage;
use crate::stages::traceroute::{HostTrace, TracerouteStage};
use crate::stages::version::Detected;
use crate::stages::version::VersionStage;
use crate::stages::{discovery::DiscoveryStage, portscan::PortScanStage, rdns::ReverseDnsStage};
use portolan_model::{
    Completeness, HostState, HostStatus, OutputError, PortState, Protocol, RunExit, RunStats,
    ScanRun, Sink,
};
use portolan_wire::ethernet::MacAddr;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// A boxed future, for the object-safe async methods of [`Stage`] and [`Observer`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Hosts handled per batch of discovery and port scanning: memory is bounded by the batch,
/// not by the targets. A batch holds at most about this many probes (hosts × ports): a
/// -p- scan goes 16 hosts at a time, the default 1000 ports 1048 at a time...
const BATCH_PROBES: usize = 1 << 20;
/// ... and at least one host, at most this many (a sweep's batch: discovery state per host).
const MIN_BATCH: usize = 1;
const MAX_BATCH: usize = 1 << 16;

/// Why a scan could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// An output could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The network could not be used (raw sockets, interfaces).
    #[error("{0}")]
    Network(String),
}

/// Hears what a scan wants a person to know while it runs: progress of its long phases
/// and notes (host timeouts, completeness under -d, warnings).
pub trait Observer: Send + Sync {
    /// A timed phase (a port scan) starts; `counters` move while it runs.
    fn phase_started(&self, _label: &'static str, _counters: Arc<Progress>) {}
    /// The phase ended: the observer finishes its display before hosts are written.
    fn phase_ended(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// A line for the user (stderr in the CLI).
    fn note(&self, _line: &str) {}
}

/// An observer that hears nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// How the run went.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub interrupted: bool,
    pub hosts_up: u32,
    pub hosts_total: u32,
    pub completeness: Option<Completeness>,
    pub elapsed: Duration,
}

/// One port's result, as the port scan found it and later stages refined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortResult {
    pub proto: Protocol,
    pub port: u16,
    pub state: PortState,
    pub reason: &'static str,
    /// TTL of the answer; 0 without one.
    pub ttl: u8,
    /// What -sV found (None: not probed).
    pub detected: Option<Detected>,
    /// Nmap's service fingerprint, when -sV named nothing for sure (see `stages::version`).
    pub servicefp: Option<String>,
}

/// What the port scan (and later stages) found on one host.
#[derive(Debug, Clone)]
pub struct PortScan {
    /// Port results (the conversion sorts them: TCP then UDP, ascending).
    pub ports: Vec<PortResult>,
    /// Timing from the port scan (srtt, rttvar, timeout in µs).
    pub times: Option<portolan_model::Times>,
    /// When its port scan started and ended, Unix epoch seconds (no end: when written).
    pub started: i64,
    pub ended: Option<i64>,
}

/// Everything the stages learn about one host of a batch.
#[derive(Debug, Clone)]
pub struct HostRecord {
    pub ip: IpAddr,
    /// The name the user gave for it, if any.
    pub user_name: Option<String>,
    pub status: HostStatus,
    /// The round trip of the ping that found it up.
    pub ping_rtt: Option<Duration>,
    /// The raw discovery probe it answered, if one found it up.
    pub ping_slot: Option<Slot>,
    pub mac: Option<MacAddr>,
    /// Its reverse DNS name.
    pub ptr: Option<String>,
    /// What its port scan found; `None` until (and unless) it is port scanned. Boxed: a
    /// discovery sweep holds a batch of 65,536 records, most never port scanned.
    pub scan: Option<Box<PortScan>>,
    /// What OS detection found (-O).
    pub os: Option<Box<crate::stages::os::OsFound>>,
    /// Its route (--traceroute).
    pub trace: Option<Box<HostTrace>>,
    /// Written to the sink already.
    pub written: bool,
}

impl HostRecord {
    pub fn new(ip: IpAddr, user_name: Option<String>) -> Self {
        HostRecord {
            ip,
            user_name,
            status: HostStatus::down("no-response"),
            ping_rtt: None,
            ping_slot: None,
            mac: None,
            ptr: None,
            scan: None,
            os: None,
            trace: None,
            written: false,
        }
    }

    pub fn is_up(&self) -> bool {
        self.status.state == HostState::Up
    }
}

/// Hosts taken through the stages together.
pub struct Batch {
    pub hosts: Vec<HostRecord>,
    /// Interrupted before its hosts were known (during discovery): nothing of it is
    /// reported and no later stage runs.
    pub abandoned: bool,
}

/// What every stage may use while it runs.
pub struct StageCx<'a> {
    pub plan: &'a ScanPlan,
    pub backend: Arc<dyn Backend>,
    pub observer: &'a dyn Observer,
    pub cancel: &'a CancellationToken,
    /// Where finished hosts go; see [`StageCx::host_finished`].
    writer: Writer<'a>,
    /// The stages after the one running.
    later: &'a [&'a dyn Stage],
    /// Counters for the completeness report.
    pub raw_stats: Option<(ScanStats, u64)>,
    pub connect_stats: Option<ConnectStats>,
    /// Hosts found up that a stage dropped without writing them (an interrupt left them
    /// with nothing to show, or they turned out to be a broadcast address): the summary's
    /// up count leaves them out, so it agrees with what was written.
    pub dropped_up: u32,
}

struct Writer<'a> {
    sink: &'a mut dyn Sink,
    run: &'a ScanRun,
    error: Option<OutputError>,
}

impl StageCx<'_> {
    /// Called by a stage as each host is done with it: the host is written now if no
    /// later stage has work for it (a connect scan's hosts stream out as they finish).
    pub fn host_finished(&mut self, host: &mut HostRecord) {
        let plan = self.plan;
        if host.written || self.later.iter().any(|s| s.applies(plan, host)) {
            return;
        }
        host.written = true;
        if !convert::reported(plan, host) || self.writer.error.is_some() {
            return;
        }
        let model = convert::host(plan, host);
        if let Err(e) = self.writer.sink.host(self.writer.run, &model) {
            self.writer.error = Some(e);
        }
    }

    /// Marks `host` (found up) as never to be written, and keeps it out of the up count.
    pub fn drop_host(&mut self, host: &mut HostRecord) {
        if !host.written && host.is_up() {
            self.dropped_up += 1;
        }
        host.written = true;
    }

    /// With -v, tells the observer of each open port of `host`, as Nmap's "Discovered
    /// open port 22/tcp on 198.18.0.10" lines while a scan runs.
    pub fn discovered(&self, host: &HostRecord) {
        if self.plan.out_opts.verbose == 0 || self.plan.dry_run {
            return;
        }
        let ports = host.scan.as_ref().map_or(&[][..], |s| &s.ports[..]);
        for p in ports.iter().filter(|p| p.state == PortState::Open) {
            self.observer.note(&format!(
                "Discovered open port {}/{} on {}",
                p.port,
                p.proto.as_str(),
                host.ip
            ));
        }
    }

    /// Adds a raw scan's counters (and its receive drops) to the completeness report.
    pub fn add_raw_stats(&mut self, s: &ScanStats, drops: u64) {
        let (acc, d) = self.raw_stats.get_or_insert((ScanStats::default(), 0));
        acc.add(s);
        *d += drops;
    }
}

/// One stage of a scan.
pub trait Stage: Send + Sync {
    /// Whether the plan asks for this stage at all.
    fn wanted(&self, plan: &ScanPlan) -> bool;
    /// Whether it has work for `host` (given what the stages before it found). A host is
    /// written once no later stage applies to it.
    fn applies(&self, plan: &ScanPlan, host: &HostRecord) -> bool;
    /// Runs on the batch; calls [`StageCx::host_finished`] for hosts as they are done, if
    /// it can tell earlier than its end.
    fn run<'a>(
        &'a self,
        cx: &'a mut StageCx<'_>,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ScanError>>;
}

/// The stages, in order.
pub static STAGES: &[&dyn Stage] = &[
    &DiscoveryStage,
    &ReverseDnsStage,
    &PortScanStage,
    &VersionStage,
    &OsStage,
    &TracerouteStage,
];

/// Runs scans over a backend, telling an observer how they go.
pub struct Scanner<'a> {
    pub backend: Arc<dyn Backend>,
    pub observer: &'a dyn Observer,
}

fn epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Now, Unix epoch seconds.
pub fn now_epoch() -> i64 {
    epoch(SystemTime::now())
}

impl Scanner<'_> {
    /// Runs `plan` (its targets are taken), writing the run's header, every host as it is
    /// finished, and the run's end to `sink`. Stops early when `cancel` fires; the sink is
    /// still ended validly then (exit "error"). A dry run writes nothing to the sink.
    pub async fn run(
        &self,
        plan: &mut ScanPlan,
        sink: &mut dyn Sink,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, ScanError> {
        let started = Instant::now();
        let mut run = ScanRun::new(plan.args_line.clone(), plan.start);
        run.verbose = plan.out_opts.verbose;
        run.debugging = plan.out_opts.debugging;
        run.scaninfo = plan.scaninfo();
        if !plan.dry_run {
            sink.begin(&run)?;
        }
        let batch_size = (BATCH_PROBES / plan.probes_per_host()).clamp(MIN_BATCH, MAX_BATCH);
        let mut targets = plan.take_targets();
        let plan: &ScanPlan = plan;
        let (mut up, mut total) = (0u32, 0u32);
        // A resumed scan's finished hosts come first, as they were written before.
        if !plan.dry_run {
            for h in &plan.carried {
                sink.host(&run, h)?;
                total += 1;
                up += u32::from(h.is_up());
            }
        }
        let mut completeness: Option<Completeness> = None;
        // A dry run reports nothing: its hosts go to a sink that drops them.
        let mut nothing = portolan_model::Tee::default();
        let host_sink: &mut dyn Sink = if plan.dry_run { &mut nothing } else { sink };
        let stages: Vec<&dyn Stage> = STAGES.iter().copied().filter(|s| s.wanted(plan)).collect();
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let hosts: Vec<HostRecord> = targets
                .by_ref()
                .take(batch_size)
                .map(|(ip, name)| HostRecord::new(ip, name))
                .collect();
            if hosts.is_empty() {
                break;
            }
            total += hosts.len() as u32;
            let mut batch = Batch {
                hosts,
                abandoned: false,
            };
            let mut cx = StageCx {
                plan,
                backend: self.backend.clone(),
                observer: self.observer,
                cancel,
                writer: Writer {
                    sink: &mut *host_sink,
                    run: &run,
                    error: None,
                },
                later: &[],
                raw_stats: None,
                connect_stats: None,
                dropped_up: 0,
            };
            // Every stage runs even after an interrupt (each stops at once, and what the
            // stages before it finished is still written), unless the batch was abandoned.
            for (k, stage) in stages.iter().enumerate() {
                cx.later = &stages[k + 1..];
                stage.run(&mut cx, &mut batch).await?;
                if batch.abandoned {
                    break;
                }
                if k == 0 {
                    up += batch.hosts.iter().filter(|h| h.is_up()).count() as u32;
                }
                // Hosts no later stage has work for are written now.
                for h in batch.hosts.iter_mut() {
                    cx.host_finished(h);
                }
                if let Some(e) = cx.writer.error.take() {
                    return Err(e.into());
                }
            }
            up -= cx.dropped_up.min(up);
            if batch.abandoned {
                break;
            }
            for c in convert::completeness(&cx) {
                match completeness.as_mut() {
                    Some(acc) => acc.add(&c),
                    None => completeness = Some(c),
                }
            }
            if plan.out_opts.debugging > 0 {
                for line in convert::completeness_notes(&cx) {
                    self.observer.note(&line);
                }
            }
        }
        let interrupted = cancel.is_cancelled();
        let elapsed = started.elapsed();
        run.runstats = Some(RunStats {
            finished: now_epoch(),
            elapsed: elapsed.as_secs_f64(),
            exit: if interrupted {
                RunExit::Error
            } else {
                RunExit::Success
            },
            errormsg: interrupted.then(|| "Interrupted by the user (SIGINT)".to_string()),
            hosts_up: up,
            hosts_down: total - up.min(total),
            hosts_total: total,
            completeness,
        });
        if total == 0 && !interrupted {
            self.observer
                .note("WARNING: No targets were specified, so 0 hosts scanned.");
        }
        if !plan.dry_run {
            sink.end(&run)?;
        }
        Ok(RunSummary {
            interrupted,
            hosts_up: up,
            hosts_total: total,
            completeness,
            elapsed,
        })
    }
}
