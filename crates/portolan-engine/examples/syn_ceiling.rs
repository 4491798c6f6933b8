//! The ceiling of a SYN scan on this machine's path to one host: SYNs to every port of
//! `--ports` through the fastest sender there is (an AF_PACKET TX ring bypassing the
//! qdisc, `portolan_engine::io::ring`), at `--rate` probes/s or flat out, with the answers
//! (SYN-ACK or RST from the target) counted as they come. No scan logic: no retries, no
//! congestion control, no timeouts; only how fast the path takes SYNs and answers them.
//!
//!   syn_ceiling --target 198.18.0.10 [--rate PPS] [--threads N] [--ports LO-HI]
//!               [--wait-ms MS] [--raw]
//!
//! `--threads` (default: the cores, at most 8, as Portolan's SYN scan) claim the ports in
//! runs of 256 from one counter (as Portolan's engines do) and split the source ports,
//! each thread with its own ring and receiver. `--raw`
//! sends through the raw IP socket Portolan falls back to instead of the ring. The target
//! must be on-link (its MAC is read from the neighbour cache, after one probe to make the
//! kernel resolve it). Prints one line of `key=value`s: probes sent, answers, the share
//! answered, the sending phase's length and rate (probes/s), the whole run's length.
//!
//! Only for the lab (bench/syn-ceiling.sh): it sends whatever it is told to.

use portolan_engine::io::netif;
use portolan_engine::io::raw::{RawReceiver, RawSender, Received};
use portolan_engine::io::ring::RingSender;
use portolan_wire::build::{EthernetParams, Ipv4Params, TcpParams, TcpTemplateV4};
use portolan_wire::ethernet::MacAddr;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames written per kick of the ring (or packets per sendmmsg).
const BATCH: usize = 256;
/// Ports a thread claims at once.
const CLAIM: u64 = 256;
/// Source ports: each thread takes a share of this range.
const SPORTS: (u16, u16) = (40_000, 59_999);

struct Args {
    target: Ipv4Addr,
    rate: Option<f64>,
    threads: usize,
    ports: (u16, u16),
    wait: Duration,
    raw: bool,
}

fn usage() -> ! {
    eprintln!("usage: syn_ceiling --target IPV4 [--rate PPS] [--threads N] [--ports LO-HI] [--wait-ms MS] [--raw]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        target: Ipv4Addr::UNSPECIFIED,
        rate: None,
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8),
        ports: (1, 65535),
        wait: Duration::from_millis(500),
        raw: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--target" => args.target = val().parse().unwrap_or_else(|_| usage()),
            "--rate" => args.rate = Some(val().parse().unwrap_or_else(|_| usage())),
            "--threads" => args.threads = val().parse().unwrap_or_else(|_| usage()),
            "--wait-ms" => {
                args.wait = Duration::from_millis(val().parse().unwrap_or_else(|_| usage()))
            }
            "--ports" => {
                let v = val();
                let (lo, hi) = v.split_once('-').unwrap_or_else(|| usage());
                args.ports = (
                    lo.parse().unwrap_or_else(|_| usage()),
                    hi.parse().unwrap_or_else(|_| usage()),
                );
            }
            "--raw" => args.raw = true,
            _ => usage(),
        }
    }
    if args.target.is_unspecified() || args.threads == 0 || args.ports.0 > args.ports.1 {
        usage();
    }
    args
}

/// The TCP source and destination ports of a SYN-ACK or RST from `target`, if `packet`
/// is one.
fn answer(packet: &[u8], target: Ipv4Addr) -> Option<(u16, u16)> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    if *packet.get(9)? != 6 || packet.get(12..16)? != target.octets() {
        return None;
    }
    let tcp = packet.get(ihl..)?;
    let sport = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let dport = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let flags = *tcp.get(13)?;
    let syn_ack = flags & 0x12 == 0x12;
    let rst = flags & 0x04 != 0;
    (syn_ack || rst).then_some((sport, dport))
}

enum Sender {
    Ring(RingSender),
    Raw(RawSender),
}

struct Shared {
    args: Args,
    src: Ipv4Addr,
    eth: EthernetParams,
    /// One bit per target port: answered.
    seen: Vec<AtomicU64>,
    answers: AtomicU64,
    next_port: AtomicU64,
    /// The longest sending phase so far (ns), and how many threads are done sending.
    sending: AtomicU64,
    done_sending: AtomicU64,
    stop: AtomicBool,
}

fn mark(shared: &Shared, rx: &mut RawReceiver, buf: &mut Vec<Received>) {
    loop {
        buf.clear();
        let n = rx.recv_batch(buf, 64).unwrap_or(0);
        for r in buf.iter() {
            if let Some((port, _)) = answer(&r.data, shared.args.target) {
                let (word, bit) = (usize::from(port) / 64, u64::from(port % 64));
                if let Some(w) = shared.seen.get(word) {
                    if w.fetch_or(1 << bit, Ordering::Relaxed) & (1 << bit) == 0 {
                        shared.answers.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if n < 64 {
            return;
        }
    }
}

/// Thread `k` of `n`: runs of ports claimed until none is left, from its own source ports.
fn run_thread(shared: &Shared, k: usize, n: usize) -> Result<(), String> {
    let a = &shared.args;
    let span = (usize::from(SPORTS.1 - SPORTS.0) + 1) / n;
    let sport_lo = SPORTS.0 + (k * span) as u16;
    let sport_hi = sport_lo + span as u16 - 1;
    let mut rx = RawReceiver::for_ports(&[shared.src], &[], sport_lo..=sport_hi)
        .map_err(|e| e.to_string())?;
    let ip = Ipv4Params {
        src: shared.src,
        dst: a.target,
        ttl: 64,
        ident: 0x4242,
        dont_frag: false,
    };
    let (mut sender, mut template) = if a.raw {
        let t = TcpTemplateV4::new(None, &ip, &TcpParams::syn(0, 0, 0));
        (Sender::Raw(RawSender::new().map_err(|e| e.to_string())?), t)
    } else {
        let ifindex = ifindex_of(shared.src).ok_or("no Ethernet interface for the source")?;
        let t = TcpTemplateV4::new(Some(&shared.eth), &ip, &TcpParams::syn(0, 0, 0));
        (
            Sender::Ring(RingSender::new(ifindex, true).map_err(|e| e.to_string())?),
            t,
        )
    };
    let template = template.as_mut().map_err(|e| e.to_string())?;
    // Ports are claimed in runs from one counter, as Portolan's engines claim probes: a
    // thread that gets less of the machine sends less.
    let total_ports = u64::from(a.ports.1 - a.ports.0) + 1;
    let claim = || {
        let first = shared.next_port.fetch_add(CLAIM, Ordering::Relaxed);
        let last = (first + CLAIM).min(total_ports);
        (first..last)
            .map(|i| a.ports.0 + i as u16)
            .collect::<Vec<u16>>()
    };
    let mut ports: Vec<u16> = Vec::new();
    let rate = a.rate.map(|r| r / n as f64);
    let start = Instant::now();
    let mut recv_buf = Vec::new();
    let mut raw_batch: Vec<Vec<u8>> = Vec::new();
    let mut i = 0;
    let mut sent_here = 0usize;
    loop {
        if i >= ports.len() {
            ports = claim();
            i = 0;
            if ports.is_empty() {
                break;
            }
        }
        if let Some(rate) = rate {
            // Paced: the batch is due when the probes before it are, at `rate`.
            let due = start + Duration::from_secs_f64(sent_here as f64 / rate);
            while Instant::now() < due {
                mark(shared, &mut rx, &mut recv_buf);
                std::thread::sleep(
                    due.saturating_duration_since(Instant::now())
                        .min(Duration::from_micros(200)),
                );
            }
        }
        let batch = match rate {
            // Small batches keep a paced run smooth.
            Some(r) => ((r / 2000.0) as usize).clamp(1, BATCH),
            None => BATCH,
        };
        let end = (i + batch).min(ports.len());
        let chunk = ports.get(i..end).unwrap_or_default();
        let sent = match &mut sender {
            Sender::Ring(ring) => {
                let mut taken = 0;
                for &port in chunk {
                    let sport = sport_lo + (port % (span as u16));
                    let frame = template.probe(a.target, sport, port, u32::from(port) << 8);
                    match ring.ring().push(frame) {
                        Ok(true) => taken += 1,
                        _ => break,
                    }
                }
                ring.kick().map_err(|e| e.to_string())?;
                taken
            }
            Sender::Raw(raw) => {
                raw_batch.clear();
                for &port in chunk {
                    let sport = sport_lo + (port % (span as u16));
                    raw_batch.push(
                        template
                            .probe(a.target, sport, port, u32::from(port) << 8)
                            .to_vec(),
                    );
                }
                let pkts: Vec<(IpAddr, &[u8])> = raw_batch
                    .iter()
                    .map(|p| (IpAddr::V4(a.target), p.as_slice()))
                    .collect();
                raw.send_batch(&pkts).map_err(|e| e.to_string())?
            }
        };
        i += sent;
        sent_here += sent;
        mark(shared, &mut rx, &mut recv_buf);
        if sent == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    shared
        .sending
        .fetch_max(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    shared.done_sending.fetch_add(1, Ordering::Relaxed);
    // Answers still on their way.
    let total = u64::from(a.ports.1 - a.ports.0) + 1;
    while !shared.stop.load(Ordering::Relaxed) {
        mark(shared, &mut rx, &mut recv_buf);
        if shared.answers.load(Ordering::Relaxed) >= total {
            break;
        }
        let _ = rx.wait_readable(Duration::from_millis(5));
    }
    mark(shared, &mut rx, &mut recv_buf);
    Ok(())
}

fn ifindex_of(src: Ipv4Addr) -> Option<u32> {
    netif::interfaces()
        .ok()?
        .into_iter()
        .find(|i| i.ipv4.iter().any(|&(a, _)| a == src))
        .map(|i| i.ifindex)
}

fn main() {
    let args = parse_args();
    let src = portolan_engine::io::raw::source_for(args.target).unwrap_or_else(|e| {
        eprintln!("syn_ceiling: {e}");
        std::process::exit(1)
    });
    let ifaces = netif::interfaces().unwrap_or_default();
    let src_mac = ifaces
        .iter()
        .find(|i| i.ipv4.iter().any(|&(a, _)| a == src))
        .and_then(|i| i.mac)
        .unwrap_or(MacAddr::ZERO);
    // Resolve the target's MAC: a datagram makes the kernel ask (port 9, discard).
    let lookup = || {
        netif::arp_cache()
            .into_iter()
            .find(|&(ip, _)| ip == args.target)
            .map(|(_, m)| m)
    };
    let mut dst_mac = lookup();
    if dst_mac.is_none() {
        if let Ok(s) = std::net::UdpSocket::bind((src, 0)) {
            let _ = s.send_to(b"", (args.target, 9));
        }
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(10));
            dst_mac = lookup();
            if dst_mac.is_some() {
                break;
            }
        }
    }
    let Some(dst_mac) = dst_mac.or(args.raw.then_some(MacAddr::ZERO)) else {
        eprintln!("syn_ceiling: no MAC for {} (not on-link?)", args.target);
        std::process::exit(1)
    };
    let threads = args.threads;
    let total = u64::from(args.ports.1 - args.ports.0) + 1;
    let wait = args.wait;
    let shared = Arc::new(Shared {
        args,
        src,
        eth: EthernetParams {
            src: src_mac,
            dst: dst_mac,
        },
        seen: (0..1024).map(|_| AtomicU64::new(0)).collect(),
        answers: AtomicU64::new(0),
        next_port: AtomicU64::new(0),
        sending: AtomicU64::new(0),
        done_sending: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || run_thread(&shared, k, threads))
        })
        .collect();
    // Stop waiting once no answer came for `wait` after the sending ended.
    let mut last = (0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let answers = shared.answers.load(Ordering::Relaxed);
        if answers != last.0 {
            last = (answers, Instant::now());
        }
        let sent_all = shared.done_sending.load(Ordering::Relaxed) == threads as u64;
        if answers >= total || (sent_all && last.1.elapsed() >= wait) {
            break;
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for h in handles {
        if let Ok(Err(e)) = h.join() {
            eprintln!("syn_ceiling: {e}");
            std::process::exit(1);
        }
    }
    let whole = start.elapsed().as_secs_f64();
    let sending = shared.sending.load(Ordering::Relaxed) as f64 / 1e9;
    let answers = shared.answers.load(Ordering::Relaxed);
    println!(
        "sent={total} answered={answers} answered_share={:.4} send_s={sending:.4} send_rate={:.0} whole_s={whole:.4} threads={threads} sender={}",
        answers as f64 / total as f64,
        total as f64 / sending.max(1e-9),
        if shared.args.raw { "raw" } else { "ring" }
    );
}
