//! The vulnerability database: its own SQLite file, versioned schema, the import of feed
//! files in one transaction (every file read and checked before anything is committed),
//! and its status.

use crate::error::VulnError;
use crate::import::{self, CveRecord, DebianRecord, EpssRecord, FileSummary, Format, KevRecord};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The schema this Portolan writes; a database with a newer one is refused.
pub const SCHEMA_VERSION: u32 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
    id INTEGER PRIMARY KEY,
    format TEXT NOT NULL,
    file TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    records INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    data_date TEXT
);
CREATE TABLE IF NOT EXISTS cve(
    id TEXT PRIMARY KEY,
    published TEXT,
    last_modified TEXT,
    cvss REAL,
    cvss_version TEXT,
    severity TEXT,
    description TEXT NOT NULL
) WITHOUT ROWID;
-- Clustered by product: matching reads a product's entries at once.
CREATE TABLE IF NOT EXISTS cpe_match(
    product TEXT NOT NULL,
    vendor TEXT NOT NULL,
    cve TEXT NOT NULL,
    -- The entry's place among the CVE's (NVD's order).
    seq INTEGER NOT NULL,
    part TEXT NOT NULL,
    version TEXT NOT NULL,
    start_incl TEXT,
    start_excl TEXT,
    end_incl TEXT,
    end_excl TEXT,
    criteria TEXT NOT NULL,
    config INTEGER,
    node INTEGER,
    PRIMARY KEY(product, vendor, cve, seq)
) WITHOUT ROWID;
-- The AND configurations: every node, as JSON (platform::Node), for the matches in them.
CREATE TABLE IF NOT EXISTS cpe_config(
    cve TEXT NOT NULL,
    config INTEGER NOT NULL,
    nodes TEXT NOT NULL,
    PRIMARY KEY(cve, config)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cpe_match_cve ON cpe_match(cve);
CREATE TABLE IF NOT EXISTS kev(
    cve TEXT PRIMARY KEY,
    date_added TEXT NOT NULL,
    due_date TEXT,
    ransomware TEXT,
    name TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS epss(cve TEXT PRIMARY KEY, epss REAL NOT NULL, percentile REAL NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS debian(
    package TEXT NOT NULL,
    cve TEXT NOT NULL,
    release TEXT NOT NULL,
    status TEXT NOT NULL,
    fixed_version TEXT,
    urgency TEXT,
    PRIMARY KEY(package, cve, release)
);
";

/// The default database: `$XDG_DATA_HOME/portolan/vulndb.sqlite`, else
/// `~/.local/share/portolan/vulndb.sqlite`; None without either variable.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })?;
    Some(base.join("portolan").join("vulndb.sqlite"))
}

/// An open vulnerability database.
pub struct VulnDb {
    conn: Connection,
    path: PathBuf,
}

/// What one import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub files: Vec<(PathBuf, FileSummary)>,
    /// NVD records not stored because the database holds a newer version of the CVE.
    pub older_than_stored: u64,
}

/// One imported file, as `status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRow {
    pub format: String,
    pub file: String,
    pub imported_at: i64,
    pub records: i64,
    pub skipped: i64,
    pub data_date: Option<String>,
}

/// What the database holds.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub path: String,
    pub schema_version: u32,
    pub cves: i64,
    pub cpe_matches: i64,
    /// AND configurations (a product and the platform it requires, most often).
    pub and_configurations: i64,
    pub kev: i64,
    pub epss: i64,
    pub debian: i64,
    /// The newest `lastModified` among the CVEs.
    pub newest_cve_change: Option<String>,
    /// Every import, oldest first.
    pub sources: Vec<SourceRow>,
    /// CVEs imported by a Portolan that did not keep the platforms of AND configurations
    /// (schema 1), until the NVD files are imported again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platforms_missing: Option<i64>,
}

impl VulnDb {
    /// Opens the database at `path`, creating it (and its directory) when missing.
    pub fn open(path: impl AsRef<Path>) -> Result<VulnDb, VulnError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| VulnError::Io {
                file: dir.into(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| VulnError::Db {
            path: path.into(),
            source,
        })?;
        let mut db = VulnDb {
            conn,
            path: path.into(),
        };
        db.migrate()?;
        Ok(db)
    }

    /// Opens an existing database (for reading): an error when there is none.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<VulnDb, VulnError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(VulnError::NoDatabase { path: path.into() });
        }
        VulnDb::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn db_err(&self) -> impl Fn(rusqlite::Error) -> VulnError + '_ {
        |source| VulnError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), VulnError> {
        let err = |source| VulnError::Db {
            path: self.path.clone(),
            source,
        };
        self.conn
            // Matching a large scan reads much of the file: mapped, and a larger page cache,
            // rather than a read call per page.
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                 PRAGMA mmap_size=1073741824; PRAGMA cache_size=-65536;",
            )
            .map_err(err)?;
        self.conn.execute_batch(SCHEMA).map_err(err)?;
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        match found.and_then(|v| v.parse::<u32>().ok()) {
            Some(v) if v > SCHEMA_VERSION => Err(VulnError::SchemaTooNew {
                path: self.path.clone(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            Some(1) => {
                // Version 2 keeps the AND configurations (cpe_config) and the node
                // of each match, and clusters the matches by product; CVEs imported before
                // lack their platforms until imported again.
                let tx = self.conn.transaction().map_err(err)?;
                // The old table is set aside (its indexes dropped, their names reused) and
                // the schema's own definition makes the new one.
                tx.execute_batch(
                    "DROP INDEX IF EXISTS cpe_match_cve; \
                     DROP INDEX IF EXISTS cpe_match_product; \
                     ALTER TABLE cpe_match RENAME TO cpe_match_v1;",
                )
                .map_err(err)?;
                tx.execute_batch(SCHEMA).map_err(err)?;
                tx.execute_batch(
                    "INSERT INTO cpe_match(product, vendor, cve, seq, part, version, \
                       start_incl, start_excl, end_incl, end_excl, criteria) \
                       SELECT product, vendor, cve, rowid, part, version, start_incl, \
                       start_excl, end_incl, end_excl, criteria FROM cpe_match_v1; \
                     DROP TABLE cpe_match_v1; \
                     INSERT OR REPLACE INTO meta(key, value) \
                       SELECT 'platforms_missing', COUNT(*) FROM cve HAVING COUNT(*) > 0; \
                     UPDATE meta SET value = '2' WHERE key = 'schema_version';",
                )
                .map_err(err)?;
                tx.commit().map_err(err)
            }
            Some(_) => Ok(()),
            None => {
                self.conn
                    .execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?1)",
                        [SCHEMA_VERSION.to_string()],
                    )
                    .map_err(err)?;
                Ok(())
            }
        }
    }

    /// Imports the feed files in one transaction: any error (a bad file, a full disk)
    /// leaves the database as it was. NVD records replace older versions of the same CVE;
    /// a KEV, EPSS or Debian file replaces that source's previous data (each is a whole
    /// snapshot).
    pub fn import(&mut self, files: &[PathBuf]) -> Result<ImportReport, VulnError> {
        let path = self.path.clone();
        let err = |source| VulnError::Db {
            path: path.clone(),
            source,
        };
        // Bulk load: a larger page cache; the transaction keeps it all-or-nothing.
        self.conn
            .execute_batch("PRAGMA cache_size = -131072;")
            .map_err(err)?;
        let tx = self.conn.transaction().map_err(err)?;
        let mut writer = Writer {
            tx: &tx,
            path: &path,
            cleared: HashSet::new(),
            older: 0,
            stored: 0,
        };
        let mut out = Vec::new();
        for file in files {
            let summary = import::read_file(file, &mut writer)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.display().to_string());
            tx.execute(
                "INSERT INTO sources(format, file, imported_at, records, skipped, data_date) \
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    summary.format.as_str(),
                    name,
                    now(),
                    summary.records as i64,
                    summary.skipped.len() as i64,
                    summary.data_date
                ],
            )
            .map_err(err)?;
            out.push((file.clone(), summary));
        }
        let older = writer.older;
        // A database from schema 1 lacks the platforms of AND configurations until its
        // CVEs are imported again: as many as it held then.
        if writer.stored > 0 {
            tx.execute(
                "DELETE FROM meta WHERE key = 'platforms_missing' AND CAST(value AS INTEGER) <= ?1",
                [writer.stored as i64],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(ImportReport {
            files: out,
            older_than_stored: older,
        })
    }

    /// Counts, dates and the imports made.
    pub fn status(&self) -> Result<Status, VulnError> {
        let err = self.db_err();
        let count = |table: &str| -> Result<i64, VulnError> {
            self.conn
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .map_err(&err)
        };
        let mut st = self
            .conn
            .prepare(
                "SELECT format, file, imported_at, records, skipped, data_date FROM sources \
                 ORDER BY id",
            )
            .map_err(&err)?;
        let sources = st
            .query_map([], |r| {
                Ok(SourceRow {
                    format: r.get(0)?,
                    file: r.get(1)?,
                    imported_at: r.get(2)?,
                    records: r.get(3)?,
                    skipped: r.get(4)?,
                    data_date: r.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(&err)?;
        Ok(Status {
            path: self.path.display().to_string(),
            schema_version: SCHEMA_VERSION,
            cves: count("cve")?,
            cpe_matches: count("cpe_match")?,
            and_configurations: count("cpe_config")?,
            kev: count("kev")?,
            epss: count("epss")?,
            debian: count("debian")?,
            newest_cve_change: self
                .conn
                .query_row("SELECT MAX(last_modified) FROM cve", [], |r| r.get(0))
                .map_err(&err)?,
            sources,
            platforms_missing: self
                .conn
                .query_row(
                    "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'platforms_missing'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&err)?,
        })
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The import's record sink: writes into the open transaction.
struct Writer<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    path: &'t Path,
    /// Snapshot sources already emptied in this import.
    cleared: HashSet<Format>,
    older: u64,
    /// NVD records written.
    stored: u64,
}

impl Writer<'_> {
    fn err(&self, source: rusqlite::Error) -> VulnError {
        VulnError::Db {
            path: self.path.into(),
            source,
        }
    }

    /// Empties a snapshot source's table the first time a file of it is read.
    fn clear(&mut self, format: Format, table: &str) -> Result<(), VulnError> {
        if self.cleared.insert(format) {
            self.tx
                .execute(&format!("DELETE FROM {table}"), [])
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

impl import::Records for Writer<'_> {
    fn cve(&mut self, r: CveRecord) -> Result<(), VulnError> {
        let tx = self.tx;
        let stored: Option<Option<String>> = tx
            .prepare_cached("SELECT last_modified FROM cve WHERE id = ?1")
            .and_then(|mut s| s.query_row([&r.id], |row| row.get(0)).optional())
            .map_err(|e| self.err(e))?;
        if let Some(stored) = stored {
            // ISO 8601 timestamps of one format: text order is time order.
            if stored.is_some() && stored > r.last_modified {
                self.older += 1;
                return Ok(());
            }
            for table in ["cpe_match", "cpe_config"] {
                tx.prepare_cached(&format!("DELETE FROM {table} WHERE cve = ?1"))
                    .and_then(|mut s| s.execute([&r.id]))
                    .map_err(|e| self.err(e))?;
            }
        }
        self.stored += 1;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO cve(id, published, last_modified, cvss, cvss_version, \
             severity, description) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                r.id,
                r.published,
                r.last_modified,
                r.cvss,
                r.cvss_version,
                r.severity,
                r.description
            ])
        })
        .map_err(|e| self.err(e))?;
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO cpe_match(cve, part, vendor, product, version, start_incl, \
                 start_excl, end_incl, end_excl, criteria, config, node, seq) \
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .map_err(|e| self.err(e))?;
        for (seq, m) in r.matches.iter().enumerate() {
            ins.execute(params![
                r.id,
                m.part,
                m.vendor,
                m.product,
                m.version,
                m.start_including,
                m.start_excluding,
                m.end_including,
                m.end_excluding,
                m.criteria,
                m.and_node.map(|n| n.0),
                m.and_node.map(|n| n.1),
                seq as i64
            ])
            .map_err(|e| self.err(e))?;
        }
        let mut ins = tx
            .prepare_cached("INSERT INTO cpe_config(cve, config, nodes) VALUES(?1, ?2, ?3)")
            .map_err(|e| self.err(e))?;
        for c in &r.and_configs {
            let nodes = serde_json::to_string(&c.nodes).map_err(|e| VulnError::Corrupt {
                path: self.path.into(),
                what: format!("{}: configuration {}: {e}", r.id, c.config),
            })?;
            ins.execute(params![r.id, c.config, nodes])
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn kev(&mut self, r: KevRecord) -> Result<(), VulnError> {
        self.clear(Format::Kev, "kev")?;
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO kev(cve, date_added, due_date, ransomware, name) \
                 VALUES(?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.cve,
                    r.date_added,
                    r.due_date,
                    r.ransomware,
                    r.name
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn epss(&mut self, r: EpssRecord) -> Result<(), VulnError> {
        self.clear(Format::Epss, "epss")?;
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO epss(cve, epss, percentile) VALUES(?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![r.cve, r.epss, r.percentile]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn debian(&mut self, r: DebianRecord) -> Result<(), VulnError> {
        self.clear(Format::Debian, "debian")?;
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO debian(package, cve, release, status, fixed_version, \
                 urgency) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.package,
                    r.cve,
                    r.release,
                    r.status,
                    r.fixed_version,
                    r.urgency
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
