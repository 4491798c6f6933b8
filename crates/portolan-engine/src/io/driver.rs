//! Runs [`RawScan`]s over the raw backend: the only place where the raw-packet scans meet
//! the clock and sockets. Blocking loops for dedicated threads: receive whatever arrived,
//! send what the engine allows in batches (one `sendmmsg` each), and sleep on the receiver
//! until the engine's next deadline.
//!
//! Hosts are grouped by the source address the kernel would use to reach them; each group
//! is scanned by one engine per core, each sending its own share of the one permuted order
//! (so per-core engines, and `--shard`s on other machines, never send the same probe).
//! In dry-run mode nothing is opened or sent: every probe is printed, and the engines run
//! on a virtual clock, so a dry run takes no longer than printing does.

use crate::core::probe::{self, tcp::SynTemplateV4};
use crate::core::scan::{
    HostAnswer, Mode, Probe, RawScan, ScanStats, Share, Slot, SlotResult, SOURCE_PORTS,
};
use crate::core::Poll;
use crate::io::connect::Progress;
use crate::io::raw::{RawError, RawReceiver, RawSender, Received, SourceFinder};
use crate::plan::timing::{RttEstimator, Timing};
use portolan_wire::cookie::CookieKey;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Probes handed to the kernel per `sendmmsg`.
const BATCH: usize = 256;
/// Longest sleep between looks at the cancel flag.
const MAX_SLEEP: Duration = Duration::from_millis(5);
/// How long replies are still read after Ctrl-C stopped the sending.
const DRAIN: Duration = Duration::from_millis(100);
/// A core gets an engine of its own only for this many probes or more.
const PROBES_PER_CORE: usize = 4096;
/// The rate a dry run "sends" at, on its virtual clock.
const DRY_RUN_RATE: f64 = 1e12;
/// TTL (hop limit) of our probes.
const PROBE_TTL: u8 = 64;

pub use crate::core::probe::{describe, PayloadFn};

/// Where the probes go.
pub enum Output<'a> {
    /// Raw sockets.
    Wire,
    /// Printed, one line each, instead of sent.
    DryRun(&'a Mutex<dyn Write + Send>),
}

/// One raw-packet scan: `hosts` (with the caller's tags) × `slots`.
pub struct RawJob<'a> {
    pub hosts: &'a [(usize, IpAddr)],
    pub slots: &'a [Slot],
    pub mode: Mode,
    pub timing: &'a Timing,
    pub seed: u64,
    /// This machine's share of the scan (`--shard`).
    pub share: Share,
    pub payload: PayloadFn<'a>,
    pub output: Output<'a>,
}

/// What a scan learnt about one host.
#[derive(Debug, Clone)]
pub struct HostResult {
    pub tag: usize,
    pub ip: IpAddr,
    /// The probed slots in the order given (Mode::Ports).
    pub slots: Vec<SlotResult>,
    /// The first answer (Mode::Discovery).
    pub answer: Option<HostAnswer>,
}

#[derive(Debug)]
pub struct RawRun {
    pub hosts: Vec<HostResult>,
    pub stats: ScanStats,
    pub rtt: RttEstimator,
    pub interrupted: bool,
    pub receive_drops: u64,
}

/// Runs `job`. Hosts without a route are reported unanswered, and no probe is sent to them.
pub fn run_raw(job: &RawJob, progress: &Progress, cancel: &AtomicBool) -> Result<RawRun, RawError> {
    let dry = matches!(job.output, Output::DryRun(_));
    let mut groups: BTreeMap<IpAddr, Vec<(usize, IpAddr)>> = BTreeMap::new();
    let mut finder = SourceFinder::default();
    for &(tag, ip) in job.hosts {
        let src = match finder.source_for(ip) {
            Ok(src) => src,
            Err(RawError::NoRoute(_)) => unspecified(ip),
            Err(e) if dry => {
                let _ = e;
                unspecified(ip)
            }
            Err(e) => return Err(e),
        };
        groups.entry(src).or_default().push((tag, ip));
    }
    progress.ports_total.fetch_add(
        (job.hosts.len() * job.slots.len()) as u64,
        Ordering::Relaxed,
    );
    let mut out = RawRun {
        hosts: Vec::new(),
        stats: ScanStats::default(),
        rtt: RttEstimator::new(job.timing),
        interrupted: false,
        receive_drops: 0,
    };
    let order: HashMap<Slot, usize> = job.slots.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    for (src, group) in groups {
        // One driver per core, each with its own sockets and a share of the probes: on a
        // busy path the kernel's work per probe runs in the sending thread, so one thread
        // cannot fill the link. Rates are split so the limits hold for the whole scan.
        let probes = group.len() * job.slots.len();
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8)
            .min(probes.div_ceil(PROBES_PER_CORE).max(1));
        let mut timing = job.timing.clone();
        timing.max_rate = job.timing.max_rate.map(|r| r / cores as f64);
        timing.min_rate = job.timing.min_rate.map(|r| r / cores as f64);
        if dry {
            // Printing is not sending: no pacing (on the virtual clock it only costs polls).
            timing.min_rate = Some(DRY_RUN_RATE);
            timing.max_rate = Some(DRY_RUN_RATE);
        }
        // One key for all cores: each sees the others' replies, valid but not its own.
        let key = CookieKey::random().map_err(|e| RawError::Io {
            call: "getrandom",
            error: std::io::Error::other(e.to_string()),
        })?;
        let ips: Vec<IpAddr> = group.iter().map(|&(_, ip)| ip).collect();
        let parts: Vec<Result<CoreRun, RawError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..cores)
                .map(|k| {
                    let share = job.share.split(k as u64, cores as u64);
                    let ports = core_source_ports(k, cores);
                    let scan = RawScan::new(
                        timing.clone(),
                        job.mode,
                        src,
                        ips.clone(),
                        job.slots.to_vec(),
                        key.clone(),
                        job.seed,
                        share,
                    )
                    .with_source_ports(ports);
                    scope.spawn(move || run_core(scan, src, job, progress, cancel))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(RawError::Io {
                            call: "scan thread",
                            error: std::io::Error::other("a scan thread panicked"),
                        })
                    })
                })
                .collect()
        });
        let mut merged: Vec<HostResult> = group
            .iter()
            .map(|&(tag, ip)| HostResult {
                tag,
                ip,
                slots: Vec::new(),
                answer: None,
            })
            .collect();
        for part in parts {
            let part = part?;
            for (host, slots) in merged.iter_mut().zip(part.results) {
                host.slots.extend(slots);
            }
            for (host, answer) in merged.iter_mut().zip(part.answers) {
                host.answer = host.answer.or(answer);
            }
            out.stats.add(&part.stats);
            out.rtt = part.rtt;
            out.receive_drops += part.drops;
            out.interrupted |= part.interrupted;
        }
        for host in &mut merged {
            host.slots
                .sort_by_key(|r| order.get(&r.slot).copied().unwrap_or(usize::MAX));
        }
        out.hosts.extend(merged);
        if out.interrupted {
            break;
        }
    }
    Ok(out)
}

/// Core `k`'s part of [`SOURCE_PORTS`] when `cores` engines share a scan.
fn core_source_ports(k: usize, cores: usize) -> RangeInclusive<u16> {
    let (start, end) = (*SOURCE_PORTS.start() as usize, *SOURCE_PORTS.end() as usize);
    let part = (end - start + 1) / cores.max(1);
    let first = start + k * part;
    let last = if k + 1 == cores {
        end
    } else {
        first + part - 1
    };
    first as u16..=last as u16
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// What one core's engine learnt.
struct CoreRun {
    results: Vec<Vec<SlotResult>>,
    answers: Vec<Option<HostAnswer>>,
    stats: ScanStats,
    rtt: RttEstimator,
    drops: u64,
    interrupted: bool,
}

fn run_core(
    mut scan: RawScan,
    src: IpAddr,
    job: &RawJob,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<CoreRun, RawError> {
    let mut drops = 0;
    let interrupted = match (&job.output, src.is_unspecified()) {
        (Output::DryRun(out), _) => dry_run(&mut scan, job.payload, out, cancel),
        // No route: nothing can be sent, every probe stays unanswered.
        (Output::Wire, true) => false,
        (Output::Wire, false) => {
            // Each core's receiver takes the replies to its own source ports only.
            let ports = scan.source_ports();
            let (mut sender, mut receiver) = match src {
                IpAddr::V4(s) => (RawSender::new()?, RawReceiver::for_ports(&[s], &[], ports)?),
                IpAddr::V6(s) => (
                    RawSender::new_v6()?,
                    RawReceiver::for_ports(&[], &[s], ports)?,
                ),
            };
            let interrupted = drive(
                &mut scan,
                &mut sender,
                &mut receiver,
                src,
                job.payload,
                progress,
                cancel,
            )?;
            drops = receiver.drops();
            interrupted
        }
    };
    // Each mode reads only what it needs: a discovery sweep's per-probe results would be
    // most of a batch's memory.
    let (results, answers) = match job.mode {
        Mode::Ports => (scan.results(), Vec::new()),
        Mode::Discovery => (Vec::new(), scan.answers()),
    };
    Ok(CoreRun {
        results,
        answers,
        stats: scan.stats,
        rtt: *scan.rtt(),
        drops,
        interrupted,
    })
}

/// Builds probes, keeping a template for the hot case (IPv4 SYN) where only a few fields
/// change from one probe to the next; every other probe its kind builds.
struct Builder<'a> {
    template: Option<SynTemplateV4>,
    payload: PayloadFn<'a>,
}

impl<'a> Builder<'a> {
    fn new(src: IpAddr, payload: PayloadFn<'a>) -> Self {
        Builder {
            template: SynTemplateV4::new(src, PROBE_TTL),
            payload,
        }
    }

    fn build(&mut self, p: &Probe) -> Vec<u8> {
        if let Some(packet) = self.template.as_mut().and_then(|t| t.probe(p)) {
            return packet.to_vec();
        }
        probe::build_packet(p, self.payload, PROBE_TTL)
    }
}

/// The loop for one engine. Returns whether it was interrupted.
fn drive(
    scan: &mut RawScan,
    sender: &mut RawSender,
    receiver: &mut RawReceiver,
    src: IpAddr,
    payload: PayloadFn,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<bool, RawError> {
    let mut builder = Builder::new(src, payload);
    let mut pending: VecDeque<(IpAddr, Vec<u8>)> = VecDeque::new();
    let mut received: Vec<Received> = Vec::with_capacity(64);
    let mut answered_before = 0u64;
    let mut stopped: Option<Instant> = None;
    loop {
        if stopped.is_none() && cancel.load(Ordering::Relaxed) {
            // Stop sending at once; read what is already on its way for a moment.
            stopped = Some(Instant::now());
            pending.clear();
        }
        // Everything that arrived, first: answers free the engine to send more.
        loop {
            received.clear();
            let n = receiver.recv_batch(&mut received, 64)?;
            for r in &received {
                scan.on_packet(r.at, &r.data);
            }
            if n < 64 {
                break;
            }
        }
        let answered = scan.stats.answers;
        progress
            .ports_done
            .fetch_add(answered - answered_before, Ordering::Relaxed);
        answered_before = answered;
        if let Some(at) = stopped {
            if at.elapsed() >= DRAIN {
                return Ok(true);
            }
            receiver.wait_readable(MAX_SLEEP)?;
            continue;
        }

        let mut wait: Option<Instant> = None;
        let mut done = false;
        while pending.len() < BATCH {
            match scan.poll(Instant::now()) {
                Poll::Send(p) => {
                    let packet = builder.build(&p);
                    if !packet.is_empty() {
                        pending.push_back((p.dst, packet));
                    }
                }
                Poll::WaitUntil(t) => {
                    wait = Some(t);
                    break;
                }
                Poll::WaitForInput => break,
                Poll::Done => {
                    done = true;
                    break;
                }
            }
        }
        if !pending.is_empty() {
            let batch: Vec<(IpAddr, &[u8])> =
                pending.iter().map(|(d, p)| (*d, p.as_slice())).collect();
            let sent = match sender.send_batch(&batch) {
                Ok(n) => n,
                // The first packet could not go at all (e.g. no route): drop it; the
                // engine reports its probe unanswered.
                Err(RawError::NoRoute(_)) => 1,
                Err(e) => return Err(e),
            };
            drop(batch);
            pending.drain(..sent.min(pending.len()));
            if !pending.is_empty() {
                // The device queue is full: give it a moment.
                receiver.wait_readable(Duration::from_micros(200))?;
            }
            continue;
        }
        if done {
            return Ok(false);
        }
        let sleep = wait
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        if !sleep.is_zero() {
            receiver.wait_readable(sleep)?;
        }
    }
}

/// Prints every probe the engine would send, on a virtual clock (nothing answers, so each
/// pass ends at once and retransmissions follow as the timing allows). Returns whether it
/// was interrupted.
fn dry_run(
    scan: &mut RawScan,
    payload: PayloadFn,
    out: &Mutex<dyn Write + Send>,
    cancel: &AtomicBool,
) -> bool {
    let mut now = Instant::now();
    let mut text = String::with_capacity(64 * BATCH);
    let mut lines = 0usize;
    let flush = |text: &mut String| {
        if let Ok(mut w) = out.lock() {
            let _ = w.write_all(text.as_bytes());
        }
        text.clear();
    };
    loop {
        match scan.poll(now) {
            Poll::Send(p) => {
                describe(&mut text, &p, payload);
                lines += 1;
                if lines.is_multiple_of(BATCH) {
                    flush(&mut text);
                    if cancel.load(Ordering::Relaxed) {
                        return true;
                    }
                }
            }
            Poll::WaitUntil(t) => now = now.max(t),
            Poll::WaitForInput | Poll::Done => break,
        }
    }
    flush(&mut text);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::timing::Template;

    #[test]
    fn core_source_ports_partition_the_range() {
        for cores in 1..=8 {
            let parts: Vec<_> = (0..cores).map(|k| core_source_ports(k, cores)).collect();
            assert_eq!(*parts[0].start(), *SOURCE_PORTS.start());
            assert_eq!(*parts[cores - 1].end(), *SOURCE_PORTS.end());
            for w in parts.windows(2) {
                assert_eq!(*w[0].end() + 1, *w[1].start());
            }
        }
    }

    /// A dry run prints every probe of its share once per pass, sends nothing, and ends
    /// at once whatever the timeouts.
    #[test]
    fn dry_run_prints_every_probe() {
        let hosts: Vec<(usize, IpAddr)> = (0..300u32)
            .map(|i| (i as usize, IpAddr::V4(Ipv4Addr::from(0xC612_0000 + i))))
            .collect();
        let slots = [Slot::Echo, Slot::Syn(443), Slot::Ack(80), Slot::Timestamp];
        let mut timing = Template::Normal.timing();
        timing.max_retries = 0;
        let sink: Mutex<Vec<u8>> = Mutex::new(Vec::new());
        let job = RawJob {
            hosts: &hosts,
            slots: &slots,
            mode: Mode::Discovery,
            timing: &timing,
            seed: 5,
            share: Share::ALL,
            payload: &|_| &[],
            output: Output::DryRun(&sink),
        };
        let started = Instant::now();
        let run = run_raw(&job, &Progress::default(), &AtomicBool::new(false)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = String::from_utf8(sink.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().count(), 1200);
        assert_eq!(
            text.lines().filter(|l| l.contains("echo-request")).count(),
            300
        );
        assert!(
            text.contains("> 198.18.1.43:443 S seq="),
            "{}",
            &text[..200]
        );
        assert!(run.hosts.iter().all(|h| h.answer.is_none()));
        assert_eq!(run.stats.unanswered, 1200);
    }
}
