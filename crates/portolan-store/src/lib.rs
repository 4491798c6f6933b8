//! Portolan's history store: every scan run with `--db` and every imported file, in one
//! SQLite file or one PostgreSQL database, and the questions asked of it (what changed, what is on the network now).
//!
//! - Writing: [`Store::begin_scan`] records a scan as incomplete, [`Store::add_host`]
//!   commits each host as it comes, [`Store::finish_scan`] marks it complete. A scan killed
//!   half-way stays incomplete, and every query but [`Store::history`] ignores it.
//!   [`Store::import`] adds a whole file in one transaction.
//! - Sharded scans: [`Store::begin_part`] records a part of a `--shard K/N` scan; parts
//!   never count on their own, and the union of a round's parts is recorded as one
//!   complete scan when the last part finishes (see [`shards`]).
//! - Reading: [`Store::history`], [`Store::changes`], [`Store::hosts`], [`Store::services`],
//!   [`Store::last_two_of_same_targets`] (see [`query`]).
//!
//! The file is in WAL mode with a busy timeout, and every write transaction that still
//! finds the store busy is retried with a growing pause, so a night of parallel scans and
//! imports into one store all land. Commands that only read open it with
//! [`Store::open_existing`], which never creates a file; the web view opens it with
//! [`Store::open_read_only`], which never writes at all.
//!
//! A location that is a PostgreSQL URL (`postgres://USER@HOST[:PORT]/DB?sslmode=...`), a
//! `key=value` connection string or `service=NAME` opens a PostgreSQL store instead (see
//! [`pg`]); every method works the same on both (the SQL is shared, see `backend`). There
//! writers lock only the rows they write, so parallel scans never wait for each other.

mod backend;
pub mod cidr;
pub mod findings;
pub mod pg;
pub mod query;
pub mod schema;
pub mod shards;
mod write;

/// The SQLite binding, for ad-hoc SQL through [`Store::connection`].
pub use rusqlite;

pub use backend::Backend;
pub use cidr::{BadCidr, Cidr};
pub use findings::StoredFinding;
pub use pg::is_postgres;
pub use query::{
    Change, ChangeKind, HostSnapshot, InventoryHost, PortRecord, ScanRecord, ServiceRecord,
};
pub use shards::{PartRecord, PartState, ShardPart, ShardedScan};
pub use write::{FinishStats, Imported, ScanMeta, Source, StreamedImport};

use backend::{Db, Pg};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one attempt waits for another writer to finish (SQLite's busy handler)...
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);
/// ... and how many times a write transaction that still found the store busy is tried
/// again, after a pause that doubles from [`RETRY_PAUSE`] (at most [`MAX_RETRY_PAUSE`]):
/// about ten minutes in all before a writer gives up.
const BUSY_RETRIES: u32 = 8;
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

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
    #[error(
        "the store has schema version {found}, older than this build's {supported}, and a \
         reader does not upgrade it: run any store command once (e.g. `portolan history --db \
         PATH`) to upgrade it"
    )]
    TooOld { found: u32, supported: u32 },
    #[error(
        "{path}: cannot open the store read-only: {detail} (a reader of a store in WAL mode \
         needs its -wal and -shm files beside it, created when missing: the store's directory \
         must be writable by this user, or another process must have the store open)"
    )]
    ReadOnlyOpen { path: PathBuf, detail: String },
    #[error("{path}: no such history store (give the path of an existing store; scans and `portolan import` create one)")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot open the store: {}", open_detail(path, source))]
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
    #[error("{location}: not a PostgreSQL store location: {detail}")]
    BadLocation { location: String, detail: String },
    #[error("{location}: cannot connect to the PostgreSQL store: {detail}")]
    Connect { location: String, detail: String },
    #[error("store (PostgreSQL): {0}")]
    Pg(#[from] postgres::Error),
    #[error("store (PostgreSQL): {0}")]
    Postgres(String),
}

/// Why a store could not be opened, without SQLite's repetition of the path.
fn open_detail(path: &Path, e: &rusqlite::Error) -> String {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return format!("no directory {}", dir.display());
        }
    }
    match e {
        rusqlite::Error::SqliteFailure(err, _) => {
            rusqlite::ffi::code_to_str(err.extended_code).to_lowercase()
        }
        e => e.to_string(),
    }
}

/// Whether an error means another connection holds the store (worth trying again).
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Whether a transaction failed only for another writer: SQLite's busy store, or
/// PostgreSQL's serialization failure or deadlock (the transaction was rolled back whole).
fn is_retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Sqlite(e) => is_busy(e),
        StoreError::Pg(e) => e.code().is_some_and(|c| {
            *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
        }),
        _ => false,
    }
}

/// Runs `f` again while it fails because the store is busy, pausing longer each time.
pub(crate) fn retry_busy<T, E>(
    retries: u32,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<T, StoreError>
where
    StoreError: From<E>,
{
    let mut pause = RETRY_PAUSE;
    let mut tries = 0;
    loop {
        match f().map_err(StoreError::from) {
            Err(e) if is_retryable(&e) && tries < retries => {
                tries += 1;
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
            r => return r,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Created with its schema when missing; upgraded.
    Create,
    /// Must exist; upgraded.
    Existing,
    /// Must exist and be of this build's schema; never written.
    ReadOnly,
}

/// An open store.
pub struct Store {
    db: Db,
    path: PathBuf,
    /// How many times a busy write is tried again.
    retries: u32,
}

impl Store {
    /// Opens the store at `path`, creating it (and its schema) when the file does not exist
    /// or is empty. A file that is not an SQLite database, or is damaged, is refused with a
    /// typed error and never written to.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path.as_ref(), Mode::Create)
    }

    /// Opens a store that must already exist, for commands that only read: a missing path
    /// is [`StoreError::NotFound`] and an empty file [`StoreError::NotADatabase`]; neither
    /// is created nor written.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path.as_ref(), Mode::Existing)
    }

    /// Opens a store that must exist through a read-only connection (SQLite's
    /// `SQLITE_OPEN_READONLY`), for a long-running reader such as the web view: nothing in
    /// the file changes, neither its journal mode nor its schema. A store whose schema is
    /// older than this build's is [`StoreError::TooOld`] (a write command upgrades it), a
    /// newer one [`StoreError::TooNew`]. Writes through [`Store::connection`] fail.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path.as_ref(), Mode::ReadOnly)
    }

    fn open_with(path: &Path, mode: Mode) -> Result<Store, StoreError> {
        if let Some(spec) = path.to_str().filter(|s| pg::is_postgres(s)) {
            return Store::open_pg(spec, mode);
        }
        let path = path.to_path_buf();
        let create = mode == Mode::Create;
        let read_only = mode == Mode::ReadOnly;
        if !create {
            match std::fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound { path });
                }
                Ok(m) if m.is_file() && m.len() == 0 => {
                    return Err(StoreError::NotADatabase { path });
                }
                _ => {}
            }
        }
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
        let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        flags |= if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn =
            Connection::open_with_flags(&path, flags).map_err(|source| StoreError::Open {
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
                    // A WAL store's reader could not create or map the -shm file.
                    Some(
                        rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::ReadOnly
                        | rusqlite::ErrorCode::PermissionDenied,
                    ) if read_only => StoreError::ReadOnlyOpen {
                        detail: open_detail(&path, &e),
                        path,
                    },
                    Some(rusqlite::ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                        path,
                        detail: e.to_string(),
                    },
                    _ => StoreError::Open { path, source: e },
                });
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
        if read_only {
            if found < schema::CURRENT {
                return Err(StoreError::TooOld {
                    found,
                    supported: schema::CURRENT,
                });
            }
            return Ok(Store {
                db: Db::Sqlite(conn),
                path,
                retries: BUSY_RETRIES,
            });
        }
        // Turning WAL on takes the file's lock: another process may hold it a moment.
        retry_busy(BUSY_RETRIES, || {
            conn.pragma_update(None, "journal_mode", "wal")
        })?;
        // In WAL mode NORMAL loses nothing on a crash of the program, only on power loss.
        conn.pragma_update(None, "synchronous", "normal")?;
        conn.pragma_update(None, "foreign_keys", "on")?;
        let mut conn = conn;
        retry_busy(BUSY_RETRIES, || schema::migrate(&mut conn))?;
        Ok(Store {
            db: Db::Sqlite(conn),
            path,
            retries: BUSY_RETRIES,
        })
    }

    /// Opens a PostgreSQL store. The database must exist; its schema is created or upgraded
    /// unless `mode` is read-only, and then the session itself is read-only.
    fn open_pg(spec: &str, mode: Mode) -> Result<Store, StoreError> {
        let target = pg::PgTarget::parse(spec)?;
        let db = Db::Pg(Pg::connect(&target)?);
        let found = schema::pg_version(&db)?;
        if found > schema::CURRENT {
            return Err(StoreError::TooNew {
                found,
                supported: schema::CURRENT,
            });
        }
        if mode == Mode::ReadOnly {
            db.batch("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")?;
            if found < schema::CURRENT {
                return Err(StoreError::TooOld {
                    found,
                    supported: schema::CURRENT,
                });
            }
        } else {
            retry_busy(BUSY_RETRIES, || schema::pg_migrate(&db))?;
        }
        Ok(Store {
            db,
            path: PathBuf::from(target.shown()),
            retries: BUSY_RETRIES,
        })
    }

    /// How long a write waits for other writers before it fails: `wait` in SQLite's busy
    /// handler, and no retry. The default (a minute, tried again 8 times with growing
    /// pauses: about ten minutes) suits a night of parallel scans; a test or an impatient
    /// caller may want less.
    pub fn set_patience(&mut self, wait: Duration) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(c) => c.busy_timeout(wait)?,
            Db::Pg(_) => self
                .db
                .batch(&format!("SET lock_timeout = {}", wait.as_millis().max(1)))?,
        }
        self.retries = 0;
        Ok(())
    }

    /// The file the store lives in; for a PostgreSQL store, its location without password.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which database the store is in.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// The schema version of the open store.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        match &self.db {
            Db::Sqlite(c) => Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?),
            Db::Pg(_) => schema::pg_version(&self.db),
        }
    }

    /// A number that changes when another connection (another process, or another
    /// `Store` on the same file) has committed a write since the last call: a reader that
    /// keeps results (the web view) knows when to drop them. SQLite's `data_version`; in
    /// PostgreSQL a sequence that every write moves on once it is committed (so a reader
    /// that sees the new number also sees the write).
    pub fn generation(&self) -> Result<i64, StoreError> {
        match &self.db {
            Db::Sqlite(c) => Ok(c.query_row("PRAGMA data_version", [], |r| r.get(0))?),
            Db::Pg(_) => self
                .db
                .query_opt("SELECT last_value FROM portolan_generation", &[])?
                .map_or(Ok(0), |r| r.get(0)),
        }
    }

    /// The underlying SQLite connection, for ad-hoc SQL (read-only use is advised); None
    /// for a PostgreSQL store.
    pub fn sqlite(&self) -> Option<&Connection> {
        match &self.db {
            Db::Sqlite(c) => Some(c),
            Db::Pg(_) => None,
        }
    }

    /// The underlying SQLite connection, for ad-hoc SQL in SQLite-only tests and tools.
    ///
    /// # Panics
    /// On a PostgreSQL store (see [`Store::sqlite`]).
    pub fn connection(&self) -> &Connection {
        self.sqlite()
            .expect("Store::connection is for SQLite stores: see Store::sqlite")
    }

    /// Runs SQL statements without parameters on either database, for tests and tools that
    /// change a store by hand.
    #[doc(hidden)]
    pub fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        self.db.batch(sql)
    }

    /// The rows of an ad-hoc query without parameters, on either database, each value as
    /// text (NULL as `NULL`), for tests and tools.
    #[doc(hidden)]
    pub fn sql_rows(&self, sql: &str) -> Result<Vec<Vec<String>>, StoreError> {
        Ok(self.db.query(sql, &[])?.iter().map(|r| r.texts()).collect())
    }
}
