#!/usr/bin/env bash
# Portolan vs Nmap on the same command in the lab: interleaved runs, median wall times,
# the ratio, and whether both found the same open and filtered ports (and the ground truth).
#
#   bench/compare.sh LABEL SCAN_ARGS...      e.g. bench/compare.sh "SYN scan" -sS -T4 -p- -n -Pn 198.18.0.10
#
# PORTOLAN_BIN defaults to target/release/portolan (built with `cargo build --release`
# when missing). Brings the lab up in its own namespaces (PLAB_PREFIX default "pbench",
# so it does not clobber a developer's "plab" lab) and always tears it down on exit.
#
# Env: PORTOLAN_BIN, BENCH_RUNS (default 3), BENCH_OUT (default /tmp/portolan-bench),
#      BENCH_PROTO (tcp, the default: open and filtered ports compared; udp: open ports
#      only, since which silent ports a target's ICMP rate limit lets either tool call
#      closed differs from run to run),
#      BENCH_TIMEOUT per scan in seconds (default 900), PLAB_PREFIX, PLAB_DIR,
#      BENCH_LAB (the lab script, default lab/lab.sh; it takes up and down, and names its
#      scanner namespace "$PLAB_PREFIX-scan"), BENCH_BEFORE_RUN (a shell command run in the
#      scanner namespace before each scan, untimed: state one run leaves for the next).
# Exits 0 even when Portolan fails or produces no output (that is reported).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB="${BENCH_LAB:-$ROOT/lab/lab.sh}"
DEFAULT_BIN="$ROOT/target/release/portolan"
BIN="${PORTOLAN_BIN:-$DEFAULT_BIN}"
LABEL="${1:?usage: compare.sh LABEL SCAN_ARGS...}"; shift
SCAN_ARGS=("$@")
RUNS="${BENCH_RUNS:-3}"
OUT="${BENCH_OUT:-/tmp/portolan-bench}"
TMO="${BENCH_TIMEOUT:-900}"
PY="${PLAB_PYTHON:-python3}"
export PLAB_PREFIX="${PLAB_PREFIX:-pbench}"
export PLAB_DIR="${PLAB_DIR:-/tmp/portolan-bench-lab}"
SCAN_NS="$PLAB_PREFIX-scan"


log() { printf '[bench] %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "must run as root (network namespaces)"; exit 1; }
command -v nmap >/dev/null || { log "nmap missing: run scripts/install-lab-deps.sh"; exit 1; }

# ---- portolan binary
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
if [ ! -x "$BIN" ] && [ "$BIN" = "$DEFAULT_BIN" ]; then
    log "building portolan (cargo build --release)"
    (cd "$ROOT" && cargo build --release) || log "cargo build failed"
fi
HAVE_PORTOLAN=1
if [ ! -x "$BIN" ]; then
    log "portolan binary not found at $BIN; benchmarking nmap only"
    HAVE_PORTOLAN=0
fi

# ---- lab
cleanup() { "$LAB" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
"$LAB" up >/dev/null
GT="$PLAB_DIR/ground-truth.json"

rm -rf "$OUT"; mkdir -p "$OUT"

# run_scan TOOL RUN CMD... -> appends the wall time to $OUT/TOOL.times on success
run_scan() {
    local tool="$1" i="$2"; shift 2
    local xml="$OUT/$tool-$i.xml" t0 t1 rc=0
    if [ -n "${BENCH_BEFORE_RUN:-}" ]; then
        ip netns exec "$SCAN_NS" sh -c "$BENCH_BEFORE_RUN" || log "BENCH_BEFORE_RUN failed"
    fi
    t0="$(date +%s.%N)"
    ip netns exec "$SCAN_NS" timeout "$TMO" "$@" -oX "$xml" >"$OUT/$tool-$i.log" 2>&1 || rc=$?
    t1="$(date +%s.%N)"
    local dt
    dt="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')"
    if [ "$rc" -eq 0 ] && [ -s "$xml" ]; then
        echo "$dt" >> "$OUT/$tool.times"
        log "$tool run $i: ${dt}s"
    else
        log "$tool run $i: FAILED (rc=$rc, ${dt}s, xml $( [ -s "$xml" ] && echo present || echo missing )); see $OUT/$tool-$i.log"
    fi
}

for i in $(seq 1 "$RUNS"); do
    # alternate the order so neither tool always runs on a "warm" lab
    if [ $((i % 2)) -eq 1 ]; then
        run_scan nmap "$i" nmap "${SCAN_ARGS[@]}"
        [ "$HAVE_PORTOLAN" = 1 ] && run_scan portolan "$i" "$BIN" "${SCAN_ARGS[@]}"
    else
        [ "$HAVE_PORTOLAN" = 1 ] && run_scan portolan "$i" "$BIN" "${SCAN_ARGS[@]}"
        run_scan nmap "$i" nmap "${SCAN_ARGS[@]}"
    fi
done

# ---- report
"$PY" - "$OUT" "$RUNS" "$HAVE_PORTOLAN" "$GT" "$BIN" "$LABEL" "${SCAN_ARGS[*]}" <<'EOF'
import json, os, statistics, sys
import xml.etree.ElementTree as ET

out, runs, have_portolan, gt_path, binpath = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
label, args = sys.argv[6], sys.argv[7]
targets = {a for a in args.split() if a.startswith("198.18.")}

def times(tool):
    try:
        with open(os.path.join(out, tool + ".times")) as f:
            return [float(x) for x in f.read().split()]
    except OSError:
        return []

PROTO = os.environ.get("BENCH_PROTO", "tcp")

def open_ports(path):
    """{ip: (open ports, filtered ports)} of PROTO, or None when unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    res = {}
    for host in root.iter("host"):
        ip = None
        for a in host.findall("address"):
            if a.get("addrtype") == "ipv4":
                ip = a.get("addr")
        if ip is None:
            continue
        ports = res.setdefault(ip, (set(), set()))
        for p in host.iter("port"):
            st = p.find("state")
            if p.get("protocol") != PROTO or st is None:
                continue
            if st.get("state") == "open":
                ports[0].add(int(p.get("portid")))
            elif st.get("state") == "filtered" and PROTO == "tcp":
                ports[1].add(int(p.get("portid")))
    return {ip: (tuple(sorted(o)), tuple(sorted(f))) for ip, (o, f) in res.items()}

def fmt(d):
    if d is None:
        return "  (no parseable XML)"
    if not d:
        return "  (no hosts)"
    return "\n".join("  %s: open %s; filtered %s" % (ip, ",".join(map(str, o)) or "-", ",".join(map(str, f)) or "-")
                     for ip, (o, f) in sorted(d.items()))

nt, pt = times("nmap"), times("portolan")
nmed = statistics.median(nt) if nt else None
pmed = statistics.median(pt) if pt else None

print()
print("%s: %s  (%d runs each, median wall time)" % (label, args, runs))
print("%-10s %10s %8s   %s" % ("tool", "median_s", "ok_runs", "all runs (s)"))
print("%-10s %10s %8s   %s" % ("portolan", "%.3f" % pmed if pmed is not None else "n/a",
                              "%d/%d" % (len(pt), runs) if have_portolan else "-",
                              " ".join("%.3f" % t for t in pt)))
print("%-10s %10s %8s   %s" % ("nmap", "%.3f" % nmed if nmed is not None else "n/a",
                              "%d/%d" % (len(nt), runs), " ".join("%.3f" % t for t in nt)))
if pmed is not None and nmed:
    print("ratio portolan/nmap: %.2f" % (pmed / nmed))
else:
    print("ratio portolan/nmap: n/a")

nmap_sets = [open_ports(os.path.join(out, "nmap-%d.xml" % i)) for i in range(1, runs + 1)]
ref = next((s for s in nmap_sets if s is not None), None)

# nmap vs ground truth (sanity check of the lab itself)
try:
    with open(gt_path) as f:
        gt = json.load(f)
    gt_sets = {h["ip"]: (tuple(sorted(int(p) for p, s in h[PROTO].items() if s == "open")),
                         tuple(sorted(int(p) for p, s in h[PROTO].items() if s == "filtered")))
               for h in gt["hosts"] if h["ip"] in targets}
    if PROTO == "udp":
        # Only the ports the ground truth lists as open are open; others vary (rate limit).
        gt_sets = {ip: (o, ()) for ip, (o, f) in gt_sets.items()}
    if ref is not None:
        print("nmap open/filtered ports match ground truth: %s" % ("yes" if ref == gt_sets else "NO"))
        if ref != gt_sets:
            print("ground truth:\n" + fmt(gt_sets) + "\nnmap:\n" + fmt(ref))
except (OSError, ValueError, KeyError):
    print("ground truth unavailable")

if any(s is not None and s != ref for s in nmap_sets):
    print("note: nmap runs disagree among themselves")

if not have_portolan:
    print("open ports identical: n/a (no portolan binary at %s)" % binpath)
else:
    psets = [open_ports(os.path.join(out, "portolan-%d.xml" % i)) for i in range(1, runs + 1)]
    got = [s for s in psets if s is not None]
    if not got:
        print("open/filtered ports identical: n/a (portolan produced no parseable XML; see %s/portolan-*.log)" % out)
    elif all(s == ref for s in psets):
        print("open/filtered ports identical: yes")
    else:
        print("open/filtered ports identical: NO")
        print("nmap (run 1):\n" + fmt(ref))
        for i, s in enumerate(psets, 1):
            if s != ref:
                print("portolan (run %d):\n%s" % (i, fmt(s)))
print("outputs: %s" % out)
EOF
exit 0
