//! Runs [`RawScan`]s over a [`Backend`]: hosts grouped by source address, one engine per
//! core, each driven by the one loop of [`crate::io::drive`] on a dedicated thread.
//!
//! Hosts are grouped by the source address the kernel would use to reach them; each group
//! is scanned by one engine per core, each sending its own share of the one permuted order
//! (so per-core engines, and `--shard`s on other machines, never send the same probe).
//! In a dry run ([`crate::io::dryrun`]) nothing is opened or sent: every probe is printed,
//! and the engines run on a virtual clock, so a dry run takes no longer than printing does.

use crate::core::probe::{self, tcp::SynTemplateV4};
use crate::core::scan::{
    Claims, HostAnswer, Mode, Probe, RawScan, ScanStats, Share, Slot, SlotResult, SOURCE_PORTS,
};
use crate::io::backend::Backend;
use crate::io::connect::Progress;
use crate::io::drive::drive;
use crate::io::raw::RawError;
use crate::plan::timing::{RttEstimator, Timing};
use portolan_wire::cookie::CookieKey;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A core gets an engine of its own only for this many probes or more.
const PROBES_PER_CORE: usize = 4096;
/// The rate a dry run "sends" at, on its virtual clock.
const DRY_RUN_RATE: f64 = 1e12;
/// TTL (hop limit) of our probes.
const PROBE_TTL: u8 = 64;
/// The reason of a slot whose probes got no answer.
const UNANSWERED_REASON: &str = "no-response";

use crate::core::probe::PayloadFn;

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
    /// Tags of the hosts that were not scanned, being broadcast addresses.
    pub broadcast: Vec<usize>,
}

/// Runs `job`. Hosts without a route are reported unanswered, and no probe is sent to them.
pub fn run_raw(
    job: &RawJob,
    backend: &dyn Backend,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<RawRun, RawError> {
    let dry = backend.is_dry_run();
    let mut groups: BTreeMap<IpAddr, Vec<(usize, IpAddr)>> = BTreeMap::new();
    let mut broadcast = Vec::new();
    for &(tag, ip) in job.hosts {
        let src = match backend.source_for(ip) {
            Ok(src) => src,
            Err(RawError::NoRoute(_)) => unspecified(ip),
            // Not a host: no probe goes there, and the scan goes on.
            Err(RawError::Broadcast(_)) => {
                broadcast.push(tag);
                continue;
            }
            Err(e) => return Err(e),
        };
        groups.entry(src).or_default().push((tag, ip));
    }
    progress.ports_total.fetch_add(
        ((job.hosts.len() - broadcast.len()) * job.slots.len()) as u64,
        Ordering::Relaxed,
    );
    let mut out = RawRun {
        hosts: Vec::new(),
        stats: ScanStats::default(),
        rtt: RttEstimator::new(job.timing),
        interrupted: false,
        receive_drops: 0,
        broadcast,
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
        // The engines take the first pass's probes from one pool as they go, rather than
        // a fixed half each: a core shared with another busy process sends less, and the
        // others make up for it (with fixed shares the scan waited for the slowest).
        let claims = Arc::new(Claims::new());
        let parts: Vec<Result<CoreRun, RawError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..cores)
                .map(|k| {
                    let ports = core_source_ports(k, cores);
                    let mut scan = RawScan::new(
                        timing.clone(),
                        job.mode,
                        src,
                        ips.clone(),
                        job.slots.to_vec(),
                        key.clone(),
                        job.seed,
                        job.share,
                    )
                    .with_source_ports(ports);
                    if cores > 1 {
                        scan = scan.with_claims(Arc::clone(&claims));
                    }
                    scope.spawn(move || run_core(scan, src, job, backend, progress, cancel))
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
        let merged_parts = parts.len();
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
            if out.interrupted {
                // Only answers are reported of an interrupted scan (the rest were not
                // all tried): dropping the others first spares sorting them.
                host.slots.retain(|r| r.reason != UNANSWERED_REASON);
            }
            // One engine's results are in slot order already. Several engines' are
            // sorted with one lookup per result: sort_by_key looked the slot up twice
            // per comparison, which took seconds for a -p- of a few dozen hosts (most
            // of the time an interrupted scan took to stop).
            if merged_parts > 1 {
                host.slots
                    .sort_by_cached_key(|r| order.get(&r.slot).copied().unwrap_or(usize::MAX));
            }
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
    backend: &dyn Backend,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<CoreRun, RawError> {
    let mut drops = 0;
    // No route (and not a dry run, which prints anyway): nothing can be sent, every probe
    // stays unanswered.
    let interrupted = if src.is_unspecified() && !backend.is_dry_run() {
        false
    } else if !prepare(&mut scan, cancel) {
        // Interrupted while the scan was being set up: nothing was sent.
        true
    } else {
        // Each core's path takes the replies to its own source ports only.
        let mut io = backend.open_ip(src, scan.source_ports())?;
        let mut builder = Builder::new(src, job.payload);
        let mut encode = |_: &RawScan, p: &Probe, buf: &mut Vec<u8>, build: bool| {
            if build {
                builder.build(p, buf);
                if buf.is_empty() {
                    return None;
                }
            }
            Some(p.dst)
        };
        let mut answered_before = 0u64;
        let mut count = |scan: &RawScan| {
            let answered = scan.stats.answers;
            progress
                .ports_done
                .fetch_add(answered - answered_before, Ordering::Relaxed);
            answered_before = answered;
        };
        let interrupted = drive(&mut scan, &mut encode, io.as_mut(), cancel, &mut count)?;
        drops = io.drops();
        // Closing a packet socket waits out an RCU grace period (synchronize_net in the
        // kernel's packet_release), milliseconds each: the path is closed on a thread of
        // its own while the results are gathered and printed.
        let _ = std::thread::Builder::new()
            .name("close-path".into())
            .spawn(move || drop(io));
        interrupted
    };
    // Each mode reads only what it needs: a discovery sweep's per-probe results would be
    // most of a batch's memory.
    let (results, answers) = match job.mode {
        Mode::Ports if interrupted => (scan.answered_results(), Vec::new()),
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

/// Slots [`RawScan::prepare`] marks between two looks at the cancel flag.
const PREPARE_STEP: u64 = 1 << 16;

/// Prepares `scan` in steps, so that an interrupt is heard while a large one is set up;
/// false if it came first.
fn prepare(scan: &mut RawScan, cancel: &AtomicBool) -> bool {
    loop {
        if cancel.load(Ordering::Relaxed) {
            return false;
        }
        if scan.prepare(PREPARE_STEP) {
            return true;
        }
    }
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

    /// Writes the packet for `p` into `buf` (empty); leaves it empty if there is nothing
    /// to send.
    fn build(&mut self, p: &Probe, buf: &mut Vec<u8>) {
        if let Some(packet) = self.template.as_mut().and_then(|t| t.probe(p)) {
            buf.extend_from_slice(packet);
            return;
        }
        let kind = probe::kind_of(p.slot);
        let payload = kind.payload(p, self.payload);
        buf.resize(kind.max_len(payload), 0);
        match kind.build(buf, p, payload, PROBE_TTL) {
            Ok(len) => buf.truncate(len),
            Err(_) => buf.clear(),
        }
    }
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

    /// A dry run prints every probe of its share once per pass, sends nothing, and runs
    /// on a virtual clock: a ten-minute timeout between passes costs no waiting.
    #[test]
    fn dry_run_prints_every_probe() {
        let hosts: Vec<(usize, IpAddr)> = (0..300u32)
            .map(|i| (i as usize, IpAddr::V4(Ipv4Addr::from(0xC612_0000 + i))))
            .collect();
        let slots = [Slot::Echo, Slot::Syn(443), Slot::Ack(80), Slot::Timestamp];
        let mut timing = Template::Normal.timing();
        timing.max_retries = 1;
        timing.initial_rtt_timeout = std::time::Duration::from_secs(600);
        timing.min_rtt_timeout = timing.initial_rtt_timeout;
        timing.max_rtt_timeout = timing.initial_rtt_timeout;
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let backend = crate::io::dryrun::DryRunBackend::new(sink.clone(), Default::default());
        let job = RawJob {
            hosts: &hosts,
            slots: &slots,
            mode: Mode::Discovery,
            timing: &timing,
            seed: 5,
            share: Share::ALL,
            payload: &|_| &[],
        };
        let run = run_raw(
            &job,
            &backend,
            &Progress::default(),
            &AtomicBool::new(false),
        )
        .unwrap();
        let text = String::from_utf8(sink.lock().unwrap().clone()).unwrap();
        // Two passes: nothing answered the first, so every probe went out once more.
        assert_eq!(text.lines().count(), 2400);
        assert_eq!(
            text.lines().filter(|l| l.contains("echo-request")).count(),
            600
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
