#!/usr/bin/env bash
# The ceiling of a SYN scan of the clean lab host, and Portolan's rate as a share of it.
#
#   bench/syn-ceiling.sh
#
# 1. The ceiling: the syn_ceiling example (crates/portolan-engine/examples/syn_ceiling.rs)
#    sends SYNs to the 65535 ports of 198.18.0.10 through an AF_PACKET TX ring that
#    bypasses the qdisc (the fastest sender this machine has: no pktgen), flat out, and
#    counts the SYN-ACKs and RSTs. The ceiling is the highest sending rate (probes/s over
#    the sending phase, median of BENCH_RUNS) at which at least CEIL_SHARE of the SYNs were
#    answered: flat out if that kept up, else stepping down from there with --rate. For
#    reference the raw IP socket (Portolan's fallback sender) is measured flat out too.
# 2. Portolan and Nmap: -sS -T4 -p- -n -Pn 198.18.0.10, BENCH_RUNS each, in the same
#    rounds as the ceiling's runs. Portolan's rate is ports/s over the whole scan (65535 /
#    wall time, process start to exit: startup, sending, the last answers), a lower bound
#    of its sending rate.
#
# Env: PORTOLAN_BIN (default target/release/portolan), CEILING_BIN (default the example,
#      built with cargo), BENCH_RUNS (default 3), CEIL_SHARE (default 0.99), PLAB_PREFIX
#      (default psynceil), PLAB_DIR, CARGO_TARGET_DIR, PORTOLAN_ENV (extra environment
#      for Portolan's runs, e.g. PORTOLAN_TX_RING=0 for the raw socket alone).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TGT="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${PORTOLAN_BIN:-$TGT/release/portolan}"
CEIL="${CEILING_BIN:-$TGT/release/examples/syn_ceiling}"
RUNS="${BENCH_RUNS:-3}"
SHARE="${CEIL_SHARE:-0.99}"
TARGET=198.18.0.10
export PLAB_PREFIX="${PLAB_PREFIX:-psynceil}"
export PLAB_DIR="${PLAB_DIR:-/tmp/$PLAB_PREFIX-lab}"
NS="$PLAB_PREFIX-scan"
OUT="${BENCH_OUT:-/tmp/$PLAB_PREFIX-ceiling}"

log() { printf '[ceiling] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root (network namespaces)"; exit 1; }

if [ -z "${PORTOLAN_BIN:-}" ] || [ -z "${CEILING_BIN:-}" ]; then
    log "building portolan and the syn_ceiling example (release)"
    (cd "$ROOT" && cargo build --release -p portolan && cargo build --release -p portolan-engine --example syn_ceiling) >&2
fi

cleanup() { "$ROOT/lab/lab.sh" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
"$ROOT/lab/lab.sh" up >/dev/null
rm -rf "$OUT"; mkdir -p "$OUT"

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p"; }

# ceiling NAME ARGS...: one run of the ceiling tool, its line appended to $OUT/NAME.txt
ceiling() {
    local name="$1"; shift
    ip netns exec "$NS" "$CEIL" --target "$TARGET" "$@" | tee -a "$OUT/$name.txt" >&2
}
# rate_share NAME: "median_rate lowest_share" of NAME's runs
rate_share() {
    echo "$(field send_rate < "$OUT/$1.txt" | median) $(field answered_share < "$OUT/$1.txt" | sort -g | head -n1)"
}
run() {  # tool i cmd...
    local tool="$1" i="$2"; shift 2
    local t0 t1
    t0="$(date +%s.%N)"
    # shellcheck disable=SC2086
    ip netns exec "$NS" env ${PORTOLAN_ENV:-} "$@" -sS -T4 -p- -n -Pn "$TARGET" -oX "$OUT/$tool-$i.xml" >/dev/null 2>"$OUT/$tool-$i.err" || log "$tool run $i failed"
    t1="$(date +%s.%N)"
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", b-a}' >> "$OUT/$tool.times"
    log "$tool run $i: $(tail -n1 "$OUT/$tool.times")s"
}

# Rounds of: the ring flat out, the raw socket flat out, Nmap and Portolan (alternating
# which goes first), so that the ceiling is measured under the same load as the scans
# (the machine is shared: its load drifts within a minute).
for i in $(seq 1 "$RUNS"); do
    ceiling ring-flat
    ceiling raw-flat --raw
    if [ $((i % 2)) -eq 1 ]; then run nmap "$i" nmap; run portolan "$i" "$BIN"
    else run portolan "$i" "$BIN"; run nmap "$i" nmap; fi
done
read -r flat flat_share < <(rate_share ring-flat)
read -r raw_flat raw_share < <(rate_share raw-flat)
ceiling=""
if awk -v s="$flat_share" -v t="$SHARE" 'BEGIN{exit !(s >= t)}'; then
    ceiling="$flat"
else
    # Answers were lost flat out: step down from the rate reached until they are not.
    for f in 0.9 0.8 0.7 0.6 0.5 0.4 0.3 0.2; do
        rate="$(awk -v r="$flat" -v f="$f" 'BEGIN{printf "%.0f", r*f}')"
        log "ring at $rate probes/s"
        for i in $(seq 1 "$RUNS"); do ceiling "ring-$rate" --rate "$rate"; done
        read -r got share < <(rate_share "ring-$rate")
        if awk -v s="$share" -v t="$SHARE" 'BEGIN{exit !(s >= t)}'; then
            ceiling="$got"; break
        fi
    done
fi
pt="$(median < "$OUT/portolan.times")"
nt="$(median < "$OUT/nmap.times")"

# Same answers: open ports and the closed count, every run against Nmap's first.
python3 - "$OUT" "$RUNS" <<'EOF'
import sys, xml.etree.ElementTree as ET
out, runs = sys.argv[1], int(sys.argv[2])
def facts(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    opened, closed = [], 0
    for p in root.iter("port"):
        if p.find("state").get("state") == "open":
            opened.append(int(p.get("portid")))
    for ep in root.iter("extraports"):
        if ep.get("state") == "closed":
            closed += int(ep.get("count"))
    closed += sum(1 for p in root.iter("port") if p.find("state").get("state") == "closed")
    return (tuple(sorted(opened)), closed)
ref = facts(f"{out}/nmap-1.xml")
same = all(facts(f"{out}/{t}-{i}.xml") == ref for t in ("nmap", "portolan") for i in range(1, runs + 1))
print(f"nmap open ports and closed count: {ref}")
print("portolan's answers identical to nmap's (open ports, closed count), every run: %s" % ("yes" if same else "NO"))
EOF

echo "SYN ceiling, -p- of $TARGET ($RUNS runs each, medians)"
echo "ceiling (TX ring, >= $SHARE answered): ${ceiling:-not found} probes/s (flat out: $flat probes/s, lowest share answered $flat_share)"
echo "raw IP socket flat out: $raw_flat probes/s (lowest share answered $raw_share)"
echo "portolan: ${pt}s  nmap: ${nt}s  ratio portolan/nmap: $(awk -v p="$pt" -v n="$nt" 'BEGIN{printf "%.2f", p/n}')"
if [ -n "$ceiling" ]; then
    awk -v p="$pt" -v c="$ceiling" 'BEGIN{r=65535/p; printf "portolan rate (ports/s over the whole scan): %.0f = %.0f%% of the ceiling\n", r, 100*r/c}'
fi
echo "outputs: $OUT"
