//! OS detection end to end without a network: simulated hosts whose stacks answer as
//! reference fingerprints of the installed nmap-os-db say (portolan_os::synth), scanned by
//! the whole pipeline (-sS -O) on the simulated backend's virtual clock.

use portolan_engine::core::scan::Share;
use portolan_engine::data::services::ServiceTable;
use portolan_engine::io::sim::{Persona, SimBackend, SimHost, SimNet, Stack};
use portolan_engine::pipeline::Quiet;
use portolan_engine::plan::targets::{parse_target, ExcludeSet, SystemResolver};
use portolan_engine::plan::timing::Template;
use portolan_engine::plan::{Discovery, Dns, OsPlan, ScanKind, ScanPlan, Targets};
use portolan_engine::Scanner;
use portolan_model::{Host, OutputError, OutputOptions, PortState, Protocol, ScanRun, Sink};
use portolan_os::db::{OsDb, RefPrint};
use portolan_wire::ethernet::MacAddr;
use portolan_wire::{ipv4, IpProtocol};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DB: &str = "/usr/share/nmap/nmap-os-db";
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Fingerprints sampled from nmap-os-db.
const SAMPLE: usize = 200;
const SAMPLE_SEED: u64 = 0x0520_2612;
const OPEN: u16 = 22;
const CLOSED: u16 = 80;

#[derive(Default)]
struct Collect {
    hosts: Vec<Host>,
}

impl Sink for Collect {
    fn begin(&mut self, _run: &ScanRun) -> Result<(), OutputError> {
        Ok(())
    }
    fn host(&mut self, _run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        self.hosts.push(host.clone());
        Ok(())
    }
    fn end(&mut self, _run: &ScanRun) -> Result<(), OutputError> {
        Ok(())
    }
}

fn db() -> Option<Arc<OsDb>> {
    static DB_ONCE: OnceLock<Option<Arc<OsDb>>> = OnceLock::new();
    DB_ONCE
        .get_or_init(|| {
            if !Path::new(DB).exists() {
                eprintln!("{DB} not installed: skipped");
                return None;
            }
            let (db, _errors) = OsDb::load(Path::new(DB)).expect("read nmap-os-db");
            Some(Arc::new(db))
        })
        .clone()
}

/// A fixed-seed sample of `n` distinct prints, by index.
fn sample(db: &OsDb, n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut picked = std::collections::BTreeSet::new();
    while picked.len() < n.min(db.prints.len()) {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        picked.insert((state >> 33) as usize % db.prints.len());
    }
    picked.into_iter().collect()
}

/// The n-th host's address: 198.18.1.1 onwards.
fn addr(n: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 1)) + n as u32)
}

/// A -sS -O plan (ports 22 and 80, -Pn, -T4, -d so that every perfect match is listed)
/// of `spec`.
fn plan(spec: &str, db: Option<Arc<OsDb>>, max_tries: u32) -> ScanPlan {
    let expansions = vec![parse_target(spec)
        .and_then(|s| s.expand(false, &SystemResolver))
        .unwrap()];
    ScanPlan {
        args_line: "portolan -sS -O (os_sim test)".into(),
        start: 1_700_000_000,
        scan: ScanKind::Syn,
        udp: false,
        no_ping: true,
        discovery: Discovery::default(),
        dns: Dns::Never,
        services: ServiceTable::builtin(),
        ports: vec![OPEN, CLOSED],
        udp_ports: Vec::new(),
        share: Share::ALL,
        dry_run: false,
        payloads: Default::default(),
        version: None,
        os: Some(OsPlan {
            db,
            limit: false,
            guess: false,
            max_tries,
        }),
        traceroute: false,
        mac_vendors: None,
        sequential_ports: true,
        timing: Template::Aggressive.timing(),
        host_group: 64,
        out_opts: OutputOptions {
            debugging: 1,
            ..OutputOptions::default()
        },
        targets: Targets {
            expansions,
            excludes: ExcludeSet::build(&[], false, &SystemResolver).unwrap(),
            randomize: false,
        },
        seed: 11,
        carried: Vec::new(),
    }
}

async fn scan(net: SimNet, mut plan: ScanPlan) -> Vec<Host> {
    let scanner = Scanner {
        backend: Arc::new(SimBackend::new(net)),
        observer: &Quiet,
    };
    let mut sink = Collect::default();
    scanner
        .run(&mut plan, &mut sink, &CancellationToken::new())
        .await
        .expect("scan runs");
    sink.hosts
}

/// Whether `host`'s top match is `reference`'s class (vendor, family, device type), or
/// `reference` itself is among the matches as accurate as the top one.
fn top_match_fits(host: &Host, reference: &RefPrint) -> Result<(), String> {
    let os = host.os.as_ref().ok_or("no OS results")?;
    let top = os.matches.first().ok_or("no match")?;
    let same_class = top.classes.iter().any(|c| {
        reference.classes.iter().any(|r| {
            r.vendor == c.vendor && r.family == c.osfamily && Some(&r.kind) == c.kind.as_ref()
        })
    });
    let itself = os
        .matches
        .iter()
        .take_while(|m| m.accuracy == top.accuracy)
        .any(|m| m.line == reference.line);
    if same_class || itself {
        return Ok(());
    }
    let used: Vec<String> = os
        .ports_used
        .iter()
        .map(|p| format!("{}/{} {}", p.portid, p.proto.as_str(), p.state.as_str()))
        .collect();
    Err(format!(
        "top match {:?} ({}%, line {}) is not {:?}; ports used {used:?}",
        top.name, top.accuracy, top.line, reference.name
    ))
}

/// The test: at least 200 references, each a host with an open and a closed port
/// answering as the reference says, all scanned together; the top match of each must be
/// its reference's class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_references_are_recognised() {
    let Some(db) = db() else { return };
    let picked = sample(&db, SAMPLE, SAMPLE_SEED);
    assert!(picked.len() >= SAMPLE.min(db.prints.len()));
    let mut net = SimNet::new(LOCAL);
    net.prefix = 16;
    let mut approximated = Vec::new();
    for (n, &i) in picked.iter().enumerate() {
        let print = &db.prints[i];
        let persona = portolan_os::synth::Persona::new(print, 1000 + i as u64);
        approximated.push(persona.approximated().to_vec());
        net = net.host(
            addr(n),
            SimHost {
                open_tcp: vec![OPEN],
                mac: Some(MacAddr([0x02, 0, 0, 0, (n >> 8) as u8, n as u8])),
                persona: Some(Persona::new(persona)),
                ..SimHost::default()
            },
        );
    }
    let last = addr(picked.len() - 1);
    let hosts = scan(
        net,
        plan(
            &format!("{}-{}", addr(0), last.octets()[3]),
            Some(db.clone()),
            5,
        ),
    )
    .await;
    let mut failures = Vec::new();
    let mut passed = 0;
    for (n, &i) in picked.iter().enumerate() {
        let reference = &db.prints[i];
        let Some(host) = hosts.iter().find(|h| h.addr_str() == addr(n).to_string()) else {
            failures.push(format!("{}: {:?}: not reported", addr(n), reference.name));
            continue;
        };
        match top_match_fits(host, reference) {
            Ok(()) => passed += 1,
            Err(why) => {
                if std::env::var("OS_SIM_DEBUG").is_ok() {
                    eprintln!("{:#?}", host.os);
                }
                failures.push(format!(
                    "{}: line {} {:?}: {why}; persona approximated {:?}",
                    addr(n),
                    reference.line,
                    reference.name,
                    approximated[n]
                ))
            }
        }
    }
    eprintln!(
        "OS detection on simulated references: {passed}/{} recognised",
        picked.len()
    );
    for f in &failures {
        eprintln!("  {f}");
    }
    // Every host is scanned, and nearly all are recognised (failures are listed above).
    assert!(
        passed * 100 >= picked.len() * 95,
        "{passed}/{} recognised",
        picked.len()
    );
}

/// Same address range as above, but the hosts come from /16 addressing.
fn range(n: usize) -> String {
    format!("{}-{}", addr(0), addr(n - 1).octets()[3])
}

/// A stack that answers nothing and counts the ICMP echo requests it is sent.
struct Silent(Arc<AtomicUsize>);

impl Stack for Silent {
    fn answer(&mut self, _: Duration, packet: &[u8], _: &[u16], _: &[u16]) -> Option<Vec<u8>> {
        if ipv4::Packet::new_checked(packet).is_ok_and(|p| p.protocol() == IpProtocol::ICMP) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        None
    }
}

#[tokio::test]
async fn a_host_that_answers_nothing_gets_no_match() {
    let Some(db) = db() else { return };
    let echoes = Arc::new(AtomicUsize::new(0));
    let net = SimNet::new(LOCAL).host(
        addr(0),
        SimHost {
            persona: Some(Persona::new(Silent(echoes.clone()))),
            ..SimHost::default()
        },
    );
    let hosts = scan(net, plan(&range(1), Some(db), 5)).await;
    let os = hosts[0].os.as_ref().expect("OS detection ran");
    assert!(os.matches.is_empty(), "{:?}", os.matches);
    assert!(os.coarse.is_none());
    // No TCP port known (only the UDP port Nmap 7.93 picks at random), no sequence reports.
    assert!(os.ports_used.iter().all(|p| p.proto == Protocol::Udp));
    assert!(hosts[0].tcpsequence.is_none() && hosts[0].uptime.is_none());
}

#[tokio::test]
async fn max_os_tries_bounds_the_rounds() {
    let Some(db) = db() else { return };
    for (tries, rounds) in [(1, 1), (2, 2), (5, 2)] {
        let echoes = Arc::new(AtomicUsize::new(0));
        let net = SimNet::new(LOCAL).host(
            addr(0),
            SimHost {
                persona: Some(Persona::new(Silent(echoes.clone()))),
                ..SimHost::default()
            },
        );
        scan(net, plan(&range(1), Some(db.clone()), tries)).await;
        // Two echo requests a round, each sent four times to a silent host; the
        // fingerprint could not be submitted (no port known), so at most two rounds.
        assert_eq!(
            echoes.load(Ordering::Relaxed),
            8 * rounds,
            "--max-os-tries {tries}"
        );
    }
}

#[tokio::test]
async fn a_host_without_a_closed_port_is_scanned_with_a_random_one() {
    let Some(db) = db() else { return };
    let linux = db
        .prints
        .iter()
        .find(|p| p.name.starts_with("Linux 5."))
        .expect("a Linux 5 print");
    let net = SimNet::new(LOCAL).host(
        addr(0),
        SimHost {
            open_tcp: vec![OPEN],
            filtered_tcp: vec![CLOSED],
            mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            persona: Some(Persona::new(portolan_os::synth::Persona::new(linux, 5))),
            ..SimHost::default()
        },
    );
    let hosts = scan(net, plan(&range(1), Some(db.clone()), 5)).await;
    let os = hosts[0].os.as_ref().expect("OS detection ran");
    // The closed TCP port was a random pick: not reported (the UDP one is, as 7.93 does).
    let tcp: Vec<(PortState, u16)> = os
        .ports_used
        .iter()
        .filter(|p| p.proto == Protocol::Tcp)
        .map(|p| (p.state, p.portid))
        .collect();
    assert_eq!(tcp, [(PortState::Open, OPEN)]);
    assert!(
        !os.matches.is_empty(),
        "the random closed port still answers"
    );
    assert_eq!(hosts[0].distance, Some(1));
}

/// The first reference named like `prefix`.
fn print_named<'a>(db: &'a OsDb, prefix: &str) -> &'a RefPrint {
    db.prints
        .iter()
        .find(|p| p.name.starts_with(prefix))
        .expect("reference in nmap-os-db")
}

#[tokio::test]
async fn a_recognised_host_gets_nmaps_reports() {
    let Some(db) = db() else { return };
    let linux = print_named(&db, "Linux 5.");
    let net = || {
        SimNet::new(LOCAL).host(
            addr(0),
            SimHost {
                open_tcp: vec![OPEN],
                persona: Some(Persona::new(portolan_os::synth::Persona::new(linux, 9))),
                ..SimHost::default()
            },
        )
    };
    let hosts = scan(net(), plan(&range(1), Some(db.clone()), 5)).await;
    let h = &hosts[0];
    let os = h.os.as_ref().expect("OS detection ran");
    assert_eq!(os.matches.first().map(|m| m.accuracy), Some(100));
    assert!(os.matches.iter().any(|m| m.line == linux.line));
    assert!(os.coarse.is_none());
    // -d: the fingerprint is shown even with a perfect match; good conditions (an open
    // and a closed TCP port, and a UDP port), so Nmap's wrapped submission form.
    let fp = os
        .fingerprints
        .first()
        .expect("fingerprint under -d")
        .replace("\nOS:", "");
    assert!(fp.starts_with("OS:SCAN(V=7.93%E=4%"), "{fp}");
    assert!(fp.contains("%OT=22%CT=80%CU=3"), "{fp}");
    assert!(fp.contains("%PV=N%DS=1%DC=I%G=Y%"), "{fp}");
    let seq = h.tcpsequence.as_ref().expect("tcpsequence");
    assert_eq!(seq.values.split(',').count(), 6, "{seq:?}");
    assert!(h.ipidsequence.is_some());
    assert!(h.tcptssequence.is_some());
    if let Some(u) = &h.uptime {
        let boot = u.lastboot.as_deref().expect("lastboot");
        // ctime: "Sat Dec  5 02:27:59 2026".
        assert_eq!(boot.split_whitespace().count(), 5, "{boot}");
    }
    // Without -d a perfect match hides the fingerprint, as Nmap's normal output does.
    let mut quiet = plan(&range(1), Some(db.clone()), 5);
    quiet.out_opts.debugging = 0;
    let hosts = scan(net(), quiet).await;
    let os = hosts[0].os.as_ref().expect("OS detection ran");
    assert_eq!(os.matches.first().map(|m| m.accuracy), Some(100));
    assert!(os.fingerprints.is_empty());
}

#[tokio::test]
async fn with_a_closed_udp_port_known_the_fingerprint_is_submittable() {
    let Some(db) = db() else { return };
    let linux = print_named(&db, "Linux 5.");
    let net = SimNet::new(LOCAL).host(
        addr(0),
        SimHost {
            open_tcp: vec![OPEN],
            persona: Some(Persona::new(portolan_os::synth::Persona::new(linux, 9))),
            ..SimHost::default()
        },
    );
    let mut p = plan(&range(1), Some(db.clone()), 5);
    p.udp = true;
    p.udp_ports = vec![161];
    let hosts = scan(net, p).await;
    let os = hosts[0].os.as_ref().expect("OS detection ran");
    let used: Vec<(Protocol, u16)> = os.ports_used.iter().map(|p| (p.proto, p.portid)).collect();
    assert_eq!(
        used,
        [
            (Protocol::Tcp, OPEN),
            (Protocol::Tcp, CLOSED),
            (Protocol::Udp, 161)
        ]
    );
    let fp = os.fingerprints.first().expect("fingerprint under -d");
    // Good conditions: Nmap's wrapped submission form, G=Y.
    assert!(fp.starts_with("OS:SCAN(V=7.93%E=4%"), "{fp}");
    assert!(fp.replace("\nOS:", "").contains("%G=Y%"), "{fp}");
}

#[tokio::test]
async fn without_nmap_os_db_only_a_coarse_guess_is_given() {
    // The database is read only to build the persona; the scan has none.
    let Some(db) = db() else { return };
    let linux = print_named(&db, "Linux 5.");
    let net = SimNet::new(LOCAL).host(
        addr(0),
        SimHost {
            open_tcp: vec![OPEN],
            persona: Some(Persona::new(portolan_os::synth::Persona::new(linux, 9))),
            ..SimHost::default()
        },
    );
    let hosts = scan(net, plan(&range(1), None, 5)).await;
    let os = hosts[0].os.as_ref().expect("OS detection ran");
    assert!(
        os.matches.is_empty(),
        "never an Nmap match: {:?}",
        os.matches
    );
    let coarse = os.coarse.as_deref().expect("a coarse guess");
    assert!(coarse.starts_with("Linux (from "), "{coarse}");
    assert!(coarse.contains("no nmap-os-db"), "{coarse}");
}

/// On this machine's loopback with raw sockets (root; run with --ignored): the same scan
/// over the Linux backend, printing what Nmap would (compare with `nmap -O -d -p PORTS
/// 127.0.0.1`). Sends packets to 127.0.0.1 only.
#[tokio::test]
#[ignore = "needs root: raw sockets on loopback"]
async fn loopback_with_raw_sockets() {
    let Some(db) = db() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let open = listener.local_addr().expect("addr").port();
    let mut p = plan("127.0.0.1", Some(db), 5);
    p.ports = vec![open, 1];
    p.mac_vendors = None;
    let scanner = Scanner {
        backend: Arc::new(portolan_engine::io::linux::LinuxBackend::default()),
        observer: &Quiet,
    };
    let mut sink = Collect::default();
    scanner
        .run(&mut p, &mut sink, &CancellationToken::new())
        .await
        .expect("scan runs");
    let h = &sink.hosts[0];
    let os = h.os.as_ref().expect("OS detection ran");
    for m in &os.matches {
        eprintln!("osmatch {} ({}%, line {})", m.name, m.accuracy, m.line);
    }
    for f in &os.fingerprints {
        eprintln!("{f}");
    }
    eprintln!(
        "distance {:?} uptime {:?}\n{:?}\n{:?}\n{:?}",
        h.distance, h.uptime, h.tcpsequence, h.ipidsequence, h.tcptssequence
    );
    assert_eq!(h.distance, Some(0));
    assert!(!os.matches.is_empty());
    drop(listener);
}

/// A buffer the dry run prints into.
#[derive(Clone, Default)]
struct Printed(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Printed {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_dry_run_prints_one_round_of_os_probes() {
    let printed = Printed::default();
    let backend = portolan_engine::io::dryrun::DryRunBackend::new(
        Arc::new(std::sync::Mutex::new(printed.clone())),
        Default::default(),
    );
    let mut p = plan(&range(1), None, 5);
    p.dry_run = true;
    let scanner = Scanner {
        backend: Arc::new(backend),
        observer: &Quiet,
    };
    let mut sink = Collect::default();
    scanner
        .run(&mut p, &mut sink, &CancellationToken::new())
        .await
        .expect("dry run");
    let text = String::from_utf8(printed.0.lock().unwrap().clone()).unwrap();
    let os: Vec<&str> = text.lines().filter(|l| l.starts_with("OS probe")).collect();
    // No port is known in a dry run: the ICMP, UDP and closed-port probes, each with its
    // retransmissions, one round.
    let dst = addr(0);
    assert_eq!(
        os.iter()
            .filter(|l| **l == format!("OS probe IE 1 > {dst}"))
            .count(),
        4,
        "{text}"
    );
    assert_eq!(
        os.iter()
            .filter(|l| **l == format!("OS probe T7 > {dst}"))
            .count(),
        4,
        "{text}"
    );
    assert_eq!(os.len(), 6 * 4, "{text}");
    assert!(sink.hosts.is_empty());
}
