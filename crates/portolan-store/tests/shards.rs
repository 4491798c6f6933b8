//! Sharded scans in the store: parts never count alone, the last part adds the union, a
//! killed part run again completes its round, rounds of one identity used again. Each test
//! runs on SQLite and on PostgreSQL (`NAME::sqlite`, `NAME::postgres`).

use portolan_model::{ExtraPorts, Host, HostStatus, Port, PortState, Protocol};
use portolan_store::{FinishStats, PartState, ScanMeta, ShardPart, Source, Store};

const TARGETS: &str = "10.0.0.0/29";

/// A new store for a test: a file in `dir`, or a database of the test process's
/// PostgreSQL cluster.
fn new_store(dir: &std::path::Path, pg: bool, name: &str) -> String {
    if pg {
        let cluster = portolan_testpg::TestPg::shared().expect("checked by both!");
        cluster.fresh_db(&format!("shards_{name}"))
    } else {
        dir.join("h.db").to_string_lossy().into_owned()
    }
}

/// Runs a test on SQLite and, when a cluster can be run here, on PostgreSQL.
macro_rules! both {
    ($name:ident, |$path:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let $path = new_store(dir.path(), false, stringify!($name));
                $body
            }
            #[test]
            fn postgres() {
                if portolan_testpg::TestPg::shared().is_some() {
                    let dir = tempfile::tempdir().unwrap();
                    let $path = new_store(dir.path(), true, stringify!($name));
                    $body
                }
            }
        }
    };
}

fn meta(started: i64, args: &str) -> ScanMeta {
    ScanMeta {
        started,
        args: format!("portolan -sS {args} {TARGETS}"),
        targets: TARGETS.into(),
        source: Source::Scan,
        file: None,
        scanner: "portolan".into(),
        version: "0.1.0".into(),
    }
}

/// The whole network as one scan sees it: host `i` has ports `20 + i` and `80` open, and
/// 40 closed ports collapsed; host .6 is down.
fn whole() -> Vec<Host> {
    (1..=6)
        .map(|i| {
            let up = i != 6;
            let status = if up {
                HostStatus::up("arp-response")
            } else {
                HostStatus {
                    state: portolan_model::HostState::Down,
                    reason: "no-response".into(),
                    reason_ttl: 0,
                }
            };
            let mut h = Host::new(format!("10.0.0.{i}").parse().unwrap(), status);
            if up {
                for p in [20 + i as u16, 80] {
                    h.ports
                        .push(Port::new(Protocol::Tcp, p, PortState::Open, "syn-ack"));
                }
                h.extraports.push(ExtraPorts {
                    state: PortState::Closed,
                    count: 40,
                    reasons: Vec::new(),
                });
            }
            h
        })
        .collect()
}

/// Part `k` of `n` of [`whole`]: every host, the ports whose position falls to it, and
/// its share of the closed ports (listed when few, as the engine does).
fn part(k: u32, n: u32) -> Vec<Host> {
    whole()
        .into_iter()
        .map(|mut h| {
            let ports = std::mem::take(&mut h.ports);
            h.ports = ports
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % n == k - 1)
                .map(|(_, p)| p)
                .collect();
            if let Some(e) = h.extraports.first().cloned() {
                h.extraports.clear();
                let share = e.count / n + u32::from(k <= e.count % n);
                for j in 0..share {
                    h.ports.push(Port::new(
                        Protocol::Tcp,
                        1000 + (k * 100 + j) as u16,
                        PortState::Closed,
                        "reset",
                    ));
                }
                h.ports.sort_by_key(|p| p.portid);
            }
            h
        })
        .collect()
}

fn stats(hosts: &[Host]) -> FinishStats {
    FinishStats {
        finished: 500,
        hosts_up: hosts.iter().filter(|h| h.is_up()).count() as u32,
        hosts_total: 6,
    }
}

/// Runs part `k` of `n` of `key`, to its end unless `kill`.
fn run_part(store: &mut Store, key: &str, k: u32, n: u32, kill: bool) -> i64 {
    let sp = ShardPart {
        scan_key: key.into(),
        part: k,
        parts: n,
    };
    let id = store
        .begin_part(&meta(100 + i64::from(k), &format!("--shard {k}/{n}")), &sp)
        .unwrap();
    let hosts = part(k, n);
    for h in &hosts[..if kill { 2 } else { hosts.len() }] {
        store.add_host(id, h).unwrap();
    }
    if !kill {
        store.finish_scan(id, stats(&hosts)).unwrap();
    }
    id.0
}

/// What a scan's hosts come to, to compare: address, up, open ports, and per state how
/// many ports (listed and counted).
/// (address, up, open ports, ports per state)
type Digest = (String, bool, Vec<u16>, Vec<(String, u32)>);

fn digest(hosts: &[Host]) -> Vec<Digest> {
    hosts
        .iter()
        .map(|h| {
            let mut states: std::collections::BTreeMap<String, u32> = Default::default();
            for p in &h.ports {
                *states.entry(p.state.as_str().into()).or_default() += 1;
            }
            for e in &h.extraports {
                *states.entry(e.state.as_str().into()).or_default() += e.count;
            }
            (
                h.addresses[0].addr.clone(),
                h.is_up(),
                h.ports
                    .iter()
                    .filter(|p| p.state == PortState::Open)
                    .map(|p| p.portid)
                    .collect(),
                states.into_iter().collect(),
            )
        })
        .collect()
}

both!(
    parts_count_only_together_and_a_killed_part_run_again_completes_them,
    |path| {
        let mut store = Store::open(&path).unwrap();
        run_part(&mut store, "nightly", 1, 3, false);
        let killed = run_part(&mut store, "nightly", 2, 3, true);
        run_part(&mut store, "nightly", 3, 3, false);

        // Two parts done, one killed: nothing counts yet, and the history says why.
        assert!(store.hosts().unwrap().is_empty());
        assert!(store.changes_since(0, None).unwrap().is_empty());
        let pending = store.incomplete_sharded().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].parts_complete(), 2);
        let states: Vec<PartState> = pending[0].part_list.iter().map(|p| p.state).collect();
        assert_eq!(
            states,
            [PartState::Complete, PartState::Running, PartState::Complete]
        );
        assert!(store.history().unwrap().iter().all(|s| !s.complete));

        // Part 2 again: the same round, now complete, and its union is one scan.
        let again = run_part(&mut store, "nightly", 2, 3, false);
        let rounds = store.sharded_scans().unwrap();
        assert_eq!(rounds.len(), 1);
        assert_eq!(rounds[0].part_list[1].scans, [killed, again]);
        let union = rounds[0].union_id.expect("the union is recorded");
        assert!(store.incomplete_sharded().unwrap().is_empty());
        let complete: Vec<i64> = store
            .history()
            .unwrap()
            .iter()
            .filter(|s| s.complete)
            .map(|s| s.id)
            .collect();
        assert_eq!(complete, [union]);

        // The union holds what one unsharded scan of the same targets holds.
        let id = store.begin_scan(&meta(1000, "")).unwrap();
        for h in whole() {
            store.add_host(id, &h).unwrap();
        }
        store.finish_scan(id, stats(&whole())).unwrap();
        let merged = store.load_run(portolan_store::ScanId(union)).unwrap();
        let single = store.load_run(id).unwrap();
        assert_eq!(digest(&merged.hosts), digest(&single.hosts));
        assert_eq!(merged.hosts.len(), 6);
        // Compared as scans of the same targets: nothing changed between them.
        assert!(store.changes_since(0, None).unwrap().is_empty());
        assert_eq!(store.hosts().unwrap().len(), 5);
    }
);

both!(an_identity_used_again_starts_a_new_round, |path| {
    let mut store = Store::open(&path).unwrap();
    for k in 1..=2 {
        run_part(&mut store, "same", k, 2, false);
    }
    // The next night: part 2 first. Round 1 has it: a new round.
    run_part(&mut store, "same", 2, 2, false);
    let rounds = store.sharded_scans().unwrap();
    assert_eq!(rounds.len(), 2);
    assert!(rounds[0].is_complete());
    assert_eq!(rounds[1].round, 2);
    assert_eq!(rounds[1].parts_complete(), 1);
    assert_eq!(rounds[1].part_list[0].state, PartState::Missing);
    run_part(&mut store, "same", 1, 2, false);
    assert!(store.sharded_scans().unwrap()[1].is_complete());
});

both!(
    parts_of_other_targets_under_one_identity_are_another_scan,
    |path| {
        let mut store = Store::open(&path).unwrap();
        run_part(&mut store, "nightly", 1, 2, false);
        // The same --scan-id, part 2, but of other targets: it must not complete round 1 (the
        // union would be half of each network); it starts a round of its own.
        let other = ShardPart {
            scan_key: "nightly".into(),
            part: 2,
            parts: 2,
        };
        let mut m = meta(102, "--shard 2/2");
        m.targets = "10.9.0.0/29".into();
        m.args = m.args.replace(TARGETS, &m.targets);
        let id = store.begin_part(&m, &other).unwrap();
        store.finish_scan(id, stats(&[])).unwrap();
        let rounds = store.sharded_scans().unwrap();
        assert_eq!(rounds.len(), 2, "{rounds:?}");
        assert!(rounds.iter().all(|r| !r.is_complete()));
        assert_eq!(rounds[1].targets, "10.9.0.0/29");
        assert!(store.history().unwrap().iter().all(|s| !s.complete));
        // Part 2 of the first targets completes the first round, and only it.
        run_part(&mut store, "nightly", 2, 2, false);
        let rounds = store.sharded_scans().unwrap();
        assert_eq!(rounds.len(), 2);
        assert!(rounds[0].is_complete());
        assert_eq!(rounds[0].targets, TARGETS);
        assert!(!rounds[1].is_complete());
        assert_eq!(store.hosts().unwrap().len(), 5);
    }
);

both!(
    four_writers_beginning_and_finishing_at_once_make_one_scan,
    |path| {
        drop(Store::open(&path).unwrap());
        let n = 4;
        // Several identities, each raced by four writers that begin together and finish
        // together: each must end as one round with one union.
        let keys = ["race-a", "race-b", "race-c", "race-d", "race-e"];
        for key in keys {
            let gate = std::sync::Arc::new(std::sync::Barrier::new(n as usize));
            let writers: Vec<_> = (1..=n)
                .map(|k| {
                    let (path, gate) = (path.clone(), gate.clone());
                    std::thread::spawn(move || {
                        let sp = ShardPart {
                            scan_key: key.into(),
                            part: k,
                            parts: n,
                        };
                        let hosts = part(k, n);
                        // Every writer passes both gates whatever failed, so that a failure
                        // fails the test rather than leaving the others waiting.
                        let open = Store::open(&path);
                        gate.wait();
                        let begun = open.and_then(|mut store| {
                            let args = format!("--shard {k}/{n}");
                            let id = store.begin_part(&meta(100, &args), &sp)?;
                            store.add_hosts(id, &hosts)?;
                            Ok((store, id))
                        });
                        gate.wait();
                        let (mut store, id) = begun.unwrap();
                        store.finish_scan(id, stats(&hosts)).unwrap();
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        let rounds = store.sharded_scans().unwrap();
        assert_eq!(rounds.len(), keys.len(), "{rounds:?}");
        assert!(rounds.iter().all(|r| r.is_complete()), "{rounds:?}");
        let unions = store
            .history()
            .unwrap()
            .iter()
            .filter(|s| s.complete)
            .count();
        assert_eq!(unions, keys.len());
        assert_eq!(store.hosts().unwrap().len(), 5);
    }
);
