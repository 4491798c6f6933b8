//! The whole scan pipeline, without root: discovery and the raw port scan run on the
//! simulated network (`SimBackend`, a virtual clock), version detection and the connect
//! scan on loopback sockets, and every finished host lands in a sink as model hosts.

use portolan_engine::core::scan::{Share, Slot};
use portolan_engine::data::macvendor::MacPrefixTable;
use portolan_engine::data::services::ServiceTable;
use portolan_engine::io::sim::{SimBackend, SimHost, SimNet};
use portolan_engine::plan::targets::{parse_exclude_arg, parse_target, ExcludeSet, SystemResolver};
use portolan_engine::plan::timing::Template;
use portolan_engine::plan::{Discovery, Dns, ScanKind, ScanPlan, Targets, VersionPlan};
use portolan_engine::stages::version::{tls_connector, VersionOptions};
use portolan_engine::{pipeline::Quiet, Scanner};
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
    let scanner = Scanner {
        backend: Arc::new(backend.clone()),
        observer: &Quiet,
    };
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
    let scanner = Scanner {
        backend: Arc::new(SimBackend::new(net)),
        observer: &Quiet,
    };
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
    let scanner = Scanner {
        backend: Arc::new(SimBackend::new(net)),
        observer: &Quiet,
    };
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
    let scanner = Scanner {
        backend: Arc::new(SimBackend::new(SimNet::new(Ipv4Addr::new(198, 18, 0, 1)))),
        observer: &Quiet,
    };
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
