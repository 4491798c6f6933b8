#!/usr/bin/env bash
# The web view's pages on the year-of-daily-/20 store (the one bench/store.sh builds: 365
# daily scans of 10.20.0.0/20, 4096 hosts): each page's time through `portolan serve` on
# loopback: the first request, then the median of 3 more. The server's pooled connections
# share one change list, of the widest window asked, until a scan lands; the server computes
# the whole history in the background from its start (and again after a scan lands), and a
# long window asked meanwhile waits for it.
#
#   bench/serve.sh          (BENCH_OUT, default /tmp/portolan-store-bench; DAYS, default 365;
#                            PORT, default 18080; an existing $BENCH_OUT/year.db is reused;
#                            PORTOLAN_BIN: time that build of portolan, e.g. a saved copy
#                            of an earlier one, instead of building this tree's)
#
# BENCH_PAGES=0 leaves the pages out (only the first request below is timed).
#
# Goal: every page under 300 ms. The year's change feed is also timed as the very first
# request of a just-started server (3 servers started in turn, median), the case no kept
# list helps.
#
# As root with PostgreSQL installed (BENCH_PG=0 leaves it out), the same pages are timed on
# the PostgreSQL copy of the store (bench/pg.sh; filled here when store.sh has not), served
# on PORT + 1, beside SQLite's, with the ratio of the medians.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${BENCH_OUT:-/tmp/portolan-store-bench}"
DAYS="${DAYS:-365}"
PORT="${PORT:-18080}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

cd "$ROOT"
if [ -n "${PORTOLAN_BIN:-}" ]; then
    BIN="$PORTOLAN_BIN"
else
    cargo build --release -q -p portolan --bin portolan
    BIN="$TARGET/release/portolan"
fi
GEN="$TARGET/release/examples/store_bench"

mkdir -p "$OUT"
DB="$OUT/year.db"
if [ ! -s "$DB" ]; then
    cargo build --release -q -p portolan-store --example store_bench
    echo "== fill: $DAYS daily scans of 10.20.0.0/20"
    "$GEN" fill "$DB" "$DAYS"
fi
"$BIN" history --db "$DB" | tail -n 1

# shellcheck source=bench/pg.sh
. "$ROOT/bench/pg.sh"
PGDB=""
SERVERS=()
trap 'kill "${SERVERS[@]}" 2>/dev/null || true; pg_stop' EXIT
if pg_available; then
    pg_start
    if ! pg_has year; then
        pg_fresh year
        echo "== fill PostgreSQL: $DAYS daily scans of 10.20.0.0/20"
        "$GEN" fill "$(pg_url year)" "$DAYS"
    fi
    PGDB="$(pg_url year)"
fi

# Serves store $1 on port $2 and waits until it answers.
serve() {
    "$BIN" serve --db "$1" --listen "127.0.0.1:$2" 2>>"$OUT/serve.log" &
    SERVERS+=($!)
    for _ in $(seq 50); do
        curl -sf -o /dev/null "http://127.0.0.1:$2/static/app.js" && break
        sleep 0.2
    done
}
serve "$DB" "$PORT"
[ -n "$PGDB" ] && serve "$PGDB" "$((PORT + 1))"

# "first median-of-3" seconds of page $2 on port $1.
page_times() {
    local url="http://127.0.0.1:$1$2" first times=()
    first=$(curl -sf -o /dev/null -w '%{time_total}' "$url") || { echo "failed"; return; }
    for _ in 1 2 3; do
        times+=("$(curl -sf -o /dev/null -w '%{time_total}' "$url")")
    done
    echo "$first $(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)"
}

last=$("$BIN" history --db "$DB" --json | grep -o '"id": *[0-9]*' | tail -n 1 | grep -o '[0-9]*$')
prev=$((last - 1))
if [ "${BENCH_PAGES:-1}" = 0 ]; then
    :
elif [ -n "$PGDB" ]; then
    echo "== pages, seconds: first request, median of the next 3 (goal < 0.300): SQLite, then PostgreSQL, PostgreSQL / SQLite (medians)"
else
    echo "== pages, seconds: first request, median of the next 3 (goal < 0.300)"
fi
[ "${BENCH_PAGES:-1}" = 0 ] && PAGES=() || PAGES=("/" "/hosts" "/hosts?q=port:22%20product:openssh" "/hosts?q=net:10.20.3.0/24%20changed:7d" \
            "/hosts?sort=ports&desc=1&page=20" "/api/hosts?page=all" "/api/hosts.csv" \
            "/host/10.20.3.7" "/api/host/10.20.3.7" "/changes" "/changes?since=30d" \
            "/changes?since=365d&q=port:22" "/scans" "/api/scans?page=all" \
            "/diff?a=$prev&b=$last" "/api/overview")
for page in "${PAGES[@]}"; do
    s=$(page_times "$PORT" "$page")
    if [ -n "$PGDB" ]; then
        # The same scans have the same ids in both stores (both filled alike from empty).
        p=$(page_times "$((PORT + 1))" "$page")
        ratio=$(awk -v a="${p#* }" -v b="${s#* }" 'BEGIN{if (b > 0) printf "x%.2f", a / b}')
        printf '%-45s %s  %s  %s\n' "$page" "$s" "$p" "$ratio"
    else
        printf '%-45s %s\n' "$page" "$s"
    fi
done

# The year's change feed as a fresh server's first request on store $1 (served on port
# $2): COLD, the seconds, median of 3 servers started in turn.
cold_feed() {
    local times=() pid
    for _ in 1 2 3; do
        serve "$1" "$2"
        pid="${SERVERS[-1]}"
        times+=("$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$2/changes?since=365d" || echo failed)")
        kill "$pid" && wait "$pid" 2>/dev/null || true
        unset 'SERVERS[-1]'
    done
    COLD=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
}
kill "${SERVERS[@]}" && wait "${SERVERS[@]}" 2>/dev/null || true
SERVERS=()
echo "== /changes?since=365d as a just-started server's first request, seconds, median of 3 (goal < 0.300)"
cold_feed "$DB" "$PORT"
printf '%-45s %s\n' "SQLite" "$COLD"
if [ -n "$PGDB" ]; then
    cold_feed "$PGDB" "$((PORT + 1))"
    printf '%-45s %s\n' "PostgreSQL" "$COLD"
fi
