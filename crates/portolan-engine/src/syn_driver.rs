//! Runs a [`SynScan`] over the raw backend: the only place where the SYN scan meets the
//! clock and sockets. A blocking loop for a dedicated thread: receive whatever arrived,
//! send what the engine allows in batches (one `sendmmsg` each), and sleep on the
//! receiver until the engine's next deadline.

use crate::connect::Progress;
use crate::raw::{source_for, RawError, RawReceiver, RawSender, Received};
use crate::syn::{SynPoll, SynProbe, SynScan, SynStats};
use crate::timing::{RttEstimator, Timing};
use portolan_model::PortState;
use portolan_wire::build::{Ipv4Params, TcpParams, TcpTemplateV4};
use portolan_wire::cookie::CookieKey;
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Probes handed to the kernel per `sendmmsg`.
const BATCH: usize = 256;
/// Longest sleep between looks at the cancel flag.
const MAX_SLEEP: Duration = Duration::from_millis(5);

/// What a SYN scan learnt about one host.
#[derive(Debug, Clone)]
pub struct SynHost {
    pub tag: usize,
    pub ip: Ipv4Addr,
    /// (port, state, reason, reply TTL), in the order the ports were given.
    pub ports: Vec<(u16, PortState, &'static str, u8)>,
}

#[derive(Debug)]
pub struct SynRun {
    pub hosts: Vec<SynHost>,
    pub stats: SynStats,
    pub rtt: RttEstimator,
    pub interrupted: bool,
    pub receive_drops: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SynError {
    #[error("{0}")]
    Raw(#[from] RawError),
    #[error("cannot seed the probe cookies: {0}")]
    Key(String),
}

/// Scans `hosts` (with the caller's tags) on `ports`. Hosts are grouped by the source
/// address the kernel would use to reach them; each group is one [`SynScan`].
pub fn run_syn(
    hosts: &[(usize, Ipv4Addr)],
    ports: &[u16],
    timing: &Timing,
    seed: u64,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<SynRun, SynError> {
    let mut groups: BTreeMap<Ipv4Addr, Vec<(usize, Ipv4Addr)>> = BTreeMap::new();
    for &(tag, ip) in hosts {
        groups.entry(source_for(ip)?).or_default().push((tag, ip));
    }
    progress
        .ports_total
        .fetch_add((hosts.len() * ports.len()) as u64, Ordering::Relaxed);
    let mut out = SynRun {
        hosts: Vec::new(),
        stats: SynStats::default(),
        rtt: RttEstimator::new(timing),
        interrupted: false,
        receive_drops: 0,
    };
    // One driver per core, each with its own sockets and a share of the ports: on a
    // busy path the kernel's work per probe runs in the sending thread, so one thread
    // cannot fill the link. Rates are split so the limits hold for the whole scan.
    let shards = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        .min(ports.len().max(1));
    let mut shard_timing = timing.clone();
    shard_timing.max_rate = timing.max_rate.map(|r| r / shards as f64);
    shard_timing.min_rate = timing.min_rate.map(|r| r / shards as f64);
    for (src, group) in groups {
        // One key for all shards: each sees the others' replies, valid but not its own.
        let key = CookieKey::random().map_err(|e| SynError::Key(e.to_string()))?;
        let ips: Vec<Ipv4Addr> = group.iter().map(|&(_, ip)| ip).collect();
        let parts: Vec<Result<ShardRun, SynError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..shards)
                .map(|k| {
                    let ports: Vec<u16> = ports.iter().skip(k).step_by(shards).copied().collect();
                    let (ips, timing, key) = (&ips, &shard_timing, key.clone());
                    scope.spawn(move || {
                        scan_shard(src, ips, ports, timing, key, seed, progress, cancel)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(SynError::Key("a scan thread failed".into())))
                })
                .collect()
        });
        let mut per_host: Vec<Vec<(u16, PortState, &'static str, u8)>> =
            vec![Vec::new(); ips.len()];
        for part in parts {
            let part = part?;
            for (acc, ports) in per_host.iter_mut().zip(part.results) {
                acc.extend(ports);
            }
            add(&mut out.stats, &part.stats);
            out.rtt = part.rtt;
            out.receive_drops += part.drops;
            out.interrupted |= part.interrupted;
        }
        for ((tag, ip), ports) in group.into_iter().zip(per_host) {
            out.hosts.push(SynHost { tag, ip, ports });
        }
        if out.interrupted {
            break;
        }
    }
    Ok(out)
}

/// What one shard of one source group learnt.
struct ShardRun {
    results: Vec<Vec<(u16, PortState, &'static str, u8)>>,
    stats: SynStats,
    rtt: RttEstimator,
    drops: u64,
    interrupted: bool,
}

#[allow(clippy::too_many_arguments)]
fn scan_shard(
    src: Ipv4Addr,
    ips: &[Ipv4Addr],
    ports: Vec<u16>,
    timing: &Timing,
    key: CookieKey,
    seed: u64,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<ShardRun, SynError> {
    let mut sender = RawSender::new()?;
    let mut receiver = RawReceiver::new(&[src])?;
    let mut scan = SynScan::new(timing.clone(), src, ips.to_vec(), ports, key, seed);
    let interrupted = drive(&mut scan, &mut sender, &mut receiver, src, progress, cancel)?;
    Ok(ShardRun {
        results: scan.results(),
        stats: scan.stats,
        rtt: *scan.rtt(),
        drops: receiver.drops(),
        interrupted,
    })
}

fn add(a: &mut SynStats, b: &SynStats) {
    a.probes_sent += b.probes_sent;
    a.retransmissions += b.retransmissions;
    a.answers += b.answers;
    a.duplicates += b.duplicates;
    a.invalid += b.invalid;
    a.passes = a.passes.max(b.passes);
    a.rate_cuts += b.rate_cuts;
    a.unanswered += b.unanswered;
    a.late_answers += b.late_answers;
}

/// The loop for one group. Returns whether it was interrupted.
fn drive(
    scan: &mut SynScan,
    sender: &mut RawSender,
    receiver: &mut RawReceiver,
    src: Ipv4Addr,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<bool, SynError> {
    let ip = Ipv4Params {
        src,
        dst: src,
        ttl: 64,
        ident: 0x5157,
        dont_frag: false,
    };
    let mut template = TcpTemplateV4::new(None, &ip, &TcpParams::syn(0, 0, 0))
        .map_err(|e| SynError::Key(e.to_string()))?;
    let mut pending: VecDeque<(Ipv4Addr, Vec<u8>)> = VecDeque::new();
    let mut received: Vec<Received> = Vec::with_capacity(64);
    let mut answered_before = 0u64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Ok(true);
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

        let mut wait: Option<Instant> = None;
        let mut done = false;
        while pending.len() < BATCH {
            match scan.poll(Instant::now()) {
                SynPoll::Send(p) => pending.push_back(build(&mut template, &p)),
                SynPoll::WaitUntil(t) => {
                    wait = Some(t);
                    break;
                }
                SynPoll::Done => {
                    done = true;
                    break;
                }
            }
        }
        if !pending.is_empty() {
            let batch: Vec<(Ipv4Addr, &[u8])> =
                pending.iter().map(|(d, p)| (*d, p.as_slice())).collect();
            let sent = match sender.send_batch(&batch) {
                Ok(n) => n,
                // The first packet could not go at all (e.g. no route): drop it; the
                // engine reports its port unanswered.
                Err(RawError::NoRoute(_)) => 1,
                Err(e) => return Err(e.into()),
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

fn build(template: &mut TcpTemplateV4, p: &SynProbe) -> (Ipv4Addr, Vec<u8>) {
    (
        p.dst,
        template.probe(p.dst, p.sport, p.dport, p.seq).to_vec(),
    )
}
