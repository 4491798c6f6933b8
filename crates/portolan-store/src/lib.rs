//! Portolan's history store: every scan run with `--db` and every imported file, in one
//! SQLite file, and the questions asked of it (what changed, what is on the network now).
//!
//! - Writing: [`Store::begin_scan`] records a scan as incomplete, [`Store::add_host`]
//!   commits each host as it comes, [`Store::finish_scan`] marks it complete. A scan killed
//!   half-way stays incomplete, and every query but [`Store::history`] ignores it.
//!   [`Store::import`] adds a whole file in one transaction.
//! - Reading: [`Store::history`], [`Store::changes`], [`Store::hosts`], [`Store::services`],
//!   [`Store::last_two_of_same_targets`] (see [`query`]).
//!
//! The file is in WAL mode with a busy timeout, so two scans may write to it at once.

pub mod cidr;
pub mod query;
pub mod schema;
mod write;

/// The SQLite binding, for ad-hoc SQL through [`Store::connection`].
pub use rusqlite;

pub use cidr::{BadCidr, Cidr};
pub use query::{Change, ChangeKind, InventoryHost, ScanRecord, ServiceRecord};
pub use write::{FinishStats, Imported, ScanMeta, Source};

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a writer waits for another one to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// A scan's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScanId(pub i64);

impl std::fmt::Display for ScanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: not a Portolan store (not an SQLite database); left as it is")]
    NotADatabase { path: PathBuf },
    #[error("{path}: the store is damaged ({detail}); left as it is")]
    Corrupt { path: PathBuf, detail: String },
    #[error("the store has schema version {found}, newer than this build's {supported}: upgrade Portolan to use it")]
    TooNew { found: u32, supported: u32 },
    #[error("{path}: cannot open the store: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("no scan {0} in the store")]
    NoSuchScan(ScanId),
    #[error("the store holds a value it cannot read: {0}")]
    BadValue(String),
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// An open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the store at `path`, creating it (and its schema) when the file does not exist
    /// or is empty. A file that is not an SQLite database, or is damaged, is refused with a
    /// typed error and never written to.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let not_db = || StoreError::NotADatabase { path: path.clone() };
        // The header first: SQLite would take some foreign files for empty databases.
        if let Ok(mut f) = std::fs::File::open(&path) {
            use std::io::Read;
            let mut head = [0u8; 16];
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => {
                        return Err(StoreError::Open {
                            path: path.clone(),
                            source: rusqlite::Error::SqliteFailure(
                                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                                Some(e.to_string()),
                            ),
                        })
                    }
                }
            }
            if n > 0 && (n < head.len() || &head != b"SQLite format 3\0") {
                return Err(not_db());
            }
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Before anything writes: is it a database, and a sound one?
        let check: Result<Vec<String>, rusqlite::Error> = (|| {
            let mut st = conn.prepare("PRAGMA quick_check")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })();
        match check {
            Ok(rows) if rows.len() == 1 && rows[0] == "ok" => {}
            Ok(rows) => {
                return Err(StoreError::Corrupt {
                    path,
                    detail: rows.join("; "),
                })
            }
            Err(e) => {
                return Err(match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::NotADatabase) => not_db(),
                    Some(rusqlite::ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                        path,
                        detail: e.to_string(),
                    },
                    _ => StoreError::Open { path, source: e },
                })
            }
        }
        // A newer schema is refused before this build changes anything in the file.
        let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > schema::CURRENT {
            return Err(StoreError::TooNew {
                found,
                supported: schema::CURRENT,
            });
        }
        conn.pragma_update(None, "journal_mode", "wal")?;
        // In WAL mode NORMAL loses nothing on a crash of the program, only on power loss.
        conn.pragma_update(None, "synchronous", "normal")?;
        conn.pragma_update(None, "foreign_keys", "on")?;
        let mut store = Store { conn, path };
        schema::migrate(&mut store.conn)?;
        Ok(store)
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open store.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// The underlying connection, for ad-hoc SQL (read-only use is advised).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}
