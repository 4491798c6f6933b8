//! The engine running Nmap's installed nse_main.lua and scripts against services on
//! loopback. Skipped, with a message, where Nmap's scripts are not installed.

use portolan_model::{Host, HostState, HostStatus, Port, PortState, Protocol, Service};
use portolan_nse::{Config, Engine, Phase};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

fn dirs() -> Option<Vec<PathBuf>> {
    let d = PathBuf::from("/usr/share/nmap");
    if d.join("nse_main.lua").is_file() {
        Some(vec![d])
    } else {
        eprintln!("skipped: Nmap's scripts are not installed (/usr/share/nmap)");
        None
    }
}

fn loopback_only() -> portolan_nse::Guard {
    Arc::new(|ip: IpAddr| {
        if ip.is_loopback() {
            Ok(())
        } else {
            Err(format!("{ip} is outside the scan"))
        }
    })
}

fn host_with(port: u16, service: &str) -> Host {
    let mut h = Host::new(
        "127.0.0.1".parse().unwrap(),
        HostStatus {
            state: HostState::Up,
            reason: "localhost-response".into(),
            reason_ttl: 0,
        },
    );
    let mut p = Port::new(Protocol::Tcp, port, PortState::Open, "syn-ack");
    p.service = Some(Service::from_table(service));
    h.ports.push(p);
    h
}

/// A TCP service that greets every client with `greeting` and reads what it sends.
fn greeter(greeting: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let _ = c.write_all(greeting);
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
            });
        }
    });
    port
}

#[test]
fn banner_reads_the_greeting() {
    let Some(dirs) = dirs() else { return };
    let port = greeter(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
    let engine = Engine::new(Config::new(dirs, vec!["banner".into()], loopback_only())).unwrap();
    let (hosts, run) = engine
        .run(Phase::Scan, vec![host_with(port, "ssh")])
        .unwrap();
    assert!(run.is_empty());
    let scripts = &hosts[0].ports[0].scripts;
    assert_eq!(scripts.len(), 1, "{scripts:?}");
    assert_eq!(scripts[0].id, "banner");
    assert_eq!(scripts[0].output, "SSH-2.0-OpenSSH_9.2p1 Debian-2");
}
