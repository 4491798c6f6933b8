# Sourced by bench/store.sh and bench/serve.sh: a PostgreSQL cluster of the benchmark's own
# (as crates/portolan-testpg starts one for the tests), run as the postgres user, on a unix
# socket in $PG_DIR and on 127.0.0.1:$PG_PORT. Its data is kept between runs (a store
# filled by store.sh is served by serve.sh); pg_stop stops the server.
#
# Settings as for the SQLite store: synchronous_commit=off loses nothing on a crash of the
# program, only the last transactions on a power loss, as SQLite's synchronous=NORMAL in
# WAL mode; shared_buffers large enough to hold the year's store, as the page cache holds
# the SQLite file.

PG_DIR="${PG_DIR:-${OUT:-/tmp/portolan-store-bench}/pg}"
PG_PORT="${PG_PORT:-15432}"

# Whether a cluster can be started here (root, PostgreSQL installed), and not turned off
# with BENCH_PG=0.
pg_available() {
    [ "${BENCH_PG:-1}" != 0 ] && [ "$(id -u)" -eq 0 ] &&
        ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

pg_as() {
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
}

pg_start() {
    PG_BIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    if [ ! -s "$PG_DIR/data/PG_VERSION" ]; then
        rm -rf "$PG_DIR"
        install -d -o postgres -g postgres -m 700 "$PG_DIR"
        pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C \
            --no-sync --no-instructions >"$PG_DIR/initdb.log" 2>&1
    fi
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c synchronous_commit=off -c shared_buffers=1GB" \
        start >/dev/null
}

pg_stop() {
    [ -n "${PG_BIN:-}" ] && pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" stop -m fast >/dev/null 2>&1 || true
}

# The URL of database $1 over the socket.
pg_url() {
    echo "postgresql://postgres@${PG_DIR//\//%2F}:$PG_PORT/$1"
}

pg_sql() {
    PGOPTIONS="--client-min-messages=warning" psql -h "$PG_DIR" -p "$PG_PORT" -U postgres -X -q -A -t -d postgres -c "$1"
}

# A new empty database $1 (an older one of that name dropped).
pg_fresh() {
    pg_sql "DROP DATABASE IF EXISTS \"$1\"" && pg_sql "CREATE DATABASE \"$1\""
}

# Whether database $1 exists.
pg_has() {
    [ "$(pg_sql "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]
}

# The database's size in MB.
pg_size() {
    pg_sql "SELECT round(pg_database_size('$1') / 1e6, 1)"
}
