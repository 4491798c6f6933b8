//! Sharded scans: the N parts of one `--shard K/N` scan, run from N machines (or N
//! processes) into one store, form one scan.
//!
//! - Each part is a row of `scans` with the scan's identity (`scan_key`), its part number
//!   and the part count. A part never counts on its own: its `complete` stays 0, so the
//!   inventory, the changes and `diff --last` never see it; `part_done` says it ran to its
//!   end.
//! - Parts of one identity are grouped in rounds (`shard_rounds`). A part joins the latest
//!   round of its identity (and part count) that still misses its part number, else starts
//!   a new round: a killed part run again completes its round, and an identity used night
//!   after night (better: `--scan-id nightly-$(date +%F)`) gets a round a night.
//! - The writer whose part completes a round adds, in the same transaction, the union of
//!   its parts as one ordinary complete scan (hosts merged: see [`merge_hosts`]), linked
//!   from the round.
//! - Every writer of a part takes its identity's lock first (its row of `shard_scans`,
//!   updated to itself), so that the writers of one identity choose and close rounds one
//!   after the other: in PostgreSQL two parts beginning at once cannot open two rounds,
//!   and two finishing at once cannot both miss the last one nor both add the union.
//!
//! The grouping is decided here in Rust; the SQL is the portable subset (no SQLite-only
//! functions) so that another backend runs the same statements.

use crate::backend::{vals, Db};
use crate::query::{addr_key, load_run_in};
use crate::write::{finish, insert_host, insert_scan, set_run_scripts};
use crate::{FinishStats, ScanId, ScanMeta, Store, StoreError};
use portolan_model::{AddrType, ExtraPorts, Host, PortState, ScanRun};
use serde::Serialize;
use std::collections::BTreeMap;

/// Nmap's rule, as the engine applies it to every host: a port state other than open is
/// shown as a count once more than this many ports are in it. The union applies it again
/// to the ports of all its parts.
pub const COLLAPSE_THRESHOLD: u32 = 25;

/// What a part of a sharded scan says of itself when it begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPart {
    /// The scan's identity: the same on every part (`--scan-id`, or derived from the plan).
    pub scan_key: String,
    /// K, 1-based.
    pub part: u32,
    /// N.
    pub parts: u32,
}

/// Where one part number of a round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartState {
    /// Ran to its end.
    Complete,
    /// Begun and not ended: still running, or killed without a word.
    Running,
    /// Ended early (interrupted, or failed): run it again.
    Interrupted,
    /// Never begun in this round.
    Missing,
}

impl PartState {
    pub fn as_str(self) -> &'static str {
        match self {
            PartState::Complete => "complete",
            PartState::Running => "running",
            PartState::Interrupted => "interrupted",
            PartState::Missing => "missing",
        }
    }
}

/// One part number of a round: its state and the scans (attempts) that ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartRecord {
    pub part: u32,
    pub state: PartState,
    /// The scans that recorded this part, oldest first (a part run again has several).
    pub scans: Vec<i64>,
}

/// One round of a sharded scan, as `history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardedScan {
    pub scan_key: String,
    pub round: i64,
    pub parts: u32,
    /// When its first part began.
    pub started: i64,
    /// The targets of its first part.
    pub targets: String,
    /// The union, as an ordinary complete scan, once every part is complete.
    pub union_id: Option<i64>,
    /// Every part number, 1 to N.
    pub part_list: Vec<PartRecord>,
}

impl ShardedScan {
    /// How many parts are complete.
    pub fn parts_complete(&self) -> u32 {
        self.part_list
            .iter()
            .filter(|p| p.state == PartState::Complete)
            .count() as u32
    }

    /// Whether the union is recorded (every part complete).
    pub fn is_complete(&self) -> bool {
        self.union_id.is_some()
    }
}

/// The round a part of `key` (of `parts` parts) numbered `part`, of `targets`, joins: the
/// latest one not yet complete that misses that part number and whose parts have the same
/// targets, else a new one. Under the identity's lock.
///
/// Parts of other targets are another scan even under one `--scan-id`: their hosts would
/// not add up to either. Neither is refused (a round left open by a night whose targets
/// changed since must not block the nights after); each round completes with its own.
fn join_round(
    tx: &Db,
    key: &str,
    part: u32,
    parts: u32,
    targets: &str,
    started: i64,
) -> Result<i64, StoreError> {
    let open = tx.query_opt(
        "SELECT r.id FROM shard_rounds r
         WHERE r.scan_key = ?1 AND r.parts = ?2 AND r.union_id IS NULL
           AND NOT EXISTS (SELECT 1 FROM scans s
                           WHERE s.round_id = r.id AND s.part = ?3 AND s.part_done = 1)
           AND NOT EXISTS (SELECT 1 FROM scans s
                           WHERE s.round_id = r.id AND s.targets <> ?4)
         ORDER BY r.round DESC LIMIT 1",
        &vals![key, parts, part, targets],
    )?;
    if let Some(r) = open {
        return r.get(0);
    }
    // Under the identity's lock (see lock_key): no other writer adds a round meanwhile.
    tx.query_opt(
        "INSERT INTO shard_rounds (scan_key, round, parts, started)
         VALUES (?1, (SELECT COALESCE(MAX(round), 0) + 1 FROM shard_rounds WHERE scan_key = ?1),
                 ?2, ?3)
         RETURNING id",
        &vals![key, parts, started],
    )?
    .ok_or_else(|| StoreError::BadValue(format!("no round of {key} recorded")))?
    .get(0)
}

/// Takes the identity's lock until the transaction ends: its row in `shard_scans`, added
/// when missing, then updated to itself (portable SQL). In PostgreSQL the writers of one
/// identity then choose and close rounds one after the other, each seeing what the one
/// before committed; SQLite's write lock already does that.
fn lock_key(tx: &Db, key: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO shard_scans (scan_key) VALUES (?1) ON CONFLICT (scan_key) DO NOTHING",
        &vals![key],
    )?;
    tx.execute(
        "UPDATE shard_scans SET scan_key = scan_key WHERE scan_key = ?1",
        &vals![key],
    )?;
    Ok(())
}

/// The shard columns of a scan: (key, part, parts, round, started, targets), the first
/// four Some for a part.
type PartRow = (
    Option<String>,
    Option<u32>,
    Option<u32>,
    Option<i64>,
    i64,
    String,
);

fn part_of(tx: &Db, scan: ScanId) -> Result<Option<PartRow>, StoreError> {
    tx.query_opt(
        "SELECT scan_key, part, parts, round_id, started, targets FROM scans WHERE id = ?1",
        &vals![scan.0],
    )?
    .map(|r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .transpose()
}

/// Ends a scan: a part is marked done, and the union added when it was the last one; any
/// other scan is marked complete. Called by [`Store::finish_scan`].
pub(crate) fn finish_any(tx: &Db, scan: ScanId, stats: FinishStats) -> Result<(), StoreError> {
    let Some(row) = part_of(tx, scan)? else {
        return Err(StoreError::NoSuchScan(scan));
    };
    let (Some(key), Some(part), Some(parts), Some(round), started, targets) = row else {
        return finish(tx, scan, stats, true);
    };
    // `complete` stays 0: a part never counts on its own.
    finish(tx, scan, stats, false)?;
    lock_key(tx, &key)?;
    let taken = tx
        .query_opt(
            "SELECT 1 FROM shard_rounds r
             WHERE r.id = ?1 AND (r.union_id IS NOT NULL OR EXISTS (
                 SELECT 1 FROM scans s WHERE s.round_id = r.id AND s.part = ?2
                                         AND s.part_done = 1))",
            &vals![round, part],
        )?
        .is_some();
    // The same part already completed its round (run twice at once): this one goes on to
    // the next round that misses it.
    let round = if taken {
        join_round(tx, &key, part, parts, &targets, started)?
    } else {
        round
    };
    tx.execute(
        "UPDATE scans SET part_done = 1, round_id = ?2 WHERE id = ?1",
        &vals![scan.0, round],
    )?;
    let done: i64 = tx
        .query_opt(
            "SELECT COUNT(*) FROM scans WHERE round_id = ?1 AND part_done = 1",
            &vals![round],
        )?
        .map(|r| r.get(0))
        .transpose()?
        .unwrap_or(0);
    if done >= i64::from(parts) {
        materialise(tx, round, &key, parts)?;
    }
    Ok(())
}

/// Adds the union of a round's parts as one complete scan, and links it from the round.
fn materialise(tx: &Db, round: i64, key: &str, parts: u32) -> Result<(), StoreError> {
    let rows: Vec<(i64, String, i64, Option<i64>)> = tx
        .query(
            "SELECT id, targets, hosts_total, finished FROM scans
             WHERE round_id = ?1 AND part_done = 1 ORDER BY part",
            &vals![round],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .collect::<Result<_, StoreError>>()?;
    let runs: Vec<ScanRun> = rows
        .iter()
        .map(|(id, ..)| load_run_in(tx, ScanId(*id)))
        .collect::<Result<_, _>>()?;
    let (Some(first), Some(first_row)) = (runs.first(), rows.first()) else {
        return Ok(());
    };
    let meta = ScanMeta {
        started: runs.iter().map(|r| r.start).min().unwrap_or(first.start),
        args: first.args.clone(),
        targets: first_row.1.clone(),
        source: crate::Source::Scan,
        file: None,
        scanner: first.scanner.clone(),
        version: first.version.clone(),
    };
    let id = insert_scan(tx, &meta)?;
    tx.execute(
        "UPDATE scans SET scan_key = ?2, parts = ?3, round_id = ?4 WHERE id = ?1",
        &vals![id.0, key, parts, round],
    )?;
    let hosts = merge_hosts(runs.iter().map(|r| r.hosts.as_slice()));
    for h in &hosts {
        insert_host(tx, id, h)?;
    }
    let mut scripts = ScanRun::new("", 0);
    scripts.prescripts = runs
        .iter()
        .find(|r| !r.prescripts.is_empty())
        .map(|r| r.prescripts.clone())
        .unwrap_or_default();
    scripts.postscripts = runs
        .iter()
        .find(|r| !r.postscripts.is_empty())
        .map(|r| r.postscripts.clone())
        .unwrap_or_default();
    set_run_scripts(tx, id, &scripts)?;
    let up = hosts.iter().filter(|h| h.is_up()).count() as u32;
    let stats = FinishStats {
        finished: rows
            .iter()
            .filter_map(|r| r.3)
            .max()
            .unwrap_or(meta.started),
        hosts_up: up,
        // Every part resolves and discovers every target: each counts them all.
        hosts_total: rows
            .iter()
            .map(|r| u32::try_from(r.2).unwrap_or(0))
            .max()
            .unwrap_or(0)
            .max(hosts.len() as u32),
    };
    finish(tx, id, stats, true)?;
    tx.execute(
        "UPDATE shard_rounds SET union_id = ?2 WHERE id = ?1",
        &vals![round, id.0],
    )?;
    Ok(())
}

/// The key a host is merged by: its first address other than a MAC.
fn host_key(h: &Host) -> Option<String> {
    h.addresses
        .iter()
        .find(|a| a.addrtype != AddrType::Mac)
        .or(h.addresses.first())
        .map(|a| a.addr.clone())
}

/// The hosts of several parts as one scan would have reported them: by address, up when up
/// in any part, listed ports united (an open report wins over another state for the same
/// port), collapsed counts added and Nmap's collapsing rule applied again to the whole,
/// names, MAC, OS, host scripts and timings from whichever part has them. Address order.
pub fn merge_hosts<'a>(parts: impl IntoIterator<Item = &'a [Host]>) -> Vec<Host> {
    let mut by_addr: BTreeMap<(u8, u128, String), Host> = BTreeMap::new();
    for hosts in parts {
        for h in hosts {
            let Some(addr) = host_key(h) else { continue };
            let key = addr_key(&addr);
            match by_addr.get_mut(&key) {
                None => {
                    by_addr.insert(key, h.clone());
                }
                Some(m) => merge_into(m, h),
            }
        }
    }
    let mut out: Vec<Host> = by_addr.into_values().collect();
    for h in &mut out {
        recollapse(h);
    }
    out
}

fn merge_into(m: &mut Host, h: &Host) {
    if !m.is_up() && h.is_up() {
        m.status = h.status.clone();
    }
    if m.hostnames.is_empty() {
        m.hostnames = h.hostnames.clone();
    }
    for a in &h.addresses {
        if !m
            .addresses
            .iter()
            .any(|b| b.addr == a.addr && b.addrtype == a.addrtype)
        {
            m.addresses.push(a.clone());
        }
    }
    m.starttime = match (m.starttime, h.starttime) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    m.endtime = match (m.endtime, h.endtime) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if m.os.is_none() {
        m.os = h.os.clone();
    }
    if m.hostscripts.is_empty() {
        m.hostscripts = h.hostscripts.clone();
    }
    m.uptime = m.uptime.take().or_else(|| h.uptime.clone());
    m.distance = m.distance.or(h.distance);
    m.tcpsequence = m.tcpsequence.take().or_else(|| h.tcpsequence.clone());
    m.ipidsequence = m.ipidsequence.take().or_else(|| h.ipidsequence.clone());
    m.tcptssequence = m.tcptssequence.take().or_else(|| h.tcptssequence.clone());
    m.trace = m.trace.take().or_else(|| h.trace.clone());
    for p in &h.ports {
        match m
            .ports
            .iter_mut()
            .find(|q| q.protocol == p.protocol && q.portid == p.portid)
        {
            None => m.ports.push(p.clone()),
            Some(q) if q.state != PortState::Open && p.state == PortState::Open => *q = p.clone(),
            Some(_) => {}
        }
    }
    for e in &h.extraports {
        match m.extraports.iter_mut().find(|x| x.state == e.state) {
            Some(x) => {
                x.count += e.count;
                x.reasons.extend(e.reasons.iter().cloned());
            }
            None => m.extraports.push(e.clone()),
        }
    }
    m.ports.sort_by_key(|p| (p.protocol, p.portid));
}

/// Nmap's collapsing over the union: a state other than open with more than
/// [`COLLAPSE_THRESHOLD`] ports in all (listed and counted) is shown as a count only, as
/// an unsharded scan would have shown it; most numerous first.
fn recollapse(h: &mut Host) {
    let mut totals: Vec<(PortState, u32)> =
        h.extraports.iter().map(|e| (e.state, e.count)).collect();
    for p in &h.ports {
        match totals.iter_mut().find(|(s, _)| *s == p.state) {
            Some((_, n)) => *n += 1,
            None => totals.push((p.state, 1)),
        }
    }
    let collapsed: Vec<PortState> = totals
        .iter()
        .filter(|(s, n)| *s != PortState::Open && *n > COLLAPSE_THRESHOLD)
        .map(|(s, _)| *s)
        .collect();
    let mut extra: Vec<ExtraPorts> = Vec::new();
    for (state, count) in totals.iter().filter(|(s, _)| collapsed.contains(s)) {
        let reasons = h
            .extraports
            .iter()
            .filter(|e| e.state == *state)
            .flat_map(|e| e.reasons.iter().cloned())
            .collect();
        extra.push(ExtraPorts {
            state: *state,
            count: *count,
            reasons,
        });
    }
    // A state counted in some part but below the threshold in all stays counted.
    for e in &h.extraports {
        if !collapsed.contains(&e.state) {
            extra.push(e.clone());
        }
    }
    extra.sort_by_key(|e| std::cmp::Reverse(e.count));
    h.ports.retain(|p| !collapsed.contains(&p.state));
    h.extraports = extra;
}

impl Store {
    /// Records a part of a sharded scan that starts now: it joins the latest round of its
    /// identity that misses its part number, else starts a new round. It stays out of every
    /// query but the history; [`Store::finish_scan`] marks it done, and adds the union of
    /// its round when it was the last part missing.
    pub fn begin_part(&mut self, meta: &ScanMeta, part: &ShardPart) -> Result<ScanId, StoreError> {
        if part.part == 0 || part.part > part.parts {
            return Err(StoreError::BadValue(format!(
                "shard {}/{}",
                part.part, part.parts
            )));
        }
        self.write(|tx| {
            lock_key(tx, &part.scan_key)?;
            let round = join_round(
                tx,
                &part.scan_key,
                part.part,
                part.parts,
                &meta.targets,
                meta.started,
            )?;
            let id = insert_scan(tx, meta)?;
            tx.execute(
                "UPDATE scans SET scan_key = ?2, part = ?3, parts = ?4, round_id = ?5
                 WHERE id = ?1",
                &vals![id.0, &part.scan_key, part.part, part.parts, round],
            )?;
            Ok(id)
        })
    }

    /// Names an unsharded scan (`--scan-id`): shown by the history, nothing else.
    pub fn set_scan_name(&mut self, scan: ScanId, name: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE scans SET scan_key = ?2 WHERE id = ?1 AND part IS NULL",
                &vals![scan.0, name],
            )?;
            Ok(())
        })
    }

    /// Every round of every sharded scan, oldest first, with each part's state.
    pub fn sharded_scans(&self) -> Result<Vec<ShardedScan>, StoreError> {
        let rows = self.db.query(
            "SELECT r.id, r.scan_key, r.round, r.parts, r.started, r.union_id,
                    s.id, s.part, s.part_done, s.finished, s.targets
             FROM shard_rounds r LEFT JOIN scans s ON s.round_id = r.id AND s.part IS NOT NULL
             ORDER BY r.started, r.id, s.started, s.id",
            &[],
        )?;
        let mut out: Vec<(i64, ShardedScan)> = Vec::new();
        for r in &rows {
            let rid: i64 = r.get(0)?;
            if out.last().is_none_or(|(id, _)| *id != rid) {
                let parts: u32 = r.get(3)?;
                out.push((
                    rid,
                    ShardedScan {
                        scan_key: r.get(1)?,
                        round: r.get(2)?,
                        parts,
                        started: r.get(4)?,
                        targets: String::new(),
                        union_id: r.get(5)?,
                        part_list: (1..=parts)
                            .map(|part| PartRecord {
                                part,
                                state: PartState::Missing,
                                scans: Vec::new(),
                            })
                            .collect(),
                    },
                ));
            }
            let Some((_, s)) = out.last_mut() else {
                continue;
            };
            let (Some(sid), Some(part)) = (r.get::<Option<i64>>(6)?, r.get::<Option<u32>>(7)?)
            else {
                continue;
            };
            let (done, finished): (Option<bool>, Option<i64>) = (r.get(8)?, r.get(9)?);
            if s.targets.is_empty() {
                s.targets = r.get::<Option<String>>(10)?.unwrap_or_default();
            }
            let Some(p) = s.part_list.get_mut(part.saturating_sub(1) as usize) else {
                continue;
            };
            p.scans.push(sid);
            let state = if done == Some(true) {
                PartState::Complete
            } else if finished.is_none() {
                PartState::Running
            } else {
                PartState::Interrupted
            };
            // Complete beats running beats interrupted beats missing.
            let rank = |s: PartState| match s {
                PartState::Complete => 3,
                PartState::Running => 2,
                PartState::Interrupted => 1,
                PartState::Missing => 0,
            };
            if rank(state) > rank(p.state) {
                p.state = state;
            }
        }
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    /// The rounds of sharded scans still waiting for parts: not counted by the inventory,
    /// the changes or `diff --last` until their last part lands. A round left behind by a
    /// later complete round of the same identity (a part killed and never run again) is
    /// not listed: it will not be completed.
    pub fn incomplete_sharded(&self) -> Result<Vec<ShardedScan>, StoreError> {
        let all = self.sharded_scans()?;
        Ok(all
            .iter()
            .filter(|s| {
                !s.is_complete()
                    && !all
                        .iter()
                        .any(|t| t.scan_key == s.scan_key && t.round > s.round && t.is_complete())
            })
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::{HostStatus, Port, Protocol};

    fn host(ip: &str, ports: &[(u16, &str)], closed: u32) -> Host {
        let mut h = Host::new(ip.parse().unwrap(), HostStatus::up("arp-response"));
        for (p, s) in ports {
            h.ports
                .push(Port::new(Protocol::Tcp, *p, s.parse().unwrap(), "syn-ack"));
        }
        if closed > 0 {
            h.extraports.push(ExtraPorts {
                state: PortState::Closed,
                count: closed,
                reasons: Vec::new(),
            });
        }
        h
    }

    #[test]
    fn parts_merge_into_what_one_scan_reports() {
        let a = vec![
            host("10.0.0.2", &[(22, "open"), (23, "closed")], 0),
            host("10.0.0.1", &[(80, "open")], 300),
        ];
        let mut down = host("10.0.0.2", &[(443, "open")], 0);
        down.status = HostStatus {
            state: portolan_model::HostState::Down,
            reason: "no-response".into(),
            reason_ttl: 0,
        };
        let b = vec![down, host("10.0.0.1", &[(81, "closed")], 200)];
        let m = merge_hosts([a.as_slice(), b.as_slice()]);
        assert_eq!(m.len(), 2);
        assert_eq!(host_key(&m[0]).as_deref(), Some("10.0.0.1"));
        // 300 + 200 counted, and the listed closed port folded in: 501.
        assert_eq!(m[0].ports.len(), 1);
        assert_eq!(m[0].extraports.len(), 1);
        assert_eq!(m[0].extraports[0].count, 501);
        // Up in one part: up; ports of both parts, in port order; few closed stay listed.
        assert!(m[1].is_up());
        let ports: Vec<u16> = m[1].ports.iter().map(|p| p.portid).collect();
        assert_eq!(ports, [22, 23, 443]);
        assert!(m[1].extraports.is_empty());
    }

    #[test]
    fn an_open_report_wins_for_a_port_seen_twice() {
        let a = vec![host("10.0.0.1", &[(22, "filtered")], 0)];
        let b = vec![host("10.0.0.1", &[(22, "open")], 0)];
        let m = merge_hosts([a.as_slice(), b.as_slice()]);
        assert_eq!(m[0].ports.len(), 1);
        assert_eq!(m[0].ports[0].state, PortState::Open);
    }
}
