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

/// Records a scan of `hosts` started at `started`, complete or left interrupted; its id.
pub fn scan(store: &mut Store, started: i64, complete: bool, hosts: &[Host]) -> i64 {
    let meta = ScanMeta {
        started,
        args: "portolan -sV 198.18.0.0/24".into(),
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
