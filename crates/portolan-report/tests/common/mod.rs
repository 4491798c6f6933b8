//! Shared by the integration tests: a hand-built scan, writer helpers, and the policy for
//! tests that need external tools.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;

use portolan_model::*;
use portolan_report::*;

/// Where the reference files live (real Nmap 7.93 output against 127.0.0.1).
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A scan with one host up (open, filtered and collapsed closed ports, version details, a
/// script, a MAC address) and one host down.
pub fn sample_run() -> ScanRun {
    let mut run = ScanRun::new(
        "portolan -sS -sV -p 1-1000 --reason -oA out scanme.example 192.0.2.9",
        1795344023,
    );
    run.scaninfo.push(ScanInfo {
        scan_type: ScanType::Syn,
        protocol: Protocol::Tcp,
        numservices: 1000,
        services: "1-1000".into(),
    });

    let mut up = Host::new("192.0.2.10".parse().unwrap(), HostStatus::up("echo-reply"));
    up.status.reason_ttl = 63;
    up.starttime = Some(1795344024);
    up.endtime = Some(1795344031);
    up.addresses.push(Address {
        addr: "00:16:3E:12:34:56".into(),
        addrtype: AddrType::Mac,
        vendor: Some("Xensource".into()),
    });
    up.hostnames = vec![
        Hostname {
            name: "scanme.example".into(),
            kind: HostnameType::User,
        },
        Hostname {
            name: "web-1.example.net".into(),
            kind: HostnameType::Ptr,
        },
    ];
    let listed = [22u16, 25, 80, 443, 631];
    up.extraports.push(ExtraPorts {
        state: PortState::Closed,
        count: 995,
        reasons: vec![ExtraReason {
            reason: "reset".into(),
            count: 995,
            proto: Some(Protocol::Tcp),
            port_list: (1..=1000).filter(|p| !listed.contains(p)).collect(),
        }],
    });
    let mut ssh = Port::new(Protocol::Tcp, 22, PortState::Open, "syn-ack");
    ssh.reason_ttl = 63;
    ssh.service = Some(Service {
        name: "ssh".into(),
        product: Some("OpenSSH".into()),
        version: Some("9.2p1 Debian 2+deb12u3".into()),
        extrainfo: Some("protocol 2.0".into()),
        ostype: Some("Linux".into()),
        method: ServiceMethod::Probed,
        conf: 10,
        cpes: vec![
            "cpe:/a:openbsd:openssh:9.2p1".into(),
            "cpe:/o:linux:linux_kernel".into(),
        ],
        ..Service::default()
    });
    let mut smtp = Port::new(Protocol::Tcp, 25, PortState::Filtered, "no-response");
    smtp.service = Some(Service::from_table("smtp"));
    let mut http = Port::new(Protocol::Tcp, 80, PortState::Open, "syn-ack");
    http.reason_ttl = 63;
    http.service = Some(Service {
        name: "http".into(),
        product: Some("nginx".into()),
        version: Some("1.22.1".into()),
        method: ServiceMethod::Probed,
        conf: 10,
        cpes: vec!["cpe:/a:igor_sysoev:nginx:1.22.1".into()],
        ..Service::default()
    });
    http.scripts.push(Script {
        id: "http-title".into(),
        output: "Welcome to nginx!".into(),
        content: Vec::new(),
    });
    let mut https = Port::new(Protocol::Tcp, 443, PortState::Open, "syn-ack");
    https.reason_ttl = 63;
    https.service = Some(Service {
        name: "http".into(),
        product: Some("nginx".into()),
        tunnel: Some("ssl".into()),
        method: ServiceMethod::Probed,
        conf: 10,
        ..Service::default()
    });
    https.scripts.push(Script {
        id: "ssl-cert".into(),
        output: "Subject: commonName=web-1.example.net\nNot valid after:  2027-01-01T00:00:00"
            .into(),
        content: Vec::new(),
    });
    let mut ipp = Port::new(Protocol::Tcp, 631, PortState::Open, "syn-ack");
    ipp.reason_ttl = 63;
    ipp.service = Some(Service::from_table("ipp"));
    up.ports = vec![ssh, smtp, http, https, ipp];
    up.times = Some(Times {
        srtt: 12345,
        rttvar: 3000,
        to: 100000,
    });

    let down = Host::new(
        "192.0.2.9".parse().unwrap(),
        HostStatus::down("no-response"),
    );

    run.hosts = vec![up, down];
    run.runstats = Some(RunStats {
        finished: 1795344031,
        elapsed: 8.25,
        exit: RunExit::Success,
        errormsg: None,
        hosts_up: 1,
        hosts_down: 1,
        hosts_total: 2,
        completeness: None,
    });
    run
}

/// Feeds a whole run to a sink, as the engine would.
pub fn feed(sink: &mut dyn Sink, run: &ScanRun) {
    sink.begin(run).unwrap();
    for h in &run.hosts {
        sink.host(run, h).unwrap();
    }
    sink.end(run).unwrap();
}

pub fn xml_of(run: &ScanRun) -> String {
    let mut w = XmlWriter::new(Vec::new(), OutputOptions::default()).with_utc(true);
    feed(&mut w, run);
    String::from_utf8(w.into_inner()).unwrap()
}

pub fn normal_of(run: &ScanRun, opts: OutputOptions, file: bool) -> String {
    let mut w = NormalWriter::new(Vec::new(), opts, file).with_utc(true);
    feed(&mut w, run);
    String::from_utf8(w.into_inner()).unwrap()
}

pub fn grepable_of(run: &ScanRun, opts: OutputOptions) -> String {
    let mut w = GrepableWriter::new(Vec::new(), opts).with_utc(true);
    feed(&mut w, run);
    String::from_utf8(w.into_inner()).unwrap()
}

pub fn json_of(run: &ScanRun) -> String {
    let mut w = JsonWriter::new(Vec::new(), OutputOptions::default());
    feed(&mut w, run);
    String::from_utf8(w.into_inner()).unwrap()
}

/// Whether a test needing the external `tool` may run, `probe` telling whether it works.
/// A missing tool skips the test with a message, except under PORTOLAN_LAB=required (what
/// scripts/test.sh sets as root, after installing every tool), where it fails the test.
pub fn external(tool: &str, probe: &mut Command) -> bool {
    let ok = probe.output().map(|o| o.status.success()).unwrap_or(false);
    external_if(tool, ok)
}

/// As [`external`], for a condition already checked.
pub fn external_if(tool: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var("PORTOLAN_LAB").as_deref() == Ok("required") {
        panic!(
            "{tool} is required for this test (PORTOLAN_LAB=required): run scripts/install-lab-deps.sh as root"
        );
    }
    eprintln!("skipped: needs {tool}; run scripts/test.sh as root to install it");
    false
}

/// `sample_run` with hostile text everywhere a banner or user input can reach: markup
/// characters, `--` (illegal in comments), characters XML 1.0 forbids (NUL, C0 controls,
/// U+FFFE), C1 controls, CDATA and comment terminators, entity look-alikes.
pub fn nasty_run() -> ScanRun {
    let mut run = sample_run();
    run.args = "portolan --script \"a&b\" -p- <x> -- --- -->\u{1}".into();
    let nasty = "<&>\"' -- --> ]]> &amp; &#0; \u{0}\u{1}\u{1b}[31m\u{7f}\u{85}\u{fffe}\u{ffff} \t\r\n é ✓ \\x41";
    let h = &mut run.hosts[0];
    h.hostnames[0].name = format!("user{nasty}");
    h.addresses[1].vendor = Some(nasty.into());
    let p = &mut h.ports[0];
    p.reason = format!("syn-ack{nasty}");
    let svc = p.service.as_mut().unwrap();
    svc.product = Some(nasty.into());
    svc.version = Some(nasty.into());
    svc.extrainfo = Some(nasty.into());
    svc.servicefp = Some(nasty.into());
    svc.cpes.push(format!("cpe:/a:{nasty}"));
    p.scripts.push(Script {
        id: "banner".into(),
        output: nasty.into(),
        content: Vec::new(),
    });
    h.extraports[0].reasons[0].reason = nasty.into();
    let rs = run.runstats.as_mut().unwrap();
    rs.exit = RunExit::Error;
    rs.errormsg = Some(nasty.into());
    run
}
