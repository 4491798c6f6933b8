#!/usr/bin/env bash
# Issue 14's shard benchmark: one scan run as four concurrent `--shard K/4` processes, all
# recording into one store, against the same scan unsharded into the same store.
# Interleaved runs; median wall times (the sharded one from the start of the first part to
# the end of the last), the ratio, and whether each union equals the unsharded result
# (`portolan changes` between the complete scans of these targets finds nothing).
#
#   bench/shards.sh [SCAN_ARGS...]     default: -sS -T4 -p- -n on four lab hosts
#
# Env: PORTOLAN_BIN (default target/release/portolan, built when missing), BENCH_RUNS
#      (default 3), BENCH_OUT (default /tmp/portolan-bench-shards), BENCH_BACKEND (sqlite:
#      a new SQLite file in BENCH_OUT; postgres, the default: a new database of the lab's
#      own PostgreSQL (the db host's server, fsync off), reached by its unix socket, which
#      the scanner's namespace shares), BENCH_DB (a store of your own instead: a path, or
#      the postgres:// URL of an EMPTY database), PLAB_PREFIX (default pbench), PLAB_DIR.
# The lab is brought up in its own namespaces and torn down on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB="$ROOT/lab/lab.sh"
DEFAULT_BIN="$ROOT/target/release/portolan"
BIN="${PORTOLAN_BIN:-$DEFAULT_BIN}"
RUNS="${BENCH_RUNS:-3}"
OUT="${BENCH_OUT:-/tmp/portolan-bench-shards}"
export PLAB_PREFIX="${PLAB_PREFIX:-pbench}"
export PLAB_DIR="${PLAB_DIR:-/tmp/portolan-bench-lab}"
SCAN_NS="$PLAB_PREFIX-scan"
TARGETS=(198.18.0.10 198.18.0.11 198.18.0.12 198.18.0.15)
if [ "$#" -gt 0 ]; then SCAN_ARGS=("$@"); else SCAN_ARGS=(-sS -T4 -p- -n "${TARGETS[@]}"); fi
N=4

log() { printf '[bench] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root (network namespaces)"; exit 1; }

case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
if [ ! -x "$BIN" ] && [ "$BIN" = "$DEFAULT_BIN" ]; then
    log "building portolan (cargo build --release -p portolan)"
    (cd "$ROOT" && cargo build --release -p portolan)
fi
[ -x "$BIN" ] || { log "no portolan binary at $BIN"; exit 1; }

cleanup() { "$LAB" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
"$LAB" up >/dev/null

rm -rf "$OUT"; mkdir -p "$OUT"
BACKEND="${BENCH_BACKEND:-postgres}"
if [ -n "${BENCH_DB:-}" ]; then
    DB="$BENCH_DB"
elif [ "$BACKEND" = postgres ]; then
    PG_BIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    SOCK="$PLAB_DIR/run/pg"
    "$PG_BIN/psql" -h "$SOCK" -U postgres -X -q -c "DROP DATABASE IF EXISTS portolan_bench" \
        -c "CREATE DATABASE portolan_bench" postgres
    DB="postgresql://postgres@$(printf '%s' "$SOCK" | sed 's|/|%2F|g'):5432/portolan_bench"
else
    DB="$OUT/shards.db"
fi
log "store: $DB"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f\n", b-a}'; }
in_ns() { ip netns exec "$SCAN_NS" "$@"; }

# sharded RUN: N parts at once, one identity per run; appends the wall time.
sharded() {
    local i="$1" t0 t1 k pids=() rc=0
    t0="$(now)"
    for k in $(seq 1 "$N"); do
        in_ns "$BIN" "${SCAN_ARGS[@]}" --shard "$k/$N" --seed 4242 --scan-id "bench-$i" \
            --db "$DB" -oN "$OUT/part$k-$i.txt" >/dev/null 2>"$OUT/part$k-$i.log" &
        pids+=("$!")
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    t1="$(now)"
    if [ "$rc" -eq 0 ]; then
        elapsed "$t0" "$t1" >> "$OUT/sharded.times"
        log "sharded run $i: $(elapsed "$t0" "$t1")s"
    else
        log "sharded run $i: a part FAILED (see $OUT/part*-$i.log)"
    fi
}

unsharded() {
    local i="$1" t0 t1
    t0="$(now)"
    if in_ns "$BIN" "${SCAN_ARGS[@]}" --seed 4242 --db "$DB" -oN "$OUT/whole-$i.txt" \
        >/dev/null 2>"$OUT/whole-$i.log"; then
        t1="$(now)"
        elapsed "$t0" "$t1" >> "$OUT/unsharded.times"
        log "unsharded run $i: $(elapsed "$t0" "$t1")s"
    else
        log "unsharded run $i: FAILED (see $OUT/whole-$i.log)"
    fi
}

for i in $(seq 1 "$RUNS"); do
    if [ $((i % 2)) -eq 1 ]; then sharded "$i"; unsharded "$i"; else unsharded "$i"; sharded "$i"; fi
done

"$BIN" history --db "$DB" --json > "$OUT/history.json"
"$BIN" changes --db "$DB" --since 1d --json > "$OUT/changes.json" 2>"$OUT/changes.err"

python3 - "$OUT" "$RUNS" "$N" "$DB" "${SCAN_ARGS[*]}" <<'PY'
import json, os, statistics, sys
out, runs, n, db, args = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def times(name):
    try:
        return [float(x) for x in open(os.path.join(out, name + ".times")).read().split()]
    except OSError:
        return []
s, u = times("sharded"), times("unsharded")
hist = json.load(open(os.path.join(out, "history.json")))
unions = [h for h in hist if h.get("complete") and h.get("shard")]
whole = [h for h in hist if h.get("complete") and not h.get("shard")]
changes = json.load(open(os.path.join(out, "changes.json")))
print(f"shards benchmark: {args}")
print(f"  store: {'PostgreSQL' if '://' in db else 'SQLite'}; {n} concurrent parts; {runs} runs each")
if s:
    print(f"  sharded   ({n} parts at once): median {statistics.median(s):.3f}s  runs {s}")
if u:
    print(f"  unsharded (one process):     median {statistics.median(u):.3f}s  runs {u}")
if s and u:
    print(f"  ratio sharded/unsharded: {statistics.median(s) / statistics.median(u):.2f}")
print(f"  complete scans recorded: {len(unions)} unions, {len(whole)} unsharded")
same = len(unions) == len(s) and len(whole) == len(u) and not changes
print(f"  unions equal the unsharded results: {'yes' if same else 'NO'}"
      f" ({len(changes)} changes between the {len(unions) + len(whole)} complete scans)")
PY
