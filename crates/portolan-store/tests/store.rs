//! The history store: schema, writing (scans, imports, two writers at once), damaged files,
//! and the queries over synthetic scans.

use portolan_model::{
    Host, HostStatus, Hostname, HostnameType, Port, PortState, Protocol, ScanRun, Service,
};
use portolan_store::{
    schema, Backend, ChangeKind, FinishStats, Imported, ScanMeta, Source, Store, StoreError,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where a test's stores live: files in a temporary directory, or databases of the test
/// process's PostgreSQL cluster (one new database per store name).
struct Loc {
    dir: tempfile::TempDir,
    pg: Option<(&'static portolan_testpg::TestPg, String)>,
    made: RefCell<HashMap<String, String>>,
}

impl Loc {
    fn sqlite() -> Loc {
        Loc {
            dir: tempfile::tempdir().unwrap(),
            pg: None,
            made: RefCell::default(),
        }
    }
    /// None (the test said "skipped") when there is no PostgreSQL to test with.
    fn postgres(test: &str) -> Option<Loc> {
        let pg = portolan_testpg::TestPg::shared()?;
        Some(Loc {
            dir: tempfile::tempdir().unwrap(),
            pg: Some((pg, test.to_string())),
            made: RefCell::default(),
        })
    }
    /// The location of the store called `name` in this test: the same each time asked.
    fn path(&self, name: &str) -> String {
        let mut made = self.made.borrow_mut();
        let url = made
            .entry(name.to_string())
            .or_insert_with(|| match &self.pg {
                None => self.dir.path().join(name).to_string_lossy().into_owned(),
                Some((pg, test)) => pg.fresh_db(&format!("{test}_{name}")),
            });
        url.clone()
    }
    /// Sets the schema version of the store at `path` by hand.
    fn set_version(&self, path: &str, v: u32) {
        let store = Store::open(path).unwrap();
        let sql = match store.backend() {
            Backend::Sqlite => format!("PRAGMA user_version = {v}"),
            Backend::Postgres => format!("UPDATE portolan_schema SET version = {v}"),
        };
        store.execute_batch(&sql).unwrap();
    }
}

/// Runs a test on SQLite and on PostgreSQL: `NAME::sqlite` and `NAME::postgres`.
macro_rules! both {
    ($name:ident, |$loc:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn sqlite() {
                let $loc = &Loc::sqlite();
                $body
            }
            #[test]
            fn postgres() {
                if let Some($loc) = &Loc::postgres(stringify!($name)) {
                    $body
                }
            }
        }
    };
}

/// One number an ad-hoc query gives.
fn count(store: &Store, sql: &str) -> i64 {
    store.sql_rows(sql).unwrap()[0][0].parse().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../portolan-report/tests/data")
        .join(name)
}

/// A listed port: number, state, and (product, version) when probed.
type P<'a> = (u16, &'a str, Option<(&'a str, &'a str)>);

fn host(ip: &str, ports: &[P]) -> Host {
    let mut h = Host::new(ip.parse().unwrap(), HostStatus::up("syn-ack"));
    for (p, state, svc) in ports {
        let mut port = Port::new(Protocol::Tcp, *p, state.parse().unwrap(), "syn-ack");
        port.service = svc.map(|(product, version)| Service {
            name: "svc".into(),
            product: Some(product.into()),
            version: Some(version.into()),
            ..Service::default()
        });
        h.ports.push(port);
    }
    h
}

fn meta(started: i64, targets: &str) -> ScanMeta {
    ScanMeta {
        started,
        args: format!("portolan -sV {targets}"),
        targets: targets.into(),
        source: Source::Scan,
        file: None,
        scanner: "portolan".into(),
        version: "0.1.0".into(),
    }
}

/// One complete scan of `targets` at `started` with `hosts`.
fn scan(store: &mut Store, started: i64, targets: &str, hosts: &[Host]) {
    let id = store.begin_scan(&meta(started, targets)).unwrap();
    for h in hosts {
        store.add_host(id, h).unwrap();
    }
    let stats = FinishStats {
        finished: started + 60,
        hosts_up: hosts.len() as u32,
        hosts_total: 256,
    };
    store.finish_scan(id, stats).unwrap();
}

#[test]
fn migrates_an_empty_store_and_reopens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::CURRENT);
    let tables: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN
             ('scans','hosts_seen','portsets','portset_ports','ports_seen')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 5);
    let mode: String = store
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(store);
    // An empty file is a new store too.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        Store::open(&empty).unwrap().schema_version().unwrap(),
        schema::CURRENT
    );
    assert_eq!(
        Store::open(&path).unwrap().schema_version().unwrap(),
        schema::CURRENT
    );
}

#[test]
fn a_store_from_a_newer_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    drop(Store::open(&path).unwrap());
    {
        let c = rusqlite_conn(&path);
        c.pragma_update(None, "user_version", schema::CURRENT + 1)
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    match Store::open(&path) {
        Err(e @ StoreError::TooNew { found, supported }) => {
            assert_eq!((found, supported), (schema::CURRENT + 1, schema::CURRENT));
            assert!(e.to_string().contains("newer than this build"), "{e}");
        }
        other => panic!("expected TooNew, got {:?}", other.err()),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

fn rusqlite_conn(path: &Path) -> portolan_store::rusqlite::Connection {
    portolan_store::rusqlite::Connection::open(path).unwrap()
}

#[test]
fn a_file_that_is_not_a_store_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = b"these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let err = Store::open(&path).err().expect("refused");
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), text);
}

#[test]
fn a_damaged_store_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    {
        let mut store = Store::open(&path).unwrap();
        let hosts: Vec<Host> = (0..200)
            .map(|i| {
                host(
                    &format!("10.0.{}.{}", i / 250, i % 250 + 1),
                    &[(22, "open", Some(("OpenSSH", "9.6")))],
                )
            })
            .collect();
        scan(&mut store, 1_000, "10.0.0.0/20", &hosts);
        store
            .connection()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let _ = std::fs::remove_file(dir.path().join("h.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("h.db-shm"));
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8 * 4096, "{}", bytes.len());
    // Scribble over every page but the first (the header and schema stay readable).
    for page in 1..bytes.len() / 4096 {
        for b in &mut bytes[page * 4096..page * 4096 + 64] {
            *b = 0xA5;
        }
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = Store::open(&path).err().expect("refused");
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("left as it is"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

both!(imports_an_nmap_xml_file_once, |loc| {
    let mut store = Store::open(loc.path("h.db")).unwrap();
    let file = fixture("nmap-sv.xml");
    let run = portolan_report::read_xml_file(&file).unwrap();
    let name = file.to_string_lossy().to_string();
    let first = store.import(&run, Some(&name), "127.0.0.1").unwrap();
    assert!(matches!(first, Imported::Added(_)));
    let again = store.import(&run, Some(&name), "127.0.0.1").unwrap();
    assert!(matches!(again, Imported::AlreadyThere(_)));

    let history = store.history().unwrap();
    assert_eq!(history.len(), 1);
    let h = &history[0];
    assert!(h.complete);
    assert_eq!(h.source, "import");
    assert_eq!(h.started, 1795344027);
    assert_eq!(h.finished, Some(1795344034));
    assert_eq!((h.hosts_up, h.hosts_total), (1, 1));
    assert_eq!(h.file.as_deref(), Some(name.as_str()));

    let hosts = store.hosts().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].address, "127.0.0.1");
    let ports: Vec<u16> = hosts[0].ports.iter().map(|p| p.port).collect();
    assert_eq!(ports, vec![22, 2024, 8080]);
    let ssh = store.services(Some(22), None).unwrap();
    assert_eq!(ssh.len(), 1);
    assert_eq!(ssh[0].port.product.as_deref(), Some("OpenSSH"));
    assert_eq!(
        ssh[0].port.version.as_deref(),
        Some("9.2p1 Debian 2+deb12u3")
    );
    let py = store.services(None, Some("simplehttp")).unwrap();
    assert_eq!(py.len(), 1);
    assert_eq!(py[0].port.port, 8080);

    // Rebuilt from the store, the run has the same hosts, ports and services.
    let id = match first {
        Imported::Added(id) => id,
        Imported::AlreadyThere(id) => id,
    };
    let back = store.load_run(id).unwrap();
    assert_eq!(back.args, run.args);
    assert_eq!(back.hosts.len(), run.hosts.len());
    for (a, b) in back.hosts.iter().zip(&run.hosts) {
        assert_eq!(a.addr_str(), b.addr_str());
        assert_eq!(a.status.state, b.status.state);
        assert_eq!(a.hostnames, b.hostnames);
        let pa: Vec<_> = a
            .ports
            .iter()
            .map(|p| (p.portid, p.state, p.service.as_ref().map(|s| &s.product)))
            .collect();
        let pb: Vec<_> = b
            .ports
            .iter()
            .map(|p| (p.portid, p.state, p.service.as_ref().map(|s| &s.product)))
            .collect();
        assert_eq!(pa, pb);
        let ea: Vec<_> = a.extraports.iter().map(|e| (e.state, e.count)).collect();
        let eb: Vec<_> = b.extraports.iter().map(|e| (e.state, e.count)).collect();
        assert_eq!(ea, eb);
    }
});

both!(imports_every_nmap_fixture, |loc| {
    let mut store = Store::open(loc.path("h.db")).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            let run = portolan_report::read_xml_file(&path).unwrap();
            let name = path.to_string_lossy().to_string();
            store.import(&run, Some(&name), "t").unwrap();
            n += 1;
        }
    }
    assert!(n >= 10);
    assert_eq!(store.history().unwrap().len(), n);
});

const DAY: i64 = 86_400;

both!(changes_between_scans_with_when_first_seen, |loc| {
    let mut store = Store::open(loc.path("h.db")).unwrap();
    let t = "10.0.0.0/24";
    let base = 1_700_000_000;
    let ssh = |v: &'static str| (22, "open", Some(("OpenSSH", v)));
    // Day 0: two hosts. Day 1: 80 opens on .1, .2 disappears. Day 2: ssh upgraded on .1,
    // .3 appears. Day 3: 80 closes on .1 (now closed). Day 4: no change.
    let d0 = [
        host("10.0.0.1", &[ssh("8.9")]),
        host("10.0.0.2", &[ssh("8.9")]),
    ];
    let d1 = [host("10.0.0.1", &[ssh("8.9"), (80, "open", None)])];
    let d2 = [
        host("10.0.0.1", &[ssh("9.6"), (80, "open", None)]),
        host("10.0.0.3", &[]),
    ];
    let d3 = [
        host("10.0.0.1", &[ssh("9.6"), (80, "closed", None)]),
        host("10.0.0.3", &[]),
    ];
    for (i, hosts) in [&d0[..], &d1, &d2, &d3, &d3].iter().enumerate() {
        scan(&mut store, base + i as i64 * DAY, t, hosts);
    }
    // Another set of targets: says nothing about 10.0.0.0/24.
    scan(&mut store, base + DAY, "10.0.0.2", &[]);

    let all = store.changes_since(base, None).unwrap();
    let got: Vec<(i64, &str, ChangeKind, Option<u16>)> = all
        .iter()
        .map(|c| {
            (
                (c.first_seen - base) / DAY,
                c.address.as_str(),
                c.kind,
                c.port,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "10.0.0.1", ChangeKind::PortOpened, Some(80)),
            (1, "10.0.0.2", ChangeKind::HostDisappeared, None),
            (2, "10.0.0.1", ChangeKind::ServiceChanged, Some(22)),
            (2, "10.0.0.3", ChangeKind::HostAppeared, None),
            (3, "10.0.0.1", ChangeKind::PortClosed, Some(80)),
        ]
    );
    let upgrade = &all[2];
    assert_eq!(upgrade.before.as_deref(), Some("svc OpenSSH 8.9"));
    assert_eq!(upgrade.after.as_deref(), Some("svc OpenSSH 9.6"));
    assert_eq!(all[4].after.as_deref(), Some("closed"));

    // Since day 2: only what day 2 and later showed (day 1 is the baseline).
    let recent = store.changes_since(base + 2 * DAY, None).unwrap();
    assert_eq!(recent.len(), 3);
    assert!(recent.iter().all(|c| c.first_seen >= base + 2 * DAY));
    // Filtered by address block.
    let one = store
        .changes_since(base, Some("10.0.0.3/32".parse().unwrap()))
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].kind, ChangeKind::HostAppeared);
    // Nothing newer than the last scan.
    assert!(store
        .changes_since(base + 10 * DAY, None)
        .unwrap()
        .is_empty());
});

/// The changes between scans `prev` and `id` (started at `started`; their hosts rebuilt
/// whole by `load_run`, by address) found by comparing them host by host and port by port:
/// the meaning `changes_since` has, computed the plain way.
fn changes_of_whole_scans(
    (prev, old): (i64, &HashMap<String, Host>),
    (id, new): (i64, &HashMap<String, Host>),
    started: i64,
    target: Option<portolan_store::Cidr>,
    out: &mut Vec<portolan_store::Change>,
) {
    use portolan_model::HostState;
    use portolan_store::Change;
    let wanted = |a: &String| target.is_none_or(|c| c.contains_str(a));
    let old: HashMap<&String, &Host> = old.iter().filter(|(a, _)| wanted(a)).collect();
    let new: HashMap<&String, &Host> = new.iter().filter(|(a, _)| wanted(a)).collect();
    let up = |h: &Host| h.status.state == HostState::Up;
    let text = |p: &Port| {
        let s = p.service.as_ref().unwrap();
        let mut words = vec![format!(
            "{}{}",
            s.tunnel
                .as_ref()
                .map(|t| format!("{t}/"))
                .unwrap_or_default(),
            s.name
        )];
        words.extend(s.product.clone());
        words.extend(s.version.clone());
        words.extend(s.extrainfo.as_ref().map(|e| format!("({e})")));
        words.join(" ")
    };
    let change = |address: &str, kind, port: Option<&Port>, before, after| Change {
        first_seen: started,
        scan_id: id,
        previous_scan_id: prev,
        address: address.to_string(),
        kind,
        protocol: port.map(|p| p.protocol.as_str().to_string()),
        port: port.map(|p| p.portid),
        before,
        after,
        cve: None,
        cvss: None,
    };
    for (addr, o) in &old {
        match new.get(addr) {
            Some(h) if up(o) && !up(h) => out.push(change(
                addr,
                ChangeKind::HostDisappeared,
                None,
                Some("up".into()),
                Some(h.status.state.as_str().into()),
            )),
            None if up(o) => out.push(change(
                addr,
                ChangeKind::HostDisappeared,
                None,
                Some("up".into()),
                None,
            )),
            _ => {}
        }
    }
    for (addr, h) in &new {
        let Some(o) = old.get(addr).filter(|o| up(o)) else {
            if up(h) {
                out.push(change(addr, ChangeKind::HostAppeared, None, None, None));
            }
            continue;
        };
        if !up(h) {
            continue;
        }
        let open = |p: &Port| p.state == PortState::Open;
        let find = |ports: &[Port], p: &Port| {
            ports
                .iter()
                .find(|q| (q.protocol, q.portid) == (p.protocol, p.portid))
                .cloned()
        };
        for p in &h.ports {
            match find(&o.ports, p) {
                Some(b) if open(&b) && open(p) && text(&b) != text(p) => out.push(change(
                    addr,
                    ChangeKind::ServiceChanged,
                    Some(p),
                    Some(text(&b)),
                    Some(text(p)),
                )),
                Some(b) if open(&b) && !open(p) => out.push(change(
                    addr,
                    ChangeKind::PortClosed,
                    Some(p),
                    Some(b.state.as_str().into()),
                    Some(p.state.as_str().into()),
                )),
                b if open(p) && !b.as_ref().is_some_and(open) => out.push(change(
                    addr,
                    ChangeKind::PortOpened,
                    Some(p),
                    b.map(|b| b.state.as_str().into()),
                    Some(text(p)),
                )),
                _ => {}
            }
        }
        for b in &o.ports {
            if open(b) && find(&h.ports, b).is_none() {
                out.push(change(
                    addr,
                    ChangeKind::PortClosed,
                    Some(b),
                    Some(b.state.as_str().into()),
                    None,
                ));
            }
        }
    }
}

// The change feed (read a few dozen scans per query, compared in memory) against the plain
// comparison of each two consecutive complete scans rebuilt whole, on a random history of
// more scans than one read takes: hosts appearing, going down and disappearing, ports
// opening and closing (TCP and UDP on one number), versions changing, two sets of targets
// scanned in turn, scans left incomplete or interrupted (never compared), and sharded scans
// (their union compared, never a part).
both!(changes_agree_with_comparing_whole_scans, |loc| {
    use portolan_store::ShardPart;
    let mut store = Store::open(loc.path("h.db")).unwrap();
    let base = 1_700_000_000;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // Per group, per host: None when absent, else (up, ports as (udp, number, state, version)).
    type Ports = Vec<(bool, u16, &'static str, u8)>;
    let groups = ["10.1.0.0/24", "10.2.0.0/24"];
    let mut state: Vec<Vec<Option<(bool, Ports)>>> = groups
        .iter()
        .map(|_| {
            (0..24)
                .map(|i| Some((true, vec![(false, 22, "open", i % 3)])))
                .collect()
        })
        .collect();
    let to_host = |net: usize, i: usize, up: bool, ports: &Ports| {
        let ip = format!("10.{}.0.{}", net + 1, i + 1);
        let status = if up {
            HostStatus::up("syn-ack")
        } else {
            HostStatus::down("no-response")
        };
        let mut h = Host::new(ip.parse().unwrap(), status);
        for &(udp, n, st, v) in ports {
            let proto = if udp { Protocol::Udp } else { Protocol::Tcp };
            let mut port = Port::new(proto, n, st.parse().unwrap(), "syn-ack");
            port.service = Some(Service {
                name: if n == 53 {
                    "domain".into()
                } else {
                    "svc".into()
                },
                product: Some("P".into()),
                version: Some(format!("1.{v}")),
                ..Service::default()
            });
            h.ports.push(port);
        }
        h.ports.sort_by_key(|p| (p.protocol, p.portid));
        h
    };
    let days = 130;
    for day in 0..days {
        for (g, targets) in groups.iter().enumerate() {
            for _ in 0..4 {
                let slot = &mut state[g][rand(24) as usize];
                match (rand(7), slot.as_mut()) {
                    (0, Some((_, ports))) => {
                        let n = [53, 80, 443][rand(3) as usize];
                        let udp = rand(2) == 0;
                        ports.retain(|p| (p.0, p.1) != (udp, n));
                        ports.push((udp, n, ["open", "closed", "filtered"][rand(3) as usize], 0));
                    }
                    (1, Some((_, ports))) if !ports.is_empty() => {
                        ports.remove(rand(ports.len() as u64) as usize);
                    }
                    (2, Some((_, ports))) if !ports.is_empty() => {
                        let k = rand(ports.len() as u64) as usize;
                        ports[k].3 = rand(5) as u8;
                    }
                    (3, Some((_, ports))) if !ports.is_empty() => {
                        let k = rand(ports.len() as u64) as usize;
                        ports[k].2 = if ports[k].2 == "open" {
                            "closed"
                        } else {
                            "open"
                        };
                    }
                    (4, Some((up, _))) => *up = !*up,
                    (5, _) => {
                        *slot = match slot.take() {
                            Some(_) => None,
                            None => Some((true, vec![(false, 22, "open", 0)])),
                        }
                    }
                    _ => {}
                }
            }
            let hosts: Vec<Host> = state[g]
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|(up, ports)| to_host(g, i, *up, ports)))
                .collect();
            let started = base + day * DAY + g as i64 * 3600;
            let stats = FinishStats {
                finished: started + 60,
                hosts_up: hosts.len() as u32,
                hosts_total: 256,
            };
            if g == 0 && day % 9 == 4 {
                // Left incomplete (killed) or interrupted: out of the feed, whatever it saw.
                let id = store.begin_scan(&meta(started - 60, targets)).unwrap();
                store.add_hosts(id, &hosts[..hosts.len() / 2]).unwrap();
                if day % 2 == 0 {
                    store.interrupt_scan(id, stats).unwrap();
                }
            }
            if g == 1 && day % 6 == 1 {
                // Two shards, each of every other host: their union is the day's scan.
                for part in 1..=2u32 {
                    let shard = ShardPart {
                        scan_key: format!("day{day}"),
                        part,
                        parts: 2,
                    };
                    let id = store.begin_part(&meta(started, targets), &shard).unwrap();
                    let mine: Vec<Host> = hosts
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % 2 == part as usize - 1)
                        .map(|(_, h)| h.clone())
                        .collect();
                    store.add_hosts(id, &mine).unwrap();
                    store.finish_scan(id, stats).unwrap();
                }
            } else {
                scan(&mut store, started, targets, &hosts);
            }
        }
    }
    let mut complete: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    let history = store.history().unwrap();
    assert!(history.iter().any(|s| s.part.is_some()) && history.iter().any(|s| !s.complete));
    for s in history.iter().filter(|s| s.complete) {
        complete
            .entry(s.targets.clone())
            .or_default()
            .push((s.id, s.started));
    }
    assert_eq!(
        complete.values().map(Vec::len).sum::<usize>(),
        2 * days as usize
    );
    let runs: HashMap<i64, HashMap<String, Host>> = complete
        .values()
        .flatten()
        .map(|&(id, _)| {
            let run = store.load_run(portolan_store::ScanId(id)).unwrap();
            let hosts = run
                .hosts
                .into_iter()
                .map(|h| (h.addresses[0].addr.clone(), h));
            (id, hosts.collect())
        })
        .collect();
    let key = |c: &portolan_store::Change| {
        (
            c.scan_id,
            c.address.clone(),
            c.protocol.clone(),
            c.port,
            c.kind as u8,
            c.before.clone(),
            c.after.clone(),
        )
    };
    for since in [
        0,
        base + 70 * DAY,
        base + (days - 1) * DAY,
        base + 1000 * DAY,
    ] {
        for target in [None, Some("10.1.0.0/28".parse().unwrap())] {
            let mut got = store.changes_since(since, target).unwrap();
            assert!(got.windows(2).all(|w| w[0].first_seen <= w[1].first_seen));
            let mut want = Vec::new();
            for scans in complete.values() {
                for w in scans.windows(2) {
                    if w[1].1 >= since {
                        let (a, b) = (w[0].0, w[1].0);
                        let (old, new) = ((a, &runs[&a]), (b, &runs[&b]));
                        changes_of_whole_scans(old, new, w[1].1, target, &mut want);
                    }
                }
            }
            // Two spans that meet, computed apart: the whole, one after the other.
            let mid = base + 65 * DAY + 1800;
            let mut halves = store.changes_between(since, mid, target).unwrap();
            halves.extend(
                store
                    .changes_between(since.max(mid), i64::MAX, target)
                    .unwrap(),
            );
            assert_eq!(halves, got);
            got.sort_by_key(key);
            want.sort_by_key(key);
            assert_eq!(got, want, "since {since}, target {target:?}");
            if since == 0 && target.is_none() {
                let kinds: std::collections::HashSet<u8> =
                    got.iter().map(|c| c.kind as u8).collect();
                assert_eq!(kinds.len(), 5, "every kind but findings: {kinds:?}");
                assert!(got.iter().any(|c| c.protocol.as_deref() == Some("udp")));
            }
        }
    }
});

/// A finding as a scan's `--vulns` reports it (portolan-vuln writes the script result).
fn finding(cve: &str, cvss: f64, kev: bool) -> portolan_vuln::Finding {
    portolan_vuln::Finding {
        cve: std::sync::Arc::new(portolan_vuln::matcher::Cve {
            id: cve.into(),
            cvss: Some(cvss),
            cvss_version: Some("3.1".into()),
            severity: Some("HIGH".into()),
            kev_date_added: kev.then(|| "2024-07-01".into()),
            kev_ransomware: None,
            epss: Some(0.5),
            epss_percentile: None,
            description: format!("{cve}. Details.").into(),
        }),
        product: "openbsd:openssh".into(),
        version: "9.2p1".into(),
        matched: "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:* (< 9.8p1)".into(),
        condition: None,
        basis: std::sync::Arc::new(portolan_vuln::Basis::Upstream {
            note: "upstream version only".into(),
        }),
    }
}

/// A host with ssh on 22 carrying `findings` as its `vulns` result (none: no result).
fn vuln_host(ip: &str, findings: &[portolan_vuln::Finding]) -> Host {
    let mut h = host(ip, &[(22, "open", Some(("OpenSSH", "9.2p1")))]);
    if !findings.is_empty() {
        h.ports[0]
            .scripts
            .push(portolan_vuln::report::script(findings));
    }
    h
}

/// One complete scan with its own command line.
fn scan_args(store: &mut Store, started: i64, targets: &str, args: &str, hosts: &[Host]) {
    let id = store
        .begin_scan(&ScanMeta {
            args: args.into(),
            ..meta(started, targets)
        })
        .unwrap();
    for h in hosts {
        store.add_host(id, h).unwrap();
    }
    let stats = FinishStats {
        finished: started + 60,
        hosts_up: hosts.len() as u32,
        hosts_total: 256,
    };
    store.finish_scan(id, stats).unwrap();
}

both!(changes_report_findings_that_appear_and_go_away, |loc| {
    let mut store = Store::open(loc.path("v.db")).unwrap();
    let t = "10.0.0.0/24";
    let base = 1_700_000_000;
    let with = "portolan -sV --vulns 10.0.0.0/24";
    let without = "portolan -sV 10.0.0.0/24";
    let (a, b, c) = (
        finding("CVE-2024-6387", 8.1, true),
        finding("CVE-2023-38408", 9.8, false),
        finding("CVE-2023-51385", 6.5, false),
    );
    // Day 0: a, b. Day 1: b, c (a fixed, c published). Day 2: a scan without --vulns (no
    // result: says nothing). Day 3: with --vulns again, c only: b is gone since day 1.
    // Day 4: with --vulns, none left (no result on the port, and the scan looked).
    let days: [(&str, Vec<portolan_vuln::Finding>); 5] = [
        (with, vec![a.clone(), b.clone()]),
        (with, vec![b.clone(), c.clone()]),
        (without, vec![]),
        (with, vec![c.clone()]),
        (with, vec![]),
    ];
    for (i, (args, found)) in days.iter().enumerate() {
        let hosts = [vuln_host("10.0.0.1", found)];
        scan_args(&mut store, base + i as i64 * DAY, t, args, &hosts);
    }
    let all = store.changes_since(base, None).unwrap();
    type Seen<'a> = (i64, ChangeKind, Option<&'a str>, Option<f64>, Option<u16>);
    let got: Vec<Seen> = all
        .iter()
        .map(|c| {
            (
                (c.first_seen - base) / DAY,
                c.kind,
                c.cve.as_deref(),
                c.cvss,
                c.port,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                ChangeKind::VulnNew,
                Some("CVE-2023-51385"),
                Some(6.5),
                Some(22)
            ),
            (
                1,
                ChangeKind::VulnGone,
                Some("CVE-2024-6387"),
                Some(8.1),
                Some(22)
            ),
            (
                3,
                ChangeKind::VulnGone,
                Some("CVE-2023-38408"),
                Some(9.8),
                Some(22)
            ),
            (
                4,
                ChangeKind::VulnGone,
                Some("CVE-2023-51385"),
                Some(6.5),
                Some(22)
            ),
        ]
    );
    // Day 3 was compared with day 1, the scan before it that looked.
    assert_eq!(all[2].scan_id - all[2].previous_scan_id, 2);
    // Asked from day 3 on, the same: the scan that looked is found before the window.
    let from3 = store.changes_since(base + 3 * DAY, None).unwrap();
    assert_eq!(from3.len(), 2);
    assert_eq!(from3[0], all[2]);
    assert_eq!(all[0].after.as_deref(), Some("CVE-2023-51385 (CVSS 6.5)"));
    assert_eq!(
        all[1].before.as_deref(),
        Some("CVE-2024-6387 (CVSS 8.1, KEV)")
    );
    let json = serde_json::to_value(&all[0]).unwrap();
    assert_eq!(json["kind"], "vuln_new");
    assert_eq!(json["cve"], "CVE-2023-51385");
    // Other changes carry no CVE fields at all.
    scan_args(&mut store, base + 5 * DAY, t, with, &[]);
    let last = store.changes_since(base + 5 * DAY, None).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].kind, ChangeKind::HostDisappeared);
    assert!(serde_json::to_value(&last[0]).unwrap().get("cve").is_none());
});

both!(inventory_is_the_latest_complete_scan_per_host, |loc| {
    let mut store = Store::open(loc.path("h.db")).unwrap();
    let ssh = |v: &'static str| (22, "open", Some(("OpenSSH", v)));
    scan(
        &mut store,
        100,
        "10.0.0.0/24",
        &[
            host("10.0.0.1", &[ssh("8.9")]),
            host("10.0.0.2", &[ssh("8.9")]),
        ],
    );
    scan(
        &mut store,
        200,
        "10.0.0.0/24",
        &[host(
            "10.0.0.1",
            &[ssh("9.6"), (80, "open", None), (443, "closed", None)],
        )],
    );
    // Another target set, newer: wins for 10.0.0.1 and adds 10.0.1.5.
    let mut named = host("10.0.1.5", &[(443, "open", Some(("nginx", "1.24")))]);
    named.hostnames.push(Hostname {
        name: "web.example".into(),
        kind: HostnameType::Ptr,
    });
    scan(&mut store, 300, "10.0.1.5", &[named]);

    let hosts = store.hosts().unwrap();
    let addrs: Vec<&str> = hosts.iter().map(|h| h.address.as_str()).collect();
    assert_eq!(addrs, vec!["10.0.0.1", "10.0.1.5"]);
    let ports: Vec<u16> = hosts[0].ports.iter().map(|p| p.port).collect();
    assert_eq!(ports, vec![22, 80], "open ports only");
    assert_eq!(hosts[0].last_seen, 200);
    assert_eq!(hosts[1].hostnames, vec!["web.example"]);

    let ssh = store.services(Some(22), None).unwrap();
    assert_eq!(ssh.len(), 1);
    assert_eq!(ssh[0].port.version.as_deref(), Some("9.6"));
    let nginx = store.services(None, Some("NGINX")).unwrap();
    assert_eq!(nginx.len(), 1);
    assert_eq!(nginx[0].hostname.as_deref(), Some("web.example"));
    assert!(store.services(Some(25), None).unwrap().is_empty());

    // The last two of the newest scan's targets: only one scan of 10.0.1.5, so none.
    assert!(store.last_two_of_same_targets(None).unwrap().is_none());
    let (old, new) = store
        .last_two_of_same_targets(Some("10.0.0.0/24"))
        .unwrap()
        .unwrap();
    assert_eq!((old.start, new.start), (100, 200));
    assert_eq!(old.hosts.len(), 2);
    assert_eq!(new.hosts[0].ports.len(), 3);
    assert_eq!(new.hosts[0].ports[2].state, PortState::Closed);
});

both!(an_interrupted_scan_stays_incomplete_and_is_ignored, |loc| {
    let path = loc.path("h.db");
    let t = "10.0.0.0/24";
    {
        let mut store = Store::open(&path).unwrap();
        scan(
            &mut store,
            100,
            t,
            &[host("10.0.0.1", &[(22, "open", None)])],
        );
        // Killed after one host: no finish.
        let id = store.begin_scan(&meta(200, t)).unwrap();
        store
            .add_host(id, &host("10.0.0.9", &[(23, "open", None)]))
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let history = store.history().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].complete);
    assert!(!history[1].complete);
    assert_eq!(history[1].finished, None);
    // Its host is kept, but neither the inventory nor changes count it.
    let kept = count(
        &store,
        &format!(
            "SELECT count(*) FROM ports_seen WHERE scan_id = {}",
            history[1].id
        ),
    );
    assert_eq!(kept, 1);
    let hosts = store.hosts().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].address, "10.0.0.1");
    assert!(store.changes_since(0, None).unwrap().is_empty());
    assert!(store.last_two_of_same_targets(None).unwrap().is_none());
});

both!(two_scans_writing_at_once_both_land, |loc| {
    let path = loc.path("h.db");
    drop(Store::open(&path).unwrap());
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&path).unwrap();
                let id = store
                    .begin_scan(&meta(1000 + w, &format!("10.{w}.0.0/24")))
                    .unwrap();
                for i in 0..300 {
                    let h = host(
                        &format!("10.{w}.{}.{}", i / 200, i % 200 + 1),
                        &[(22, "open", None), (80 + (i % 3) as u16, "open", None)],
                    );
                    store.add_host(id, &h).unwrap();
                }
                store
                    .finish_scan(
                        id,
                        FinishStats {
                            finished: 2000,
                            hosts_up: 300,
                            hosts_total: 300,
                        },
                    )
                    .unwrap();
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let history = store.history().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|s| s.complete));
    assert_eq!(store.hosts().unwrap().len(), 600);
});

both!(a_rebuilt_run_keeps_collapsed_counts_and_names, |loc| {
    let mut store = Store::open(loc.path("h.db")).unwrap();
    let mut h = host("10.0.0.1", &[(22, "open", None)]);
    for p in 1..=30 {
        h.ports.push(Port::new(
            Protocol::Tcp,
            1000 + p,
            PortState::Closed,
            "reset",
        ));
    }
    h.collapse_ports(25, false);
    let mut run = ScanRun::new("portolan 10.0.0.1", 50);
    run.hosts.push(h.clone());
    let id = store
        .begin_scan(&ScanMeta::of_run(&run, "10.0.0.1", Source::Scan))
        .unwrap();
    store.add_hosts(id, &run.hosts).unwrap();
    let back = store.load_run(id).unwrap();
    assert_eq!(back.hosts[0].extraports[0].count, 30);
    assert_eq!(back.hosts[0].ports.len(), 1);
    assert!(back.runstats.is_none(), "never finished");
});

/// `address → host` of a run, for comparing runs whose host order may differ.
fn by_address(run: &ScanRun) -> std::collections::BTreeMap<String, &Host> {
    run.hosts
        .iter()
        .map(|h| (h.addr_str().to_string(), h))
        .collect()
}

both!(os_matches_and_script_results_are_kept, |loc| {
    let mut store = Store::open(loc.path("h.db")).unwrap();
    for name in ["nmap-os-a.xml", "nmap-os-trace.xml", "nmap-scripts.xml"] {
        let run = portolan_report::read_xml_file(fixture(name)).unwrap();
        let Imported::Added(id) = store.import(&run, Some(name), "198.18.200.0/24").unwrap() else {
            panic!("{name}: not added");
        };
        let back = store.load_run(id).unwrap();
        assert_eq!(back.prescripts, run.prescripts, "{name}");
        assert_eq!(back.postscripts, run.postscripts, "{name}");
        let (want, got) = (by_address(&run), by_address(&back));
        assert_eq!(want.len(), got.len(), "{name}");
        for (addr, h) in &want {
            let b = got[addr];
            assert_eq!(b.os, h.os, "{name} {addr}: os");
            assert_eq!(b.hostscripts, h.hostscripts, "{name} {addr}: host scripts");
            for (p, q) in h.ports.iter().zip(&b.ports) {
                assert_eq!(q.scripts, p.scripts, "{name} {addr} {}: scripts", p.portid);
            }
        }
    }
    // Something to check, not only equal emptiness.
    let run = portolan_report::read_xml_file(fixture("nmap-scripts.xml")).unwrap();
    assert!(!run.prescripts.is_empty() && !run.hosts[0].hostscripts.is_empty());
    // The flat view answers "which hosts look like what".
    let names = store
        .sql_rows(
            "SELECT address, rank, name FROM os_matches_seen
             WHERE scan_id = 1 ORDER BY address, rank LIMIT 2",
        )
        .unwrap();
    assert_eq!(
        names,
        [
            ["198.18.200.66", "0", "Linux 5.3 - 5.4"],
            ["198.18.200.66", "1", "Linux 3.2"],
        ]
    );
});

both!(port_sets_tell_script_results_apart, |loc| {
    let mut store = Store::open(loc.path("h.db")).unwrap();
    let mut with_script = host("10.0.0.1", &[(80, "open", Some(("nginx", "1.22")))]);
    with_script.ports[0]
        .scripts
        .push(portolan_model::Script::text("http-title", "Hi"));
    let plain = host("10.0.0.2", &[(80, "open", Some(("nginx", "1.22")))]);
    let plain_too = host("10.0.0.3", &[(80, "open", Some(("nginx", "1.22")))]);
    scan(
        &mut store,
        100,
        "10.0.0.0/24",
        &[with_script.clone(), plain, plain_too],
    );
    let sets = count(&store, "SELECT count(*) FROM portsets");
    assert_eq!(
        sets, 2,
        "same ports and no scripts share a set; a script makes another"
    );
    let back = store.load_run(portolan_store::ScanId(1)).unwrap();
    let got = by_address(&back);
    assert_eq!(
        got["10.0.0.1"].ports[0].scripts,
        with_script.ports[0].scripts
    );
    assert!(got["10.0.0.2"].ports[0].scripts.is_empty());
});

#[test]
fn a_version_1_store_upgrades_and_keeps_its_scans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // A store as the first release wrote it: schema 1 and one scan of one host.
        let c = rusqlite_conn(&path);
        c.execute_batch(schema::MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute_batch(
            "INSERT INTO scans (id, started, finished, args, targets, hosts_up, hosts_total,
                                complete, source)
             VALUES (1, 100, 160, 'portolan -sV 10.0.0.1', '10.0.0.1', 1, 1, 1, 'scan');
             INSERT INTO portsets (id, hash, canon, extra) VALUES (1, 0, 'x', '');
             INSERT INTO portset_ports (set_id, protocol, port, state, reason, service)
             VALUES (1, 'tcp', 22, 'open', 'syn-ack', 'ssh');
             INSERT INTO hosts_seen (scan_id, address, addrtype, state, reason, portset_id)
             VALUES (1, '10.0.0.1', 'ipv4', 'up', 'syn-ack', 1);",
        )
        .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::CURRENT);
    let old = store.load_run(portolan_store::ScanId(1)).unwrap();
    assert_eq!(old.hosts.len(), 1);
    assert_eq!(old.hosts[0].ports[0].portid, 22);
    assert!(old.hosts[0].os.is_none() && old.hosts[0].ports[0].scripts.is_empty());
    assert!(old.prescripts.is_empty() && old.postscripts.is_empty());
    // And the upgraded store takes the new content.
    let run = portolan_report::read_xml_file(fixture("nmap-os-trace.xml")).unwrap();
    let Imported::Added(id) = store.import(&run, None, "198.18.200.0/24").unwrap() else {
        panic!("not added");
    };
    let back = store.load_run(id).unwrap();
    assert_eq!(back.postscripts, run.postscripts);
    assert!(back.hosts.iter().all(|h| h.os.is_some()));
}

/// What commands that only read open: never a new file, and an empty file is not a store.
#[test]
fn open_existing_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    assert!(matches!(
        Store::open_existing(&missing),
        Err(StoreError::NotFound { .. })
    ));
    assert!(!missing.exists());
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(
        Store::open_existing(&empty),
        Err(StoreError::NotADatabase { .. })
    ));
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    let real = dir.path().join("h.db");
    drop(Store::open(&real).unwrap());
    assert_eq!(
        Store::open_existing(&real)
            .unwrap()
            .schema_version()
            .unwrap(),
        schema::CURRENT
    );
}

/// A writer held up by another one beyond its patience fails with a busy error, and the
/// store is sound for the next writer.
#[test]
fn a_writer_past_its_patience_fails_and_the_next_one_lands() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let holder = Store::open(&db).unwrap();
    let mut writer = Store::open(&db).unwrap();
    writer
        .set_patience(std::time::Duration::from_millis(100))
        .unwrap();
    holder
        .connection()
        .execute_batch("BEGIN IMMEDIATE")
        .unwrap();
    let run = ScanRun::new("portolan 10.0.0.1", 1);
    let meta = ScanMeta::of_run(&run, "10.0.0.1", Source::Scan);
    let t = std::time::Instant::now();
    assert!(writer.begin_scan(&meta).is_err());
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    holder.connection().execute_batch("ROLLBACK").unwrap();
    writer.begin_scan(&meta).unwrap();
    assert_eq!(writer.history().unwrap().len(), 1);
}

// A streamed import (hosts recorded as they are read) records what import_all records, and
// nothing at all when it is dropped without commit (a bad file found part-way).
both!(
    a_streamed_import_matches_import_all_and_commits_all_or_nothing,
    |loc| {
        let run = portolan_report::read_any(fixture("nmap-sv.xml")).unwrap();

        let mut whole = Store::open(loc.path("whole.db")).unwrap();
        let Imported::Added(id) = whole.import(&run, Some("sv.xml"), "127.0.0.1").unwrap() else {
            panic!("a new store has it already");
        };
        let expected = whole.load_run(id).unwrap();

        let mut store = Store::open(loc.path("streamed.db")).unwrap();
        let feed = |store: &mut Store, commit: bool| {
            let mut imp = store.begin_import().unwrap();
            let mut header = run.clone();
            header.hosts.clear();
            let status = imp.begin_run(&header, Some("sv.xml"), "127.0.0.1").unwrap();
            for h in &run.hosts {
                imp.add_host(h).unwrap();
            }
            imp.end_run(&header).unwrap();
            if commit {
                imp.commit().unwrap();
            }
            status
        };
        feed(&mut store, false);
        assert!(store.history().unwrap().is_empty(), "dropped: nothing kept");
        let Imported::Added(id) = feed(&mut store, true) else {
            panic!("not added");
        };
        assert_eq!(store.load_run(id).unwrap(), expected);
        assert_eq!(store.history().unwrap().len(), 1);
        // The same run again is said to be there, and its hosts are passed over.
        assert_eq!(feed(&mut store, true), Imported::AlreadyThere(id));
        assert_eq!(store.history().unwrap().len(), 1);
    }
);

both!(a_hosts_history_lists_its_complete_scans_in_order, |loc| {
    let path = loc.path("h.db");
    let mut s = Store::open(&path).unwrap();
    scan(
        &mut s,
        100,
        "10.0.0.0/24",
        &[host("10.0.0.1", &[(22, "open", None)])],
    );
    scan(
        &mut s,
        200,
        "10.0.0.0/24",
        &[host("10.0.0.1", &[(22, "open", Some(("OpenSSH", "9.6")))])],
    );
    // Interrupted: not history.
    let id = s.begin_scan(&meta(300, "10.0.0.0/24")).unwrap();
    s.add_host(id, &host("10.0.0.1", &[])).unwrap();
    let h = s.host_history("10.0.0.1").unwrap();
    let seen: Vec<(i64, bool, usize)> =
        h.iter().map(|x| (x.started, x.up, x.ports.len())).collect();
    assert_eq!(seen, [(100, true, 1), (200, true, 1)]);
    assert_eq!(h[1].ports[0].product.as_deref(), Some("OpenSSH"));
    assert_ne!(h[0].portset, h[1].portset);
    assert!(s.host_history("10.9.9.9").unwrap().is_empty());
});

both!(the_generation_moves_when_another_connection_writes, |loc| {
    let path = loc.path("h.db");
    let reader = Store::open(&path).unwrap();
    let g = reader.generation().unwrap();
    assert_eq!(reader.generation().unwrap(), g, "nothing written");
    let mut writer = Store::open_existing(&path).unwrap();
    scan(&mut writer, 100, "10.0.0.0/24", &[host("10.0.0.1", &[])]);
    assert_ne!(reader.generation().unwrap(), g);
});

both!(
    hosts_listed_down_change_only_when_they_come_up_or_go_down,
    |loc| {
        let mut s = Store::open(loc.path("h.db")).unwrap();
        let down = || {
            let mut h = host("10.0.0.5", &[]);
            h.status = HostStatus::down("no-response");
            h
        };
        let t = "10.0.0.0/24";
        scan(&mut s, 100, t, &[down()]);
        scan(&mut s, 200, t, &[host("10.0.0.5", &[(22, "open", None)])]);
        scan(&mut s, 300, t, &[down()]);
        scan(&mut s, 400, t, &[down()]);
        // Gone from the list altogether while down: nothing either.
        scan(&mut s, 500, t, &[]);
        let got: Vec<(i64, ChangeKind)> = s
            .changes_since(0, None)
            .unwrap()
            .into_iter()
            .map(|c| (c.first_seen, c.kind))
            .collect();
        assert_eq!(
            got,
            [
                (200, ChangeKind::HostAppeared),
                (300, ChangeKind::HostDisappeared)
            ]
        );
    }
);

/// The web view's store: read through a connection that cannot write, with the file's
/// journal mode and schema left as they are.
#[test]
fn a_read_only_store_reads_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    {
        let mut store = Store::open(&path).unwrap();
        scan(&mut store, 100, "10.0.0.0/30", &[host("10.0.0.1", &[])]);
    }
    // A store someone switched back to a rollback journal stays so.
    rusqlite_conn(&path)
        .pragma_update(None, "journal_mode", "delete")
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let store = Store::open_read_only(&path).unwrap();
    assert_eq!(store.history().unwrap().len(), 1);
    let mode: String = store
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    assert!(store.connection().execute("DELETE FROM scans", []).is_err());
    drop(store);
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // In WAL mode (as every write leaves it), after the writer closed: the reader brings
    // the -shm file back and reads, and sees a later write by another connection.
    drop(Store::open(&path).unwrap());
    let reader = Store::open_read_only(&path).unwrap();
    let mode: String = reader
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut writer = Store::open(&path).unwrap();
    scan(&mut writer, 200, "10.0.0.0/30", &[host("10.0.0.2", &[])]);
    assert_eq!(reader.history().unwrap().len(), 2);

    let missing = dir.path().join("typo.db");
    assert!(matches!(
        Store::open_read_only(&missing),
        Err(StoreError::NotFound { .. })
    ));
    assert!(!missing.exists());
}

/// A reader neither upgrades an older schema nor reads a newer one, and says what to do.
#[test]
fn a_read_only_store_of_another_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    {
        let c = rusqlite_conn(&old);
        c.execute_batch(schema::MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
    }
    let before = std::fs::read(&old).unwrap();
    match Store::open_read_only(&old) {
        Err(e @ StoreError::TooOld { found: 1, .. }) => {
            assert!(e.to_string().contains("portolan history --db"), "{e}");
        }
        other => panic!("expected TooOld, got {:?}", other.err()),
    }
    assert_eq!(std::fs::read(&old).unwrap(), before);

    let new = dir.path().join("new.db");
    drop(Store::open(&new).unwrap());
    rusqlite_conn(&new)
        .pragma_update(None, "user_version", schema::CURRENT + 1)
        .unwrap();
    assert!(matches!(
        Store::open_read_only(&new),
        Err(StoreError::TooNew { .. })
    ));
}

// (The SQLite file's bytes are compared in a_store_from_a_newer_version_is_refused_untouched.)
both!(
    a_newer_schema_is_refused_untouched_on_either_backend,
    |loc| {
        let path = loc.path("h.db");
        drop(Store::open(&path).unwrap());
        loc.set_version(&path, schema::CURRENT + 1);
        for open in [Store::open, Store::open_existing, Store::open_read_only] {
            match open(path.as_str()) {
                Err(StoreError::TooNew { found, supported }) => {
                    assert_eq!((found, supported), (schema::CURRENT + 1, schema::CURRENT));
                }
                other => panic!("expected TooNew, got {:?}", other.err()),
            }
        }
        // Each open after the first still found the newer version: none changed it.
    }
);

/// The PostgreSQL half of the tests, when there is a cluster to test with.
fn pg() -> Option<&'static portolan_testpg::TestPg> {
    portolan_testpg::TestPg::shared()
}

#[test]
fn postgres_migrates_a_new_database_once_under_concurrent_opens() {
    let Some(pg) = pg() else { return };
    let url = pg.fresh_db("concurrent_opens");
    let openers: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Store::open(&url).map(|s| s.schema_version().unwrap()))
        })
        .collect();
    for o in openers {
        assert_eq!(o.join().unwrap().unwrap(), schema::CURRENT);
    }
    let store = Store::open(&url).unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    assert_eq!(count(&store, "SELECT count(*) FROM portolan_schema"), 1);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN
             ('scans','hosts_seen','portsets','portset_ports','ports_seen','os_matches_seen')"
        ),
        6
    );
}

/// The web view's PostgreSQL store: reads, never writes, never upgrades.
#[test]
fn postgres_read_only_store_reads_and_cannot_write() {
    let Some(pg) = pg() else { return };
    let url = pg.fresh_db("read_only");
    {
        let mut store = Store::open(&url).unwrap();
        scan(&mut store, 100, "10.0.0.0/30", &[host("10.0.0.1", &[])]);
    }
    let reader = Store::open_read_only(&url).unwrap();
    assert_eq!(reader.history().unwrap().len(), 1);
    let g = reader.generation().unwrap();
    assert!(reader.execute_batch("DELETE FROM hosts_seen").is_err());
    let mut writer = Store::open(&url).unwrap();
    scan(&mut writer, 200, "10.0.0.0/30", &[host("10.0.0.2", &[])]);
    assert_eq!(reader.history().unwrap().len(), 2);
    assert_ne!(reader.generation().unwrap(), g);

    // An older schema is not upgraded by a reader; an empty database is not a store yet.
    let old = pg.fresh_db("read_only_old");
    writer = Store::open(&old).unwrap();
    writer
        .execute_batch("UPDATE portolan_schema SET version = 1")
        .unwrap();
    assert!(matches!(
        Store::open_read_only(&old),
        Err(StoreError::TooOld { found: 1, .. })
    ));
    assert_eq!(writer.schema_version().unwrap(), 1);
    assert!(matches!(
        Store::open_read_only(pg.fresh_db("read_only_empty")),
        Err(StoreError::TooOld { found: 0, .. })
    ));
}

/// A wrong password, no server, or no such database: a typed error naming the store,
/// never its password.
#[test]
fn postgres_connection_failures_are_clear_and_never_show_the_password() {
    let Some(pg) = pg() else { return };
    let db = pg.fresh_db_name("failures");
    let secret = "Sw0rdfish-not-the-password";
    let wrong = format!(
        "postgres://postgres:{secret}@127.0.0.1:{}/{db}?sslmode=disable",
        pg.port()
    );
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (wrong, "password authentication failed"),
        (
            format!("postgres://postgres:{secret}@127.0.0.1:{free}/{db}?sslmode=disable"),
            "onnection refused",
        ),
        (
            format!(
                "postgres://postgres:{}@127.0.0.1:{}/no_such_db?sslmode=disable",
                pg.password(),
                pg.port()
            ),
            "does not exist",
        ),
    ];
    for (url, why) in cases {
        let err = Store::open(&url).err().expect("refused");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Connect { .. }), "{text}");
        assert!(text.contains(why), "{text}");
        assert!(text.contains("postgres@127.0.0.1"), "{text}");
        assert!(
            !text.contains(secret) && !text.contains(pg.password()),
            "{text}"
        );
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
    }
    // The right password over TCP works.
    let ok = format!(
        "postgres://postgres:{}@127.0.0.1:{}/{db}?sslmode=disable",
        pg.password(),
        pg.port()
    );
    assert_eq!(
        Store::open(&ok).unwrap().schema_version().unwrap(),
        schema::CURRENT
    );
}

/// Whether the store's own connection is encrypted, as the server sees it.
fn uses_tls(store: &Store) -> bool {
    count(
        store,
        "SELECT CASE WHEN ssl THEN 1 ELSE 0 END FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    ) == 1
}

#[test]
fn postgres_tls_modes_as_libpq_means_them() {
    let Some(pg) = pg() else { return };
    let db = pg.fresh_db_name("tls");
    let base = pg.tcp_url(&db, true);
    let ca = pg.ca_cert();
    let ca = ca.to_string_lossy();
    let open = |q: &str| Store::open(format!("{base}?{q}"));
    assert!(!uses_tls(&open("sslmode=disable").unwrap()));
    assert!(uses_tls(&open("sslmode=prefer").unwrap()));
    assert!(uses_tls(&open("sslmode=require").unwrap()));
    assert!(uses_tls(
        &open(&format!("sslmode=verify-full&sslrootcert={ca}")).unwrap()
    ));
    assert!(uses_tls(
        &open(&format!("sslmode=verify-ca&sslrootcert={ca}")).unwrap()
    ));
    // Another authority: the server's certificate is refused.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.crt");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    for mode in ["verify-full", "verify-ca", "require"] {
        let err = open(&format!(
            "sslmode={mode}&sslrootcert={}",
            other.to_string_lossy()
        ))
        .err()
        .unwrap_or_else(|| panic!("{mode}: a certificate of another authority accepted"));
        assert!(matches!(err, StoreError::Connect { .. }), "{err}");
        assert!(err.to_string().contains("certificate"), "{err}");
    }
    assert!(matches!(
        open("sslmode=sometimes"),
        Err(StoreError::BadLocation { .. })
    ));
}

/// The password file: used when private to its owner, ignored otherwise (as libpq).
#[test]
fn postgres_password_from_the_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let Some(pg) = pg() else { return };
    let db = pg.fresh_db_name("pgpass");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgpass");
    std::fs::write(
        &file,
        format!(
            "# test\n127.0.0.1:{}:{db}:postgres:{}\n",
            pg.port(),
            pg.password()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Only this test sets it; others give passwords or use the socket.
    std::env::set_var("PGPASSFILE", &file);
    let url = format!("{}?sslmode=disable", pg.tcp_url(&db, false));
    assert!(Store::open(&url).is_ok());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Store::open(&url)
        .err()
        .expect("a readable password file is ignored");
    assert!(matches!(err, StoreError::Connect { .. }), "{err}");
    std::env::remove_var("PGPASSFILE");
}

/// A scan asks before it empties any output: a user who may only read is refused there.
#[test]
fn postgres_check_writable_refuses_a_reader_only_user() {
    let Some(pg) = pg() else { return };
    let db = pg.fresh_db_name("writable");
    let owner = pg.url(&db);
    let mut store = Store::open(&owner).unwrap();
    store.check_writable().unwrap();
    pg.psql(
        &db,
        "CREATE ROLE reader_only LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader_only",
    )
    .unwrap();
    let reader = owner.replace("postgres@", "reader_only@");
    let mut store = Store::open_existing(&reader).unwrap();
    assert_eq!(store.history().unwrap().len(), 0);
    let err = store.check_writable().expect_err("refused");
    assert!(err.to_string().contains("cannot write"), "{err}");
}

// Ports come back in (protocol, port) order on either database, whatever order they were
// written in, and hosts without listed ports (only collapsed counts) read as none.
both!(ports_read_back_in_protocol_and_port_order, |loc| {
    let mut store = Store::open(loc.path("h.db")).unwrap();
    let mut h = host("10.0.0.1", &[(443, "open", None), (22, "open", None)]);
    h.ports.insert(
        0,
        Port::new(Protocol::Udp, 53, PortState::Open, "udp-response"),
    );
    let mut bare = host("10.0.0.2", &[]);
    bare.extraports.push(portolan_model::ExtraPorts {
        state: PortState::Closed,
        count: 1000,
        reasons: Vec::new(),
    });
    scan(&mut store, 100, "10.0.0.0/24", &[h, bare]);
    let hosts = store.hosts().unwrap();
    let ports: Vec<(String, u16)> = hosts[0]
        .ports
        .iter()
        .map(|p| (p.protocol.clone(), p.port))
        .collect();
    assert_eq!(
        ports,
        [("tcp".into(), 22), ("tcp".into(), 443), ("udp".into(), 53)]
    );
    assert!(hosts[1].ports.is_empty());
    let run = store.load_run(portolan_store::ScanId(1)).unwrap();
    assert_eq!(run.hosts[1].extraports[0].count, 1000);
    assert_eq!(run.hosts[0].ports.len(), 3);
});
