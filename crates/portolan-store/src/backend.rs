//! The two databases a store can live in, behind one small interface: SQL written once (in
//! the subset both understand, `?N` placeholders), a few value types, rows read by index.
//!
//! - SQLite: a `rusqlite::Connection`, statements cached by their text.
//! - PostgreSQL: a `postgres::Client` that lives on a thread of its own, to which each call
//!   is sent. The client runs a private tokio runtime, which panics when entered from a
//!   thread already running one; the scanner and the web view call the store from tokio
//!   worker threads, so the client never runs on the caller's thread.
//!
//! Transactions are plain `BEGIN`/`COMMIT`/`ROLLBACK` statements (see [`Db::begin`]).

use crate::pg::PgTarget;
use crate::StoreError;
use std::collections::HashMap;
use std::sync::mpsc;

/// A parameter or a column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Val {
        Val::Int(v.into())
    }
}
impl From<u16> for Val {
    fn from(v: u16) -> Val {
        Val::Int(v.into())
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val::Int(v.into())
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_string())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Val {
        Val::Text(v.clone())
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map_or(Val::Null, Into::into)
    }
}

/// The parameters of a statement: `vals![a, b]`.
macro_rules! vals {
    ($($v:expr),* $(,)?) => { [$($crate::backend::Val::from($v)),*] };
}
pub(crate) use vals;

/// A value read from a column, by type.
pub(crate) trait FromVal: Sized {
    fn from_val(v: &Val) -> Option<Self>;
}
impl FromVal for i64 {
    fn from_val(v: &Val) -> Option<i64> {
        match v {
            Val::Int(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromVal for u32 {
    fn from_val(v: &Val) -> Option<u32> {
        i64::from_val(v).and_then(|i| u32::try_from(i).ok())
    }
}
impl FromVal for u16 {
    fn from_val(v: &Val) -> Option<u16> {
        i64::from_val(v).and_then(|i| u16::try_from(i).ok())
    }
}
impl FromVal for bool {
    fn from_val(v: &Val) -> Option<bool> {
        i64::from_val(v).map(|i| i != 0)
    }
}
impl FromVal for String {
    fn from_val(v: &Val) -> Option<String> {
        match v {
            Val::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: &Val) -> Option<Option<T>> {
        match v {
            Val::Null => Some(None),
            v => T::from_val(v).map(Some),
        }
    }
}

/// A row, its columns in the statement's order.
#[derive(Debug)]
pub(crate) struct Row(Vec<Val>);

impl Row {
    /// Column `i` as a `T`; a missing column or a value of another type is
    /// [`StoreError::BadValue`].
    pub(crate) fn get<T: FromVal>(&self, i: usize) -> Result<T, StoreError> {
        let v = self.0.get(i).unwrap_or(&Val::Null);
        T::from_val(v).ok_or_else(|| {
            StoreError::BadValue(format!(
                "column {i}: {v:?} is not a {}",
                std::any::type_name::<T>()
            ))
        })
    }
    /// Every column as text.
    pub(crate) fn texts(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|v| match v {
                Val::Null => "NULL".into(),
                Val::Int(i) => i.to_string(),
                Val::Text(s) => s.clone(),
            })
            .collect()
    }
    /// Column `i` as text, without a copy.
    pub(crate) fn str(&self, i: usize) -> Option<&str> {
        match self.0.get(i) {
            Some(Val::Text(s)) => Some(s),
            _ => None,
        }
    }
}

/// A row read in place by [`Db::query_each`]: integers (PostgreSQL's of any width) and
/// text, borrowed from the database's buffer.
pub(crate) enum RowRef<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::Row),
}

impl RowRef<'_> {
    fn bad(i: usize, what: &str) -> StoreError {
        StoreError::BadValue(format!("column {i} is not {what}"))
    }

    /// Column `i`, an integer or NULL.
    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        use postgres::types::Type;
        match self {
            RowRef::Sqlite(r) => match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Ok(None),
                rusqlite::types::ValueRef::Integer(v) => Ok(Some(v)),
                _ => Err(Self::bad(i, "an integer")),
            },
            RowRef::Pg(r) => match r.columns().get(i).map(|c| c.type_().clone()) {
                Some(Type::INT8) => Ok(r.try_get::<_, Option<i64>>(i)?),
                Some(Type::INT4) => Ok(r.try_get::<_, Option<i32>>(i)?.map(i64::from)),
                Some(Type::INT2) => Ok(r.try_get::<_, Option<i16>>(i)?.map(i64::from)),
                _ => Err(Self::bad(i, "an integer")),
            },
        }
    }

    /// Column `i`, an integer.
    pub(crate) fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?.ok_or_else(|| Self::bad(i, "an integer"))
    }

    /// Column `i`, text or NULL.
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<&str>, StoreError> {
        match self {
            RowRef::Sqlite(r) => match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Ok(None),
                rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t)
                    .map(Some)
                    .map_err(|_| Self::bad(i, "UTF-8 text")),
                _ => Err(Self::bad(i, "text")),
            },
            RowRef::Pg(r) => Ok(r.try_get::<_, Option<&str>>(i)?),
        }
    }

    /// Column `i`, text.
    pub(crate) fn text(&self, i: usize) -> Result<&str, StoreError> {
        self.opt_text(i)?.ok_or_else(|| Self::bad(i, "text"))
    }

    /// Column `i`, a PostgreSQL array of text, its elements text or NULL, borrowed (SQLite
    /// has no arrays: an error there).
    pub(crate) fn opt_text_array(&self, i: usize) -> Result<Vec<Option<&str>>, StoreError> {
        match self {
            RowRef::Sqlite(_) => Err(Self::bad(i, "an array")),
            RowRef::Pg(r) => Ok(r.try_get::<_, Vec<Option<&str>>>(i)?),
        }
    }

    /// Column `i`, a PostgreSQL array of integers (of any width) or NULLs.
    pub(crate) fn opt_int_array(&self, i: usize) -> Result<Vec<Option<i64>>, StoreError> {
        use postgres::types::Type;
        let RowRef::Pg(r) = self else {
            return Err(Self::bad(i, "an array"));
        };
        let widen = |v: Vec<Option<i32>>| v.into_iter().map(|x| x.map(i64::from)).collect();
        match r.columns().get(i).map(|c| c.type_().clone()) {
            Some(Type::INT8_ARRAY) => Ok(r.try_get::<_, Vec<Option<i64>>>(i)?),
            Some(Type::INT4_ARRAY) => Ok(widen(r.try_get(i)?)),
            _ => Err(Self::bad(i, "an array of integers")),
        }
    }
}

/// Which database a store is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open connection to either database.
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    Pg(Pg),
}

impl Db {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Pg(_) => Backend::Postgres,
        }
    }

    /// Runs a statement, returning how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Db::Pg(pg) => {
                let (sql, params) = (pg_sql(sql), params.to_vec());
                pg.call(move |c| {
                    let st = c.prepare(&sql)?;
                    c.client.execute(&st, &refs(&params))
                })
            }
        }
    }

    /// Runs a query (or a statement with `RETURNING`), returning every row.
    pub(crate) fn query(&self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError> {
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut row = Vec::with_capacity(n);
                    for i in 0..n {
                        use rusqlite::types::ValueRef;
                        row.push(match r.get_ref(i)? {
                            ValueRef::Null => Val::Null,
                            ValueRef::Integer(v) => Val::Int(v),
                            ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into()),
                            ValueRef::Real(f) => Val::Text(f.to_string()),
                            ValueRef::Blob(b) => Val::Text(String::from_utf8_lossy(b).into()),
                        });
                    }
                    out.push(Row(row));
                }
                Ok(out)
            }
            Db::Pg(pg) => {
                let (sql, params) = (pg_sql(sql), params.to_vec());
                pg.call(move |c| -> Result<Vec<Row>, StoreError> {
                    let st = c.prepare(&sql)?;
                    let rows = c.client.query(&st, &refs(&params))?;
                    rows.iter().map(pg_row).collect()
                })
            }
        }
    }

    /// Runs a query and hands each row to `f` as it is read, without copying its columns:
    /// for reads of many rows of which few are kept (a year of scans' hosts, to compare).
    /// PostgreSQL's rows come back whole from its connection's thread, then are read here.
    pub(crate) fn query_each(
        &self,
        sql: &str,
        params: &[Val],
        mut f: impl FnMut(&RowRef<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
                while let Some(r) = rows.next()? {
                    f(&RowRef::Sqlite(r))?;
                }
                Ok(())
            }
            Db::Pg(pg) => {
                let (sql, params) = (pg_sql(sql), params.to_vec());
                let rows = pg.call(move |c| -> Result<Vec<postgres::Row>, StoreError> {
                    let st = c.prepare(&sql)?;
                    Ok(c.client.query(&st, &refs(&params))?)
                })?;
                rows.iter().try_for_each(|r| f(&RowRef::Pg(r)))
            }
        }
    }

    /// The first row of a query, if any.
    pub(crate) fn query_opt(&self, sql: &str, params: &[Val]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs statements without parameters (DDL, transaction control).
    pub(crate) fn batch(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Pg(pg) => {
                let sql = sql.to_string();
                pg.call(move |c| c.client.batch_execute(&sql))
            }
        }
    }

    /// Starts a write transaction: in SQLite an immediate one (the write lock taken at its
    /// start, so it cannot fail half-way for another writer); in PostgreSQL rows are locked
    /// as they are written, so writers of different scans never wait for each other.
    pub(crate) fn begin(&self) -> Result<(), StoreError> {
        self.batch(match self {
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
            Db::Pg(_) => "BEGIN",
        })
    }

    /// Ends a transaction begun with [`Db::begin`] that failed; errors are not reported (the
    /// first one is).
    pub(crate) fn rollback(&self) {
        let _ = self.batch("ROLLBACK");
    }
}

/// `?N` placeholders as PostgreSQL's `$N` (outside quoted text).
pub(crate) fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '?' if !quoted && chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Val::Null => ValueRef::Null,
            Val::Int(i) => ValueRef::Integer(*i),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

impl postgres::types::ToSql for Val {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        match self {
            Val::Null => Ok(postgres::types::IsNull::Yes),
            Val::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("an integer given for a {ty} parameter").into()),
            },
            Val::Text(s) => s.as_str().to_sql(ty, out),
        }
    }

    // Any type: to_sql converts, or says why not.
    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn refs(params: &[Val]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

/// A PostgreSQL row as values: integers, booleans (as 0/1) and text.
fn pg_row(r: &postgres::Row) -> Result<Row, StoreError> {
    use postgres::types::Type;
    let mut row = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let v = match *col.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Val::Int),
            Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(|v| Val::Int(v.into())),
            Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(|v| Val::Int(v.into())),
            Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(|v| Val::Int(v.into())),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                r.try_get::<_, Option<String>>(i)?.map(Val::Text)
            }
            ref t => {
                return Err(StoreError::BadValue(format!(
                    "column {} is of type {t}, which the store does not read",
                    col.name()
                )))
            }
        };
        row.push(v.unwrap_or(Val::Null));
    }
    Ok(Row(row))
}

/// The client and its prepared statements, on the connection's thread.
pub(crate) struct PgConn {
    pub(crate) client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl PgConn {
    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(sql)?;
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

type Job = Box<dyn FnOnce(&mut PgConn) + Send>;

/// A PostgreSQL connection owned by a thread of its own (see the module's docs).
pub(crate) struct Pg {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pg {
    /// Connects (on the new thread) and waits for the outcome.
    pub(crate) fn connect(target: &PgTarget) -> Result<Pg, StoreError> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, outcome) = mpsc::sync_channel(1);
        let target = target.clone();
        let thread = std::thread::Builder::new()
            .name("portolan-store-pg".into())
            .spawn(move || {
                let client = match target.connect() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                let mut conn = PgConn {
                    client,
                    statements: HashMap::new(),
                };
                while let Ok(job) = inbox.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::Postgres(format!("cannot start a thread: {e}")))?;
        let pg = Pg {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        match outcome.recv() {
            Ok(Ok(())) => Ok(pg),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Postgres("the connection's thread ended".into())),
        }
    }

    /// Runs `f` on the connection's thread and waits for its result.
    pub(crate) fn call<T, E>(
        &self,
        f: impl FnOnce(&mut PgConn) -> Result<T, E> + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        E: Send + 'static,
        StoreError: From<E>,
    {
        let gone = || StoreError::Postgres("the connection's thread ended".into());
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| gone())?;
        Ok(rx.recv().map_err(|_| gone())??)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Closing the queue ends the thread, which closes the connection.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
