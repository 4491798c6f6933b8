//! Host and port choice, Nmap's submission rules and what is shown, without a network
//! (the whole stage runs on the simulated network in tests/os_sim.rs).

use super::*;
use crate::pipeline::convert::port_results;
use crate::pipeline::convert::tests::plan;
use crate::pipeline::PortScan;
use crate::plan::OsPlan;
use portolan_model::HostStatus;

fn os_plan(limit: bool) -> ScanPlan {
    let mut p = plan();
    p.scan = crate::plan::ScanKind::Syn;
    p.os = Some(OsPlan {
        db: None,
        limit,
        guess: false,
        max_tries: 5,
    });
    p
}

fn host(ports: &[(Protocol, u16, PortState)]) -> HostRecord {
    let mut h = HostRecord::new("198.18.0.10".parse().unwrap(), None);
    h.status = HostStatus::up("user-set");
    let tcp = ports
        .iter()
        .filter(|p| p.0 == Protocol::Tcp)
        .map(|p| (p.1, p.2, "test", 64));
    let udp = ports
        .iter()
        .filter(|p| p.0 == Protocol::Udp)
        .map(|p| (p.1, p.2, "test", 64));
    h.scan = Some(Box::new(PortScan {
        ports: port_results(Protocol::Tcp, tcp)
            .chain(port_results(Protocol::Udp, udp))
            .collect(),
        times: None,
        started: 0,
        ended: None,
    }));
    h
}

use PortState::{Closed, Filtered, Open, Unfiltered};
use Protocol::{Tcp, Udp};

#[test]
fn ports_are_the_first_open_and_closed_ones_as_nmap_picks_them() {
    let h = host(&[
        (Tcp, 443, Open),
        (Tcp, 0, Open),
        (Tcp, 22, Open),
        (Tcp, 113, Closed),
        (Tcp, 25, Closed),
        (Udp, 161, Closed),
        (Udp, 53, Open),
    ]);
    let c = choose_ports(&os_plan(false), &h);
    let want = OsPorts {
        open_tcp: Some(22),
        closed_tcp: Some(25),
        closed_udp: Some(161),
    };
    assert_eq!((c.aim, c.known), (want, want));
    assert!(c.reliable());
    // Port zero only when there is nothing else.
    let h = host(&[(Tcp, 0, Open)]);
    assert_eq!(choose_ports(&os_plan(false), &h).aim.open_tcp, Some(0));
}

#[test]
fn unfiltered_ports_are_aimed_at_but_not_reported_as_used() {
    let h = host(&[
        (Tcp, 22, Open),
        (Tcp, 80, Unfiltered),
        (Udp, 99, Unfiltered),
    ]);
    let c = choose_ports(&os_plan(false), &h);
    assert_eq!(c.aim.closed_tcp, Some(80));
    assert_eq!(c.known.closed_tcp, None);
    // Nmap 7.93 reports the UDP port it used, whatever it was.
    assert_eq!(c.aim.closed_udp, Some(99));
    assert_eq!(c.known.closed_udp, Some(99));
    assert!(!c.reliable());
}

#[test]
fn without_a_known_udp_port_a_random_one_is_used_and_reported() {
    let h = host(&[(Tcp, 22, Open), (Tcp, 80, Closed)]);
    let c = choose_ports(&os_plan(false), &h);
    let udp = c.known.closed_udp.expect("a random UDP port");
    assert!((30000..44781).contains(&udp), "{udp}");
    assert_eq!(c.aim.closed_udp, Some(udp));
    // The same every time (every round) for the same scan.
    assert_eq!(choose_ports(&os_plan(false), &h), c);
    assert_eq!(c.aim.closed_tcp, Some(80));
}

#[test]
fn osscan_limit_skips_hosts_without_an_open_and_a_closed_port() {
    let only_open = host(&[(Tcp, 22, Open), (Tcp, 80, Filtered)]);
    let both = host(&[(Tcp, 22, Open), (Tcp, 80, Closed)]);
    let unfiltered = host(&[(Tcp, 22, Open), (Tcp, 80, Unfiltered)]);
    let only_closed = host(&[(Tcp, 80, Closed)]);
    let limit = os_plan(true);
    assert!(chosen(&limit, &only_open).is_none());
    assert!(chosen(&limit, &only_closed).is_none());
    assert!(chosen(&limit, &both).is_some());
    assert!(chosen(&limit, &unfiltered).is_some());
    // Without --osscan-limit they are scanned (results marked unreliable).
    let all = os_plan(false);
    assert!(chosen(&all, &only_open).is_some());
    assert!(chosen(&all, &only_closed).is_some());
    assert!(OsStage.applies(&all, &only_open));
    assert!(!OsStage.applies(&limit, &only_open));
}

#[test]
fn down_ipv6_and_unasked_hosts_are_left_out() {
    let mut down = host(&[(Tcp, 22, Open)]);
    down.status = HostStatus::down("no-response");
    assert!(chosen(&os_plan(false), &down).is_none());
    let mut v6 = host(&[(Tcp, 22, Open)]);
    v6.ip = "2001:db8::1".parse().unwrap();
    assert!(chosen(&os_plan(false), &v6).is_none());
    assert!(chosen(&plan(), &host(&[(Tcp, 22, Open)])).is_none());
    assert!(!OsStage.wanted(&plan()));
}

fn target(known: OsPorts) -> Target {
    Target {
        index: 0,
        dst: Ipv4Addr::new(198, 18, 0, 10),
        ports: ChosenPorts { aim: known, known },
        mac: None,
        localhost: false,
        timeout: None,
    }
}

fn policy(udp: bool) -> Policy {
    Policy {
        src: Ipv4Addr::new(198, 18, 0, 1),
        targets: Vec::new(),
        seed: 1,
        db: None,
        guess: false,
        debug: false,
        max_tries: 5,
        omit_always: None,
        udp_scanned: udp,
        timing_ratio: Vec::new(),
        rounds: Vec::new(),
    }
}

#[test]
fn submission_reasons_follow_nmaps_order() {
    let all = OsPorts {
        open_tcp: Some(22),
        closed_tcp: Some(1),
        closed_udp: Some(9),
    };
    let p = policy(false);
    assert_eq!(p.omit(&target(all), Some(1), 1.0), None);
    let no_open = OsPorts {
        open_tcp: None,
        ..all
    };
    assert_eq!(
        p.omit(&target(no_open), Some(1), 1.0).as_deref(),
        Some("Missing an open TCP port so results incomplete")
    );
    let no_closed = OsPorts {
        closed_tcp: None,
        ..all
    };
    assert_eq!(
        p.omit(&target(no_closed), Some(1), 1.0).as_deref(),
        Some("Missing a closed TCP port so results incomplete")
    );
    assert!(p
        .omit(&target(all), Some(6), 1.0)
        .is_some_and(|r| r.contains("greater than five")));
    assert!(p
        .omit(&target(all), Some(1), 1.5)
        .is_some_and(|r| r.starts_with("maxTimingRatio")));
    let no_udp = OsPorts {
        closed_udp: None,
        ..all
    };
    assert!(p
        .omit(&target(no_udp), Some(1), 1.0)
        .is_some_and(|r| r.contains("-sSU")));
    // With -sU, a closed UDP port missing is the host's doing.
    assert_eq!(policy(true).omit(&target(no_udp), Some(1), 1.0), None);
}

#[test]
fn timing_ratio_is_the_seq_span_over_half_a_second() {
    let t0 = Instant::now();
    let mut sent = [None; 6];
    assert_eq!(timing_ratio(&sent), 0.0);
    for (k, s) in sent.iter_mut().enumerate() {
        *s = Some(t0 + Duration::from_millis(150) * k as u32);
    }
    assert!((timing_ratio(&sent) - 1.5).abs() < 1e-9);
}

#[test]
fn seeds_differ_per_host_and_round() {
    let a = mix(&[1, 2, 0]);
    assert_ne!(a, mix(&[1, 2, 1]));
    assert_ne!(a, mix(&[1, 3, 0]));
    assert_eq!(a, mix(&[1, 2, 0]));
}

#[test]
fn reports_are_written_as_nmap_writes_them() {
    let a = analyse::Analysis {
        fingerprint: Fingerprint::default(),
        tcp_seq: Some(analyse::SeqReport {
            index: 260,
            difficulty: "Good luck!".into(),
            values: vec![0x1A, 0xFFFF_FFFF],
        }),
        ip_id: Some(analyse::IdReport {
            class: "All zeros".into(),
            values: vec![0, 0x10],
        }),
        tcp_ts: Some(analyse::TsReport {
            class: "none returned (unsupported)".into(),
            values: Vec::new(),
        }),
        uptime_seconds: Some(100),
        distance: Some((1, 'D')),
        good: true,
    };
    let r = sequence_reports(&a, 1_000_000, 1_000_010);
    // Seconds from the boot time to the report, as Nmap's difftime(now, lastboot).
    let up = r.uptime.expect("uptime");
    assert_eq!(up.seconds, 110);
    assert_eq!(up.lastboot, ctime(1_000_000 - 100));
    assert_eq!(r.tcp.map(|t| t.values), Some("1A,FFFFFFFF".to_string()));
    assert_eq!(r.ipid.map(|t| t.values), Some("0,10".to_string()));
    let ts = r.ts.expect("tcptssequence");
    assert_eq!(ts.values, None);
    let none = analyse::Analysis {
        uptime_seconds: None,
        ..a
    };
    assert!(sequence_reports(&none, 0, 0).uptime.is_none());
}

fn judged(best: f64, perfect: usize, analysed: i64) -> RoundResult {
    use portolan_os::matching::{Match, Outcome, Verdict};
    let all: Vec<Match> = (0..perfect.max(1))
        .map(|print| Match {
            print,
            accuracy: best,
        })
        .collect();
    RoundResult {
        analysis: analyse::Analysis {
            fingerprint: Fingerprint::default(),
            tcp_seq: None,
            ip_id: None,
            tcp_ts: None,
            uptime_seconds: None,
            distance: None,
            good: true,
        },
        verdict: Some(Verdict {
            matches: all.clone(),
            perfect,
            outcome: if perfect > 0 {
                Outcome::Perfect
            } else {
                Outcome::Guesses
            },
            overflowed: perfect >= matching::MAX_RESULTS,
            all,
        }),
        omit: None,
        analysed,
    }
}

#[test]
fn the_reported_round_is_nmaps_best() {
    let pick = |rounds: &[RoundResult]| best_round(rounds).map(|r| r.analysed);
    // The most accurate, the first of equals.
    let r = [judged(0.90, 0, 0), judged(0.95, 0, 1), judged(0.95, 0, 2)];
    assert_eq!(pick(&r), Some(1));
    // A perfect match wins at once.
    let r = [judged(0.97, 0, 0), judged(1.0, 2, 1), judged(1.0, 1, 2)];
    assert_eq!(pick(&r), Some(1));
    // A list overflowing with perfect matches is no success: the other round is taken.
    let r = [judged(1.0, matching::MAX_RESULTS, 0), judged(0.88, 0, 1)];
    assert_eq!(pick(&r), Some(1));
    // Nothing judged (no nmap-os-db): the first.
    let mut none = judged(0.9, 0, 0);
    none.verdict = None;
    let mut other = judged(0.9, 0, 1);
    other.verdict = None;
    assert_eq!(pick(&[none, other]), Some(0));
    assert_eq!(pick(&[]), None);
}

#[test]
fn the_port_scans_rtt_not_its_floored_timeout_starts_the_os_probes() {
    let t = portolan_model::Times {
        srtt: 300,
        rttvar: 1000,
        to: 100_000,
    };
    assert_eq!(rtt_timeout(t), Some(Duration::from_micros(4300)));
    let bad = portolan_model::Times {
        srtt: -5,
        rttvar: 0,
        to: 100_000,
    };
    assert_eq!(rtt_timeout(bad), None);
}
