#!/usr/bin/env bash
# Issue 10's resume figure: `-sS -p-` over an answering /25 (bench/answering-net.sh), run
# whole; then the same scan interrupted (SIGINT) at 80% of the whole run's time and finished
# with `--resume`. Prints the whole time, the resume time, their ratio, and whether the
# resumed output holds the same open ports as the whole run.
#
# Env: PORTOLAN_BIN (default target/release/portolan), RESUME_TARGET (default
#      198.19.0.0/25), RESUME_AT (default 0.8), RESUME_RATE (default 300000).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PORTOLAN_BIN:-$ROOT/target/release/portolan}"
TARGET="${RESUME_TARGET:-198.19.0.0/25}"
AT="${RESUME_AT:-0.8}"
RATE="${RESUME_RATE:-300000}"
P=presume
log() { printf '[resume] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)

. "$ROOT/bench/answering-net.sh"
trap 'answering_net_down "$P"' EXIT
answering_net_up "$P" 198.18.4.1/30 198.18.4.2/30

OUT="$(mktemp -d)"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
scan() { ip netns exec "$P-scan" "$BIN" "$@"; }
ARGS=(-sS -Pn -n -p- --max-rate "$RATE" --audit-log none)

t0="$(now)"
scan "${ARGS[@]}" -oX "$OUT/whole.xml" "$TARGET" >/dev/null
t1="$(now)"
whole="$(secs "$t0" "$t1")"
log "whole run: ${whole}s"

stop_after="$(awk -v w="$whole" -v a="$AT" 'BEGIN{printf "%.2f", w*a}')"
ip netns exec "$P-scan" "$BIN" "${ARGS[@]}" -oX "$OUT/cut.xml" "$TARGET" >/dev/null 2>"$OUT/cut.err" &
pid=$!
sleep "$stop_after"
kill -INT "$pid" 2>/dev/null || true
wait "$pid" || true
log "interrupted after ${stop_after}s: $(grep -c '<host ' "$OUT/cut.xml" || true) hosts written"

t0="$(now)"
scan --resume "$OUT/cut.xml" >/dev/null 2>"$OUT/resume.err"
t1="$(now)"
resumed="$(secs "$t0" "$t1")"
log "$(grep -m1 Resuming "$OUT/resume.err" || true)"

python3 - "$OUT/whole.xml" "$OUT/cut.xml" "$whole" "$resumed" "$TARGET" "$AT" <<'PY'
import sys, xml.etree.ElementTree as ET
def opens(path):
    out = {}
    for h in ET.parse(path).getroot().iter("host"):
        addr = h.find("address").get("addr")
        out[addr] = sorted(int(p.get("portid")) for p in h.iter("port")
                           if p.find("state").get("state") == "open")
    return out
whole, resumed = opens(sys.argv[1]), opens(sys.argv[2])
w, r = float(sys.argv[3]), float(sys.argv[4])
print()
print("-sS -p- over %s, interrupted at %s of the whole run's time, then --resume" % (sys.argv[5], sys.argv[6]))
print("whole run       %8.2f s" % w)
print("resume          %8.2f s" % r)
print("ratio resume/whole: %.2f" % (r / w))
print("hosts: whole %d, resumed %d; open ports identical: %s" %
      (len(whole), len(resumed), "yes" if whole == resumed else "NO"))
PY
rm -rf "$OUT"
