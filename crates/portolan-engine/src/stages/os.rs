//! OS detection (-O): which hosts and ports (as Nmap's OsScanInfo and initScanStats pick
//! them), the OS scan core ([`crate::core::os`]) run over the backend, each round analysed
//! and judged against nmap-os-db (or, without it, only a coarse guess), and the results
//! Nmap reports: ports used, matches, the fingerprint when Nmap prints it, uptime, distance
//! and the sequence analyses.

use crate::core::os::{HostRound, OsScan, OsSend, OsTarget, RoundRecord, Rounds};
use crate::pipeline::{
    now_epoch, Batch, BoxFuture, HostRecord, PortResult, ScanError, Stage, StageCx,
};
use crate::plan::timing::Template;
use crate::plan::ScanPlan;
use crate::stages::cancel_flag;
use crate::stages::version::Detected;
use portolan_model::{
    IpIdSequence, Os, PortState, PortUsed, Protocol, TcpSequence, TcpTsSequence, Uptime,
};
use portolan_os::analyse::{self, Context, Observations, Reply};
use portolan_os::coarse;
use portolan_os::db::OsDb;
use portolan_os::fingerprint::{self, Fingerprint, ScanInfo};
use portolan_os::matching::{self, JudgeOptions, Verdict};
use portolan_os::probes::{self, HostProbes, OsPorts, OsProbe};
use portolan_wire::ethernet::MacAddr;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The version whose fingerprint format and database we follow (the `V=` of the SCAN line).
pub(crate) const NMAP_VERSION: &str = "7.93";
/// Nmap's STANDARD_OS2_TRIES: the tries when the fingerprint could not be submitted anyway.
const STANDARD_TRIES: u32 = 2;
/// Source ports the OS probes may use (Nmap's bases: 33000 + a number below 32261).
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 33000..=65535;

/// What OS detection found on one host, in the model's terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OsFound {
    pub os: Os,
    pub uptime: Option<Uptime>,
    pub distance: Option<u32>,
    pub tcpsequence: Option<TcpSequence>,
    pub ipidsequence: Option<IpIdSequence>,
    pub tcptssequence: Option<TcpTsSequence>,
}

pub struct OsStage;

impl Stage for OsStage {
    fn wanted(&self, plan: &ScanPlan) -> bool {
        plan.os.is_some() && plan.port_scan()
    }

    fn applies(&self, plan: &ScanPlan, host: &HostRecord) -> bool {
        self.wanted(plan) && chosen(plan, host).is_some()
    }

    fn run<'a>(
        &'a self,
        cx: &'a mut StageCx<'_>,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ScanError>> {
        Box::pin(async move {
            let plan = cx.plan;
            let mut jobs = Vec::new();
            for (i, h) in batch.hosts.iter().enumerate() {
                // A dry run's hosts are "written" (never reported) by the port scan; their
                // OS probes are still printed.
                if (h.written && !plan.dry_run) || !h.is_up() {
                    continue;
                }
                match chosen(plan, h) {
                    Some(ports) => jobs.push((i, h.ip, ports)),
                    None if plan.out_opts.verbose > 0 && skipped_for_limit(plan, h) => {
                        cx.observer.note(&format!(
                            "Skipping OS Scan against {} due to absence of open (or perhaps closed) ports",
                            h.ip
                        ));
                    }
                    None => {}
                }
            }
            let v6 = batch
                .hosts
                .iter()
                // Written already (no stage applies to them), but port scanned.
                .filter(|h| h.is_up() && h.scan.is_some() && h.ip.is_ipv6())
                .count();
            if v6 > 0 && !plan.dry_run {
                cx.observer.note(&format!(
                    "WARNING: OS detection of IPv6 hosts is not supported yet: {v6} host{} without OS results",
                    if v6 == 1 { "" } else { "s" }
                ));
            }
            if jobs.is_empty() {
                return Ok(());
            }
            if plan.out_opts.verbose > 0 && !plan.dry_run {
                let what = match &jobs[..] {
                    [(_, ip, _)] => ip.to_string(),
                    _ => format!("{} hosts", jobs.len()),
                };
                cx.observer
                    .note(&format!("Initiating OS detection (try #1) against {what}"));
            }
            // One scan per source address (one path each), in turn.
            let mut by_src: Vec<(Ipv4Addr, Vec<Target>)> = Vec::new();
            for (i, ip, ports) in jobs {
                let IpAddr::V4(dst) = ip else { continue };
                let Ok(IpAddr::V4(src)) = cx.backend.source_for(ip) else {
                    continue;
                };
                let h = &batch.hosts[i];
                let target = Target {
                    index: i,
                    dst,
                    ports,
                    mac: h.mac,
                    localhost: dst.is_loopback() || dst == src,
                    timeout: h.scan.as_ref().and_then(|s| s.times).and_then(rtt_timeout),
                };
                match by_src.iter_mut().find(|(s, _)| *s == src) {
                    Some((_, v)) => v.push(target),
                    None => by_src.push((src, vec![target])),
                }
            }
            for (src, targets) in by_src {
                let found = run_group(cx, src, targets).await?;
                if plan.dry_run {
                    continue;
                }
                for (index, f) in found {
                    if let Some(h) = batch.hosts.get_mut(index) {
                        h.os = Some(Box::new(f));
                    }
                }
            }
            Ok(())
        })
    }
}

/// The OS probes' first timeout from the port scan's `times`: the RTT it measured,
/// srtt + 4 rttvar (not its `to`, which has Nmap's 100 ms floor: the core sets its own).
fn rtt_timeout(t: portolan_model::Times) -> Option<Duration> {
    let us = t.srtt.saturating_add(t.rttvar.saturating_mul(4));
    u64::try_from(us).ok().map(Duration::from_micros)
}

/// The ports OS detection aims at on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChosenPorts {
    /// Where the probes go (`None`: a random port is used).
    pub aim: OsPorts,
    /// What Nmap reports as used (`portused`, the SCAN line's OT/CT/CU): the open and
    /// closed ports the scan found, not unfiltered or random ones.
    pub known: OsPorts,
}

impl ChosenPorts {
    /// Nmap's "reliable" conditions: an open and a closed TCP port.
    pub fn reliable(&self) -> bool {
        self.known.open_tcp.is_some() && self.known.closed_tcp.is_some()
    }
}

/// The first port (lowest number, not zero if another exists) of `proto` in `state`.
fn first(ports: &[PortResult], proto: Protocol, state: PortState) -> Option<u16> {
    let mut found: Vec<u16> = ports
        .iter()
        .filter(|p| p.proto == proto && p.state == state)
        .map(|p| p.port)
        .collect();
    found.sort_unstable();
    found
        .iter()
        .copied()
        .find(|&p| p != 0)
        .or(found.first().copied())
}

/// The ports of `host` as Nmap's initScanStats picks them: the first open TCP port (with
/// -sV, the first not tcpwrapped if there is one), the first closed TCP port or else an
/// unfiltered one (else a random one each round, not reported), likewise for UDP, where
/// Nmap 7.93 keeps and reports whatever port it used, a random one included
/// (`portused` proto="udp", the SCAN line's CU, observed with `nmap -O` on loopback).
pub fn choose_ports(plan: &ScanPlan, host: &HostRecord) -> ChosenPorts {
    let ports = host.scan.as_ref().map_or(&[][..], |s| &s.ports[..]);
    let mut open = first(ports, Protocol::Tcp, PortState::Open);
    if plan.version.is_some() {
        let wrapped = |n: u16| {
            ports.iter().any(|p| {
                p.proto == Protocol::Tcp
                    && p.port == n
                    && matches!(p.detected, Some(Detected::TcpWrapped))
            })
        };
        if open.is_some_and(wrapped) {
            let mut others: Vec<u16> = ports
                .iter()
                .filter(|p| p.proto == Protocol::Tcp && p.state == PortState::Open)
                .map(|p| p.port)
                .collect();
            others.sort_unstable();
            // All wrapped: Nmap ends on the last one.
            open = others
                .iter()
                .copied()
                .find(|&n| !wrapped(n))
                .or(others.last().copied());
        }
    }
    let closed_tcp = first(ports, Protocol::Tcp, PortState::Closed);
    let closed_udp = first(ports, Protocol::Udp, PortState::Closed)
        .or_else(|| first(ports, Protocol::Udp, PortState::Unfiltered))
        .unwrap_or_else(|| random_port(plan.seed, host.ip));
    let known = OsPorts {
        open_tcp: open,
        closed_tcp,
        closed_udp: Some(closed_udp),
    };
    let aim = OsPorts {
        closed_tcp: closed_tcp.or_else(|| first(ports, Protocol::Tcp, PortState::Unfiltered)),
        ..known
    };
    ChosenPorts { aim, known }
}

/// Nmap's pick of a port presumed closed: 30000 + a number below 14781.
fn random_port(seed: u64, ip: IpAddr) -> u16 {
    let ip = match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a) as u64,
    };
    30000 + (mix(&[seed, ip, 0x5544_5000]) % 14781) as u16
}

/// Whether --osscan-limit leaves `host` out: no open TCP port, or no closed or
/// unfiltered one.
fn skipped_for_limit(plan: &ScanPlan, host: &HostRecord) -> bool {
    let Some(os) = &plan.os else { return false };
    if !os.limit {
        return false;
    }
    let ports = host.scan.as_ref().map_or(&[][..], |s| &s.ports[..]);
    let has = |state| {
        ports
            .iter()
            .any(|p| p.proto == Protocol::Tcp && p.state == state)
    };
    !has(PortState::Open) || !(has(PortState::Closed) || has(PortState::Unfiltered))
}

/// The ports to scan `host` with, or `None` if OS detection leaves it out (down, IPv6,
/// written already, or --osscan-limit without the ports it asks for).
fn chosen(plan: &ScanPlan, host: &HostRecord) -> Option<ChosenPorts> {
    plan.os.as_ref()?;
    if !host.is_up() || !host.ip.is_ipv4() || host.os.is_some() || skipped_for_limit(plan, host) {
        return None;
    }
    Some(choose_ports(plan, host))
}

/// One host of an OS scan.
#[derive(Debug, Clone)]
struct Target {
    /// Its place in the batch.
    index: usize,
    dst: Ipv4Addr,
    ports: ChosenPorts,
    mac: Option<MacAddr>,
    localhost: bool,
    timeout: Option<Duration>,
}

/// The analysis of one round, and its verdict.
struct RoundResult {
    analysis: analyse::Analysis,
    verdict: Option<Verdict>,
    /// Why the fingerprint could not be submitted (Nmap's OmitSubmissionFP), if so.
    omit: Option<String>,
    /// When it was analysed, Unix epoch seconds (the uptime counts back from there).
    analysed: i64,
}

impl RoundResult {
    /// Perfect matches, when Nmap counts the round a success (its list did not overflow
    /// with perfect matches: a host that says too little matches everything).
    fn perfect(&self) -> usize {
        self.verdict
            .as_ref()
            .filter(|v| !v.overflowed)
            .map_or(0, |v| v.perfect)
    }
    /// The accuracy of the best reference, when the round's verdict counts.
    fn best(&self) -> Option<f64> {
        let v = self.verdict.as_ref()?;
        if v.overflowed {
            return None;
        }
        v.all.first().map(|m| m.accuracy)
    }
}

/// The round policy: analysis, matching and Nmap's rules for trying again.
struct Policy {
    src: Ipv4Addr,
    targets: Vec<Target>,
    seed: u64,
    db: Option<Arc<OsDb>>,
    guess: bool,
    /// -d: every perfect match is listed.
    debug: bool,
    max_tries: u32,
    /// Why no fingerprint of this scan can be submitted whatever the host says (scan
    /// delay, -T5).
    omit_always: Option<String>,
    /// -sU ran (so a missing closed UDP port is the host's doing).
    udp_scanned: bool,
    /// Per target: the largest SEQ timing ratio so far (Nmap's maxTimingRatio).
    timing_ratio: Vec<f64>,
    rounds: Vec<Vec<RoundResult>>,
}

/// The probes of one round of one host.
struct Round(HostProbes);

impl HostRound for Round {
    fn open_tcp(&self) -> bool {
        self.0.ports().open_tcp.is_some()
    }
    fn classify(&self, packet: &[u8]) -> Option<OsProbe> {
        probes::classify(&self.0, packet)
    }
    fn build(&self, probe: OsProbe, attempt: u8, buf: &mut Vec<u8>) -> bool {
        probes::build(&self.0, probe, attempt, buf).is_ok()
    }
}

/// SplitMix64 of a few words: per host and round choices from the scan's seed.
fn mix(words: &[u64]) -> u64 {
    words.iter().fold(0x9E37_79B9_7F4A_7C15, |acc, &w| {
        let mut z = (acc ^ w).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// The SEQ probes' spacing against the ideal 500 ms (Nmap's timingRatio).
fn timing_ratio(seq_sent: &[Option<Instant>; 6]) -> f64 {
    match (seq_sent[0], seq_sent[5]) {
        (Some(a), Some(b)) => {
            let ideal = probes::SEQ_GAP.as_secs_f64() * 5.0;
            b.saturating_duration_since(a).as_secs_f64() / ideal
        }
        _ => 0.0,
    }
}

impl Policy {
    /// Nmap's OmitSubmissionFP for a round: why its fingerprint would not be fit to submit.
    fn omit(&self, t: &Target, distance: Option<u32>, ratio: f64) -> Option<String> {
        if let Some(r) = &self.omit_always {
            return Some(r.clone());
        }
        if t.ports.known.open_tcp.is_none() {
            return Some("Missing an open TCP port so results incomplete".into());
        }
        if t.ports.known.closed_tcp.is_none() {
            return Some("Missing a closed TCP port so results incomplete".into());
        }
        if let Some(d) = distance.filter(|&d| d > 5) {
            return Some(format!(
                "Host distance ({d} network hops) is greater than five"
            ));
        }
        if ratio > 1.4 {
            return Some(format!("maxTimingRatio ({ratio:e}) is greater than 1.4"));
        }
        if t.ports.known.closed_udp.is_none() && !self.udp_scanned {
            return Some("Didn't receive UDP response. Please try again with -sSU".into());
        }
        None
    }
}

impl Rounds for Policy {
    type Round = Round;

    fn start(&mut self, host: usize, round: u32) -> Round {
        let t = &self.targets[host];
        let seed = mix(&[self.seed, u64::from(u32::from(t.dst)), u64::from(round)]);
        Round(HostProbes::new(self.src, t.dst, t.ports.aim, seed))
    }

    fn finish(&mut self, host: usize, round: u32, probes: &Round, record: RoundRecord) -> bool {
        let ratio = timing_ratio(&record.seq_sent);
        if let Some(r) = self.timing_ratio.get_mut(host) {
            *r = r.max(ratio);
        }
        let max_ratio = self.timing_ratio.get(host).copied().unwrap_or(0.0);
        let t = &self.targets[host];
        let obs = Observations {
            seq_sent: record.seq_sent,
            replies: record
                .replies
                .into_iter()
                .map(|r| Reply {
                    probe: r.probe,
                    at: r.at,
                    packet: r.packet,
                })
                .collect(),
        };
        let cx = Context {
            on_link: t.mac.is_some(),
            localhost: t.localhost,
        };
        let analysis = analyse::analyse(&probes.0, &obs, &cx);
        let distance = analysis.distance.map(|(d, _)| d);
        let omit = self.omit(t, distance, max_ratio);
        let verdict = self.db.as_ref().map(|db| {
            matching::judge(
                db,
                &analysis.fingerprint,
                &JudgeOptions {
                    guess: self.guess,
                    debug: self.debug,
                },
            )
        });
        let answered = !obs.replies.is_empty();
        let result = RoundResult {
            analysed: now_epoch(),
            analysis,
            verdict,
            omit,
        };
        let perfect = result.perfect() > 0;
        let tries = if result.omit.is_some() {
            self.max_tries.min(STANDARD_TRIES)
        } else {
            self.max_tries
        };
        self.rounds[host].push(result);
        // Without nmap-os-db a round that got answers is all the coarse guess needs.
        perfect || (self.db.is_none() && answered) || round + 1 >= tries
    }
}

/// Runs the OS scan of `targets` (all from `src`) on a blocking thread.
async fn run_group(
    cx: &mut StageCx<'_>,
    src: Ipv4Addr,
    targets: Vec<Target>,
) -> Result<Vec<(usize, OsFound)>, ScanError> {
    let plan = cx.plan;
    let Some(os) = &plan.os else {
        return Ok(Vec::new());
    };
    let omit_always = if plan.timing.scan_delay > Duration::from_millis(500) {
        Some(format!(
            "Scan delay ({}) is greater than 500",
            plan.timing.scan_delay.as_millis()
        ))
    } else if plan.timing.template == Template::Insane {
        Some("Timing level 5 (Insane) used".into())
    } else {
        None
    };
    let policy = Policy {
        src,
        seed: plan.seed,
        db: os.db.clone(),
        guess: os.guess,
        debug: plan.out_opts.debugging > 0,
        // A dry run prints one round: the probes a first try sends.
        max_tries: if plan.dry_run { 1 } else { os.max_tries.max(1) },
        omit_always,
        udp_scanned: plan.udp,
        timing_ratio: vec![0.0; targets.len()],
        rounds: targets.iter().map(|_| Vec::new()).collect(),
        targets,
    };
    let timing = plan.timing.clone();
    let backend = cx.backend.clone();
    let (flag, watcher) = cancel_flag(cx.cancel);
    let result = tokio::task::spawn_blocking(move || {
        let mut io = backend.open_ip_described(IpAddr::V4(src), SOURCE_PORTS)?;
        let hosts: Vec<OsTarget> = policy
            .targets
            .iter()
            .map(|t| OsTarget {
                dst: t.dst,
                timeout: t.timeout,
            })
            .collect();
        let mut scan = OsScan::new(&timing, &hosts, policy, io.now());
        let mut encode = |core: &OsScan<Policy>,
                          d: &crate::io::backend::Described,
                          buf: &mut Vec<u8>,
                          build: bool| {
            let send = OsSend::from_tag(d.tag)?;
            let dst = core.dst(send.host)?;
            if build && !core.round(send.host)?.build(send.probe, send.attempt, buf) {
                return None;
            }
            Some(IpAddr::V4(dst))
        };
        let cancelled =
            crate::io::drive::drive(&mut scan, &mut encode, io.as_mut(), &flag, &mut |_| {})?;
        Ok::<_, crate::io::raw::RawError>((scan, cancelled))
    })
    .await;
    watcher.abort();
    let (scan, cancelled) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(ScanError::Network(e.to_string())),
        Err(e) => return Err(ScanError::Network(format!("OS scan thread: {e}"))),
    };
    let timed_out: Vec<bool> = (0..scan.policy().targets.len())
        .map(|i| scan.timed_out(i))
        .collect();
    let policy = scan.into_policy();
    let verbosity = (plan.out_opts.verbose, plan.out_opts.debugging);
    let now = now_epoch();
    let mut out = Vec::new();
    for (k, t) in policy.targets.iter().enumerate() {
        // An interrupted or timed-out host has no OS results (as Nmap's).
        if cancelled || timed_out[k] || policy.rounds[k].is_empty() {
            continue;
        }
        let found = report(&policy, k, t, verbosity, now);
        out.push((t.index, found));
    }
    Ok(out)
}

/// The round whose matches Nmap reports (findBestFPs): the first with a perfect match,
/// else the one whose best reference is the most accurate (the first of equals), else the
/// first.
fn best_round(rounds: &[RoundResult]) -> Option<&RoundResult> {
    if let Some(r) = rounds.iter().find(|r| r.perfect() > 0) {
        return Some(r);
    }
    let mut best: Option<(&RoundResult, f64)> = None;
    for r in rounds {
        if let Some(acc) = r.best() {
            if best.is_none_or(|(_, b)| acc > b) {
                best = Some((r, acc));
            }
        }
    }
    best.map(|(r, _)| r).or(rounds.first())
}

/// What Nmap reports for target `k`.
fn report(
    policy: &Policy,
    k: usize,
    t: &Target,
    (verbose, debugging): (u8, u8),
    now: i64,
) -> OsFound {
    let rounds = &policy.rounds[k];
    let (Some(r), Some(last)) = (best_round(rounds), rounds.last()) else {
        return OsFound::default();
    };
    // Matches come from the best round; distance and the sequence reports from the last,
    // as Nmap keeps them (endRound and findBestFPs copy the round's own state).
    let a = &last.analysis;
    let mut os = Os::default();
    if let Some(p) = t.ports.known.open_tcp {
        os.ports_used.push(PortUsed {
            state: PortState::Open,
            proto: Protocol::Tcp,
            portid: p,
        });
    }
    if let Some(p) = t.ports.known.closed_tcp {
        os.ports_used.push(PortUsed {
            state: PortState::Closed,
            proto: Protocol::Tcp,
            portid: p,
        });
    }
    if let Some(p) = t.ports.known.closed_udp {
        os.ports_used.push(PortUsed {
            state: PortState::Closed,
            proto: Protocol::Udp,
            portid: p,
        });
    }
    let distance = a.distance;
    let perfect = match (&policy.db, &r.verdict) {
        (Some(db), Some(v)) => {
            os.matches = matching::to_model(db, v);
            v.perfect
        }
        _ => {
            os.coarse = coarse::guess(&a.fingerprint).map(|c| {
                format!(
                    "{} (from {}; no nmap-os-db, not an Nmap match)",
                    c.family, c.reason
                )
            });
            0
        }
    };
    // When Nmap prints the fingerprint (output.cc's printosscanoutput).
    let loud = debugging > 0 || verbose > 1;
    // With perfect matches (or too many) only -d or -vv shows it; without, Nmap asks for
    // a submission when the conditions were good.
    // Whether it could be submitted is judged at the end (the last round has seen the
    // largest timing ratio).
    let omit = last.omit.as_deref();
    let print = loud || (perfect == 0 && omit.is_none());
    if print {
        let info = scan_info(t, omit.is_none(), distance, now);
        // Every round's tests, merged as Nmap 7.93's mergeFPs does.
        let tries: Vec<Fingerprint> = rounds
            .iter()
            .map(|x| x.analysis.fingerprint.clone())
            .collect();
        os.fingerprints.push(if omit.is_none() {
            fingerprint::format_tries(&tries, &info)
        } else {
            fingerprint::format_tries_plain(&tries, &info)
        });
    }
    let seq = sequence_reports(a, last.analysed, now);
    OsFound {
        os,
        uptime: seq.uptime,
        distance: distance.map(|(d, _)| d),
        tcpsequence: seq.tcp,
        ipidsequence: seq.ipid,
        tcptssequence: seq.ts,
    }
}

/// The SCAN line's facts.
fn scan_info(t: &Target, good: bool, distance: Option<(u32, char)>, now: i64) -> ScanInfo {
    let (month, day) = month_day(now);
    ScanInfo {
        version: NMAP_VERSION.into(),
        engine: 4,
        month,
        day,
        open_tcp: t.ports.known.open_tcp,
        closed_tcp: t.ports.known.closed_tcp,
        closed_udp: t.ports.known.closed_udp,
        private: ScanInfo::private_address(IpAddr::V4(t.dst)),
        distance: distance.map(|(d, _)| d),
        distance_method: distance.map(|(_, m)| m),
        good,
        mac_prefix: t.mac.map(|m| [m.0[0], m.0[1], m.0[2]]),
        time: now,
        platform: platform(),
    }
}

/// Nmap's NMAP_PLATFORM for this build (`x86_64-pc-linux-gnu`).
pub(crate) fn platform() -> String {
    format!("{}-pc-{}-gnu", std::env::consts::ARCH, std::env::consts::OS)
}

/// Month and day of `epoch` in local time, as the SCAN line's `D=`.
pub(crate) fn month_day(epoch: i64) -> (u8, u8) {
    use chrono::{Datelike, Local, TimeZone};
    match Local.timestamp_opt(epoch, 0).earliest() {
        Some(t) => (t.month() as u8, t.day() as u8),
        None => (0, 0),
    }
}

/// C's ctime() of `epoch` in local time, without the newline (Nmap's lastboot).
fn ctime(epoch: i64) -> Option<String> {
    use chrono::{Local, TimeZone};
    let t = Local.timestamp_opt(epoch, 0).earliest()?;
    Some(t.format("%a %b %e %H:%M:%S %Y").to_string())
}

struct SeqReports {
    uptime: Option<Uptime>,
    tcp: Option<TcpSequence>,
    ipid: Option<IpIdSequence>,
    ts: Option<TcpTsSequence>,
}

/// Uptime and the sequence analyses as Nmap writes them.
/// Uptime as Nmap reports it: the boot time from the round's probes, and the seconds from
/// then to the report (`now`).
fn sequence_reports(a: &analyse::Analysis, analysed: i64, now: i64) -> SeqReports {
    let uptime = a.uptime_seconds.filter(|&s| s > 0).map(|up| {
        let boot = analysed.saturating_sub(i64::try_from(up).unwrap_or(i64::MAX));
        Uptime {
            seconds: u64::try_from(now.saturating_sub(boot)).unwrap_or(up),
            lastboot: ctime(boot),
        }
    });
    let hex = |v: &mut dyn Iterator<Item = u32>| {
        v.map(|x| format!("{x:X}")).collect::<Vec<_>>().join(",")
    };
    SeqReports {
        uptime,
        tcp: a.tcp_seq.as_ref().map(|r| TcpSequence {
            index: r.index,
            difficulty: r.difficulty.clone(),
            values: hex(&mut r.values.iter().copied()),
        }),
        ipid: a.ip_id.as_ref().map(|r| IpIdSequence {
            class: r.class.clone(),
            values: hex(&mut r.values.iter().map(|&v| u32::from(v))),
        }),
        ts: a.tcp_ts.as_ref().map(|r| TcpTsSequence {
            class: r.class.clone(),
            values: (!r.values.is_empty()).then(|| hex(&mut r.values.iter().copied())),
        }),
    }
}

#[cfg(test)]
mod tests;
