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
//! Computing a year of changes reads every scan's hosts (a fifth of a second on a year of
//! daily /20 scans), so the whole history is computed in the background when the server
//! starts and as soon as a request finds it missing ([`SharedChanges::should_warm`]): after
//! each scan lands. A request for a long window that comes while it is under way waits for
//! it rather than computing the same again beside it (a short one computes its own, sooner
//! done). When the scans that landed are all newer than the kept list's, only their changes
//! are computed and added.

use portolan_store::{Change, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

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
    warming: Mutex<Warming>,
    /// Signalled when a computation of the whole history ends.
    warmed: Condvar,
    /// How many lists were computed whole (the others were cut from a kept one, or a kept
    /// one extended with newer scans).
    computed: AtomicU64,
}

#[derive(Default)]
struct Warming {
    /// The scans a computation of the whole history was last started for (at most one
    /// per store state, even when it fails).
    basis: Option<Arc<Basis>>,
    /// Whether it is under way: it has its connection (a request waiting for it while it
    /// waits for a connection that request holds would wait forever).
    running: bool,
}

/// A window of at most this many scans is computed by the request that asks for it even
/// while the whole history is (a week of daily scans: a few milliseconds).
const OWN_WINDOW: usize = 64;

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

/// When `new` is `old` with scans added that all started after every scan of `old`: the
/// earliest start among them. Changes first seen from then on are the added scans' only,
/// and the changes of `old`'s scans stay as they were (each compares with the one before).
fn appended_since(old: &Basis, new: &Basis) -> Option<i64> {
    let last_old = old.iter().map(|b| b.1).max()?;
    let olds: std::collections::HashSet<&(i64, i64, String)> = old.iter().collect();
    let mut kept = 0;
    let mut first_new = None::<i64>;
    for b in new {
        if olds.contains(b) {
            kept += 1;
        } else {
            first_new = Some(first_new.map_or(b.1, |f| f.min(b.1)));
        }
    }
    // A scan removed, or one that started before the newest kept one (an import of an
    // older file, a long scan that finished late), changes what came before: not a tail.
    let first_new = first_new?;
    (kept == old.len() && first_new > last_old).then_some(first_new)
}

/// The changes of `list` that come from the scans of `basis`: a scan that landed after the
/// basis was read must not be in a list kept under it (extending the list with that scan
/// later would add its changes twice).
fn of_basis(mut list: Vec<Change>, basis: &Basis) -> Vec<Change> {
    let ids: std::collections::HashSet<i64> = basis.iter().map(|b| b.0).collect();
    list.retain(|c| ids.contains(&c.scan_id));
    list
}

/// Where to cut the whole history in two, to compute each half on its own connection: the
/// start of the middle scan. None for a history too short to be worth it.
fn halfway(basis: &Basis) -> Option<i64> {
    if basis.len() <= OWN_WINDOW {
        return None;
    }
    let mut starts: Vec<i64> = basis.iter().map(|b| b.1).collect();
    starts.sort_unstable();
    starts.get(starts.len() / 2).copied()
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
        let mut warming = self.warming();
        if warming.basis.as_ref() == Some(&basis) {
            return Ok(false);
        }
        warming.basis = Some(basis);
        Ok(true)
    }

    /// Marks the computation of the whole history under way, by a caller that holds the
    /// connection it runs on: long windows asked from now on wait for it.
    pub fn warming_started(&self) {
        self.warming().running = true;
    }

    /// Marks it ended, and wakes the requests waiting for it (done by
    /// [`SharedChanges::warm_with`] however it ends).
    pub fn warming_ended(&self) {
        self.warming().running = false;
        self.warmed.notify_all();
    }

    fn warming(&self) -> MutexGuard<'_, Warming> {
        self.warming.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Computes and keeps the whole history (started by [`SharedChanges::should_warm`]),
    /// then wakes the requests waiting for it (see [`SharedChanges::warming_started`]).
    pub fn warm(&self, store: &Store, seen: &mut Seen) -> Result<(), StoreError> {
        self.warm_with(store, seen, None)
    }

    /// [`SharedChanges::warm`], the older half of a long history computed at the same time
    /// on `helper`, another connection (with its view), when it sees the same scans.
    pub fn warm_with(
        &self,
        store: &Store,
        seen: &mut Seen,
        helper: Option<(&mut Store, &mut Seen)>,
    ) -> Result<(), StoreError> {
        /// Marks the computation ended however it ends (a panic included): a waiting
        /// request then computes its own list.
        struct Ended<'a>(&'a SharedChanges);
        impl Drop for Ended<'_> {
            fn drop(&mut self) {
                self.0.warming_ended();
            }
        }
        let _ended = Ended(self);
        let basis = seen.basis(store)?;
        let mut helper = helper;
        if let Some((other, view)) = &mut helper {
            if view.basis(other)? != basis {
                helper = None;
            }
        }
        let helper = helper.map(|(other, _)| other);
        let (Some(other), Some(mid)) = (helper, halfway(&basis)) else {
            return self.compute(store, basis, i64::MIN).map(drop);
        };
        let (older, newer) = std::thread::scope(|s| {
            let older = s.spawn(move || other.changes_between(i64::MIN, mid, None));
            // The newer half first, then the wait for the older one: the other way round
            // (a tuple's elements are evaluated in order) the halves ran one after the other.
            let newer = store.changes_between(mid, i64::MAX, None);
            (older.join(), newer)
        });
        let older = older.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        // Each half holds the changes first seen in its span: one after the other, the
        // whole history in order.
        let mut list = of_basis(older, &basis);
        list.extend(of_basis(newer?, &basis));
        self.computed.fetch_add(1, Ordering::Relaxed);
        self.keep(basis, i64::MIN, Arc::new(list));
        Ok(())
    }

    /// Waits while the whole history is being computed for the store as `basis` says,
    /// unless the window from `since` is short or the kept list serves it already.
    fn wait_for_warming(&self, basis: &Arc<Basis>, since: i64) {
        if basis.iter().filter(|b| b.1 >= since).count() <= OWN_WINDOW {
            return;
        }
        if let Some(k) = &*self.kept() {
            if &k.basis == basis && k.from <= since {
                return;
            }
        }
        let mut warming = self.warming();
        while warming.running && warming.basis.as_ref() == Some(basis) {
            warming = self.warmed.wait(warming).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// How many change lists were computed whole from the store so far.
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// [`Store::changes_since`] through `store` (whose view is `seen`): cut from the kept
    /// list when it was computed from the same scans and covers `since` (changes since a
    /// later time are its tail: a change is dated by its scan's start); extended with the
    /// new scans' changes when only newer scans landed since; otherwise computed, and kept
    /// when the kept one is stale or narrower. A long window waits for the whole history
    /// when it is being computed, then is cut from it.
    pub fn since(
        &self,
        store: &Store,
        seen: &mut Seen,
        since: i64,
    ) -> Result<Vec<Change>, StoreError> {
        let basis = seen.basis(store)?;
        self.wait_for_warming(&basis, since);
        self.compute(store, basis, since)
    }

    /// [`SharedChanges::since`] without waiting, the store being as `basis` says.
    fn compute(
        &self,
        store: &Store,
        basis: Arc<Basis>,
        since: i64,
    ) -> Result<Vec<Change>, StoreError> {
        let older = {
            let kept = self.kept();
            match &*kept {
                Some(k) if k.basis == basis && k.from <= since => {
                    return Ok(tail(&k.list, since));
                }
                Some(k) if k.from <= since => {
                    appended_since(&k.basis, &basis).map(|first| (first, k.from, k.list.clone()))
                }
                _ => None,
            }
        };
        // Computed without the lock: pages that the kept list serves are not held up.
        if let Some((first, from, list)) = older {
            // Only scans newer than all the kept list's landed: their changes (each scan
            // against the one before it of its targets) are all that is new.
            let newer = of_basis(store.changes_since(first, None)?, &basis);
            let mut list = Vec::clone(&list);
            list.extend(newer);
            let list = Arc::new(list);
            self.keep(basis, from, list.clone());
            return Ok(tail(&list, since));
        }
        let list = of_basis(store.changes_since(since, None)?, &basis);
        self.computed.fetch_add(1, Ordering::Relaxed);
        self.keep(basis, since, Arc::new(list.clone()));
        Ok(list)
    }

    /// Keeps `list`, the changes since `from` of the store as `basis` says, when the kept
    /// one is stale or narrower.
    fn keep(&self, basis: Arc<Basis>, from: i64, list: Arc<Vec<Change>>) {
        let mut kept = self.kept();
        if kept
            .as_ref()
            .is_none_or(|k| k.basis != basis || from < k.from)
        {
            *kept = Some(Kept { basis, from, list });
        }
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
            cve: None,
            cvss: None,
        }
    }

    /// A new store in a directory of its own (kept while the first item lives), its path,
    /// a writer, and now.
    fn new_store() -> (tempfile::TempDir, std::path::PathBuf, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let writer = Store::open(&path).unwrap();
        (dir, path, writer, portolan_store::query::now())
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
        let (_dir, path, mut writer, t) = new_store();
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

        // A newer scan lands: each connection sees it, and the kept list is extended with
        // its changes, not computed again.
        record(&mut writer, t - 86_400, &[22]);
        let after = shared.since(&b, &mut seen_b, month).unwrap();
        assert_eq!(after.len(), 2, "80 closed: {after:?}");
        assert_eq!(after, b.changes_since(month, None).unwrap());
        assert_eq!(shared.since(&a, &mut seen_a, month).unwrap(), after);
        assert_eq!(shared.computed(), 1);
        // A wider window is computed, and kept.
        let year = t - 365 * 86_400;
        assert_eq!(shared.since(&a, &mut seen_a, year).unwrap(), after);
        assert_eq!(shared.since(&b, &mut seen_b, year).unwrap(), after);
        assert_eq!(shared.computed(), 2);
    }

    /// A scan older than the kept list's newest (an import of an old file) changes what
    /// came after it: the list is computed again.
    #[test]
    fn an_older_scan_landing_recomputes() {
        let (_dir, path, mut writer, t) = new_store();
        record(&mut writer, t - 3 * 86_400, &[22]);
        record(&mut writer, t - 86_400, &[22, 80]);
        let a = Store::open_read_only(&path).unwrap();
        let shared = SharedChanges::default();
        let mut seen = Seen::default();
        let month = t - 30 * 86_400;
        assert_eq!(shared.since(&a, &mut seen, month).unwrap().len(), 1);
        // Between the two: 80 now opens two days ago, and nothing changes yesterday.
        record(&mut writer, t - 2 * 86_400, &[22, 80]);
        let got = shared.since(&a, &mut seen, month).unwrap();
        assert_eq!(got, a.changes_since(month, None).unwrap());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].first_seen, t - 2 * 86_400);
        assert_eq!(shared.computed(), 2);
    }

    /// The whole history is asked for once per store state, then serves every window.
    #[test]
    fn the_whole_history_is_warmed_once_per_scan() {
        let (_dir, path, mut writer, t) = new_store();
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
        // A scan lands: warmed again, once (by extending the list with its changes),
        // unless a page asked for the whole history since.
        record(&mut writer, t - 2 * 86_400, &[22, 80]);
        shared.since(&a, &mut seen_a, t - 401 * 86_400).unwrap();
        assert!(!shared.should_warm(&b, &mut seen_b).unwrap());
        record(&mut writer, t - 86_400, &[22]);
        assert!(shared.should_warm(&b, &mut seen_b).unwrap());
        assert!(!shared.should_warm(&a, &mut seen_a).unwrap());
        shared.warm(&b, &mut seen_b).unwrap();
        let week = shared.since(&a, &mut seen_a, t - 7 * 86_400).unwrap();
        assert_eq!(week.len(), 1, "80 closed: {week:?}");
        assert_eq!(
            shared.since(&a, &mut seen_a, 0).unwrap(),
            a.changes_since(0, None).unwrap()
        );
        assert_eq!(shared.computed(), 1);
    }

    /// A request for a long window while the whole history is being computed waits for
    /// it and is cut from it: one computation, the same answer as the store's.
    #[test]
    fn a_long_window_waits_for_the_history_under_way() {
        let (_dir, path, mut writer, t) = new_store();
        let days = OWN_WINDOW as i64 + 6;
        for d in 0..days {
            let ports: &[u16] = if d % 2 == 0 { &[22] } else { &[22, 80] };
            record(&mut writer, t - (days - d) * 86_400, ports);
        }
        let (a, b) = (
            Store::open_read_only(&path).unwrap(),
            Store::open_read_only(&path).unwrap(),
        );
        let shared = Arc::new(SharedChanges::default());
        let (mut seen_a, mut seen_b) = (Seen::default(), Seen::default());
        assert!(shared.should_warm(&a, &mut seen_a).unwrap());
        shared.warming_started();
        let year = t - 365 * 86_400;
        let waiting = {
            let shared = shared.clone();
            std::thread::spawn(move || shared.since(&b, &mut seen_b, year).unwrap())
        };
        shared.warm(&a, &mut seen_a).unwrap();
        let got = waiting.join().unwrap();
        assert_eq!(got, a.changes_since(year, None).unwrap());
        assert_eq!(got.len(), days as usize - 1, "80 opened or closed each day");
        assert_eq!(shared.computed(), 1, "computed by the warming only");
    }

    /// The whole history computed in two halves on two connections at once is the one
    /// computed whole, kept as one computation.
    #[test]
    fn two_connections_warm_the_history_in_halves() {
        let (_dir, path, mut writer, t) = new_store();
        let days = OWN_WINDOW as i64 * 2;
        for d in 0..days {
            let ports: &[u16] = if d % 3 == 0 {
                &[22]
            } else {
                &[22, 80 + d as u16]
            };
            record(&mut writer, t - (days - d) * 86_400, ports);
        }
        let (a, mut b) = (
            Store::open_read_only(&path).unwrap(),
            Store::open_read_only(&path).unwrap(),
        );
        let shared = SharedChanges::default();
        let (mut seen_a, mut seen_b) = (Seen::default(), Seen::default());
        assert!(shared.should_warm(&a, &mut seen_a).unwrap());
        shared
            .warm_with(&a, &mut seen_a, Some((&mut b, &mut seen_b)))
            .unwrap();
        assert!(!shared.should_warm(&a, &mut seen_a).unwrap());
        let whole = a.changes_since(i64::MIN, None).unwrap();
        assert!(whole.len() as i64 > days, "{}", whole.len());
        assert_eq!(shared.since(&a, &mut seen_a, i64::MIN).unwrap(), whole);
        assert_eq!(shared.computed(), 1);
    }

    #[test]
    fn a_list_keeps_the_changes_of_its_basis_only() {
        let list: Vec<Change> = [1, 2, 5].into_iter().map(change).collect();
        let basis: Basis = vec![(0, 0, "t".into()), (2, 2, "t".into())];
        let ids: Vec<i64> = of_basis(list, &basis).iter().map(|c| c.scan_id).collect();
        assert_eq!(ids, [2]);
        let older: Basis = vec![(1, 10, "t".into())];
        let newer = |extra: &[(i64, i64)]| -> Basis {
            older
                .iter()
                .cloned()
                .chain(extra.iter().map(|&(id, t)| (id, t, "t".to_string())))
                .collect()
        };
        assert_eq!(
            appended_since(&older, &newer(&[(2, 20), (3, 15)])),
            Some(15)
        );
        assert_eq!(
            appended_since(&older, &newer(&[(2, 5)])),
            None,
            "older scan"
        );
        assert_eq!(appended_since(&older, &newer(&[])), None, "nothing new");
        assert_eq!(
            appended_since(&older, &vec![(2, 20, "t".into())]),
            None,
            "removed"
        );
        assert_eq!(appended_since(&vec![], &older), None, "nothing kept");
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
