//! Writing: scans as they run (one transaction per host) and imports (one per file set).

use crate::backend::{vals, Db};
use crate::{ScanId, Store, StoreError};
use portolan_model::{AddrType, Host, Port, RunExit, ScanRun, Script};
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
fn portset(tx: &Db, host: &Host) -> Result<Option<i64>, StoreError> {
    if host.ports.is_empty() && host.extraports.is_empty() {
        return Ok(None);
    }
    let (text, extra) = canon(host);
    let h = hash(&text);
    for r in tx.query("SELECT id, canon FROM portsets WHERE hash = ?1", &vals![h])? {
        if r.str(1) == Some(text.as_str()) {
            return Ok(Some(r.get(0)?));
        }
    }
    let id: i64 = returned_id(tx.query_opt(
        "INSERT INTO portsets (hash, canon, extra) VALUES (?1, ?2, ?3) RETURNING id",
        &vals![h, text, extra],
    )?)?;
    // A port listed twice keeps its last row.
    let sql = "INSERT INTO portset_ports
         (set_id, protocol, port, state, reason, service, product, version, extrainfo, tunnel,
          scripts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (set_id, protocol, port) DO UPDATE SET
          state = excluded.state, reason = excluded.reason, service = excluded.service,
          product = excluded.product, version = excluded.version,
          extrainfo = excluded.extrainfo, tunnel = excluded.tunnel, scripts = excluded.scripts";
    for p in &host.ports {
        let s = p.service.as_ref();
        tx.execute(
            sql,
            &vals![
                id,
                p.protocol.as_str(),
                p.portid,
                p.state.as_str(),
                &p.reason,
                s.map(|s| &s.name),
                s.and_then(|s| s.product.as_ref()),
                s.and_then(|s| s.version.as_ref()),
                s.and_then(|s| s.extrainfo.as_ref()),
                s.and_then(|s| s.tunnel.as_ref()),
                scripts_json(&p.scripts),
            ],
        )?;
    }
    Ok(Some(id))
}

/// The id an `INSERT ... RETURNING id` gave.
fn returned_id(row: Option<crate::backend::Row>) -> Result<i64, StoreError> {
    row.ok_or_else(|| StoreError::BadValue("an insert returned no id".into()))?
        .get(0)
}

pub(crate) fn insert_scan(tx: &Db, meta: &ScanMeta) -> Result<ScanId, StoreError> {
    let row = tx.query_opt(
        "INSERT INTO scans (started, args, targets, complete, source, file, scanner, version)
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7) RETURNING id",
        &vals![
            meta.started,
            &meta.args,
            &meta.targets,
            meta.source.as_str(),
            meta.file.as_deref(),
            &meta.scanner,
            &meta.version
        ],
    )?;
    Ok(ScanId(returned_id(row)?))
}

pub(crate) fn insert_host(tx: &Db, scan: ScanId, host: &Host) -> Result<(), StoreError> {
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
    // A host reported twice keeps its last row.
    tx.execute(
        "INSERT INTO hosts_seen
         (scan_id, address, addrtype, state, reason, hostnames, mac, vendor, portset_id,
          starttime, endtime, os, hostscripts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (scan_id, address) DO UPDATE SET
          addrtype = excluded.addrtype, state = excluded.state, reason = excluded.reason,
          hostnames = excluded.hostnames, mac = excluded.mac, vendor = excluded.vendor,
          portset_id = excluded.portset_id, starttime = excluded.starttime,
          endtime = excluded.endtime, os = excluded.os, hostscripts = excluded.hostscripts",
        &vals![
            scan.0,
            addr,
            addrtype,
            host.status.state.as_str(),
            &host.status.reason,
            names,
            mac.map(|m| &m.addr),
            mac.and_then(|m| m.vendor.as_ref()),
            set,
            host.starttime,
            host.endtime,
            os,
            scripts_json(&host.hostscripts),
        ],
    )?;
    Ok(())
}

pub(crate) fn set_run_scripts(tx: &Db, scan: ScanId, run: &ScanRun) -> Result<(), StoreError> {
    let n = tx.execute(
        "UPDATE scans SET prescripts = ?2, postscripts = ?3 WHERE id = ?1",
        &vals![
            scan.0,
            scripts_json(&run.prescripts),
            scripts_json(&run.postscripts)
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchScan(scan));
    }
    Ok(())
}

pub(crate) fn finish(
    tx: &Db,
    scan: ScanId,
    stats: FinishStats,
    complete: bool,
) -> Result<(), StoreError> {
    let n = tx.execute(
        "UPDATE scans SET finished = ?2, hosts_up = ?3, hosts_total = ?4, complete = ?5
         WHERE id = ?1",
        &vals![
            scan.0,
            stats.finished,
            stats.hosts_up,
            stats.hosts_total,
            complete
        ],
    )?;
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
    /// Runs `f` in one write transaction (see [`Db::begin`]), tried again from the start
    /// while the store is busy: a night of parallel scans and imports all land.
    pub(crate) fn write<T>(
        &mut self,
        mut f: impl FnMut(&Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = &self.db;
        let v = crate::retry_busy(self.retries, || {
            db.begin()?;
            let r = f(db).and_then(|v| db.batch("COMMIT").map(|_| v));
            if r.is_err() {
                db.rollback();
            }
            r
        })?;
        committed(db);
        Ok(v)
    }

    /// Checks that this store can be written now: takes the write lock (waiting for other
    /// writers as every write does) and lets it go, changing nothing. A scan asks this
    /// before it empties any output file, so a store held by another writer past the wait
    /// is refused while nothing has been touched.
    pub fn check_writable(&mut self) -> Result<(), StoreError> {
        self.write(|db| {
            if db.backend() == crate::Backend::Sqlite {
                return Ok(());
            }
            // PostgreSQL takes no lock up front: ask whether this session could write.
            let ok = db
                .query_opt(
                    "SELECT CASE WHEN has_table_privilege('scans', 'INSERT, UPDATE')
                         AND has_table_privilege('hosts_seen', 'INSERT, UPDATE')
                         AND has_table_privilege('portsets', 'INSERT')
                         AND has_table_privilege('portset_ports', 'INSERT, UPDATE')
                         AND NOT pg_is_in_recovery()
                         AND current_setting('transaction_read_only') = 'off'
                     THEN 1 ELSE 0 END",
                    &[],
                )?
                .map(|r| r.get::<bool>(0))
                .transpose()?;
            match ok {
                Some(true) => Ok(()),
                _ => Err(StoreError::Postgres(
                    "this user cannot write the store here (privileges, a standby, or a \
                     read-only session)"
                        .into(),
                )),
            }
        })
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
    tx: &'s Db,
    /// Committed (or rolled back after a failed commit): nothing to undo when dropped.
    done: bool,
    /// The run being recorded: its scan, hosts up and hosts seen; None while no run is open
    /// or when the open run was imported before (its hosts are passed over).
    current: Option<(ScanId, u32, u32)>,
}

impl Store {
    /// Starts a [`StreamedImport`], waiting for other writers as every write does.
    pub fn begin_import(&mut self) -> Result<StreamedImport<'_>, StoreError> {
        let db = &self.db;
        crate::retry_busy(self.retries, || db.begin())?;
        Ok(StreamedImport {
            tx: db,
            done: false,
            current: None,
        })
    }
}

/// After a commit: PostgreSQL readers learn of it from the generation sequence (see
/// [`Store::generation`]). A failure there is not the write's: it is committed.
fn committed(db: &Db) {
    if db.backend() == crate::Backend::Postgres {
        let _ = db.query("SELECT nextval('portolan_generation')", &[]);
    }
}

impl Drop for StreamedImport<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.tx.rollback();
        }
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
        let known = known_import(self.tx, header, file)?;
        if let Some(id) = known {
            self.current = None;
            return Ok(Imported::AlreadyThere(ScanId(id)));
        }
        let mut meta = ScanMeta::of_run(header, targets, crate::Source::Import);
        meta.file = file.map(str::to_string);
        let id = insert_scan(self.tx, &meta)?;
        self.current = Some((id, 0, 0));
        Ok(Imported::Added(id))
    }

    /// Records a host of the open run (nothing when the run was imported before).
    pub fn add_host(&mut self, host: &Host) -> Result<(), StoreError> {
        if let Some((id, up, seen)) = self.current.as_mut() {
            insert_host(self.tx, *id, host)?;
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
        set_run_scripts(self.tx, id, run)?;
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
        finish(self.tx, id, stats, complete)
    }

    /// Records every run given.
    pub fn commit(mut self) -> Result<(), StoreError> {
        let r = self.tx.batch("COMMIT");
        if r.is_ok() {
            self.done = true;
            committed(self.tx);
        }
        r
    }
}

/// The scan a run (start, command line, file) was imported as before, if it was.
fn known_import(tx: &Db, run: &ScanRun, file: Option<&str>) -> Result<Option<i64>, StoreError> {
    tx.query_opt(
        "SELECT id FROM scans WHERE source = 'import' AND started = ?1
             AND args = ?2 AND file IS NOT DISTINCT FROM ?3",
        &vals![run.start, &run.args, file],
    )?
    .map(|r| r.get(0))
    .transpose()
}

/// The body of [`Store::import_all`], in its transaction.
fn import_runs(
    tx: &Db,
    runs: &[(&ScanRun, Option<&str>, &str)],
) -> Result<Vec<Imported>, StoreError> {
    let mut out = Vec::with_capacity(runs.len());
    for (run, file, targets) in runs {
        let known = known_import(tx, run, *file)?;
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
