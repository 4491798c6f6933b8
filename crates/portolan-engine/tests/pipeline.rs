//! The whole scan pipeline, without root: discovery and the raw port scan run on the
//! simulated network (`SimBackend`, a virtual clock), version detection and the connect
//! scan on loopback sockets, and every finished host lands in a sink as model hosts.

use portolan_engine::core::scan::{Share, Slot};
use portolan_engine::data::macvendor::MacPrefixTable;
use portolan_engine::data::services::ServiceTable;
use portolan_engine::io::sim::{SimBackend, SimHost, SimNet};
use portolan_engine::pipeline::{Observer, Quiet};
use portolan_engine::plan::targets::{parse_exclude_arg, parse_target, ExcludeSet, SystemResolver};
use portolan_engine::plan::timing::Template;
use portolan_engine::plan::{Discovery, Dns, ScanKind, ScanPlan, Targets, VersionPlan};
use portolan_engine::stages::version::{tls_connector, VersionOptions};
use portolan_engine::Scanner;
use portolan_model::{
    Host, HostState, OutputError, OutputOptions, PortState, RunExit, ScanRun, ServiceMethod, Sink,
};
use portolan_wire::ethernet::MacAddr;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// A sink that keeps what it is given, in order.
#[derive(Default)]
struct Collect {
    began: bool,
    hosts: Vec<Host>,
    end: Option<ScanRun>,
}

impl Sink for Collect {
    fn begin(&mut self, _run: &ScanRun) -> Result<(), OutputError> {
        self.began = true;
        Ok(())
    }
    fn host(&mut self, _run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        assert!(self.began && self.end.is_none(), "host outside begin..end");
        self.hosts.push(host.clone());
        Ok(())
    }
    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        self.end = Some(run.clone());
        Ok(())
    }
}

/// A scanner over the simulated network `backend`, telling `observer`.
fn scanner_on(backend: SimBackend, observer: &dyn Observer) -> Scanner<'_> {
    Scanner {
        backend: Arc::new(backend),
        observer,
    }
}

fn targets(specs: &[&str], excludes: &[&str]) -> Targets {
    let expansions = specs
        .iter()
        .map(|t| {
            parse_target(t)
                .and_then(|s| s.expand(false, &SystemResolver))
                .unwrap()
        })
        .collect();
    let ex: Vec<_> = excludes
        .iter()
        .flat_map(|e| parse_exclude_arg(e).unwrap())
        .collect();
    Targets {
        expansions,
        excludes: ExcludeSet::build(&ex, false, &SystemResolver).unwrap(),
        randomize: false,
    }
}

fn plan(scan: ScanKind, ports: &[u16], targets: Targets) -> ScanPlan {
    ScanPlan {
        args_line: "portolan (pipeline test)".into(),
        start: 1_700_000_000,
        scan,
        udp: false,
        no_ping: false,
        discovery: Discovery {
            connect_ports: Vec::new(),
            slots: vec![Slot::Echo, Slot::Syn(443), Slot::Ack(80), Slot::Timestamp],
            arp: true,
        },
        dns: Dns::Never,
        services: ServiceTable::builtin(),
        ports: ports.to_vec(),
        udp_ports: Vec::new(),
        share: Share::ALL,
        dry_run: false,
        payloads: Default::default(),
        version: None,
        mac_vendors: Some(Arc::new(MacPrefixTable::builtin())),
        sequential_ports: true,
        timing: Template::Aggressive.timing(),
        host_group: 64,
        out_opts: OutputOptions::default(),
        targets,
        seed: 7,
        os: None,
        traceroute: false,
        carried: Vec::new(),
    }
}

fn state_of(h: &Host, port: u16) -> Option<(PortState, &str)> {
    h.ports
        .iter()
        .find(|p| p.portid == port)
        .map(|p| (p.state, p.reason.as_str()))
}

const MAC_10: MacAddr = MacAddr([0x02, 0x42, 0xc6, 0x12, 0x00, 0x0a]);

/// ARP finds the on-link hosts (with their MACs), ICMP echo the routed one; the SYN scan
/// finds open, closed and filtered ports; the absent host is down and not reported; the
/// excluded address never sees a packet.
#[tokio::test]
async fn discovery_then_syn_scan_land_in_the_sink() {
    let net = SimNet::new(Ipv4Addr::new(198, 18, 0, 1))
        .host(
            Ipv4Addr::new(198, 18, 0, 10),
            SimHost {
                open_tcp: vec![22, 80],
                filtered_tcp: vec![443],
                mac: Some(MAC_10),
                ..SimHost::default()
            },
        )
        .host(
            Ipv4Addr::new(198, 18, 0, 11),
            SimHost {
                mac: Some(MacAddr([0x02, 0x42, 0xc6, 0x12, 0x00, 0x0b])),
                ..SimHost::default()
            },
        )
        .host(
            Ipv4Addr::new(198, 18, 0, 13),
            SimHost {
                open_tcp: vec![22],
                mac: Some(MacAddr([0x02, 0x42, 0xc6, 0x12, 0x00, 0x0d])),
                ..SimHost::default()
            },
        )
        .host(
            Ipv4Addr::new(198, 18, 1, 5),
            SimHost {
                open_tcp: vec![8080],
                echo: true,
                ..SimHost::default()
            },
        );
    let backend = SimBackend::new(net);
    let mut plan = plan(
        ScanKind::Syn,
        &[22, 80, 443, 8080],
        targets(&["198.18.0.10-13", "198.18.1.5"], &["198.18.0.13"]),
    );
    let mut sink = Collect::default();
    let scanner = scanner_on(backend.clone(), &Quiet);
    let summary = scanner
        .run(&mut plan, &mut sink, &CancellationToken::new())
        .await
        .expect("scan runs");

    assert!(!summary.interrupted);
    assert_eq!((summary.hosts_up, summary.hosts_total), (3, 4));
    let addrs: Vec<&str> = sink.hosts.iter().map(|h| h.addr_str()).collect();
    assert_eq!(addrs, ["198.18.0.10", "198.18.0.11", "198.18.1.5"]);

    let h10 = &sink.hosts[0];
    assert_eq!(h10.status.state, HostState::Up);
    assert_eq!(h10.status.reason, "arp-response");
    let mac = h10.addresses.iter().find(|a| a.addr.contains(':'));
    assert_eq!(mac.map(|a| a.addr.as_str()), Some("02:42:C6:12:00:0A"));
    assert_eq!(state_of(h10, 22), Some((PortState::Open, "syn-ack")));
    assert_eq!(state_of(h10, 80), Some((PortState::Open, "syn-ack")));
    assert_eq!(
        state_of(h10, 443),
        Some((PortState::Filtered, "no-response"))
    );
    assert_eq!(state_of(h10, 8080), Some((PortState::Closed, "reset")));
    let names: Vec<&str> = h10
        .ports
        .iter()
        .filter_map(|p| p.service.as_ref().map(|s| s.name.as_str()))
        .collect();
    assert_eq!(names, ["ssh", "http", "https", "http-alt"]);

    assert_eq!(sink.hosts[1].count_state(PortState::Closed), 4);
    let routed = &sink.hosts[2];
    assert_eq!(routed.status.state, HostState::Up);
    assert_ne!(routed.status.reason, "arp-response");
    assert_eq!(state_of(routed, 8080), Some((PortState::Open, "syn-ack")));

    let end = sink.end.expect("the run is ended");
    let stats = end.runstats.expect("runstats");
    assert_eq!(stats.exit, RunExit::Success);
    assert_eq!(
        (stats.hosts_up, stats.hosts_down, stats.hosts_total),
        (3, 1, 4)
    );
    let c = stats.completeness.expect("completeness of the port scan");
    assert!(c.answered > 0);

    let sent = backend.destinations();
    assert!(
        sent.contains(&Ipv4Addr::new(198, 18, 0, 12)),
        "the absent host was asked"
    );
    assert!(
        !sent.contains(&Ipv4Addr::new(198, 18, 0, 13)),
        "a packet went to the excluded address"
    );
}

/// A cancelled scan still ends its sink validly (exit "error") and reports no host whose
/// scan did not finish.
#[tokio::test]
async fn a_cancelled_scan_ends_the_sink_with_an_error() {
    let net = SimNet::new(Ipv4Addr::new(198, 18, 0, 1)).host(
        Ipv4Addr::new(198, 18, 0, 10),
        SimHost {
            open_tcp: vec![22],
            mac: Some(MAC_10),
            ..SimHost::default()
        },
    );
    let mut plan = plan(ScanKind::Syn, &[22], targets(&["198.18.0.10"], &[]));
    let cancel = CancellationToken::new();
    cancel.cancel();
    let mut sink = Collect::default();
    let scanner = scanner_on(SimBackend::new(net), &Quiet);
    let summary = scanner.run(&mut plan, &mut sink, &cancel).await.unwrap();
    assert!(summary.interrupted);
    assert!(sink.began && sink.hosts.is_empty());
    let stats = sink.end.and_then(|r| r.runstats).expect("ended");
    assert_eq!(stats.exit, RunExit::Error);
}

/// A banner server on loopback, answering every connection with `banner`.
async fn banner_server(banner: &'static [u8]) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(banner).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    port
}

/// Port scan on the simulated network, then -sV against the real service behind it: the
/// version lands in the sink as Nmap's fields.
#[tokio::test]
async fn version_results_land_in_the_sink() {
    let port = banner_server(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n").await;
    let net = SimNet::new(Ipv4Addr::new(198, 18, 0, 1)).host(
        Ipv4Addr::LOCALHOST,
        SimHost {
            open_tcp: vec![port],
            ..SimHost::default()
        },
    );
    let mut plan = plan(ScanKind::Syn, &[port], targets(&["127.0.0.1"], &[]));
    let (db, errors) = portolan_probes::builtin();
    assert!(errors.is_empty());
    plan.version = Some(VersionPlan {
        db: Arc::new(db),
        opts: VersionOptions {
            intensity: portolan_probes::INTENSITY_DEFAULT,
            connect_timeout: Duration::from_secs(5),
            trace: false,
        },
        all_ports: false,
        tls: tls_connector().unwrap(),
    });
    let mut sink = Collect::default();
    let scanner = scanner_on(SimBackend::new(net), &Quiet);
    scanner
        .run(&mut plan, &mut sink, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sink.hosts.len(), 1);
    let h = &sink.hosts[0];
    // Our own address is up without a probe, as in Nmap.
    assert_eq!(h.status.reason, "localhost-response");
    let p = h.ports.iter().find(|p| p.portid == port).expect("port");
    assert_eq!(p.state, PortState::Open);
    let s = p.service.as_ref().expect("service");
    assert_eq!(s.name, "ssh");
    assert_eq!(s.product.as_deref(), Some("OpenSSH"));
    assert_eq!(s.version.as_deref(), Some("9.2p1 Debian 2+deb12u3"));
    assert_eq!(s.method, ServiceMethod::Probed);
}

/// The connect scan (real loopback sockets, no root): an open and a closed port, the host
/// written once its scan finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_scan_on_loopback() {
    let open = banner_server(b"hello\r\n").await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut plan = plan(
        ScanKind::Connect,
        &[open, closed],
        targets(&["127.0.0.1"], &[]),
    );
    plan.no_ping = true;
    let mut sink = Collect::default();
    let scanner = scanner_on(
        SimBackend::new(SimNet::new(Ipv4Addr::new(198, 18, 0, 1))),
        &Quiet,
    );
    scanner
        .run(&mut plan, &mut sink, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sink.hosts.len(), 1);
    let h = &sink.hosts[0];
    assert_eq!(h.status.reason, "user-set");
    assert_eq!(state_of(h, open), Some((PortState::Open, "syn-ack")));
    assert_eq!(
        state_of(h, closed),
        Some((PortState::Closed, "conn-refused"))
    );
}

/// An observer that keeps the notes it hears.
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<String>>);

impl portolan_engine::pipeline::Observer for Notes {
    fn note(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
}

/// Regression: an interrupted raw scan wrote no host while the summary said "1 host up".
/// Now the host is written with the ports that answered (none guessed "filtered"), the
/// up count agrees with what was written, and -v told of each open port found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_raw_scan_writes_what_it_found() {
    let ip = Ipv4Addr::new(198, 18, 0, 10);
    let open: Vec<u16> = (10..=2000).step_by(10).collect();
    let net = SimNet::new(Ipv4Addr::new(198, 18, 0, 1)).host(
        ip,
        SimHost {
            open_tcp: open.clone(),
            mac: Some(MAC_10),
            ..SimHost::default()
        },
    );
    let ports: Vec<u16> = (1..=2000).collect();
    let mut plan = plan(ScanKind::Syn, &ports, targets(&["198.18.0.10"], &[]));
    plan.no_ping = true;
    plan.out_opts.verbose = 1;
    let cancel = CancellationToken::new();
    let backend = SimBackend::new(net).cancel_after(1000, cancel.clone());
    let notes = Notes::default();
    let mut sink = Collect::default();
    let scanner = scanner_on(backend.clone(), &notes);
    let summary = scanner.run(&mut plan, &mut sink, &cancel).await.unwrap();
    assert!(summary.interrupted);
    let sent = backend.destinations().len();
    assert!(sent < 2000, "the scan stopped sending ({sent} sent)");

    assert_eq!(sink.hosts.len(), 1, "the host found up is written");
    let h = &sink.hosts[0];
    assert_eq!(h.addr_str(), "198.18.0.10");
    let listed: u32 = h.ports.len() as u32 + h.extraports.iter().map(|e| e.count).sum::<u32>();
    assert!(
        listed > 0 && (listed as usize) <= sent,
        "{listed} ports reported of {sent} probed"
    );
    assert!(
        h.ports.iter().all(|p| p.reason != "no-response"),
        "an unanswered port was reported: {:?}",
        h.ports.iter().find(|p| p.reason == "no-response")
    );
    assert!(h.extraports.iter().all(|e| e.state == PortState::Closed));
    let found: Vec<u16> = h
        .ports
        .iter()
        .filter(|p| p.state == PortState::Open)
        .map(|p| p.portid)
        .collect();
    assert!(!found.is_empty(), "no open port found before the interrupt");
    assert!(found.iter().all(|p| open.contains(p)), "{found:?}");

    let stats = sink.end.and_then(|r| r.runstats).expect("ended");
    assert_eq!(stats.exit, RunExit::Error);
    assert_eq!((stats.hosts_up, stats.hosts_total), (1, 1));
    assert_eq!(summary.hosts_up, 1);

    let notes = notes.0.lock().unwrap();
    let discovered: Vec<&String> = notes
        .iter()
        .filter(|n| n.starts_with("Discovered open port "))
        .collect();
    assert_eq!(discovered.len(), found.len(), "{notes:?}");
    assert!(
        notes.contains(&format!(
            "Discovered open port {}/tcp on 198.18.0.10",
            found[0]
        )),
        "{notes:?}"
    );
}

/// An interrupted raw scan of a host that answered nothing writes no host, and then the
/// summary does not count it up either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_scan_counts_up_only_hosts_it_wrote() {
    let net = SimNet::new(Ipv4Addr::new(198, 18, 0, 1));
    let ports: Vec<u16> = (1..=2000).collect();
    let mut plan = plan(ScanKind::Syn, &ports, targets(&["198.18.0.99"], &[]));
    plan.no_ping = true;
    let cancel = CancellationToken::new();
    let backend = SimBackend::new(net).cancel_after(500, cancel.clone());
    let mut sink = Collect::default();
    let scanner = scanner_on(backend, &Quiet);
    let summary = scanner.run(&mut plan, &mut sink, &cancel).await.unwrap();
    assert!(summary.interrupted);
    assert!(sink.hosts.is_empty());
    let stats = sink.end.and_then(|r| r.runstats).expect("ended");
    assert_eq!(
        (stats.hosts_up, stats.hosts_down, stats.hosts_total),
        (0, 1, 1)
    );
    assert_eq!(summary.hosts_up, 0);
}

/// -v with a finished scan: one "Discovered open port" note per open port, none for
/// closed or filtered ones; without -v, none at all.
#[tokio::test]
async fn verbose_tells_of_each_open_port() {
    for verbose in [0, 1] {
        let net = SimNet::new(Ipv4Addr::new(198, 18, 0, 1)).host(
            Ipv4Addr::new(198, 18, 0, 10),
            SimHost {
                open_tcp: vec![22, 80],
                filtered_tcp: vec![443],
                mac: Some(MAC_10),
                ..SimHost::default()
            },
        );
        let mut plan = plan(
            ScanKind::Syn,
            &[22, 80, 443, 8080],
            targets(&["198.18.0.10"], &[]),
        );
        plan.out_opts.verbose = verbose;
        let notes = Notes::default();
        let mut sink = Collect::default();
        let scanner = scanner_on(SimBackend::new(net), &notes);
        scanner
            .run(&mut plan, &mut sink, &CancellationToken::new())
            .await
            .unwrap();
        let mut discovered: Vec<String> = notes
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.starts_with("Discovered"))
            .cloned()
            .collect();
        discovered.sort();
        let want: &[&str] = if verbose > 0 {
            &[
                "Discovered open port 22/tcp on 198.18.0.10",
                "Discovered open port 80/tcp on 198.18.0.10",
            ]
        } else {
            &[]
        };
        assert_eq!(discovered, want);
    }
}

/// Regression: a raw scan whose range held the on-link broadcast address aborted ("connect
/// (UDP, for source address): Permission denied") and scanned nothing. The broadcast
/// address is skipped (no packet, not counted up, a note says why) and the rest scanned.
#[tokio::test]
async fn a_broadcast_address_in_the_range_is_skipped() {
    let net = SimNet::new(Ipv4Addr::new(198, 18, 10, 1)).host(
        Ipv4Addr::new(198, 18, 10, 254),
        SimHost {
            open_tcp: vec![80],
            ..SimHost::default()
        },
    );
    let backend = SimBackend::new(net);
    let mut plan = plan(ScanKind::Syn, &[80], targets(&["198.18.10.250-255"], &[]));
    plan.no_ping = true;
    let notes = Notes::default();
    let mut sink = Collect::default();
    let scanner = scanner_on(backend.clone(), &notes);
    let summary = scanner
        .run(&mut plan, &mut sink, &CancellationToken::new())
        .await
        .expect("the scan goes on past the broadcast address");
    assert!(!summary.interrupted);
    let addrs: Vec<&str> = sink.hosts.iter().map(|h| h.addr_str()).collect();
    assert_eq!(
        addrs,
        [
            "198.18.10.250",
            "198.18.10.251",
            "198.18.10.252",
            "198.18.10.253",
            "198.18.10.254"
        ]
    );
    assert_eq!(
        state_of(&sink.hosts[4], 80),
        Some((PortState::Open, "syn-ack"))
    );
    let stats = sink.end.and_then(|r| r.runstats).expect("ended");
    assert_eq!(stats.exit, RunExit::Success);
    assert_eq!((stats.hosts_up, stats.hosts_total), (5, 6));
    assert!(
        !backend
            .destinations()
            .contains(&Ipv4Addr::new(198, 18, 10, 255)),
        "a packet went to the broadcast address"
    );
    let notes = notes.0.lock().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("198.18.10.255") && n.contains("broadcast")),
        "{notes:?}"
    );
}

/// --traceroute on the simulated network: two hosts behind the same three routers (the
/// middle one silent) are traced with the probe Nmap would pick (a SYN to a closed port
/// over an echo request or a SYN to an open port); a host on our link is one hop away.
#[tokio::test]
async fn traceroute_through_simulated_routers() {
    let r = |s: &str| Some(s.parse::<Ipv4Addr>().unwrap());
    let path = vec![r("198.18.0.2"), None, r("198.18.1.6")];
    let far = SimHost {
        echo: true,
        path,
        ..SimHost::default()
    };
    let net = SimNet::new("198.18.0.1".parse().unwrap())
        .host(
            "198.18.2.10".parse().unwrap(),
            SimHost {
                open_tcp: vec![80],
                ..far.clone()
            },
        )
        .host("198.18.2.11".parse().unwrap(), far)
        .host(
            "198.18.0.10".parse().unwrap(),
            SimHost {
                open_tcp: vec![22],
                echo: true,
                mac: Some(MAC_10),
                ..SimHost::default()
            },
        );
    let specs = ["198.18.2.10-11", "198.18.0.10"];
    let mut p = plan(ScanKind::Syn, &[22, 80], targets(&specs, &[]));
    p.traceroute = true;
    // Found up by an echo request, which a closed port's RST then outranks.
    p.discovery.slots = vec![Slot::Echo];
    let mut sink = Collect::default();
    let summary = scanner_on(SimBackend::new(net), &Quiet)
        .run(&mut p, &mut sink, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.hosts_up, 3);
    let trace = |ip: &str| {
        let h = sink.hosts.iter().find(|h| h.addr_str() == ip).expect(ip);
        h.trace.clone().expect("traced")
    };
    for ip in ["198.18.2.10", "198.18.2.11"] {
        let t = trace(ip);
        assert_eq!(
            (t.port, t.proto.as_deref()),
            (Some(22), Some("tcp")),
            "{ip}"
        );
        let hops: Vec<(u32, &str, &str)> = t
            .hops
            .iter()
            .filter(|h| h.ipaddr.is_some())
            .map(|h| {
                let (a, rtt) = (h.ipaddr.as_deref(), h.rtt.as_deref());
                (h.ttl, a.unwrap_or(""), rtt.unwrap_or(""))
            })
            .collect();
        // The silent router's hop timed out (no address: Nmap's XML leaves it out).
        assert_eq!(t.hops[1].ttl, 2);
        assert_eq!((&t.hops[1].ipaddr, &t.hops[1].rtt), (&None, &None));
        assert_eq!(
            hops,
            [
                (1, "198.18.0.2", "1.00"),
                (3, "198.18.1.6", "1.00"),
                (4, ip, "1.00")
            ],
            "{ip}"
        );
    }
    let lan = trace("198.18.0.10");
    assert_eq!((lan.port, lan.proto), (None, None));
    let hops: Vec<(u32, Option<&str>)> = lan
        .hops
        .iter()
        .map(|h| (h.ttl, h.ipaddr.as_deref()))
        .collect();
    assert_eq!(hops, [(1, Some("198.18.0.10"))]);
}
