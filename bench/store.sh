#!/usr/bin/env bash
# The history store at a year's size: 365 daily scans of a /20 (4096 hosts, ~5 open ports
# each, a few changes a day, ~7.5M port observations), then the time of the queries a user
# runs on it, and of importing a large Nmap XML file (ports per second).
#
#   bench/store.sh            (BENCH_OUT, default /tmp/portolan-store-bench; DAYS, default 365;
#                              XML_HOSTS x XML_PORTS, default 20000 x 50 = 1M ports)
#
# Goals: each query under 1 s; import at 50,000 ports/s or more.
#
# As root with PostgreSQL installed (BENCH_PG=0 leaves it out), the same store is filled
# into a PostgreSQL database too (bench/pg.sh starts a cluster of its own) and every figure
# is printed for both, with PostgreSQL's time over SQLite's.
# `portolan diff --db --last` is timed whole (exit 1 means "different", not failure), and
# the store's last-two query it rests on alone, by the store_bench example.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${BENCH_OUT:-/tmp/portolan-store-bench}"
DAYS="${DAYS:-365}"
XML_HOSTS="${XML_HOSTS:-20000}"
XML_PORTS="${XML_PORTS:-50}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

cd "$ROOT"
cargo build --release -q -p portolan --bin portolan
cargo build --release -q -p portolan-store --example store_bench
BIN="$TARGET/release/portolan"
GEN="$TARGET/release/examples/store_bench"

mkdir -p "$OUT"
DB="$OUT/year.db"
rm -f "$DB" "$DB-wal" "$DB-shm"
# shellcheck source=bench/pg.sh
. "$ROOT/bench/pg.sh"
PGDB=""
if pg_available; then
    trap pg_stop EXIT
    pg_start
    pg_fresh year
    PGDB="$(pg_url year)"
fi

# Seconds (3 decimals) that a command takes, its output discarded.
timed() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null || true
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}

echo "== fill: $DAYS daily scans of 10.20.0.0/20"
"$GEN" fill "$DB" "$DAYS"
ls -l "$DB" | awk '{printf "store size: %.1f MB\n", $5 / 1e6}'
"$BIN" history --db "$DB" | tail -n 2
if [ -n "$PGDB" ]; then
    echo "-- the same into PostgreSQL"
    "$GEN" fill "$PGDB" "$DAYS"
    echo "PostgreSQL database size: $(pg_size year) MB"
fi

# The best of 3 runs of `portolan $1 --db $2`.
best_of_3() {
    local best="" t
    for _ in 1 2 3; do
        # shellcheck disable=SC2086
        t=$(timed "$BIN" $1 --db "$2")
        if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN{exit !(a < b)}'; then best=$t; fi
    done
    echo "$best"
}

echo "== queries (best of 3), seconds: SQLite, PostgreSQL, PostgreSQL / SQLite"
for q in "changes --since 30d" "changes --since 30d --target 10.20.3.0/24" "hosts" \
         "services --port 22" "services --product nginx" "history" "diff --last"; do
    s=$(best_of_3 "$q" "$DB")
    if [ -n "$PGDB" ]; then
        p=$(best_of_3 "$q" "$PGDB")
        printf '%-45s %s s  %s s  x%s\n' "portolan $q" "$s" "$p" \
            "$(awk -v a="$p" -v b="$s" 'BEGIN{printf "%.2f", a / (b > 0 ? b : 0.001)}')"
    else
        printf '%-45s %s s\n' "portolan $q" "$s"
    fi
done
printf '%-45s ' "store query behind diff --last, alone"
"$GEN" last-two "$DB"
if [ -n "$PGDB" ]; then
    printf '%-45s ' "  the same on PostgreSQL"
    "$GEN" last-two "$PGDB"
fi
echo "changes --since 30d: $("$BIN" changes --since 30d --db "$DB" --json | grep -c '"kind"') changes"
if [ -n "$PGDB" ]; then
    echo "  on PostgreSQL: $("$BIN" changes --since 30d --db "$PGDB" --json | grep -c '"kind"') changes"
fi

echo "== import of a large Nmap XML"
XML="$OUT/large.xml"
"$GEN" xml "$XML" "$XML_HOSTS" "$XML_PORTS"
ls -l "$XML" | awk '{printf "file size: %.1f MB\n", $5 / 1e6}'
IDB="$OUT/import.db"
rm -f "$IDB" "$IDB-wal" "$IDB-shm"
t=$(timed "$BIN" import --db "$IDB" "$XML")
ports=$((XML_HOSTS * XML_PORTS))
awk -v t="$t" -v p="$ports" 'BEGIN{printf "import: %d ports in %.2f s = %.0f ports/s (goal 50000)\n", p, t, p / t}'
if [ -n "$PGDB" ]; then
    pg_fresh import
    t=$(timed "$BIN" import --db "$(pg_url import)" "$XML")
    awk -v t="$t" -v p="$ports" 'BEGIN{printf "import into PostgreSQL: %d ports in %.2f s = %.0f ports/s\n", p, t, p / t}'
fi
