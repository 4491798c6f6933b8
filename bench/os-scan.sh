#!/usr/bin/env bash
# Issue 12's benchmark: portolan -O and nmap -O on the same lab hosts, side by side in one
# run. Three parts:
#   1. -O on each OS host alone (a default Linux namespace and the lab's retuned stacks:
#      TTL 128 without timestamps, SACK, window scaling nor ECN; TTL 255 without SACK nor
#      window scaling): each tool's wall time, the ratio, the top match and accuracy of
#      each, and whether they agree;
#   2. -O on the lab /24 (every lab host up at once);
#   3. -A on one host.
# Goal (issue 12): the same top match as Nmap on every host, at most a third of Nmap's time
# for -O on one host and on the /24.
#
# Env: PORTOLAN_BIN (default target/release/portolan), BENCH_OUT (default
#      /tmp/portolan-bench-os), OS_HOSTS (default: svc oswin osttl, by lab name),
#      OS_A_HOST (default 198.18.0.10).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB="$ROOT/lab/lab.sh"
BIN="${PORTOLAN_BIN:-$ROOT/target/release/portolan}"
OUT="${BENCH_OUT:-/tmp/portolan-bench-os}"
export PLAB_PREFIX="${PLAB_PREFIX:-pbench}"
export PLAB_DIR="${PLAB_DIR:-/tmp/portolan-bench-lab}"
log() { printf '[bench] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)
cleanup() { "$LAB" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$LAB" up >/dev/null
rm -rf "$OUT"; mkdir -p "$OUT"

# The lab's IP of each host named, from its ground truth.
ip_of() {
    python3 -c 'import json,sys; print(next(h["ip"] for h in json.load(open(sys.argv[1]))["hosts"] if h["name"] == sys.argv[2]))' \
        "$PLAB_DIR/ground-truth.json" "$1"
}
# An open port on every lab host (22, 53, 80, 135, 5432, 8000 among them) and closed ones,
# so both tools get ideal conditions.
PORTS="1,22,53,80,135,445,3389,5432,8000"

# run TAG TOOL ARGS...: one timed run in the scanner namespace, XML in $OUT/TAG-TOOL.xml.
run() {
    local tag="$1" tool="$2" cmd t0 t1; shift 2
    cmd=nmap; [ "$tool" = portolan ] && cmd="$BIN"
    t0="$(date +%s.%N)"
    ip netns exec "$PLAB_PREFIX-scan" "$cmd" "$@" -oX "$OUT/$tag-$tool.xml" \
        >"$OUT/$tag-$tool.log" 2>&1 || log "$tool $tag failed (see $OUT/$tag-$tool.log)"
    t1="$(date +%s.%N)"
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", b-a}' >"$OUT/$tag-$tool.time"
    log "$tool $tag: $(cat "$OUT/$tag-$tool.time")s"
}

TAGS=()
for name in ${OS_HOSTS:-svc oswin osttl}; do
    ip="$(ip_of "$name")"
    for tool in nmap portolan; do run "host-$name" "$tool" -O -n -Pn -p "$PORTS" "$ip"; done
    TAGS+=("host-$name")
done
for tool in nmap portolan; do run subnet "$tool" -O -n -p "$PORTS" 198.18.0.0/24; done
TAGS+=(subnet)
for tool in nmap portolan; do run aggressive "$tool" -A -n -Pn -p "$PORTS" "${OS_A_HOST:-198.18.0.10}"; done
TAGS+=(aggressive)

python3 - "$OUT" "${TAGS[@]}" <<'PY'
import os, sys
import xml.etree.ElementTree as ET
out, tags = sys.argv[1], sys.argv[2:]
def wall(tag, tool):
    return float(open(os.path.join(out, "%s-%s.time" % (tag, tool))).read())
def tops(tag, tool):
    """Per host: (best accuracy, the names at it), or None without a match."""
    res = {}
    try:
        root = ET.parse(os.path.join(out, "%s-%s.xml" % (tag, tool))).getroot()
    except (OSError, ET.ParseError):
        return res
    for h in root.iter("host"):
        ip = next((a.get("addr") for a in h.findall("address") if a.get("addrtype") == "ipv4"), "?")
        ms = [(int(m.get("accuracy", "0")), m.get("name", "")) for m in h.iter("osmatch")]
        if h.find("os") is not None or ms:
            best = max((a for a, _ in ms), default=None)
            res[ip] = (best, sorted(n for a, n in ms if a == best)) if ms else None
    return res
print()
print("%-11s %9s %9s %6s  %s" % ("scan", "nmap_s", "ours_s", "ratio", "hosts: top match (accuracy) nmap | portolan | agree"))
for tag in tags:
    n, p = wall(tag, "nmap"), wall(tag, "portolan")
    nt, pt = tops(tag, "nmap"), tops(tag, "portolan")
    print("%-11s %9.3f %9.3f %6.2f" % (tag, n, p, p / n if n else float("nan")))
    for ip in sorted(set(nt) | set(pt), key=lambda s: tuple(int(x) for x in s.split(".")) if s.count(".") == 3 else (999,)):
        a, b = nt.get(ip), pt.get(ip)
        show = lambda t: "%s (%s%%)" % (t[1][0], t[0]) if t else "no match"
        agree = (a is None and b is None) or bool(a and b and a[0] == b[0] and set(b[1]) & set(a[1]))
        print("    %-15s %s | %s | %s" % (ip, show(a), show(b), "yes" if agree else "NO"))
single = [t for t in tags if t.startswith("host-")]
worst = max(wall(t, "portolan") / wall(t, "nmap") for t in single)
print("goal: ratio <= 0.33 on one host (worst %.2f) and on the /24 (%.2f)" % (worst, wall("subnet", "portolan") / wall("subnet", "nmap")))
PY
