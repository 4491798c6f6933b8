//! Reading the store: the list of scans, what changed between scans of the same targets,
//! the current inventory, and whole runs rebuilt for `diff`.
//!
//! Only complete scans count, except in [`Store::history`], which lists every scan with its
//! state. Scans are grouped by their `targets`: a host missing from a later scan of the same
//! targets has disappeared; a scan of other targets says nothing about it. The current
//! inventory is the newest complete scan of each group, the newest group winning for an
//! address found in several.

use crate::backend::{vals, Db};
use crate::{Cidr, ScanId, Store, StoreError};
use portolan_model::{
    AddrType, Address, ExtraPorts, Host, HostState, HostStatus, Hostname, Os, Port, PortState,
    Protocol, RunExit, RunStats, ScanRun, Script, Service, ServiceMethod,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One scan, as `portolan history` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanRecord {
    pub id: i64,
    pub started: i64,
    pub finished: Option<i64>,
    pub args: String,
    pub targets: String,
    pub hosts_up: u32,
    pub hosts_total: u32,
    pub complete: bool,
    pub source: String,
    pub file: Option<String>,
    /// A sharded scan's identity, on its parts and on their union (or the name
    /// `--scan-id` gave an unsharded scan); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_key: Option<String>,
    /// The round of that identity (see [`crate::shards`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<i64>,
    /// K of a part; absent on the union.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<u32>,
    /// N.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
    /// A part that ran to its end (its `complete` stays false: a part never counts alone).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub part_done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    HostAppeared,
    HostDisappeared,
    PortOpened,
    PortClosed,
    ServiceChanged,
    /// A vulnerability finding (the port's `vulns` script result) that the scan before did
    /// not have, or that the later scan no longer has; only between two scans that both
    /// looked for findings on the port (see [`crate::findings::difference`]).
    VulnNew,
    VulnGone,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::HostAppeared => "host appeared",
            ChangeKind::HostDisappeared => "host disappeared",
            ChangeKind::PortOpened => "port opened",
            ChangeKind::PortClosed => "port closed",
            ChangeKind::ServiceChanged => "service changed",
            ChangeKind::VulnNew => "vuln new",
            ChangeKind::VulnGone => "vuln gone",
        }
    }
}

/// One change between two consecutive complete scans of the same targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// When it was first seen: the start of the scan that showed it.
    pub first_seen: i64,
    /// That scan, and the one before it it was compared with.
    pub scan_id: i64,
    pub previous_scan_id: i64,
    pub address: String,
    pub kind: ChangeKind,
    pub protocol: Option<String>,
    pub port: Option<u16>,
    /// The port's state or service before and after ("open", "ssh OpenSSH 8.9p1").
    pub before: Option<String>,
    pub after: Option<String>,
    /// For a finding that appeared or went away: its CVE and CVSS base score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<f64>,
}

/// A port as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortRecord {
    pub protocol: String,
    pub port: u16,
    pub state: String,
    pub reason: String,
    pub service: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    pub extrainfo: Option<String>,
    pub tunnel: Option<String>,
    /// Script results, JSON (the model's form); `[]` when none. Not part of the records
    /// the CLI prints (`services --json`).
    #[serde(skip)]
    pub scripts: String,
}

impl PortRecord {
    fn is_open(&self) -> bool {
        self.state == "open"
    }
    /// "ssh OpenSSH 8.9p1 (protocol 2.0)": what a service change compares.
    pub fn service_text(&self) -> String {
        [
            self.tunnel.as_deref().map(|t| format!("{t}/")).as_deref(),
            self.service.as_deref(),
            self.product.as_deref(),
            self.version.as_deref(),
            self.extrainfo
                .as_deref()
                .map(|e| format!("({e})"))
                .as_deref(),
        ]
        .iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("/ ", "/")
    }
}

/// A host of the current inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryHost {
    pub address: String,
    pub hostnames: Vec<String>,
    pub mac: Option<String>,
    pub vendor: Option<String>,
    /// The start of the scan it was last seen in, and that scan.
    pub last_seen: i64,
    pub scan_id: i64,
    /// The best OS match's name (or the coarse guess) when OS detection ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Its open ports.
    pub ports: Vec<PortRecord>,
}

/// A host as one complete scan saw it (see [`Store::host_history`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSnapshot {
    pub scan_id: i64,
    pub started: i64,
    pub targets: String,
    pub state: String,
    pub up: bool,
    pub hostnames: Vec<String>,
    pub mac: Option<String>,
    pub vendor: Option<String>,
    pub os: Option<Os>,
    pub hostscripts: Vec<Script>,
    /// The port set's id: equal ids mean the same ports (compared without reading them).
    #[serde(skip)]
    pub portset: Option<i64>,
    /// Every listed port, in port order.
    pub ports: Vec<PortRecord>,
}

/// An open port of the current inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRecord {
    pub address: String,
    pub hostname: Option<String>,
    pub last_seen: i64,
    pub scan_id: i64,
    #[serde(flatten)]
    pub port: PortRecord,
}

/// A row of `hosts_seen`.
struct HostRow {
    address: String,
    addrtype: String,
    state: String,
    reason: String,
    hostnames: String,
    mac: Option<String>,
    vendor: Option<String>,
    portset: Option<i64>,
    starttime: Option<i64>,
    endtime: Option<i64>,
    /// OS detection, JSON; None when it did not run.
    os: Option<String>,
    hostscripts: String,
}

impl HostRow {
    /// The columns [`HostRow::read`] takes, in its order.
    const COLUMNS: &'static str = "address, addrtype, state, reason, hostnames, mac, vendor, \
         portset_id, starttime, endtime, os, hostscripts";

    /// A row of `SELECT {COLUMNS} FROM hosts_seen`.
    fn read(r: &crate::backend::Row) -> Result<HostRow, StoreError> {
        Ok(HostRow {
            address: r.get(0)?,
            addrtype: r.get(1)?,
            state: r.get(2)?,
            reason: r.get(3)?,
            hostnames: r.get(4)?,
            mac: r.get(5)?,
            vendor: r.get(6)?,
            portset: r.get(7)?,
            starttime: r.get(8)?,
            endtime: r.get(9)?,
            os: r.get(10)?,
            hostscripts: r.get(11)?,
        })
    }

    fn is_up(&self) -> bool {
        self.state == "up"
    }
    /// The best OS match's name, else the coarse guess; None when OS detection did not
    /// run or its JSON is unreadable (the inventory still lists the host).
    fn os_name(&self) -> Option<String> {
        let os: Os = serde_json::from_str(self.os.as_deref()?).ok()?;
        os.matches.first().map(|m| m.name.clone()).or(os.coarse)
    }
    fn names(&self) -> Vec<Hostname> {
        serde_json::from_str(&self.hostnames).unwrap_or_default()
    }
}

/// A port of a row of `portset_ports`, its columns from `first` on.
fn port_record(r: &crate::backend::Row, first: usize) -> Result<PortRecord, StoreError> {
    Ok(PortRecord {
        protocol: r.get(first)?,
        port: r.get(first + 1)?,
        state: r.get(first + 2)?,
        reason: r.get(first + 3)?,
        service: r.get(first + 4)?,
        product: r.get(first + 5)?,
        version: r.get(first + 6)?,
        extrainfo: r.get(first + 7)?,
        tunnel: r.get(first + 8)?,
        scripts: r.get(first + 9)?,
    })
}

/// A host of a scan as a comparison needs it: its address, its state when not up, and its
/// port set (what tells two scans' hosts apart).
#[derive(Debug, Clone)]
struct LightHost {
    address: String,
    /// None when up, the most common state (no copy of it per host and scan).
    down: Option<String>,
    portset: Option<i64>,
}

impl LightHost {
    fn is_up(&self) -> bool {
        self.down.is_none()
    }
    fn state(&self) -> &str {
        self.down.as_deref().unwrap_or("up")
    }
}

/// Two consecutive complete scans of the same targets and their hosts that can differ, by
/// address: in one and not the other, or in both, up in one only or with another port set.
struct ScanPair {
    prev: i64,
    id: i64,
    /// The later scan's start, which dates its changes.
    started: i64,
    old: BTreeMap<String, LightHost>,
    new: BTreeMap<String, LightHost>,
}

impl ScanPair {
    /// The port sets its comparison reads: of the hosts up in both with other sets.
    fn port_sets(&self) -> impl Iterator<Item = i64> + '_ {
        self.new.iter().flat_map(|(addr, h)| {
            let o = self.old.get(addr).filter(|o| o.is_up() && h.is_up());
            let both = o.filter(|o| o.portset != h.portset);
            [both.and_then(|o| o.portset), both.and(h.portset)]
                .into_iter()
                .flatten()
        })
    }
}

/// A scan's hosts as a comparison needs them, in little memory (a year of scans is read):
/// the addresses in one buffer, and each host's state when not up and its port set.
#[derive(Default)]
struct ScanHosts {
    text: String,
    hosts: Vec<SlimHost>,
}

struct SlimHost {
    /// The address, `text[start..end]`.
    start: usize,
    end: usize,
    down: Option<Box<str>>,
    portset: Option<i64>,
}

impl ScanHosts {
    fn push(&mut self, address: &str, down: Option<Box<str>>, portset: Option<i64>) {
        let start = self.text.len();
        self.text.push_str(address);
        self.hosts.push(SlimHost {
            start,
            end: self.text.len(),
            down,
            portset,
        });
    }

    fn address(&self, h: &SlimHost) -> &str {
        self.text.get(h.start..h.end).unwrap_or_default()
    }

    /// Host `i` as a [`LightHost`].
    fn light(&self, i: usize) -> Option<LightHost> {
        let h = self.hosts.get(i)?;
        Some(LightHost {
            address: self.address(h).to_string(),
            down: h.down.as_deref().map(String::from),
            portset: h.portset,
        })
    }

    /// In address order (byte order), if not already.
    fn sort(&mut self) {
        let text = std::mem::take(&mut self.text);
        let addr = |h: &SlimHost| text.get(h.start..h.end).unwrap_or_default();
        if !self.hosts.is_sorted_by(|a, b| addr(a) <= addr(b)) {
            self.hosts.sort_by(|a, b| addr(a).cmp(addr(b)));
        }
        self.text = text;
    }
}

/// The hosts of `before` and `after` (a scan's hosts each, in address order) that can
/// differ (see [`ScanPair`]), of the addresses `wanted`. A host up (or not) in both with
/// the same set has no change, and most hosts have none.
#[allow(clippy::type_complexity)]
fn differing_hosts(
    before: &ScanHosts,
    after: &ScanHosts,
    wanted: &impl Fn(&str) -> bool,
) -> (BTreeMap<String, LightHost>, BTreeMap<String, LightHost>) {
    let (mut old, mut new) = (BTreeMap::new(), BTreeMap::new());
    let (mut i, mut j) = (0, 0);
    loop {
        let (b, a) = (before.hosts.get(i), after.hosts.get(j));
        let (b, a) = match (b, a) {
            (None, None) => break,
            (Some(b), Some(a)) if before.address(b) == after.address(a) => {
                i += 1;
                j += 1;
                let (b_up, a_up) = (b.down.is_none(), a.down.is_none());
                if b_up == a_up && (!a_up || b.portset == a.portset) {
                    continue;
                }
                (Some(i - 1), Some(j - 1))
            }
            (Some(b), Some(a)) if before.address(b) < after.address(a) => {
                i += 1;
                (Some(i - 1), None)
            }
            (Some(_), None) => {
                i += 1;
                (Some(i - 1), None)
            }
            (_, _) => {
                j += 1;
                (None, Some(j - 1))
            }
        };
        for (side, hosts, k) in [(&mut old, before, b), (&mut new, after, a)] {
            if let Some(h) = k.and_then(|k| hosts.light(k)) {
                if wanted(&h.address) {
                    side.insert(h.address.clone(), h);
                }
            }
        }
    }
    (old, new)
}

/// Sort key for addresses: numeric for IPs, then text.
pub(crate) fn addr_key(a: &str) -> (u8, u128, String) {
    match a.parse::<IpAddr>() {
        Ok(IpAddr::V4(v)) => (0, u32::from(v) as u128, String::new()),
        Ok(IpAddr::V6(v)) => (1, u128::from(v), String::new()),
        Err(_) => (2, 0, a.to_string()),
    }
}

/// The `vuln new` / `vuln gone` changes of port `p` against its record `b` in the scan
/// before (both open), `checked`: whether each scan looked for findings; `at` gives the
/// change's scans, address and port.
fn vuln_changes(
    b: &PortRecord,
    p: &PortRecord,
    checked: (bool, bool),
    at: &Change,
    out: &mut Vec<Change>,
) {
    let Some((appeared, gone)) = crate::findings::difference(b, checked.0, p, checked.1) else {
        return;
    };
    let gone = gone.into_iter().map(|f| (ChangeKind::VulnGone, f));
    let appeared = appeared.into_iter().map(|f| (ChangeKind::VulnNew, f));
    for (kind, f) in gone.chain(appeared) {
        let (before, after) = match kind {
            ChangeKind::VulnGone => (Some(f.summary()), None),
            _ => (None, Some(f.summary())),
        };
        out.push(Change {
            kind,
            before,
            after,
            cvss: f.cvss,
            cve: Some(f.cve),
            ..at.clone()
        });
    }
}

/// `?1, ?2, ..., ?n`: a fixed-length list of parameters for `IN (...)`, so that one
/// statement (prepared once) serves lists of any length up to `n`, padded.
fn placeholders(n: usize) -> String {
    let marks: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
    marks.join(", ")
}

/// Scans whose hosts one query reads: few round trips, and a bounded number of hosts held
/// at once.
const SCANS_PER_READ: usize = 48;

/// The parameters of a query of [`placeholders`]`(SCANS_PER_READ)` scan ids: `ids`, padded
/// with the first one (at most [`SCANS_PER_READ`] read).
fn scan_params(ids: &[i64]) -> Vec<crate::backend::Val> {
    let first = ids.first().copied().unwrap_or_default();
    (0..SCANS_PER_READ)
        .map(|i| ids.get(i).copied().unwrap_or(first).into())
        .collect()
}

/// A group's complete scans, (id, start), oldest first.
type GroupScans = [(i64, i64)];

/// Now, in Unix epoch seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    fn hosts_of(&self, scan: i64) -> Result<Vec<HostRow>, StoreError> {
        self.conn().hosts_of(scan)
    }

    fn preload_ports(
        &self,
        cache: &mut HashMap<i64, Vec<PortRecord>>,
        scan: i64,
    ) -> Result<(), StoreError> {
        self.conn().preload_ports(cache, scan)
    }

    fn cached_ports<'a>(
        &self,
        cache: &'a mut HashMap<i64, Vec<PortRecord>>,
        set: Option<i64>,
    ) -> Result<&'a [PortRecord], StoreError> {
        self.conn().cached_ports(cache, set)
    }

    /// A scan rebuilt as a run: its hosts with their addresses, names, listed ports,
    /// services and scripts, OS detection and host scripts, collapsed counts (without their
    /// reasons), and the run's pre- and post-scan scripts.
    pub fn load_run(&self, scan: ScanId) -> Result<ScanRun, StoreError> {
        self.conn().load_run(scan)
    }

    /// Reads through the store's connection.
    fn conn(&self) -> Conn<'_> {
        Conn { db: &self.db }
    }

    /// Every scan, oldest first, complete or not.
    pub fn history(&self) -> Result<Vec<ScanRecord>, StoreError> {
        let rows = self.db.query(
            "SELECT s.id, s.started, s.finished, s.args, s.targets, s.hosts_up, s.hosts_total,
                    s.complete, s.source, s.file, s.scan_key, r.round, s.part, s.parts,
                    s.part_done
             FROM scans s LEFT JOIN shard_rounds r ON r.id = s.round_id
             ORDER BY s.started, s.id",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(ScanRecord {
                    id: r.get(0)?,
                    started: r.get(1)?,
                    finished: r.get(2)?,
                    args: r.get(3)?,
                    targets: r.get(4)?,
                    hosts_up: r.get(5)?,
                    hosts_total: r.get(6)?,
                    complete: r.get(7)?,
                    source: r.get(8)?,
                    file: r.get(9)?,
                    scan_key: r.get(10)?,
                    round: r.get(11)?,
                    part: r.get(12)?,
                    parts: r.get(13)?,
                    part_done: r.get(14)?,
                })
            })
            .collect()
    }

    /// Complete scans `(id, started, targets)`, oldest first.
    fn complete_scans(&self) -> Result<Vec<(i64, i64, String)>, StoreError> {
        self.db
            .query(
                "SELECT id, started, targets FROM scans WHERE complete = 1 ORDER BY started, id",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .collect()
    }

    /// What changed in the last `since` (see [`Store::changes_since`]).
    pub fn changes(
        &self,
        since: Duration,
        target: Option<Cidr>,
    ) -> Result<Vec<Change>, StoreError> {
        self.changes_since(now() - since.as_secs() as i64, target)
    }

    /// Changes seen by complete scans started at or after `since` (epoch seconds), each
    /// against the complete scan of the same targets before it, oldest first; only for
    /// addresses in `target` when given.
    pub fn changes_since(
        &self,
        since: i64,
        target: Option<Cidr>,
    ) -> Result<Vec<Change>, StoreError> {
        self.changes_between(since, i64::MAX, target)
    }

    /// [`Store::changes_since`] `since`, of the scans started before `until` only: the
    /// changes of two spans that meet, each computed apart (on two connections at once),
    /// are those of the whole, one list after the other.
    ///
    /// Read set by set rather than scan by scan: the hosts (address, state, port set) of a
    /// group's scans in the window come a few dozen scans per query, consecutive scans are
    /// compared in memory, and the port sets the differing hosts need are read together
    /// after. A year of daily scans takes a dozen queries, not thousands (each a round trip
    /// in PostgreSQL).
    pub fn changes_between(
        &self,
        since: i64,
        until: i64,
        target: Option<Cidr>,
    ) -> Result<Vec<Change>, StoreError> {
        let mut groups: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
        for (id, started, targets) in self.complete_scans()? {
            groups.entry(targets).or_default().push((id, started));
        }
        let wanted = |a: &str| match target {
            Some(c) => c.contains_str(a),
            None => true,
        };
        // Each group's scans, and its window: from the scan before the first one started
        // since then, to the last one started before `until`.
        let windows: Vec<(&GroupScans, usize, usize)> = groups
            .values()
            .filter_map(|scans| {
                let first = scans.iter().position(|(_, t)| *t >= since)?;
                let end = scans.partition_point(|(_, t)| *t < until);
                (end > first).then_some((&scans[..], first.saturating_sub(1), end))
            })
            .collect();
        let mut pairs = Vec::new();
        for &(scans, start, end) in &windows {
            let window = scans.get(start..end).unwrap_or_default();
            self.differing_pairs(window, &wanted, &mut pairs)?;
        }
        let mut cache = HashMap::new();
        let sets: BTreeSet<i64> = pairs.iter().flat_map(ScanPair::port_sets).collect();
        self.conn().load_port_sets(&mut cache, &sets)?;
        let asked = self.scans_asking_vulns()?;
        let mut pairs = pairs.into_iter();
        let mut out = Vec::new();
        for &(scans, start, end) in &windows {
            // The latest scan run with --vulns so far: findings compare with it.
            let mut last_vulns = scans
                .get(..start)
                .unwrap_or_default()
                .iter()
                .rev()
                .find(|(id, _)| asked.contains(id))
                .map(|(id, _)| *id);
            let mut prev: Option<i64> = None;
            for &(id, started) in scans.get(start..end).unwrap_or_default() {
                if let Some(prev_id) = prev {
                    // One pair per two consecutive scans, in this order (differing_pairs).
                    let pair = pairs
                        .next()
                        .filter(|p| p.prev == prev_id && p.id == id)
                        .ok_or_else(|| StoreError::BadValue("scan pairs out of step".into()))?;
                    self.diff_hosts(&pair, &asked, &mut cache, &mut out)?;
                    if let Some(last) = last_vulns.filter(|l| asked.contains(&id) && *l != prev_id)
                    {
                        self.diff_findings(last, id, started, &wanted, &mut cache, &mut out)?;
                    }
                }
                if asked.contains(&id) {
                    last_vulns = Some(id);
                }
                prev = Some(id);
            }
        }
        out.sort_by(|a, b| {
            (a.first_seen, addr_key(&a.address), a.port, a.kind as u8).cmp(&(
                b.first_seen,
                addr_key(&b.address),
                b.port,
                b.kind as u8,
            ))
        });
        Ok(out)
    }

    /// Scans `window` (consecutive complete scans of the same targets, oldest first) compared two
    /// by two: for each pair, its hosts that can differ, added to `out` in order.
    fn differing_pairs(
        &self,
        window: &[(i64, i64)],
        wanted: &impl Fn(&str) -> bool,
        out: &mut Vec<ScanPair>,
    ) -> Result<(), StoreError> {
        let mut prev: Option<(i64, ScanHosts)> = None;
        for chunk in window.chunks(SCANS_PER_READ) {
            let ids: Vec<i64> = chunk.iter().map(|c| c.0).collect();
            let mut hosts = self.hosts_of_scans(&ids)?;
            for &(id, started) in chunk {
                let mut after = hosts.remove(&id).unwrap_or_default();
                // The merge below needs address order; the queries give it (byte order in
                // both databases), this only guards it.
                after.sort();
                if let Some((prev_id, before)) = &prev {
                    let (old, new) = differing_hosts(before, &after, wanted);
                    out.push(ScanPair {
                        prev: *prev_id,
                        id,
                        started,
                        old,
                        new,
                    });
                }
                prev = Some((id, after));
            }
        }
        Ok(())
    }

    /// The hosts of scans `ids` (at most [`SCANS_PER_READ`]) as a comparison needs them, by
    /// scan, each in address order: in one query, row by row in SQLite, one row of arrays per
    /// scan in PostgreSQL (see [`Store::hosts_of_scans_as_arrays`]).
    fn hosts_of_scans(&self, ids: &[i64]) -> Result<HashMap<i64, ScanHosts>, StoreError> {
        match self.db.backend() {
            crate::Backend::Sqlite => self.hosts_of_scans_as_rows(ids),
            crate::Backend::Postgres => self.hosts_of_scans_as_arrays(ids),
        }
    }

    /// [`Store::hosts_of_scans`], a row per host.
    fn hosts_of_scans_as_rows(&self, ids: &[i64]) -> Result<HashMap<i64, ScanHosts>, StoreError> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            // In the primary key's order: an index range per scan, nothing to sort.
            format!(
                "SELECT scan_id, address, CASE WHEN state = 'up' THEN NULL ELSE state END,
                        portset_id
                 FROM hosts_seen WHERE scan_id IN ({})
                 ORDER BY scan_id, address",
                placeholders(SCANS_PER_READ)
            )
        });
        let mut hosts: HashMap<i64, ScanHosts> = HashMap::new();
        let mut current: Option<(i64, ScanHosts)> = None;
        self.db.query_each(sql, &scan_params(ids), |r| {
            let scan = r.int(0)?;
            if current.as_ref().map(|c| c.0) != Some(scan) {
                hosts.extend(current.take());
                current = Some((scan, ScanHosts::default()));
            }
            if let Some((_, list)) = current.as_mut() {
                let down = r.opt_text(2)?.map(Box::from);
                list.push(r.text(1)?, down, r.opt_int(3)?);
            }
            Ok(())
        })?;
        hosts.extend(current.take());
        Ok(hosts)
    }

    /// [`Store::hosts_of_scans`], a row per scan holding its hosts' columns as three arrays
    /// (PostgreSQL only). The same data as [`Store::hosts_of_scans_as_rows`]: a year of
    /// scans is 1.4 million hosts, which the client decodes several times faster as a few
    /// hundred binary arrays than as as many rows.
    fn hosts_of_scans_as_arrays(&self, ids: &[i64]) -> Result<HashMap<i64, ScanHosts>, StoreError> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            // Aggregated from a sorted subquery: PostgreSQL feeds the rows to the aggregates
            // in its order (an index range per scan), so the arrays come in address order
            // without a sort per scan; the caller still checks it.
            format!(
                "SELECT scan_id, array_agg(address), array_agg(down), array_agg(portset_id)
                 FROM (SELECT scan_id, address,
                              CASE WHEN state = 'up' THEN NULL ELSE state END AS down,
                              portset_id
                       FROM hosts_seen WHERE scan_id IN ({})
                       ORDER BY scan_id, address) AS h
                 GROUP BY scan_id",
                placeholders(SCANS_PER_READ)
            )
        });
        let mut hosts: HashMap<i64, ScanHosts> = HashMap::new();
        self.db.query_each(sql, &scan_params(ids), |r| {
            let (addresses, downs, sets) = (
                r.opt_text_array(1)?,
                r.opt_text_array(2)?,
                r.opt_int_array(3)?,
            );
            if downs.len() != addresses.len() || sets.len() != addresses.len() {
                return Err(StoreError::BadValue(
                    "a scan's host arrays differ in length".into(),
                ));
            }
            let list = hosts.entry(r.int(0)?).or_default();
            list.hosts.reserve(addresses.len());
            for ((address, down), set) in addresses.into_iter().zip(downs).zip(sets) {
                let address = address
                    .ok_or_else(|| StoreError::BadValue("a host without an address".into()))?;
                list.push(address, down.map(Box::from), set);
            }
            Ok(())
        })?;
        Ok(hosts)
    }

    /// The complete scans run with `--vulns` (their command lines say so).
    fn scans_asking_vulns(&self) -> Result<HashSet<i64>, StoreError> {
        let mut out = HashSet::new();
        for r in self
            .db
            .query("SELECT id, args FROM scans WHERE complete = 1", &[])?
        {
            if crate::findings::args_ask_vulns(&r.get::<String>(1)?) {
                out.insert(r.get(0)?);
            }
        }
        Ok(out)
    }

    /// The findings that appeared or went away between scan `last`, the latest run with
    /// `--vulns` before scan `id`, when scans without it came between: each consecutive pair
    /// says nothing of findings then, this one does. Only hosts up in both, ports open in
    /// both; the changes are dated by `id`'s start and name `last` as the scan before.
    fn diff_findings(
        &self,
        last: i64,
        id: i64,
        started: i64,
        wanted: &impl Fn(&str) -> bool,
        cache: &mut HashMap<i64, Vec<PortRecord>>,
        out: &mut Vec<Change>,
    ) -> Result<(), StoreError> {
        self.preload_ports(cache, last)?;
        self.preload_ports(cache, id)?;
        let old: HashMap<String, HostRow> = self
            .hosts_of(last)?
            .into_iter()
            .filter(|h| h.is_up())
            .map(|h| (h.address.clone(), h))
            .collect();
        for h in self.hosts_of(id)? {
            let Some(o) = old.get(&h.address) else {
                continue;
            };
            if !h.is_up() || o.portset == h.portset || !wanted(&h.address) {
                continue;
            }
            let before: HashMap<(String, u16), PortRecord> = self
                .cached_ports(cache, o.portset)?
                .iter()
                .filter(|p| p.is_open())
                .map(|p| ((p.protocol.clone(), p.port), p.clone()))
                .collect();
            for p in self.cached_ports(cache, h.portset)? {
                let Some(b) = before.get(&(p.protocol.clone(), p.port)) else {
                    continue;
                };
                if p.is_open() && b.scripts != p.scripts {
                    let at = Change {
                        first_seen: started,
                        scan_id: id,
                        previous_scan_id: last,
                        address: h.address.clone(),
                        kind: ChangeKind::VulnNew,
                        protocol: Some(p.protocol.clone()),
                        port: Some(p.port),
                        before: None,
                        after: None,
                        cve: None,
                        cvss: None,
                    };
                    vuln_changes(b, p, (true, true), &at, out);
                }
            }
        }
        Ok(())
    }

    /// The changes between the differing hosts of `pair`; `asked`: the scans run with
    /// `--vulns`.
    fn diff_hosts(
        &self,
        pair: &ScanPair,
        asked: &HashSet<i64>,
        cache: &mut HashMap<i64, Vec<PortRecord>>,
        out: &mut Vec<Change>,
    ) -> Result<(), StoreError> {
        let (prev_id, id) = (pair.prev, pair.id);
        let change = |address: &str, kind, port: Option<&PortRecord>, before, after| Change {
            first_seen: pair.started,
            scan_id: id,
            previous_scan_id: prev_id,
            address: address.to_string(),
            kind,
            protocol: port.map(|p| p.protocol.clone()),
            port: port.map(|p| p.port),
            before,
            after,
            cve: None,
            cvss: None,
        };
        for (addr, h) in &pair.new {
            let was = pair.old.get(addr).filter(|o| o.is_up());
            match (was, h.is_up()) {
                (None, true) => out.push(change(addr, ChangeKind::HostAppeared, None, None, None)),
                (Some(_), false) => out.push(change(
                    addr,
                    ChangeKind::HostDisappeared,
                    None,
                    Some("up".into()),
                    Some(h.state().to_string()),
                )),
                (Some(o), true) if o.portset != h.portset => {
                    let before: Vec<PortRecord> = self.cached_ports(cache, o.portset)?.to_vec();
                    let by_key: HashMap<(&str, u16), &PortRecord> = before
                        .iter()
                        .map(|p| ((p.protocol.as_str(), p.port), p))
                        .collect();
                    let after = self.cached_ports(cache, h.portset)?;
                    let mut seen = HashSet::new();
                    for p in after {
                        let key = (p.protocol.as_str(), p.port);
                        let b = by_key.get(&key).copied();
                        seen.insert(key);
                        match b {
                            Some(b) if b.is_open() && p.is_open() => {
                                let (was, now) = (b.service_text(), p.service_text());
                                if was != now {
                                    out.push(change(
                                        addr,
                                        ChangeKind::ServiceChanged,
                                        Some(p),
                                        Some(was),
                                        Some(now),
                                    ));
                                }
                                if b.scripts != p.scripts {
                                    let checked = (asked.contains(&prev_id), asked.contains(&id));
                                    let at = change(addr, ChangeKind::VulnNew, Some(p), None, None);
                                    vuln_changes(b, p, checked, &at, out);
                                }
                            }
                            Some(b) if b.is_open() => out.push(change(
                                addr,
                                ChangeKind::PortClosed,
                                Some(p),
                                Some(b.state.clone()),
                                Some(p.state.clone()),
                            )),
                            _ if p.is_open() => out.push(change(
                                addr,
                                ChangeKind::PortOpened,
                                Some(p),
                                b.map(|b| b.state.clone()),
                                Some(p.service_text()),
                            )),
                            _ => {}
                        }
                    }
                    for b in &before {
                        if b.is_open() && !seen.contains(&(b.protocol.as_str(), b.port)) {
                            out.push(change(
                                addr,
                                ChangeKind::PortClosed,
                                Some(b),
                                Some(b.state.clone()),
                                None,
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        for (addr, o) in &pair.old {
            if o.is_up() && !pair.new.contains_key(addr) {
                out.push(change(
                    addr,
                    ChangeKind::HostDisappeared,
                    None,
                    Some("up".into()),
                    None,
                ));
            }
        }
        Ok(())
    }
    /// The current inventory: hosts up in the newest complete scan of each set of targets,
    /// by address, with their open ports.
    pub fn hosts(&self) -> Result<Vec<InventoryHost>, StoreError> {
        let mut latest: Vec<(i64, i64)> = Vec::new();
        let mut groups = HashSet::new();
        for (id, started, targets) in self.complete_scans()?.into_iter().rev() {
            if groups.insert(targets) {
                latest.push((id, started));
            }
        }
        let mut seen: HashSet<String> = HashSet::new();
        let mut cache = HashMap::new();
        let mut out = Vec::new();
        for (id, started) in latest {
            self.preload_ports(&mut cache, id)?;
            for h in self.hosts_of(id)? {
                if !seen.insert(h.address.clone()) || !h.is_up() {
                    continue;
                }
                let ports = self
                    .cached_ports(&mut cache, h.portset)?
                    .iter()
                    .filter(|p| p.is_open())
                    .cloned()
                    .collect();
                out.push(InventoryHost {
                    hostnames: h.names().into_iter().map(|n| n.name).collect(),
                    os: h.os_name(),
                    address: h.address,
                    mac: h.mac,
                    vendor: h.vendor,
                    last_seen: started,
                    scan_id: id,
                    ports,
                });
            }
        }
        out.sort_by_key(|h| addr_key(&h.address));
        Ok(out)
    }

    /// Open ports of the current inventory, on `port` and with a product containing
    /// `product` (case-insensitive) when given.
    pub fn services(
        &self,
        port: Option<u16>,
        product: Option<&str>,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let needle = product.map(str::to_lowercase);
        let mut out = Vec::new();
        for h in self.hosts()? {
            for p in &h.ports {
                if port.is_some_and(|n| n != p.port) {
                    continue;
                }
                if let Some(n) = &needle {
                    let hay = p.product.as_deref().unwrap_or("").to_lowercase();
                    if !hay.contains(n.as_str()) {
                        continue;
                    }
                }
                out.push(ServiceRecord {
                    address: h.address.clone(),
                    hostname: h.hostnames.first().cloned(),
                    last_seen: h.last_seen,
                    scan_id: h.scan_id,
                    port: p.clone(),
                });
            }
        }
        Ok(out)
    }

    /// One address across every complete scan that reported it, oldest first: its state,
    /// names, OS and scripts, and its listed ports (all states) in each. The web view's host
    /// page builds its timeline from it.
    pub fn host_history(&self, address: &str) -> Result<Vec<HostSnapshot>, StoreError> {
        let sql = "SELECT s.id, s.started, s.targets, h.state, h.hostnames, h.mac, h.vendor,
                    h.portset_id, h.os, h.hostscripts
             FROM hosts_seen h JOIN scans s ON s.id = h.scan_id
             WHERE h.address = ?1 AND s.complete = 1
             ORDER BY s.started, s.id";
        type Row = (
            i64,
            i64,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
            String,
        );
        let rows: Vec<Row> = self
            .db
            .query(sql, &vals![address])?
            .iter()
            .map(|r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let bad = |what: &str, v: &str| StoreError::BadValue(format!("{what} {v:?}"));
        let mut cache = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for (scan_id, started, targets, state, names, mac, vendor, set, os, hostscripts) in rows {
            let mut ports = self.cached_ports(&mut cache, set)?.to_vec();
            ports.sort_by(|a, b| (a.port, &a.protocol).cmp(&(b.port, &b.protocol)));
            out.push(HostSnapshot {
                scan_id,
                started,
                targets,
                up: state == "up",
                state,
                hostnames: serde_json::from_str::<Vec<Hostname>>(&names)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| n.name)
                    .collect(),
                mac,
                vendor,
                os: match os {
                    Some(text) => {
                        Some(serde_json::from_str::<Os>(&text).map_err(|_| bad("os", &text))?)
                    }
                    None => None,
                },
                hostscripts: serde_json::from_str(&hostscripts)
                    .map_err(|_| bad("host scripts", &hostscripts))?,
                portset: set,
                ports,
            });
        }
        Ok(out)
    }

    /// The newest complete scan (of `targets` when given) and the complete scan of the same
    /// targets before it, as `(older, newer)` runs rebuilt from the store; None when there
    /// are not two.
    pub fn last_two_of_same_targets(
        &self,
        targets: Option<&str>,
    ) -> Result<Option<(ScanRun, ScanRun)>, StoreError> {
        let newest: Option<(i64, i64, String)> = self
            .db
            .query_opt(
                "SELECT id, started, targets FROM scans
                 WHERE complete = 1 AND (CAST(?1 AS TEXT) IS NULL OR targets = ?1)
                 ORDER BY started DESC, id DESC LIMIT 1",
                &vals![targets],
            )?
            .map(|r| Ok::<_, StoreError>((r.get(0)?, r.get(1)?, r.get(2)?)))
            .transpose()?;
        let Some((id, started, targets)) = newest else {
            return Ok(None);
        };
        let older: Option<i64> = self
            .db
            .query_opt(
                "SELECT id FROM scans
                 WHERE complete = 1 AND targets = ?1
                   AND (started < ?2 OR (started = ?2 AND id < ?3))
                 ORDER BY started DESC, id DESC LIMIT 1",
                &vals![targets, started, id],
            )?
            .map(|r| r.get(0))
            .transpose()?;
        let Some(older) = older else { return Ok(None) };
        Ok(Some((
            self.load_run(ScanId(older))?,
            self.load_run(ScanId(id))?,
        )))
    }
}

/// The reads a transaction under way needs too (the union of a sharded scan's parts is
/// built from them in the writer's transaction): the store's connection, or that one in
/// the middle of a write.
pub(crate) struct Conn<'a> {
    pub(crate) db: &'a Db,
}

/// [`Store::load_run`] on a connection in a transaction.
pub(crate) fn load_run_in(db: &Db, scan: ScanId) -> Result<ScanRun, StoreError> {
    Conn { db }.load_run(scan)
}

impl Conn<'_> {
    fn hosts_of(&self, scan: i64) -> Result<Vec<HostRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM hosts_seen WHERE scan_id = ?1",
            HostRow::COLUMNS
        );
        self.db
            .query(&sql, &vals![scan])?
            .iter()
            .map(HostRow::read)
            .collect()
    }

    /// The ports of set `set`, in (protocol, port) order on either database.
    fn ports_of(&self, set: i64) -> Result<Vec<PortRecord>, StoreError> {
        let rows = self.db.query(
            "SELECT protocol, port, state, reason, service, product, version, extrainfo, tunnel,
                    scripts
             FROM portset_ports WHERE set_id = ?1 ORDER BY protocol, port",
            &vals![set],
        )?;
        rows.iter().map(|r| port_record(r, 0)).collect()
    }

    /// Loads the port sets of scan `scan`'s hosts that `cache` lacks, in one query rather
    /// than one per set (a round trip each in PostgreSQL).
    fn preload_ports(
        &self,
        cache: &mut HashMap<i64, Vec<PortRecord>>,
        scan: i64,
    ) -> Result<(), StoreError> {
        let sets = self.db.query(
            "SELECT DISTINCT portset_id FROM hosts_seen
             WHERE scan_id = ?1 AND portset_id IS NOT NULL",
            &vals![scan],
        )?;
        let mut missing = HashSet::new();
        for r in &sets {
            let set: i64 = r.get(0)?;
            if !cache.contains_key(&set) {
                missing.insert(set);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let rows = self.db.query(
            "SELECT set_id, protocol, port, state, reason, service, product, version, extrainfo,
                    tunnel, scripts
             FROM portset_ports
             WHERE set_id IN (SELECT portset_id FROM hosts_seen WHERE scan_id = ?1)
             ORDER BY set_id, protocol, port",
            &vals![scan],
        )?;
        let mut loaded: HashMap<i64, Vec<PortRecord>> =
            missing.iter().map(|&set| (set, Vec::new())).collect();
        for r in &rows {
            if let Some(ports) = loaded.get_mut(&r.get::<i64>(0)?) {
                ports.push(port_record(r, 1)?);
            }
        }
        cache.extend(loaded);
        Ok(())
    }

    /// Loads the port sets `sets` that `cache` lacks, a few dozen per query.
    fn load_port_sets(
        &self,
        cache: &mut HashMap<i64, Vec<PortRecord>>,
        sets: &BTreeSet<i64>,
    ) -> Result<(), StoreError> {
        // One statement text whatever the count (a cached statement): short chunks are
        // padded with their first id.
        const CHUNK: usize = 64;
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "SELECT set_id, protocol, port, state, reason, service, product, version,
                        extrainfo, tunnel, scripts
                 FROM portset_ports WHERE set_id IN ({})
                 ORDER BY set_id, protocol, port",
                placeholders(CHUNK)
            )
        });
        let missing: Vec<i64> = sets
            .iter()
            .copied()
            .filter(|s| !cache.contains_key(s))
            .collect();
        for chunk in missing.chunks(CHUNK) {
            let Some(&first) = chunk.first() else {
                continue;
            };
            let params: Vec<crate::backend::Val> = (0..CHUNK)
                .map(|i| chunk.get(i).copied().unwrap_or(first).into())
                .collect();
            for &set in chunk {
                cache.insert(set, Vec::new());
            }
            for r in &self.db.query(sql, &params)? {
                if let Some(ports) = cache.get_mut(&r.get::<i64>(0)?) {
                    ports.push(port_record(r, 1)?);
                }
            }
        }
        Ok(())
    }

    /// Port sets, loaded once each.
    fn cached_ports<'a>(
        &self,
        cache: &'a mut HashMap<i64, Vec<PortRecord>>,
        set: Option<i64>,
    ) -> Result<&'a [PortRecord], StoreError> {
        let Some(set) = set else { return Ok(&[]) };
        Ok(match cache.entry(set) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(self.ports_of(set)?),
        })
    }

    /// [`Store::load_run`]'s body.
    pub fn load_run(&self, scan: ScanId) -> Result<ScanRun, StoreError> {
        type Row = (
            i64,
            Option<i64>,
            String,
            u32,
            u32,
            bool,
            String,
            String,
            String,
            String,
        );
        let row: Option<Row> = self
            .db
            .query_opt(
                "SELECT started, finished, args, hosts_up, hosts_total, complete, scanner,
                        version, prescripts, postscripts
                 FROM scans WHERE id = ?1",
                &vals![scan.0],
            )?
            .map(|r| {
                Ok::<_, StoreError>((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            })
            .transpose()?;
        let Some((started, finished, args, up, total, complete, scanner, version, pre, post)) = row
        else {
            return Err(StoreError::NoSuchScan(scan));
        };
        let bad = |what: &str, v: &str| StoreError::BadValue(format!("{what} {v:?}"));
        let scripts = |what: &str, v: &str| -> Result<Vec<Script>, StoreError> {
            serde_json::from_str(v).map_err(|_| bad(what, v))
        };
        let mut run = ScanRun::new(args, started);
        run.scanner = scanner;
        run.version = version;
        run.prescripts = scripts("pre-scan scripts", &pre)?;
        run.postscripts = scripts("post-scan scripts", &post)?;
        let mut extras: HashMap<i64, String> = HashMap::new();
        let mut cache = HashMap::new();
        self.preload_ports(&mut cache, scan.0)?;
        let mut rows = self.hosts_of(scan.0)?;
        rows.sort_by_key(|h| addr_key(&h.address));
        for h in rows {
            let state: HostState = h.state.parse().map_err(|_| bad("host state", &h.state))?;
            let mut addresses = vec![Address {
                addr: h.address.clone(),
                addrtype: h
                    .addrtype
                    .parse()
                    .map_err(|_| bad("address type", &h.addrtype))?,
                vendor: None,
            }];
            if let Some(mac) = &h.mac {
                addresses.push(Address {
                    addr: mac.clone(),
                    addrtype: AddrType::Mac,
                    vendor: h.vendor.clone(),
                });
            }
            let mut ports = Vec::new();
            for p in self.cached_ports(&mut cache, h.portset)? {
                let protocol: Protocol = p
                    .protocol
                    .parse()
                    .map_err(|_| bad("protocol", &p.protocol))?;
                let pstate: PortState = p.state.parse().map_err(|_| bad("port state", &p.state))?;
                let mut port = Port::new(protocol, p.port, pstate, p.reason.clone());
                port.service = p.service.as_ref().map(|name| {
                    let probed = p.product.is_some() || p.version.is_some();
                    Service {
                        name: name.clone(),
                        product: p.product.clone(),
                        version: p.version.clone(),
                        extrainfo: p.extrainfo.clone(),
                        tunnel: p.tunnel.clone(),
                        method: if probed {
                            ServiceMethod::Probed
                        } else {
                            ServiceMethod::Table
                        },
                        conf: if probed { 10 } else { 3 },
                        ..Service::default()
                    }
                });
                port.scripts = scripts("port scripts", &p.scripts)?;
                ports.push(port);
            }
            ports.sort_by_key(|p| (p.protocol, p.portid));
            let mut extraports = Vec::new();
            if let Some(set) = h.portset {
                let extra = match extras.entry(set) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(
                        self.db
                            .query_opt("SELECT extra FROM portsets WHERE id = ?1", &vals![set])?
                            .map(|r| r.get::<String>(0))
                            .transpose()?
                            .unwrap_or_default(),
                    ),
                };
                for piece in extra.split(',').filter(|s| !s.is_empty()) {
                    let (s, n) = piece.rsplit_once('=').ok_or_else(|| bad("extra", piece))?;
                    extraports.push(ExtraPorts {
                        state: s.parse().map_err(|_| bad("extra state", s))?,
                        count: n.parse().map_err(|_| bad("extra count", n))?,
                        reasons: Vec::new(),
                    });
                }
            }
            run.hosts.push(Host {
                starttime: h.starttime,
                endtime: h.endtime,
                status: HostStatus {
                    state,
                    reason: h.reason.clone(),
                    reason_ttl: 0,
                },
                hostnames: h.names(),
                addresses,
                extraports,
                ports,
                os: match &h.os {
                    Some(text) => {
                        Some(serde_json::from_str::<Os>(text).map_err(|_| bad("os", text))?)
                    }
                    None => None,
                },
                uptime: None,
                distance: None,
                tcpsequence: None,
                ipidsequence: None,
                tcptssequence: None,
                hostscripts: scripts("host scripts", &h.hostscripts)?,
                trace: None,
                times: None,
            });
        }
        run.runstats = finished.map(|finished| RunStats {
            finished,
            elapsed: (finished - started).max(0) as f64,
            exit: if complete {
                RunExit::Success
            } else {
                RunExit::Error
            },
            errormsg: None,
            hosts_up: up,
            hosts_down: total.saturating_sub(up),
            hosts_total: total,
            completeness: None,
        });
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FinishStats, ScanMeta, Source};

    /// A store with scans of hosts written out of address order (10.0.0.9 before
    /// 10.0.0.10), some down, some up without ports, their sets shared between scans.
    fn filled(path: &str, scans: usize) -> (Store, Vec<i64>) {
        let mut store = Store::open(path).unwrap();
        let mut ids = Vec::new();
        for s in 0..scans {
            let meta = ScanMeta {
                started: 1_700_000_000 + s as i64 * 86_400,
                args: "portolan 10.0.0.0/24".into(),
                targets: "10.0.0.0/24".into(),
                source: Source::Scan,
                file: None,
                scanner: "portolan".into(),
                version: "0.1.0".into(),
            };
            let id = store.begin_scan(&meta).unwrap();
            for i in 1..=12u16 {
                let status = match (i + s as u16) % 5 {
                    0 => HostStatus::down("no-response"),
                    _ => HostStatus::up("syn-ack"),
                };
                let mut h = Host::new(format!("10.0.0.{i}").parse().unwrap(), status);
                if i % 4 != 0 {
                    let port = 20 + (i + s as u16 / 2) % 3;
                    h.ports
                        .push(Port::new(Protocol::Tcp, port, PortState::Open, "syn-ack"));
                }
                store.add_host(id, &h).unwrap();
            }
            let stats = FinishStats {
                finished: meta.started + 60,
                hosts_up: 12,
                hosts_total: 256,
            };
            store.finish_scan(id, stats).unwrap();
            ids.push(id.0);
        }
        (store, ids)
    }

    type Listed = BTreeMap<i64, Vec<(String, Option<String>, Option<i64>)>>;

    fn listed(hosts: HashMap<i64, ScanHosts>) -> Listed {
        hosts
            .into_iter()
            .map(|(id, mut list)| {
                list.sort();
                let rows = list
                    .hosts
                    .iter()
                    .map(|h| {
                        let down = h.down.as_deref().map(String::from);
                        (list.address(h).to_string(), down, h.portset)
                    })
                    .collect();
                (id, rows)
            })
            .collect()
    }

    /// Both readers of a scan's hosts, on a store at `path`: each scan asked for, its hosts
    /// in byte order of address, the down ones with their state, the same set for the same
    /// ports.
    fn check_readers(path: &str) {
        let (store, ids) = filled(path, 5);
        let asked = ids.get(1..).unwrap();
        let rows = listed(store.hosts_of_scans_as_rows(asked).unwrap());
        assert_eq!(rows.keys().copied().collect::<Vec<_>>(), asked);
        for (s, list) in rows.values().enumerate() {
            let addresses: Vec<&str> = list.iter().map(|h| h.0.as_str()).collect();
            assert_eq!(addresses.len(), 12);
            assert!(addresses.is_sorted(), "{addresses:?}");
            assert_eq!(addresses.first(), Some(&"10.0.0.1"));
            let down = list.iter().filter(|h| h.1.is_some()).count();
            assert!(down > 0 && down < 12, "scan {s}: {down} down");
            assert!(list.iter().all(|h| h.1.as_deref() != Some("up")));
        }
        let sets: BTreeSet<Option<i64>> = rows.values().flatten().map(|h| h.2).collect();
        assert!(sets.len() >= 3, "{sets:?}");
        match store.backend() {
            crate::Backend::Postgres => {
                let arrays = listed(store.hosts_of_scans_as_arrays(asked).unwrap());
                assert_eq!(arrays, rows);
                // What changes_between reads: the arrays.
                assert_eq!(listed(store.hosts_of_scans(asked).unwrap()), rows);
            }
            crate::Backend::Sqlite => {
                // No arrays in SQLite: an error, not a panic.
                assert!(store.hosts_of_scans_as_arrays(asked).is_err());
                assert_eq!(listed(store.hosts_of_scans(asked).unwrap()), rows);
            }
        }
    }

    #[test]
    fn scan_hosts_read_alike_in_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        check_readers(&dir.path().join("s.db").to_string_lossy());
    }

    #[test]
    fn scan_hosts_read_alike_as_rows_and_as_arrays_in_postgres() {
        if let Some(pg) = portolan_testpg::TestPg::shared() {
            check_readers(&pg.fresh_db("scan_hosts_read_alike"));
        }
    }
}
