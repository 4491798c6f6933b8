//! The OS scan core on a fake clock, against fake hosts whose answers are UDP packets
//! naming the probe they answer (the packets themselves are the probes crate's business).

use super::*;
use crate::plan::timing::Template;
use portolan_wire::build::{build_udp_v4, Ipv4Params, UdpParams};

const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const RTT: Duration = Duration::from_millis(2);

fn host(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, i as u8 + 1)
}

/// How a fake host answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Behaviour {
    /// Every probe, every time.
    All,
    /// Nothing.
    Silent,
    /// Only from the given send of each probe on (1: the second send).
    FromAttempt(u8),
    /// Every probe but the SEQ probes.
    NoSeq,
    /// As Linux: every probe but T2 and T3.
    Linux,
}

struct FakeRound {
    open: bool,
}

impl HostRound for FakeRound {
    fn open_tcp(&self) -> bool {
        self.open
    }
    fn classify(&self, packet: &[u8]) -> Option<OsProbe> {
        let ip = portolan_wire::ipv4::Packet::new_checked(packet).ok()?;
        let udp = portolan_wire::udp::Packet::new_checked(ip.payload()).ok()?;
        probe_of_code(udp.src_port())
    }
    fn build(&self, _probe: OsProbe, _attempt: u8, buf: &mut Vec<u8>) -> bool {
        buf.extend_from_slice(b"probe");
        true
    }
}

/// A policy that tries `tries` rounds and keeps every record.
struct Fake {
    open: Vec<bool>,
    tries: u32,
    records: Vec<Vec<RoundRecord>>,
    /// Hosts that "match perfectly" as soon as a round got this many answers.
    enough: usize,
}

impl Rounds for Fake {
    type Round = FakeRound;
    fn start(&mut self, host: usize, _round: u32) -> FakeRound {
        FakeRound {
            open: self.open[host],
        }
    }
    fn finish(&mut self, host: usize, round: u32, _: &FakeRound, record: RoundRecord) -> bool {
        let matched = record.replies.len() >= self.enough;
        self.records[host].push(record);
        matched || round + 1 >= self.tries
    }
}

fn answer(from: Ipv4Addr, probe: OsProbe) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let ip = Ipv4Params {
        src: from,
        dst: SRC,
        ttl: 64,
        ident: 0,
        dont_frag: true,
    };
    let udp = UdpParams {
        sport: probe_code(probe),
        dport: 40000,
        payload: &[],
    };
    let n = build_udp_v4(&mut buf, None, &ip, &udp).unwrap();
    buf.truncate(n);
    buf
}

struct Run {
    sends: Vec<(Instant, OsSend)>,
    start: Instant,
    end: Instant,
    scan: OsScan<Fake>,
}

fn run(timing: &Timing, hosts: &[(bool, Behaviour)], tries: u32, extra: &[Vec<u8>]) -> Run {
    run_hinted(timing, hosts, tries, extra, None)
}

/// As [`run`], every host with the port scan's timeout `hint`.
fn run_hinted(
    timing: &Timing,
    hosts: &[(bool, Behaviour)],
    tries: u32,
    extra: &[Vec<u8>],
    hint: Option<Duration>,
) -> Run {
    let start = Instant::now();
    let targets: Vec<OsTarget> = (0..hosts.len())
        .map(|i| OsTarget {
            dst: host(i),
            timeout: hint,
        })
        .collect();
    let policy = Fake {
        open: hosts.iter().map(|h| h.0).collect(),
        tries,
        records: vec![Vec::new(); hosts.len()],
        enough: usize::MAX,
    };
    let mut scan = OsScan::new(timing, &targets, policy, start);
    let mut now = start;
    let mut pending: Vec<(Instant, Vec<u8>)> = Vec::new();
    for p in extra {
        scan.on_packet(now, p);
    }
    let mut sends = Vec::new();
    for _ in 0..1_000_000 {
        // Deliver what has arrived.
        pending.sort_by_key(|p| p.0);
        while pending.first().is_some_and(|p| p.0 <= now) {
            let (_, p) = pending.remove(0);
            scan.on_packet(now, &p);
        }
        match scan.poll(now) {
            Poll::Send(s) => {
                sends.push((now, s));
                let mut buf = Vec::new();
                assert!(scan
                    .round(s.host)
                    .unwrap()
                    .build(s.probe, s.attempt, &mut buf));
                let answers = match hosts[s.host].1 {
                    Behaviour::All => true,
                    Behaviour::Silent => false,
                    Behaviour::FromAttempt(a) => s.attempt >= a,
                    Behaviour::NoSeq => !matches!(s.probe, OsProbe::Seq(_)),
                    Behaviour::Linux => !matches!(s.probe, OsProbe::T(2) | OsProbe::T(3)),
                };
                if answers {
                    pending.push((now + RTT, answer(host(s.host), s.probe)));
                }
            }
            Poll::WaitUntil(t) => {
                let next = pending.iter().map(|p| p.0).min();
                now = next.map_or(t, |a| a.min(t)).max(now);
            }
            Poll::WaitForInput => {
                now = pending
                    .iter()
                    .map(|p| p.0)
                    .min()
                    .expect("waits for nothing");
            }
            Poll::Done => {
                return Run {
                    sends,
                    start,
                    end: now,
                    scan,
                }
            }
        }
    }
    panic!("the scan never ended");
}

fn t4() -> Timing {
    Template::Aggressive.timing()
}

fn sends_of(r: &Run, h: usize) -> Vec<(Duration, OsProbe, u8)> {
    r.sends
        .iter()
        .filter(|(_, s)| s.host == h)
        .map(|(t, s)| (*t - r.start, s.probe, s.attempt))
        .collect()
}

#[test]
fn one_round_sends_the_probes_in_nmaps_order_and_spacing() {
    let r = run(&t4(), &[(true, Behaviour::All)], 1, &[]);
    let s = sends_of(&r, 0);
    let probes: Vec<OsProbe> = s.iter().map(|x| x.1).collect();
    let mut want: Vec<OsProbe> = (1..=6).map(OsProbe::Seq).collect();
    want.extend([OsProbe::Ie(1), OsProbe::Ie(2), OsProbe::U1, OsProbe::Ecn]);
    want.extend((2..=7).map(OsProbe::T));
    assert_eq!(probes, want);
    // SEQ probes exactly 100 ms apart; the others back to back as soon as the last SEQ
    // probe is answered.
    for w in s[..6].windows(2) {
        assert_eq!(w[1].0 - w[0].0, SEQ_GAP);
    }
    for x in &s[6..] {
        assert_eq!(x.0, SEQ_GAP * 5 + RTT, "{x:?}");
    }
    assert!(s.iter().all(|x| x.2 == 0));
    let rec = &r.scan.policy().records[0];
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].replies.len(), 16);
    assert_eq!(rec[0].sent, 16);
    for (k, t) in rec[0].seq_sent.iter().enumerate() {
        assert_eq!(*t, Some(r.start + SEQ_GAP * k as u32));
    }
    assert_eq!(r.scan.stats().retransmissions, 0);
}

#[test]
fn hosts_are_scanned_together_each_with_its_own_seq_spacing() {
    let hosts = vec![(true, Behaviour::All); 20];
    let r = run(&t4(), &hosts, 1, &[]);
    for h in 0..20 {
        let s = sends_of(&r, h);
        assert_eq!(s.len(), 16);
        // Every host's first SEQ probe leaves at the start: no host waits for another.
        assert_eq!(s[0].0, Duration::ZERO);
        for w in s[..6].windows(2) {
            assert_eq!(w[1].0 - w[0].0, SEQ_GAP);
        }
    }
    // The whole group takes about as long as one host.
    let one = run(&t4(), &[(true, Behaviour::All)], 1, &[]);
    assert_eq!(r.end - r.start, one.end - one.start);
}

#[test]
fn a_silent_host_gets_each_seq_probe_once_and_the_others_four_times_per_round() {
    let r = run(&t4(), &[(true, Behaviour::Silent)], 1, &[]);
    let s = sends_of(&r, 0);
    let count = |p: OsProbe| s.iter().filter(|x| x.1 == p).count();
    // Once in the sequence phase, four more times in the TUI phase (OPS/WIN/T1).
    assert_eq!(count(OsProbe::Seq(1)), 5);
    assert_eq!(count(OsProbe::T(1)), usize::from(TUI_TRIES));
    for p in [OsProbe::Ie(1), OsProbe::U1, OsProbe::Ecn, OsProbe::T(7)] {
        assert_eq!(count(p), usize::from(TUI_TRIES), "{p:?}");
    }
    // Retransmissions wait for the timeout (T4's initial 500 ms without an answer).
    let ie: Vec<Duration> = s
        .iter()
        .filter(|x| x.1 == OsProbe::Ie(1))
        .map(|x| x.0)
        .collect();
    for w in ie.windows(2) {
        assert!(w[1] - w[0] >= t4().initial_rtt_timeout, "{ie:?}");
    }
    assert!(r.scan.policy().records[0][0].replies.is_empty());
}

#[test]
fn max_tries_bounds_the_rounds_and_a_round_follows_the_last_timeout_at_once() {
    let r = run(&t4(), &[(true, Behaviour::Silent)], 1, &[]);
    assert_eq!(r.scan.rounds(0), 1);
    assert_eq!(r.scan.policy().records[0].len(), 1);
    let r = run(&t4(), &[(true, Behaviour::Silent)], 5, &[]);
    assert_eq!(r.scan.rounds(0), 5);
    let firsts: Vec<Duration> = sends_of(&r, 0)
        .iter()
        .filter(|x| x.1 == OsProbe::Seq(1) && x.2 == 0)
        .map(|x| x.0)
        .collect();
    assert_eq!(firsts.len(), 5);
    let last_of_round = |k: usize| {
        sends_of(&r, 0)
            .iter()
            .filter(|x| x.0 < firsts[k + 1])
            .map(|x| x.0)
            .max()
            .unwrap()
    };
    // A round ends one timeout after its last send (a host never heard from: the
    // initial timeout) and the next starts then, without Nmap's pauses of 1 s and 2.5 s.
    let to = t4().initial_rtt_timeout;
    for k in 0..4 {
        assert_eq!(firsts[k + 1] - last_of_round(k), to, "round {k}");
    }
}

#[test]
fn a_round_follows_the_previous_ones_last_answer_without_a_pause() {
    let r = run(&t4(), &[(true, Behaviour::All)], 3, &[]);
    let s = sends_of(&r, 0);
    assert_eq!(s.len(), 48);
    // Every probe answered RTT after its send: round k + 1's first SEQ probe leaves when
    // round k's last answer arrives.
    for k in 0..2 {
        assert_eq!(s[16 * k + 16].1, OsProbe::Seq(1));
        assert_eq!(s[16 * k + 16].0 - s[16 * k + 15].0, RTT, "round {k}");
    }
    assert_eq!(r.scan.policy().records[0].len(), 3);
}

#[test]
fn silent_probes_of_an_answering_host_time_out_after_its_rtt_with_a_floor() {
    // RTT 2 ms: srtt + 4 rttvar is below the floor, which sets the retransmissions apart.
    let r = run(&t4(), &[(true, Behaviour::Linux)], 1, &[]);
    let t2: Vec<Duration> = sends_of(&r, 0)
        .iter()
        .filter(|x| x.1 == OsProbe::T(2))
        .map(|x| x.0)
        .collect();
    assert_eq!(t2.len(), usize::from(TUI_TRIES));
    for w in t2.windows(2) {
        assert_eq!(w[1] - w[0], MIN_TIMEOUT, "{t2:?}");
    }
    // The round ends one timeout after T2's and T3's last sends.
    assert_eq!(r.end - r.start, t2[3] + MIN_TIMEOUT);
    assert_eq!(r.scan.policy().records[0][0].replies.len(), 14);
}

#[test]
fn the_port_scans_rtt_times_a_silent_host_and_min_rtt_timeout_overrides_the_floor() {
    let ie = |r: &Run| -> Vec<Duration> {
        sends_of(r, 0)
            .iter()
            .filter(|x| x.1 == OsProbe::Ie(1))
            .map(|x| x.0)
            .collect()
    };
    let hint = Some(Duration::from_millis(3));
    let r = run_hinted(&t4(), &[(true, Behaviour::Silent)], 1, &[], hint);
    for w in ie(&r).windows(2) {
        assert_eq!(w[1] - w[0], MIN_TIMEOUT);
    }
    let hint = Some(Duration::from_millis(70));
    let r = run_hinted(&t4(), &[(true, Behaviour::Silent)], 1, &[], hint);
    for w in ie(&r).windows(2) {
        assert_eq!(w[1] - w[0], Duration::from_millis(70));
    }
    let mut t = t4();
    t.min_rtt_timeout = Duration::from_millis(50);
    let r = run_hinted(
        &t,
        &[(true, Behaviour::Silent)],
        1,
        &[],
        Some(Duration::from_millis(3)),
    );
    for w in ie(&r).windows(2) {
        assert_eq!(w[1] - w[0], Duration::from_millis(50));
    }
}

#[test]
fn a_perfect_match_ends_the_host_and_others_go_on() {
    let start = Instant::now();
    let targets = [host(0), host(1)].map(|dst| OsTarget { dst, timeout: None });
    let policy = Fake {
        open: vec![true, true],
        tries: 5,
        records: vec![Vec::new(); 2],
        enough: 1,
    };
    let mut scan = OsScan::new(&t4(), &targets, policy, start);
    let mut now = start;
    loop {
        match scan.poll(now) {
            Poll::Send(s) if s.host == 0 => scan.on_packet(now, &answer(host(0), s.probe)),
            Poll::Send(_) => {}
            Poll::WaitUntil(t) => now = t,
            Poll::WaitForInput => panic!("nothing to wait for"),
            Poll::Done => break,
        }
    }
    assert_eq!(scan.rounds(0), 1);
    assert_eq!(scan.rounds(1), 5);
}

#[test]
fn lost_answers_are_recovered_by_retransmission() {
    let r = run(&t4(), &[(true, Behaviour::FromAttempt(1))], 1, &[]);
    let rec = &r.scan.policy().records[0][0];
    // Every probe answered at its second send; the SEQ ones through their resend in
    // the TUI phase.
    assert_eq!(rec.replies.len(), 17);
    assert_eq!(r.scan.stats().retransmissions, 11);
    let seq_again: Vec<u8> = sends_of(&r, 0)
        .iter()
        .filter(|x| x.1 == OsProbe::Seq(3))
        .map(|x| x.2)
        .collect();
    assert_eq!(seq_again, [0, 1]);
}

#[test]
fn answered_seq_probes_are_not_sent_again() {
    let r = run(&t4(), &[(true, Behaviour::NoSeq)], 1, &[]);
    let s = sends_of(&r, 0);
    assert_eq!(s.iter().filter(|x| x.1 == OsProbe::Seq(2)).count(), 5);
    let r = run(&t4(), &[(true, Behaviour::All)], 1, &[]);
    let s = sends_of(&r, 0);
    assert_eq!(s.iter().filter(|x| x.1 == OsProbe::Seq(2)).count(), 1);
}

#[test]
fn without_an_open_port_only_the_icmp_udp_and_closed_port_probes_go() {
    let r = run(&t4(), &[(false, Behaviour::All)], 1, &[]);
    let probes: Vec<OsProbe> = sends_of(&r, 0).iter().map(|x| x.1).collect();
    assert_eq!(
        probes,
        [
            OsProbe::Ie(1),
            OsProbe::Ie(2),
            OsProbe::U1,
            OsProbe::T(5),
            OsProbe::T(6),
            OsProbe::T(7)
        ]
    );
}

#[test]
fn strangers_garbage_and_unsent_probes_are_ignored() {
    let mut extra = vec![
        vec![],
        vec![0x45; 10],
        answer(Ipv4Addr::new(198, 18, 9, 9), OsProbe::Ie(1)),
    ];
    // Answers before anything was sent.
    extra.push(answer(host(0), OsProbe::T(5)));
    let full = answer(host(0), OsProbe::U1);
    for n in 0..full.len() {
        extra.push(full[..n].to_vec());
    }
    let r = run(&t4(), &[(true, Behaviour::Silent)], 1, &extra);
    assert!(r.scan.policy().records[0][0].replies.is_empty());
    assert_eq!(r.scan.stats().answers, 0);
}

#[test]
fn duplicate_answers_keep_the_first() {
    let start = Instant::now();
    let targets = [OsTarget {
        dst: host(0),
        timeout: None,
    }];
    let policy = Fake {
        open: vec![true],
        tries: 1,
        records: vec![Vec::new()],
        enough: usize::MAX,
    };
    let mut scan = OsScan::new(&t4(), &targets, policy, start);
    let Poll::Send(s) = scan.poll(start) else {
        panic!("the first SEQ probe goes at once")
    };
    let t1 = start + RTT;
    scan.on_packet(t1, &answer(host(0), s.probe));
    scan.on_packet(t1 + RTT, &answer(host(0), s.probe));
    assert_eq!(scan.stats().answers, 1);
}

#[test]
fn max_rate_and_max_parallelism_hold() {
    let mut t = t4();
    t.max_rate = Some(50.0);
    let hosts = vec![(true, Behaviour::All); 10];
    let r = run(&t, &hosts, 1, &[]);
    assert_eq!(r.sends.len(), 160);
    let span = r.sends.last().unwrap().0 - r.sends[0].0;
    // 160 probes at 50/s: at least 3.18 s.
    assert!(span >= Duration::from_millis(3180), "{span:?}");
    let mut t = t4();
    t.max_parallelism = Some(1);
    let r = run(&t, &hosts, 1, &[]);
    assert_eq!(r.sends.len(), 160);
    // One probe outstanding at a time: each send waits for the answer before.
    for w in r.sends.windows(2) {
        assert!(w[1].0 - w[0].0 >= RTT, "{w:?}");
    }
}

#[test]
fn scan_delay_spaces_every_probe() {
    let mut t = t4();
    t.scan_delay = Duration::from_millis(300);
    let r = run(&t, &[(true, Behaviour::All)], 1, &[]);
    for w in sends_of(&r, 0).windows(2) {
        assert!(w[1].0 - w[0].0 >= Duration::from_millis(300), "{w:?}");
    }
}

#[test]
fn host_timeout_stops_a_host() {
    let mut t = t4();
    t.host_timeout = Some(Duration::from_millis(1500));
    let r = run(
        &t,
        &[(true, Behaviour::Silent), (true, Behaviour::All)],
        1,
        &[],
    );
    assert!(r.scan.timed_out(0));
    assert!(!r.scan.timed_out(1));
    assert!(sends_of(&r, 0)
        .iter()
        .all(|x| x.0 < Duration::from_millis(1500)));
    assert!(r.scan.policy().records[0].is_empty());
}

#[test]
fn tags_carry_the_send() {
    for probe in [
        OsProbe::Seq(6),
        OsProbe::Ie(2),
        OsProbe::Ecn,
        OsProbe::T(7),
        OsProbe::U1,
    ] {
        let s = OsSend {
            host: 70_000,
            probe,
            attempt: 3,
        };
        assert_eq!(OsSend::from_tag(s.described().tag), Some(s));
    }
    assert_eq!(OsSend::from_tag(0), None);
}
