//! The store's schema, as a list of migrations applied in order. `PRAGMA user_version`
//! holds how many have been applied; a file with more than this build knows is refused
//! rather than misread.
//!
//! Port lists are stored once per distinct content ("port sets"): a host whose ports did
//! not change since the last scan points at the same set, so a year of daily scans of a
//! /20 costs one `hosts_seen` row per host and scan, not one row per port and scan, and
//! comparing two scans compares set ids before it looks at a single port.

use crate::backend::{vals, Db};
use rusqlite::Connection;

/// Each entry takes the schema from version `i` to `i + 1`. Never edit a released entry:
/// add a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: scans, the hosts each reported, and their port sets.
    r#"
    CREATE TABLE scans (
        id          INTEGER PRIMARY KEY,
        started     INTEGER NOT NULL,          -- Unix epoch seconds
        finished    INTEGER,                   -- NULL while running or after a kill
        args        TEXT    NOT NULL,
        targets     TEXT    NOT NULL,          -- the target words, space-separated
        hosts_up    INTEGER NOT NULL DEFAULT 0,
        hosts_total INTEGER NOT NULL DEFAULT 0,
        complete    INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
        source      TEXT    NOT NULL CHECK (source IN ('scan', 'import')),
        file        TEXT,                      -- the imported file
        scanner     TEXT    NOT NULL DEFAULT 'portolan',
        version     TEXT    NOT NULL DEFAULT ''
    );
    CREATE INDEX scans_by_targets ON scans (targets, complete, started);
    CREATE INDEX scans_by_start ON scans (started);

    -- One row per distinct port list (listed ports and collapsed counts).
    CREATE TABLE portsets (
        id     INTEGER PRIMARY KEY,
        hash   INTEGER NOT NULL,               -- SipHash of canon, for lookup
        canon  TEXT    NOT NULL,               -- the canonical text the hash is of
        extra  TEXT    NOT NULL DEFAULT ''     -- collapsed ports: "closed=995,filtered=2"
    );
    CREATE INDEX portsets_by_hash ON portsets (hash);

    CREATE TABLE portset_ports (
        set_id    INTEGER NOT NULL REFERENCES portsets (id),
        protocol  TEXT    NOT NULL,
        port      INTEGER NOT NULL,
        state     TEXT    NOT NULL,
        reason    TEXT    NOT NULL DEFAULT '',
        service   TEXT,
        product   TEXT,
        version   TEXT,
        extrainfo TEXT,
        tunnel    TEXT,
        PRIMARY KEY (set_id, protocol, port)
    ) WITHOUT ROWID;
    CREATE INDEX portset_ports_by_port ON portset_ports (port, state);

    CREATE TABLE hosts_seen (
        scan_id    INTEGER NOT NULL REFERENCES scans (id),
        address    TEXT    NOT NULL,
        addrtype   TEXT    NOT NULL,
        state      TEXT    NOT NULL,
        reason     TEXT    NOT NULL DEFAULT '',
        hostnames  TEXT    NOT NULL DEFAULT '[]',   -- JSON: [{"name":..,"type":..}]
        mac        TEXT,
        vendor     TEXT,
        portset_id INTEGER REFERENCES portsets (id),
        starttime  INTEGER,
        endtime    INTEGER,
        PRIMARY KEY (scan_id, address)
    ) WITHOUT ROWID;
    CREATE INDEX hosts_seen_by_address ON hosts_seen (address, scan_id);

    -- The flat view: one row per port per scan, as if every port were stored each time.
    CREATE VIEW ports_seen AS
        SELECT h.scan_id, h.address, p.protocol, p.port, p.state, p.service, p.product,
               p.version, p.extrainfo
        FROM hosts_seen h JOIN portset_ports p ON p.set_id = h.portset_id;
    "#,
    // 2: OS detection and script results. JSON in the model's serde form (as in -oJ):
    // queryable with SQLite's JSON functions, and read back into the model whole. Rows
    // written before this version read as "no OS detection, no scripts".
    r#"
    ALTER TABLE scans ADD COLUMN prescripts TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE scans ADD COLUMN postscripts TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE hosts_seen ADD COLUMN os TEXT;                          -- NULL: no -O
    ALTER TABLE hosts_seen ADD COLUMN hostscripts TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE portset_ports ADD COLUMN scripts TEXT NOT NULL DEFAULT '[]';

    -- The flat view of OS matches: one row per match per host per scan, best first.
    CREATE VIEW os_matches_seen AS
        SELECT h.scan_id, h.address, CAST(m.key AS INTEGER) AS rank,
               json_extract(m.value, '$.name') AS name,
               json_extract(m.value, '$.accuracy') AS accuracy
        FROM hosts_seen h, json_each(h.os, '$.matches') m
        WHERE h.os IS NOT NULL;
    "#,
    // 3: sharded scans (`--shard K/N`, docs/shards.md). Each part is a row of `scans` whose
    // `complete` stays 0, so that no query but the history ever counts a part on its own;
    // `part_done` says it ran to its end. Parts of one identity form rounds; once every part
    // of a round is done, the writer that completes it adds the union as one ordinary
    // complete scan (`shard_rounds.union_id`, with the same identity and no part number).
    // `shard_scans` holds one row per identity, the lock its writers take in turn.
    // Plain SQL that PostgreSQL takes as well.
    r#"
    -- One row per identity: its lock. Every writer of a part takes it first (a no-op
    -- update), so that two parts never pick or close rounds of one identity at once.
    CREATE TABLE shard_scans (
        scan_key  TEXT    PRIMARY KEY
    );
    CREATE TABLE shard_rounds (
        id        INTEGER PRIMARY KEY,
        scan_key  TEXT    NOT NULL,               -- --scan-id, or derived from the plan
        round     INTEGER NOT NULL,               -- 1, 2, ... for an identity used again
        parts     INTEGER NOT NULL,               -- N of --shard K/N
        started   INTEGER NOT NULL,               -- when its first part began
        union_id  INTEGER REFERENCES scans (id),  -- the union, once every part is done
        UNIQUE (scan_key, round)
    );
    ALTER TABLE scans ADD COLUMN scan_key TEXT;        -- NULL: an unsharded scan
    ALTER TABLE scans ADD COLUMN part INTEGER;         -- K (1-based); NULL for a union
    ALTER TABLE scans ADD COLUMN parts INTEGER;        -- N
    ALTER TABLE scans ADD COLUMN round_id INTEGER REFERENCES shard_rounds (id);
    ALTER TABLE scans ADD COLUMN part_done INTEGER NOT NULL DEFAULT 0;
    -- A round counts each part number once.
    CREATE UNIQUE INDEX shard_parts_done ON scans (round_id, part) WHERE part_done = 1;
    CREATE INDEX scans_by_round ON scans (round_id);
    "#,
];

/// The same schema in PostgreSQL, version for version: entry `i` takes a PostgreSQL store
/// where [`MIGRATIONS`]`[i]` takes an SQLite one. Integers are BIGINT, ids identities,
/// addresses and targets compared byte by byte (collation "C", as SQLite compares them, and
/// as the queries' merges of address-ordered lists expect), JSON read with jsonb.
pub const PG_MIGRATIONS: &[&str] = &[
    // 1
    r#"
    CREATE TABLE scans (
        id          BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        started     BIGINT  NOT NULL,
        finished    BIGINT,
        args        TEXT    NOT NULL,
        targets     TEXT    COLLATE "C" NOT NULL,
        hosts_up    BIGINT  NOT NULL DEFAULT 0,
        hosts_total BIGINT  NOT NULL DEFAULT 0,
        complete    INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
        source      TEXT    NOT NULL CHECK (source IN ('scan', 'import')),
        file        TEXT,
        scanner     TEXT    NOT NULL DEFAULT 'portolan',
        version     TEXT    NOT NULL DEFAULT ''
    );
    CREATE INDEX scans_by_targets ON scans (targets, complete, started);
    CREATE INDEX scans_by_start ON scans (started);

    CREATE TABLE portsets (
        id     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        hash   BIGINT NOT NULL,
        canon  TEXT   NOT NULL,
        extra  TEXT   NOT NULL DEFAULT ''
    );
    CREATE INDEX portsets_by_hash ON portsets (hash);

    CREATE TABLE portset_ports (
        set_id    BIGINT NOT NULL REFERENCES portsets (id),
        protocol  TEXT   COLLATE "C" NOT NULL,
        port      BIGINT NOT NULL,
        state     TEXT   NOT NULL,
        reason    TEXT   NOT NULL DEFAULT '',
        service   TEXT,
        product   TEXT,
        version   TEXT,
        extrainfo TEXT,
        tunnel    TEXT,
        PRIMARY KEY (set_id, protocol, port)
    );
    CREATE INDEX portset_ports_by_port ON portset_ports (port, state);

    CREATE TABLE hosts_seen (
        scan_id    BIGINT NOT NULL REFERENCES scans (id),
        address    TEXT   COLLATE "C" NOT NULL,
        addrtype   TEXT   NOT NULL,
        state      TEXT   NOT NULL,
        reason     TEXT   NOT NULL DEFAULT '',
        hostnames  TEXT   NOT NULL DEFAULT '[]',
        mac        TEXT,
        vendor     TEXT,
        portset_id BIGINT REFERENCES portsets (id),
        starttime  BIGINT,
        endtime    BIGINT,
        PRIMARY KEY (scan_id, address)
    );
    CREATE INDEX hosts_seen_by_address ON hosts_seen (address, scan_id);

    CREATE VIEW ports_seen AS
        SELECT h.scan_id, h.address, p.protocol, p.port, p.state, p.service, p.product,
               p.version, p.extrainfo
        FROM hosts_seen h JOIN portset_ports p ON p.set_id = h.portset_id;
    "#,
    // 2
    r#"
    ALTER TABLE scans ADD COLUMN prescripts TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE scans ADD COLUMN postscripts TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE hosts_seen ADD COLUMN os TEXT;
    ALTER TABLE hosts_seen ADD COLUMN hostscripts TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE portset_ports ADD COLUMN scripts TEXT NOT NULL DEFAULT '[]';

    CREATE VIEW os_matches_seen AS
        SELECT h.scan_id, h.address, (m.ord - 1)::INTEGER AS rank,
               m.value ->> 'name' AS name,
               (m.value ->> 'accuracy')::INTEGER AS accuracy
        FROM hosts_seen h,
             jsonb_array_elements(h.os::jsonb -> 'matches') WITH ORDINALITY AS m (value, ord)
        WHERE h.os IS NOT NULL;
    "#,
    // 3
    r#"
    CREATE TABLE shard_scans (
        scan_key  TEXT    COLLATE "C" PRIMARY KEY
    );
    CREATE TABLE shard_rounds (
        id        BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        scan_key  TEXT    COLLATE "C" NOT NULL,
        round     BIGINT  NOT NULL,
        parts     BIGINT  NOT NULL,
        started   BIGINT  NOT NULL,
        union_id  BIGINT  REFERENCES scans (id),
        UNIQUE (scan_key, round)
    );
    ALTER TABLE scans ADD COLUMN scan_key TEXT COLLATE "C";
    ALTER TABLE scans ADD COLUMN part BIGINT;
    ALTER TABLE scans ADD COLUMN parts BIGINT;
    ALTER TABLE scans ADD COLUMN round_id BIGINT REFERENCES shard_rounds (id);
    ALTER TABLE scans ADD COLUMN part_done INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX shard_parts_done ON scans (round_id, part) WHERE part_done = 1;
    CREATE INDEX scans_by_round ON scans (round_id);
    "#,
];

/// The one-row table that holds a PostgreSQL store's schema version (SQLite keeps it in
/// `PRAGMA user_version`), and the sequence [`crate::Store::generation`] reads there.
const PG_BOOKKEEPING: &str = "
    CREATE TABLE IF NOT EXISTS portolan_schema (version INTEGER NOT NULL);
    CREATE SEQUENCE IF NOT EXISTS portolan_generation;";

/// The advisory lock key under which a PostgreSQL store is migrated ("port" in ASCII).
const PG_MIGRATION_LOCK: i64 = 0x706f_7274;

/// The schema version this build writes.
pub const CURRENT: u32 = MIGRATIONS.len() as u32;

/// Brings the schema up to [`CURRENT`] in one immediate transaction (so two processes
/// opening a new store at once do not both migrate it). Returns the version found.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, crate::StoreError> {
    // Up to date (the usual case): nothing to write, so no write lock to wait for.
    let seen: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if seen == CURRENT {
        return Ok(seen);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > CURRENT {
        return Err(crate::StoreError::TooNew {
            found,
            supported: CURRENT,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
    }
    tx.commit()?;
    Ok(found)
}

/// The schema version of a PostgreSQL store: 0 when it has none yet.
pub(crate) fn pg_version(db: &Db) -> Result<u32, crate::StoreError> {
    let table = db.query_opt("SELECT to_regclass('portolan_schema')::TEXT", &[])?;
    if table
        .and_then(|r| r.get::<Option<String>>(0).ok().flatten())
        .is_none()
    {
        return Ok(0);
    }
    match db.query_opt("SELECT version FROM portolan_schema", &[])? {
        Some(r) => r.get(0),
        None => Ok(0),
    }
}

/// Brings a PostgreSQL store's schema up to [`CURRENT`] in one transaction, under an
/// advisory lock so that processes opening a new store at once migrate it once. Returns the
/// version found.
pub(crate) fn pg_migrate(db: &Db) -> Result<u32, crate::StoreError> {
    let seen = pg_version(db)?;
    if seen == CURRENT {
        return Ok(seen);
    }
    db.begin()?;
    let r = (|| {
        db.query(
            "SELECT 1 FROM (SELECT pg_advisory_xact_lock(?1)) l",
            &vals![PG_MIGRATION_LOCK],
        )?;
        db.batch(PG_BOOKKEEPING)?;
        let found = pg_version(db)?;
        if found > CURRENT {
            return Err(crate::StoreError::TooNew {
                found,
                supported: CURRENT,
            });
        }
        for sql in PG_MIGRATIONS.iter().skip(found as usize) {
            db.batch(sql)?;
        }
        db.execute("DELETE FROM portolan_schema", &[])?;
        db.execute(
            "INSERT INTO portolan_schema (version) VALUES (?1)",
            &vals![CURRENT],
        )?;
        db.batch("COMMIT")?;
        Ok(found)
    })();
    if r.is_err() {
        db.rollback();
    }
    r
}

#[cfg(test)]
mod tests {
    /// Each SQLite migration has its PostgreSQL twin: a store of either kind at version N
    /// has the same tables and columns.
    #[test]
    fn both_backends_have_every_version() {
        assert_eq!(super::PG_MIGRATIONS.len(), super::MIGRATIONS.len());
    }
}
