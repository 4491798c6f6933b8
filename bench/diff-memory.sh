#!/usr/bin/env bash
# Issue 10's diff memory check: peak RSS (and wall time) of `portolan diff` on two large
# Nmap XML files, beside their size. The goal: memory bounded by a host and the sorting
# buffer, not by the files (diff used to hold both runs: 4-13 times the files).
#
# The files come from store_bench's generator: DIFF_HOSTS hosts of DIFF_PORTS open ports
# (default 20,000 x 55, ~200 MB each), the second the same network scanned a day later with
# changes (hosts gone and new, ports closed, versions changed). Each binary's output is
# checked to be the same as the first's, byte for byte.
#
#   bench/diff-memory.sh
#
# Env: PORTOLAN_BIN (default $CARGO_TARGET_DIR/release/portolan, built when missing);
#      BEFORE_BIN (another build to measure beside it, e.g. an older commit's);
#      DIFF_HOSTS, DIFF_PORTS; DIFF_FORMATS (default "text xml json");
#      BENCH_OUT (default /tmp/portolan-diff-bench; the files are kept for reruns).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${PORTOLAN_BIN:-$TARGET/release/portolan}"
HOSTS="${DIFF_HOSTS:-20000}"
PORTS="${DIFF_PORTS:-55}"
FORMATS="${DIFF_FORMATS:-text xml json}"
OUT="${BENCH_OUT:-/tmp/portolan-diff-bench}"
log() { printf '[diff-memory] %s\n' "$*" >&2; }
[ -x /usr/bin/time ] || { log "/usr/bin/time missing (apt-get install time)"; exit 1; }

cd "$ROOT"
[ -x "$BIN" ] || cargo build --release -q -p portolan --bin portolan
cargo build --release -q -p portolan-store --example store_bench
GEN="$TARGET/release/examples/store_bench"

mkdir -p "$OUT"
A="$OUT/before-$HOSTS-$PORTS.xml"
B="$OUT/after-$HOSTS-$PORTS.xml"
[ -s "$A" ] || "$GEN" xml "$A" "$HOSTS" "$PORTS" >&2
[ -s "$B" ] || "$GEN" xml "$B" "$HOSTS" "$PORTS" later >&2
size() { awk -v b="$(stat -c %s "$1")" 'BEGIN{printf "%.1f MB", b/1e6}'; }
printf '\nportolan diff of %s (%s) and %s (%s)\n' \
    "$(basename "$A")" "$(size "$A")" "$(basename "$B")" "$(size "$B")"

bins=("after:$BIN")
[ -n "${BEFORE_BIN:-}" ] && bins+=("before:$BEFORE_BIN")
printf '%-7s %-5s %12s %10s %10s %s\n' build form "peak RSS" time "out lines" "same output"
for fmt in $FORMATS; do
    first=""
    for entry in "${bins[@]}"; do
        name="${entry%%:*}"; bin="${entry#*:}"
        out="$OUT/diff-$name.$fmt"
        # Exit 1 means "the scans differ"; 2 is an error.
        rc=0
        /usr/bin/time -f "%M %e" -o "$OUT/time" "$bin" diff "--$fmt" "$A" "$B" >"$out" 2>"$OUT/err" || rc=$?
        [ "$rc" -le 1 ] || { log "$name --$fmt failed ($rc): $(cat "$OUT/err")"; continue; }
        read -r kb s < <(tail -n 1 "$OUT/time")
        same="-"
        if [ -z "$first" ]; then first="$out"; elif cmp -s "$first" "$out"; then same=yes; else same=NO; fi
        printf '%-7s %-5s %9.1f MB %8.2f s %10d %s\n' "$name" "$fmt" \
            "$(awk -v kb="$kb" 'BEGIN{print kb/1024}')" "$s" "$(wc -l < "$out")" "$same"
    done
done
rm -f "$OUT"/diff-* "$OUT/time" "$OUT/err"
