//! Builders shared by the web view's tests (serve.rs through the router, browser.rs
//! through a real browser): hosts with services and script output, scans of them in a
//! store, and the store's read-only connections as `portolan serve` opens them.

// Each test file uses its own subset of these.
#![allow(dead_code)]

use portolan_model::{Host, HostStatus, Hostname, HostnameType, Port, Protocol, Script, Service};
use portolan_store::{FinishStats, ScanMeta, Source, Store};
use std::path::Path;

pub const DAY: i64 = 86_400;
pub const XSS: &str = "<script>alert(1)</script>";

/// A host up with open TCP ports: number, product, version, and a script output when given.
pub fn host(ip: &str, ports: &[(u16, &str, &str, Option<&str>)]) -> Host {
    let mut h = Host::new(ip.parse().unwrap(), HostStatus::up("syn-ack"));
    for (p, product, version, script) in ports {
        let mut port = Port::new(Protocol::Tcp, *p, "open".parse().unwrap(), "syn-ack");
        port.service = Some(Service {
            name: if *p == 22 { "ssh" } else { "http" }.into(),
            product: Some((*product).into()),
            version: Some((*version).into()),
            ..Service::default()
        });
        if let Some(out) = script {
            port.scripts.push(Script::text("banner", *out));
        }
        h.ports.push(port);
    }
    h
}

/// `h` with a reverse-DNS name.
pub fn named(mut h: Host, name: &str) -> Host {
    h.hostnames.push(Hostname {
        name: name.into(),
        kind: HostnameType::Ptr,
    });
    h
}

/// A finding as a scan's `--vulns` reports it; `title` is the first sentence of its
/// description.
pub fn finding(cve: &str, cvss: f64, kev: bool, epss: f64, title: &str) -> portolan_vuln::Finding {
    portolan_vuln::Finding {
        cve: std::sync::Arc::new(portolan_vuln::matcher::Cve {
            id: cve.into(),
            cvss: Some(cvss),
            cvss_version: Some("3.1".into()),
            severity: Some(if cvss >= 9.0 { "CRITICAL" } else { "HIGH" }.into()),
            kev_date_added: kev.then(|| "2024-07-01".into()),
            kev_ransomware: None,
            epss: Some(epss),
            epss_percentile: None,
            description: format!("{title}. More.").into(),
        }),
        product: "openbsd:openssh".into(),
        version: "9.6p1".into(),
        matched: "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:* (< 9.8p1)".into(),
        condition: None,
        basis: std::sync::Arc::new(portolan_vuln::Basis::Upstream {
            note: "upstream version only: no Debian build named".into(),
        }),
    }
}

/// `h` with `findings` as the `vulns` result of its port `port`.
pub fn with_vulns(mut h: Host, port: u16, findings: &[portolan_vuln::Finding]) -> Host {
    if let Some(p) = h.ports.iter_mut().find(|p| p.portid == port) {
        p.scripts.push(portolan_vuln::report::script(findings));
    }
    h
}

/// Records a scan of `hosts` started at `started`, complete or left interrupted; its id.
pub fn scan(store: &mut Store, started: i64, complete: bool, hosts: &[Host]) -> i64 {
    scan_with(
        store,
        started,
        complete,
        "portolan -sV 198.18.0.0/24",
        hosts,
    )
}

/// [`scan`] with its command line (`--vulns` tells a scan that looked for findings).
pub fn scan_with(
    store: &mut Store,
    started: i64,
    complete: bool,
    args: &str,
    hosts: &[Host],
) -> i64 {
    let meta = ScanMeta {
        started,
        args: args.into(),
        targets: "198.18.0.0/24".into(),
        source: Source::Scan,
        file: None,
        scanner: "portolan".into(),
        version: "0.1.0".into(),
    };
    let id = store.begin_scan(&meta).unwrap();
    for h in hosts {
        store.add_host(id, h).unwrap();
    }
    if complete {
        let stats = FinishStats {
            finished: started + 60,
            hosts_up: hosts.len() as u32,
            hosts_total: 256,
        };
        store.finish_scan(id, stats).unwrap();
    }
    id.0
}

/// `n` read-only connections to the store, as `portolan serve` opens them.
pub fn readers(path: &Path, n: usize) -> Vec<Store> {
    (0..n)
        .map(|_| Store::open_read_only(path).unwrap())
        .collect()
}
