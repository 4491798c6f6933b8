//! The change list the pages share: the changes since the widest window asked so far, kept
//! once for all of the pool's connections (any of them serves the next request) until the
//! store has another scan.
//!
//! The list is keyed by what it was computed from: the store's complete scans (id, start,
//! targets), which is all [`Store::changes_since`] groups and compares (a complete scan's
//! hosts are not rewritten). That key is the same whichever connection reads it, which a
//! store's generation (SQLite's `data_version`, a connection's own number) is not: each
//! connection reads the key again only when its generation moved, so a request pays for a
//! query of the scans table only after a write.
//!
//! Computing a year of changes reads every scan's hosts (a third of a second on a year of
//! daily /20 scans), so the whole history is computed in the background as soon as a
//! request finds it missing ([`SharedChanges::should_warm`]): when the server starts and
//! after each scan lands. A request for any window then finds it ready.

use portolan_store::{Change, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a change list is computed from: the complete scans, as (id, started, targets).
type Basis = Vec<(i64, i64, String)>;

fn basis(store: &Store) -> Result<Basis, StoreError> {
    Ok(store
        .history()?
        .into_iter()
        .filter(|s| s.complete)
        .map(|s| (s.id, s.started, s.targets))
        .collect())
}

/// The kept list, shared by the pool's connections.
#[derive(Default)]
pub struct SharedChanges {
    kept: Mutex<Option<Kept>>,
    /// The scans a computation of the whole history was last started for (at most one
    /// per store state, even when it fails).
    warming: Mutex<Option<Arc<Basis>>>,
    /// How many lists were computed (the others were cut from a kept one).
    computed: AtomicU64,
}

struct Kept {
    basis: Arc<Basis>,
    /// The list holds every change first seen at or after this time, oldest first.
    from: i64,
    list: Arc<Vec<Change>>,
}

/// A connection's view of the store: its generation when last asked, and the basis read
/// then.
#[derive(Default)]
pub struct Seen {
    generation: Option<i64>,
    basis: Arc<Basis>,
}

impl Seen {
    /// The store's basis now, read again only when the connection's generation moved.
    fn basis(&mut self, store: &Store) -> Result<Arc<Basis>, StoreError> {
        let generation = store.generation()?;
        if self.generation != Some(generation) {
            self.basis = Arc::new(basis(store)?);
            self.generation = Some(generation);
        }
        Ok(self.basis.clone())
    }
}

/// The changes of `list` (oldest first) first seen at or after `since`.
fn tail(list: &[Change], since: i64) -> Vec<Change> {
    let start = list.partition_point(|c| c.first_seen < since);
    list.get(start..).unwrap_or_default().to_vec()
}

impl SharedChanges {
    fn kept(&self) -> MutexGuard<'_, Option<Kept>> {
        // A page that panicked while holding it left it whole (each change is one
        // assignment).
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the whole history should be computed now ([`SharedChanges::warm`], in the
    /// background): the kept list does not hold it for the store as `seen` finds it, and
    /// no computation was started for these scans yet (this call marks it started).
    pub fn should_warm(&self, store: &Store, seen: &mut Seen) -> Result<bool, StoreError> {
        let basis = seen.basis(store)?;
        // A list from before the first scan is the whole history (a page may have asked
        // for a window that wide).
        let first = basis.iter().map(|b| b.1).min().unwrap_or(i64::MIN);
        if let Some(k) = &*self.kept() {
            if k.basis == basis && k.from <= first {
                return Ok(false);
            }
        }
        let mut warming = self.warming.lock().unwrap_or_else(|p| p.into_inner());
        if warming.as_ref() == Some(&basis) {
            return Ok(false);
        }
        *warming = Some(basis);
        Ok(true)
    }

    /// Computes and keeps the whole history.
    pub fn warm(&self, store: &Store, seen: &mut Seen) -> Result<(), StoreError> {
        self.since(store, seen, i64::MIN).map(drop)
    }

    /// How many change lists were computed from the store so far.
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// [`Store::changes_since`] through `store` (whose view is `seen`): cut from the kept
    /// list when it was computed from the same scans and covers `since` (changes since a
    /// later time are its tail: a change is dated by its scan's start); otherwise
    /// computed, and kept when the kept one is stale or narrower.
    pub fn since(
        &self,
        store: &Store,
        seen: &mut Seen,
        since: i64,
    ) -> Result<Vec<Change>, StoreError> {
        let basis = seen.basis(store)?;
        if let Some(k) = &*self.kept() {
            if k.basis == basis && k.from <= since {
                return Ok(tail(&k.list, since));
            }
        }
        // Computed without the lock: pages that the kept list serves are not held up.
        let list = store.changes_since(since, None)?;
        self.computed.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.kept();
        let replace = kept
            .as_ref()
            .is_none_or(|k| k.basis != basis || since < k.from);
        if replace {
            *kept = Some(Kept {
                basis,
                from: since,
                list: Arc::new(list.clone()),
            });
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(first_seen: i64) -> Change {
        Change {
            first_seen,
            scan_id: first_seen,
            previous_scan_id: first_seen - 1,
            address: format!("198.18.0.{first_seen}"),
            kind: portolan_store::ChangeKind::PortOpened,
            protocol: Some("tcp".into()),
            port: Some(22),
            before: None,
            after: Some("ssh".into()),
        }
    }

    /// A complete scan at `started` of 198.18.0.1 with `ports` open.
    fn record(store: &mut Store, started: i64, ports: &[u16]) {
        use portolan_model::{Host, HostStatus, Port, Protocol};
        use portolan_store::{FinishStats, ScanMeta, Source};
        let meta = ScanMeta {
            started,
            args: "portolan 198.18.0.0/24".into(),
            targets: "198.18.0.0/24".into(),
            source: Source::Scan,
            file: None,
            scanner: "portolan".into(),
            version: "0.1.0".into(),
        };
        let id = store.begin_scan(&meta).unwrap();
        let mut h = Host::new("198.18.0.1".parse().unwrap(), HostStatus::up("syn-ack"));
        for p in ports {
            h.ports.push(Port::new(
                Protocol::Tcp,
                *p,
                "open".parse().unwrap(),
                "syn-ack",
            ));
        }
        store.add_host(id, &h).unwrap();
        let stats = FinishStats {
            finished: started + 60,
            hosts_up: 1,
            hosts_total: 256,
        };
        store.finish_scan(id, stats).unwrap();
    }

    /// One connection computes, another is served the kept list; after a write each sees
    /// the new scan, and the list is computed once for both.
    #[test]
    fn connections_share_the_list_until_a_scan_lands() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let mut writer = Store::open(&path).unwrap();
        let t = portolan_store::query::now();
        record(&mut writer, t - 3 * 86_400, &[22]);
        record(&mut writer, t - 2 * 86_400, &[22, 80]);
        let (a, b) = (
            Store::open_read_only(&path).unwrap(),
            Store::open_read_only(&path).unwrap(),
        );
        let shared = SharedChanges::default();
        let (mut seen_a, mut seen_b) = (Seen::default(), Seen::default());
        let month = t - 30 * 86_400;
        let week = t - 7 * 86_400;

        let wide = shared.since(&a, &mut seen_a, month).unwrap();
        assert_eq!(wide.len(), 1, "80 opened");
        assert_eq!(shared.computed(), 1);
        // Another connection, a narrower window: cut from the kept list.
        let narrow = shared.since(&b, &mut seen_b, week).unwrap();
        assert_eq!(narrow, b.changes_since(week, None).unwrap());
        assert_eq!(shared.computed(), 1);

        record(&mut writer, t - 86_400, &[22]);
        let after = shared.since(&b, &mut seen_b, month).unwrap();
        assert_eq!(after.len(), 2, "80 closed: {after:?}");
        assert_eq!(shared.computed(), 2);
        // The first connection sees the write too, and the list computed after it.
        assert_eq!(shared.since(&a, &mut seen_a, week).unwrap(), after);
        assert_eq!(shared.computed(), 2);
        // A wider window is computed, and kept.
        let year = t - 365 * 86_400;
        assert_eq!(shared.since(&a, &mut seen_a, year).unwrap(), after);
        assert_eq!(shared.since(&b, &mut seen_b, year).unwrap(), after);
        assert_eq!(shared.computed(), 3);
    }

    /// The whole history is asked for once per store state, then serves every window.
    #[test]
    fn the_whole_history_is_warmed_once_per_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let mut writer = Store::open(&path).unwrap();
        let t = portolan_store::query::now();
        record(&mut writer, t - 400 * 86_400, &[22]);
        record(&mut writer, t - 300 * 86_400, &[22, 80]);
        let (a, b) = (
            Store::open_read_only(&path).unwrap(),
            Store::open_read_only(&path).unwrap(),
        );
        let shared = SharedChanges::default();
        let (mut seen_a, mut seen_b) = (Seen::default(), Seen::default());
        assert!(shared.should_warm(&a, &mut seen_a).unwrap());
        // Started already: not again, from either connection.
        assert!(!shared.should_warm(&b, &mut seen_b).unwrap());
        shared.warm(&a, &mut seen_a).unwrap();
        assert!(!shared.should_warm(&a, &mut seen_a).unwrap());
        assert_eq!(shared.computed(), 1);
        let year = shared.since(&b, &mut seen_b, t - 365 * 86_400).unwrap();
        assert_eq!(year, b.changes_since(t - 365 * 86_400, None).unwrap());
        assert_eq!(year.len(), 1);
        assert_eq!(shared.since(&a, &mut seen_a, 0).unwrap().len(), 1);
        assert_eq!(shared.computed(), 1);
        // A scan lands: warmed again, once, unless a page asked for the whole history.
        record(&mut writer, t - 2 * 86_400, &[22, 80]);
        shared.since(&a, &mut seen_a, t - 401 * 86_400).unwrap();
        assert!(!shared.should_warm(&b, &mut seen_b).unwrap());
        assert_eq!(shared.computed(), 2);
        record(&mut writer, t - 86_400, &[22]);
        assert!(shared.should_warm(&b, &mut seen_b).unwrap());
        assert!(!shared.should_warm(&a, &mut seen_a).unwrap());
        shared.warm(&b, &mut seen_b).unwrap();
        let week = shared.since(&a, &mut seen_a, t - 7 * 86_400).unwrap();
        assert_eq!(week.len(), 1, "80 closed: {week:?}");
        assert_eq!(shared.computed(), 3);
    }

    #[test]
    fn a_tail_starts_at_the_first_change_since() {
        let list: Vec<Change> = [1, 2, 2, 5].into_iter().map(change).collect();
        let at = |since| {
            tail(&list, since)
                .iter()
                .map(|c| c.first_seen)
                .collect::<Vec<_>>()
        };
        assert_eq!(at(0), [1, 2, 2, 5]);
        assert_eq!(at(2), [2, 2, 5]);
        assert_eq!(at(3), [5]);
        assert_eq!(at(6), Vec::<i64>::new());
    }
}
