//! Data for bench/store.sh.
//!
//! - `fill DB DAYS`: DAYS daily complete scans of 10.20.0.0/20 (4096 hosts, 5 open ports
//!   each with services), the last one starting an hour ago, with a few changes a day
//!   (ports opening and closing, versions changing, hosts leaving and coming back).
//! - `last-two DB`: times `last_two_of_same_targets` (what `diff --last` reads).
//! - `changes DB DAYS`: times `changes_since` over the last DAYS days (the web view's change
//!   feed when the server has none kept), 3 runs on one connection.
//! - `xml FILE HOSTS PORTS [later]`: writes an Nmap-style XML file of HOSTS hosts with PORTS
//!   open ports each, for timing `portolan import`; `later`, the same network scanned again
//!   with changes, for `portolan diff` (bench/diff-memory.sh): every 50th host gone, as many
//!   new ones after the last, every 7th host's first port closed, every 11th a new version.

use portolan_model::{
    Host, HostStatus, OutputOptions, Port, PortState, Protocol, RunExit, RunStats, ScanRun,
    Service, ServiceMethod, Sink,
};
use portolan_store::{FinishStats, ScanMeta, Source, Store};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

const SERVICES: &[(u16, &str, &str, &str)] = &[
    (22, "ssh", "OpenSSH", "8.9p1"),
    (80, "http", "nginx", "1.24.0"),
    (443, "https", "nginx", "1.24.0"),
    (3306, "mysql", "MySQL", "8.0.36"),
    (5432, "postgresql", "PostgreSQL DB", "15.4"),
    (8080, "http-proxy", "Apache Tomcat", "9.0.80"),
    (25, "smtp", "Postfix smtpd", ""),
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn port(p: u16, name: &str, product: &str, version: &str) -> Port {
    let mut port = Port::new(Protocol::Tcp, p, PortState::Open, "syn-ack");
    port.service = Some(Service {
        name: name.into(),
        product: Some(product.into()),
        version: (!version.is_empty()).then(|| version.into()),
        method: ServiceMethod::Probed,
        conf: 10,
        ..Service::default()
    });
    port
}

fn ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 20, 0, 0)) + i))
}

fn fill(db: &str, days: i64) -> Result<(), Box<dyn std::error::Error>> {
    let mut store = Store::open(db)?;
    let hosts_n = 4096u32;
    // Each host: 5 of the services, chosen by its number; state that drifts day by day.
    let mut hosts: Vec<Option<Vec<Port>>> = (0..hosts_n)
        .map(|i| {
            Some(
                (0..5)
                    .map(|k| {
                        let (p, n, pr, v) = SERVICES[(i as usize + k) % SERVICES.len()];
                        port(p, n, pr, v)
                    })
                    .collect(),
            )
        })
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let now = portolan_store::query::now();
    let t0 = Instant::now();
    let mut ports_written = 0u64;
    for d in 0..days {
        // A few changes a day.
        for _ in 0..5 {
            let h = rng.below(hosts_n as u64) as usize;
            match (rng.below(4), &mut hosts[h]) {
                (0, Some(ports)) => ports.push(port(9000 + rng.below(100) as u16, "x", "X", "1")),
                (1, Some(ports)) if ports.len() > 1 => {
                    ports.remove(rng.below(ports.len() as u64) as usize);
                }
                (2, Some(ports)) => {
                    let k = rng.below(ports.len() as u64) as usize;
                    if let Some(s) = ports[k].service.as_mut() {
                        s.version = Some(format!("{}.{}", d, rng.below(10)));
                    }
                }
                (_, slot) => {
                    *slot = match slot.take() {
                        Some(_) => None,
                        None => Some(vec![port(22, "ssh", "OpenSSH", "9.6p1")]),
                    }
                }
            }
        }
        let started = now - 3600 - (days - 1 - d) * 86_400;
        let meta = ScanMeta {
            started,
            args: "portolan -sV 10.20.0.0/20".into(),
            targets: "10.20.0.0/20".into(),
            source: Source::Scan,
            file: None,
            scanner: "portolan".into(),
            version: "0.1.0".into(),
        };
        let id = store.begin_scan(&meta)?;
        let batch: Vec<Host> = hosts
            .iter()
            .enumerate()
            .filter_map(|(i, ports)| {
                let ports = ports.as_ref()?;
                let mut h = Host::new(ip(i as u32), HostStatus::up("syn-ack"));
                h.ports = ports.clone();
                h.ports.sort_by_key(|p| p.portid);
                ports_written += ports.len() as u64;
                Some(h)
            })
            .collect();
        store.add_hosts(id, &batch)?;
        store.finish_scan(
            id,
            FinishStats {
                finished: started + 600,
                hosts_up: batch.len() as u32,
                hosts_total: hosts_n,
            },
        )?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "filled {days} scans, {ports_written} port observations in {secs:.1} s ({:.0} ports/s)",
        ports_written as f64 / secs
    );
    Ok(())
}

fn last_two(db: &str) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let store = Store::open(db)?;
    let opened = t0.elapsed().as_secs_f64();
    let (old, new) = store
        .last_two_of_same_targets(None)?
        .ok_or("fewer than two scans of the same targets")?;
    let total = t0.elapsed().as_secs_f64();
    println!(
        "last two: {} and {} hosts rebuilt in {:.3} s (open + check {:.3} s)",
        old.hosts.len(),
        new.hosts.len(),
        total,
        opened
    );
    Ok(())
}

fn changes(db: &str, days: i64) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(db)?;
    let since = portolan_store::query::now() - days * 86_400;
    for _ in 0..3 {
        let t0 = Instant::now();
        let list = store.changes_since(since, None)?;
        println!(
            "changes over {days} days: {} in {:.3} s",
            list.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn xml(file: &str, hosts: u32, ports: u16, later: bool) -> Result<(), Box<dyn std::error::Error>> {
    let w = std::io::BufWriter::new(std::fs::File::create(file)?);
    let mut x = portolan_report::xml::XmlWriter::new(Box::new(w), OutputOptions::default());
    // The later scan a day after.
    let start = 1_700_000_000 + if later { 86_400 } else { 0 };
    let mut run = ScanRun::new("nmap -sV -p 1-65535 10.30.0.0/16", start);
    run.scanner = "nmap".into();
    x.begin(&run)?;
    let last = if later { hosts + hosts / 50 } else { hosts };
    let mut written = 0;
    for i in 0..last {
        if later && i < hosts && i % 50 == 0 {
            continue;
        }
        let mut h = Host::new(ip(i), HostStatus::up("syn-ack"));
        h.ports = (0..ports)
            .map(|k| {
                let (_, n, pr, v) = SERVICES[(i as usize + k as usize) % SERVICES.len()];
                let v = if later && i % 11 == 0 && k == 1 {
                    "2.0"
                } else {
                    v
                };
                port(1000 + k, n, pr, v)
            })
            .collect();
        if later && i % 7 == 0 {
            if let Some(p) = h.ports.first_mut() {
                p.state = PortState::Closed;
            }
        }
        x.host(&run, &h)?;
        written += 1;
    }
    let hosts = written;
    run.runstats = Some(RunStats {
        finished: run.start + 3600,
        elapsed: 3600.0,
        exit: RunExit::Success,
        errormsg: None,
        hosts_up: hosts,
        hosts_down: 0,
        hosts_total: hosts,
        completeness: None,
    });
    x.end(&run)?;
    println!(
        "{file}: {hosts} hosts, {} ports",
        hosts as u64 * ports as u64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: store_bench fill DB DAYS | last-two DB | changes DB DAYS | xml FILE HOSTS PORTS [later]";
    match a.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["fill", db, days] => fill(db, days.parse()?),
        ["last-two", db] => last_two(db),
        ["changes", db, days] => changes(db, days.parse()?),
        ["xml", f, h, p] => xml(f, h.parse()?, p.parse()?, false),
        ["xml", f, h, p, "later"] => xml(f, h.parse()?, p.parse()?, true),
        _ => Err(usage.into()),
    }
}
