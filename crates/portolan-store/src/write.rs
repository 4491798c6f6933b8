//! Writing: scans as they run (one transaction per host) and imports (one per file set).

use crate::{ScanId, Store, StoreError};
use portolan_model::{AddrType, Host, Port, RunExit, ScanRun, Script};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use std::hash::Hasher;

/// Where a scan's results came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A scan run with `--db`.
    Scan,
    /// `portolan import FILE`.
    Import,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Scan => "scan",
            Source::Import => "import",
        }
    }
}

/// What is known of a scan when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanMeta {
    /// Unix epoch seconds.
    pub started: i64,
    /// The command line.
    pub args: String,
    /// The target words, space-separated: scans with the same targets are compared.
    pub targets: String,
    pub source: Source,
    /// The imported file.
    pub file: Option<String>,
    pub scanner: String,
    pub version: String,
}

impl ScanMeta {
    /// The meta of a run (for a scan under way or a file), with its targets.
    pub fn of_run(run: &ScanRun, targets: impl Into<String>, source: Source) -> ScanMeta {
        ScanMeta {
            started: run.start,
            args: run.args.clone(),
            targets: targets.into(),
            source,
            file: None,
            scanner: run.scanner.clone(),
            version: run.version.clone(),
        }
    }
}

/// What is known when a scan ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishStats {
    pub finished: i64,
    pub hosts_up: u32,
    pub hosts_total: u32,
}

/// Script results as stored: the model's serde form.
fn scripts_json(scripts: &[Script]) -> String {
    serde_json::to_string(scripts).unwrap_or_else(|_| "[]".into())
}

/// The listed ports of a host in a canonical text (sorted, JSON), and its collapsed counts.
/// Port scripts are part of it only when there are any, so that script-less port lists keep
/// the text (and share the sets) they had before scripts were stored.
fn canon(host: &Host) -> (String, String) {
    let mut ports: Vec<&Port> = host.ports.iter().collect();
    ports.sort_by_key(|p| (p.protocol, p.portid));
    let rows: Vec<_> = ports
        .iter()
        .map(|p| {
            let s = p.service.as_ref();
            (
                p.protocol.as_str(),
                p.portid,
                p.state.as_str(),
                p.reason.as_str(),
                s.map(|s| s.name.as_str()),
                s.and_then(|s| s.product.as_deref()),
                s.and_then(|s| s.version.as_deref()),
                s.and_then(|s| s.extrainfo.as_deref()),
                s.and_then(|s| s.tunnel.as_deref()),
            )
        })
        .collect();
    let extra = host
        .extraports
        .iter()
        .map(|e| format!("{}={}", e.state.as_str(), e.count))
        .collect::<Vec<_>>()
        .join(",");
    let scripts: Vec<&[Script]> = ports.iter().map(|p| p.scripts.as_slice()).collect();
    let text = if scripts.iter().all(|s| s.is_empty()) {
        serde_json::to_string(&(rows, &extra))
    } else {
        serde_json::to_string(&(rows, &extra, scripts))
    }
    .unwrap_or_default();
    (text, extra)
}

fn hash(text: &str) -> i64 {
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x706f_7274, 0x6f6c_616e);
    h.write(text.as_bytes());
    h.finish() as i64
}

/// The id of the port set of `host`, added when new; None for a host without ports.
fn portset(tx: &Transaction, host: &Host) -> Result<Option<i64>, StoreError> {
    if host.ports.is_empty() && host.extraports.is_empty() {
        return Ok(None);
    }
    let (text, extra) = canon(host);
    let h = hash(&text);
    {
        let mut st = tx.prepare_cached("SELECT id, canon FROM portsets WHERE hash = ?1")?;
        let mut rows = st.query([h])?;
        while let Some(r) = rows.next()? {
            if r.get_ref(1)?.as_str().ok() == Some(text.as_str()) {
                return Ok(Some(r.get(0)?));
            }
        }
    }
    tx.prepare_cached("INSERT INTO portsets (hash, canon, extra) VALUES (?1, ?2, ?3)")?
        .execute(params![h, text, extra])?;
    let id = tx.last_insert_rowid();
    let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO portset_ports
         (set_id, protocol, port, state, reason, service, product, version, extrainfo, tunnel,
          scripts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for p in &host.ports {
        let s = p.service.as_ref();
        st.execute(params![
            id,
            p.protocol.as_str(),
            p.portid,
            p.state.as_str(),
            p.reason,
            s.map(|s| &s.name),
            s.and_then(|s| s.product.as_ref()),
            s.and_then(|s| s.version.as_ref()),
            s.and_then(|s| s.extrainfo.as_ref()),
            s.and_then(|s| s.tunnel.as_ref()),
            scripts_json(&p.scripts),
        ])?;
    }
    Ok(Some(id))
}

pub(crate) fn insert_scan(tx: &Transaction, meta: &ScanMeta) -> Result<ScanId, StoreError> {
    tx.prepare_cached(
        "INSERT INTO scans (started, args, targets, complete, source, file, scanner, version)
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        meta.started,
        meta.args,
        meta.targets,
        meta.source.as_str(),
        meta.file,
        meta.scanner,
        meta.version
    ])?;
    Ok(ScanId(tx.last_insert_rowid()))
}

pub(crate) fn insert_host(tx: &Transaction, scan: ScanId, host: &Host) -> Result<(), StoreError> {
    let set = portset(tx, host)?;
    let (addr, addrtype) = host
        .addresses
        .iter()
        .find(|a| a.addrtype != AddrType::Mac)
        .or(host.addresses.first())
        .map(|a| (a.addr.as_str(), a.addrtype.as_str()))
        .unwrap_or(("", "ipv4"));
    let mac = host.addresses.iter().find(|a| a.addrtype == AddrType::Mac);
    let names = serde_json::to_string(&host.hostnames).unwrap_or_else(|_| "[]".into());
    let os = match &host.os {
        Some(os) => {
            Some(serde_json::to_string(os).map_err(|e| StoreError::BadValue(e.to_string()))?)
        }
        None => None,
    };
    tx.prepare_cached(
        "INSERT OR REPLACE INTO hosts_seen
         (scan_id, address, addrtype, state, reason, hostnames, mac, vendor, portset_id,
          starttime, endtime, os, hostscripts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        scan.0,
        addr,
        addrtype,
        host.status.state.as_str(),
        host.status.reason,
        names,
        mac.map(|m| &m.addr),
        mac.and_then(|m| m.vendor.as_ref()),
        set,
        host.starttime,
        host.endtime,
        os,
        scripts_json(&host.hostscripts),
    ])?;
    Ok(())
}

pub(crate) fn set_run_scripts(
    tx: &Transaction,
    scan: ScanId,
    run: &ScanRun,
) -> Result<(), StoreError> {
    let n = tx
        .prepare_cached("UPDATE scans SET prescripts = ?2, postscripts = ?3 WHERE id = ?1")?
        .execute(params![
            scan.0,
            scripts_json(&run.prescripts),
            scripts_json(&run.postscripts)
        ])?;
    if n == 0 {
        return Err(StoreError::NoSuchScan(scan));
    }
    Ok(())
}

pub(crate) fn finish(
    tx: &Transaction,
    scan: ScanId,
    stats: FinishStats,
    complete: bool,
) -> Result<(), StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE scans SET finished = ?2, hosts_up = ?3, hosts_total = ?4, complete = ?5
             WHERE id = ?1",
        )?
        .execute(params![
            scan.0,
            stats.finished,
            stats.hosts_up,
            stats.hosts_total,
            complete
        ])?;
    if n == 0 {
        return Err(StoreError::NoSuchScan(scan));
    }
    Ok(())
}

/// What happened to one imported run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// Added as this scan.
    Added(ScanId),
    /// The same run (start time, command line, file) was imported before, as this scan.
    AlreadyThere(ScanId),
}

impl Store {
    /// Runs `f` in one immediate transaction (the write lock taken at its start, so it
    /// cannot fail half-way for another writer), tried again from the start while the
    /// store is busy: a night of parallel scans and imports all land.
    pub(crate) fn write<T>(
        &mut self,
        mut f: impl FnMut(&Transaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = &mut self.conn;
        crate::retry_busy(self.retries, || {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let v = f(&tx)?;
            tx.commit()?;
            Ok::<T, StoreError>(v)
        })
    }

    /// Checks that this store can be written now: takes the write lock (waiting for other
    /// writers as every write does) and lets it go, changing nothing. A scan asks this
    /// before it empties any output file, so a store held by another writer past the wait
    /// is refused while nothing has been touched.
    pub fn check_writable(&mut self) -> Result<(), StoreError> {
        self.write(|_| Ok(()))
    }

    /// Records a scan that starts now, as incomplete until [`Store::finish_scan`].
    pub fn begin_scan(&mut self, meta: &ScanMeta) -> Result<ScanId, StoreError> {
        self.write(|tx| insert_scan(tx, meta))
    }

    /// Adds one finished host to a scan, in a transaction of its own.
    pub fn add_host(&mut self, scan: ScanId, host: &Host) -> Result<(), StoreError> {
        self.add_hosts(scan, std::slice::from_ref(host))
    }

    /// Adds several finished hosts to a scan in one transaction.
    pub fn add_hosts(&mut self, scan: ScanId, hosts: &[Host]) -> Result<(), StoreError> {
        self.write(|tx| hosts.iter().try_for_each(|h| insert_host(tx, scan, h)))
    }

    /// Records the run's pre- and post-scan script results (known only at its end).
    pub fn set_run_scripts(&mut self, scan: ScanId, run: &ScanRun) -> Result<(), StoreError> {
        self.write(|tx| set_run_scripts(tx, scan, run))
    }

    /// Marks a scan complete: from now on queries take it into account.
    /// A part of a sharded scan is marked done instead, and when it was the last part its
    /// round waited for, the union of the parts is recorded as one complete scan.
    pub fn finish_scan(&mut self, scan: ScanId, stats: FinishStats) -> Result<(), StoreError> {
        self.write(|tx| crate::shards::finish_any(tx, scan, stats))
    }

    /// Records the end of a scan that was interrupted: it keeps its hosts, stays incomplete.
    pub fn interrupt_scan(&mut self, scan: ScanId, stats: FinishStats) -> Result<(), StoreError> {
        self.write(|tx| finish(tx, scan, stats, false))
    }

    /// Imports a whole run read from `file`, in one transaction.
    pub fn import(
        &mut self,
        run: &ScanRun,
        file: Option<&str>,
        targets: &str,
    ) -> Result<Imported, StoreError> {
        Ok(self.import_all(&[(run, file, targets)])?[0])
    }

    /// Imports several runs `(run, file, targets)` in one transaction: all or none.
    /// A run already imported (same start, command line and file) is not added again.
    pub fn import_all(
        &mut self,
        runs: &[(&ScanRun, Option<&str>, &str)],
    ) -> Result<Vec<Imported>, StoreError> {
        self.write(|tx| import_runs(tx, runs))
    }
}

/// An import whose runs are recorded while they are read, each host as it comes, so that a
/// file is never held whole: one transaction for every run given (all or none, as
/// [`Store::import_all`]). Dropped without [`StreamedImport::commit`], nothing is recorded.
pub struct StreamedImport<'s> {
    tx: Transaction<'s>,
    /// The run being recorded: its scan, hosts up and hosts seen; None while no run is open
    /// or when the open run was imported before (its hosts are passed over).
    current: Option<(ScanId, u32, u32)>,
}

impl Store {
    /// Starts a [`StreamedImport`], waiting for other writers as every write does.
    pub fn begin_import(&mut self) -> Result<StreamedImport<'_>, StoreError> {
        let conn = &self.conn;
        let tx = crate::retry_busy(self.retries, || {
            Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        })?;
        Ok(StreamedImport { tx, current: None })
    }
}

impl StreamedImport<'_> {
    /// Opens a run, from what is known before its hosts (start, command line, scanner):
    /// `AlreadyThere` when the same run (start, command line, file) was imported before, and
    /// then its hosts are passed over.
    pub fn begin_run(
        &mut self,
        header: &ScanRun,
        file: Option<&str>,
        targets: &str,
    ) -> Result<Imported, StoreError> {
        let known: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT id FROM scans WHERE source = 'import' AND started = ?1
                     AND args = ?2 AND file IS ?3",
            )?
            .query_row(params![header.start, header.args, file], |r| r.get(0))
            .optional()?;
        if let Some(id) = known {
            self.current = None;
            return Ok(Imported::AlreadyThere(ScanId(id)));
        }
        let mut meta = ScanMeta::of_run(header, targets, crate::Source::Import);
        meta.file = file.map(str::to_string);
        let id = insert_scan(&self.tx, &meta)?;
        self.current = Some((id, 0, 0));
        Ok(Imported::Added(id))
    }

    /// Records a host of the open run (nothing when the run was imported before).
    pub fn add_host(&mut self, host: &Host) -> Result<(), StoreError> {
        if let Some((id, up, seen)) = self.current.as_mut() {
            insert_host(&self.tx, *id, host)?;
            *seen += 1;
            if host.is_up() {
                *up += 1;
            }
        }
        Ok(())
    }

    /// Closes the open run: `run` is all but its hosts (scripts, runstats).
    pub fn end_run(&mut self, run: &ScanRun) -> Result<(), StoreError> {
        let Some((id, up, seen)) = self.current.take() else {
            return Ok(());
        };
        set_run_scripts(&self.tx, id, run)?;
        let stats = match &run.runstats {
            Some(rs) => FinishStats {
                finished: rs.finished,
                hosts_up: rs.hosts_up,
                hosts_total: rs.hosts_total,
            },
            None => FinishStats {
                finished: run.start,
                hosts_up: up,
                hosts_total: seen,
            },
        };
        let complete = run
            .runstats
            .as_ref()
            .is_some_and(|rs| rs.exit == RunExit::Success);
        finish(&self.tx, id, stats, complete)
    }

    /// Records every run given.
    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }
}

/// The body of [`Store::import_all`], in its transaction.
fn import_runs(
    tx: &Transaction,
    runs: &[(&ScanRun, Option<&str>, &str)],
) -> Result<Vec<Imported>, StoreError> {
    let mut out = Vec::with_capacity(runs.len());
    for (run, file, targets) in runs {
        let known: Option<i64> = tx
            .prepare_cached(
                "SELECT id FROM scans WHERE source = 'import' AND started = ?1
                     AND args = ?2 AND file IS ?3",
            )?
            .query_row(params![run.start, run.args, file], |r| r.get(0))
            .optional()?;
        if let Some(id) = known {
            out.push(Imported::AlreadyThere(ScanId(id)));
            continue;
        }
        let mut meta = ScanMeta::of_run(run, *targets, crate::Source::Import);
        meta.file = file.map(str::to_string);
        let id = insert_scan(tx, &meta)?;
        set_run_scripts(tx, id, run)?;
        for h in &run.hosts {
            insert_host(tx, id, h)?;
        }
        let up = run.hosts.iter().filter(|h| h.is_up()).count() as u32;
        let stats = match &run.runstats {
            Some(rs) => FinishStats {
                finished: rs.finished,
                hosts_up: rs.hosts_up,
                hosts_total: rs.hosts_total,
            },
            None => FinishStats {
                finished: run.start,
                hosts_up: up,
                hosts_total: run.hosts.len() as u32,
            },
        };
        let complete = run
            .runstats
            .as_ref()
            .is_some_and(|rs| rs.exit == RunExit::Success);
        finish(tx, id, stats, complete)?;
        out.push(Imported::Added(id));
    }
    Ok(out)
}
