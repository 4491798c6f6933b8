#!/usr/bin/env bash
# Issue 3's sweep benchmark: one port (80) across a /16 that answers on every address,
# Portolan vs zmap at -r 100000 (and masscan at --rate 100000 when installed), in one run.
# Prints each tool's wall time, hosts found (of 65536) and the time ratio.
#
# The network is bench/answering-net.sh's: the scanner (198.18.2.1/30, one route:
# 198.19.0.0/16 via the sink) and the sink (198.18.2.2/30) answering for every address of
# the /16, with a listener on port 80. Torn down on exit.
#
# Env: PORTOLAN_BIN (default target/release/portolan), SWEEP_RUNS (default 3),
#      SWEEP_RATE (default 100000), SWEEP_COOLDOWN (zmap/masscan wait, default 2 s).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PORTOLAN_BIN:-$ROOT/target/release/portolan}"
RUNS="${SWEEP_RUNS:-3}"
RATE="${SWEEP_RATE:-100000}"
COOL="${SWEEP_COOLDOWN:-2}"
P=psweep
OUT="${BENCH_OUT:-/tmp/portolan-sweep}"
TARGET=198.19.0.0/16
log() { printf '[sweep] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)
command -v zmap >/dev/null || { log "zmap missing (apt-get install zmap)"; exit 1; }

. "$ROOT/bench/answering-net.sh"
trap 'answering_net_down "$P"' EXIT
answering_net_up "$P" 198.18.2.1/30 198.18.2.2/30
# Resolve the sink's MAC in the scanner's neighbour table (zmap and masscan send frames).
ip netns exec "$P-scan" ping -c1 -W1 198.18.2.2 >/dev/null

rm -rf "$OUT"; mkdir -p "$OUT"
timed() {  # tool cmd... -> prints seconds
    local tool="$1" t0 t1; shift
    t0="$(date +%s.%N)"
    ip netns exec "$P-scan" "$@" >>"$OUT/$tool.log" 2>&1 || true
    t1="$(date +%s.%N)"
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}'
}
declare -A T H
for i in $(seq 1 "$RUNS"); do
    t="$(timed portolan "$BIN" -sS -Pn -n -p80 --max-rate "$RATE" -oG "$OUT/portolan-$i.gnmap" "$TARGET")"
    h="$(grep -c '80/open/' "$OUT/portolan-$i.gnmap" || true)"
    T[portolan]+="$t "; H[portolan]+="$h "
    log "portolan run $i: ${t}s, $h hosts"
    t="$(timed zmap zmap -q -p 80 -r "$RATE" -i s0 -G "$SINK_MAC" -S 198.18.2.1 -b /dev/null \
        --cooldown-time "$COOL" -o "$OUT/zmap-$i.txt" "$TARGET")"
    h="$(sort -u "$OUT/zmap-$i.txt" | grep -c . || true)"
    T[zmap]+="$t "; H[zmap]+="$h "
    log "zmap run $i: ${t}s, $h hosts"
    ip netns list | grep -q "^$P-scan" || { log "scanner namespace vanished"; exit 1; }
    if command -v masscan >/dev/null; then
        # masscan sometimes never leaves its wait; the timeout bounds it.
        t="$(timed masscan timeout $((COOL + 20)) masscan -p80 --rate "$RATE" --wait "$COOL" --adapter s0 --adapter-ip 198.18.2.1 \
            --adapter-port 61000 --router-mac "$SINK_MAC" -oL "$OUT/masscan-$i.txt" "$TARGET")"
        h="$(grep -c '^open' "$OUT/masscan-$i.txt" || true)"
        T[masscan]+="$t "; H[masscan]+="$h "
        log "masscan run $i: ${t}s, $h hosts"
    fi
    ip netns list | grep -q "^$P-scan" || { log "scanner namespace vanished after masscan"; exit 1; }
done
python3 - "$RATE" "${T[portolan]}" "${H[portolan]}" "${T[zmap]}" "${H[zmap]}" "${T[masscan]:-}" "${H[masscan]:-}" <<'PY'
import statistics, sys
rate = sys.argv[1]
def nums(s): return [float(x) for x in s.split()]
rows = [("portolan", sys.argv[2], sys.argv[3]), ("zmap", sys.argv[4], sys.argv[5]), ("masscan", sys.argv[6], sys.argv[7])]
print()
print("one port across 198.19.0.0/16 (65536 hosts, all answering), rate %s/s, %d runs" % (rate, len(nums(sys.argv[2]))))
print("%-9s %9s %9s %10s   %s" % ("tool", "median_s", "hosts", "found_%", "runs (s / hosts)"))
med = {}
for name, t, h in rows:
    if not t.strip():
        continue
    ts, hs = nums(t), nums(h)
    med[name] = statistics.median(ts)
    mh = min(hs)
    print("%-9s %9.3f %9d %9.3f%%   %s" % (name, med[name], mh, 100 * mh / 65536,
          " ".join("%.2f/%d" % (a, b) for a, b in zip(ts, hs))))
if "zmap" in med:
    print("ratio portolan/zmap (time): %.2f" % (med["portolan"] / med["zmap"]))
PY
