#!/usr/bin/env bash
# Issue 10's scale check: peak memory (and time) of `-sS -p-` over many hosts, real and
# --dryrun. The goal: memory bounded by what a scan finds, not by hosts × ports; a /20
# under 200 MB.
#
# The network is bench/answering-net.sh's (as sweep.sh's): the sink answers for all of
# 198.19.0.0/16, so every port of every address answers (RST, or SYN-ACK on port 80).
# Torn down on exit.
#
# Env: PORTOLAN_BIN (default target/release/portolan); BEFORE_BIN (another build to
#      measure beside it, e.g. an older commit's); SCALE_REAL (default "/25 /24": prefixes
#      scanned for real); SCALE_DRY (default "/25 /24 /20": prefixes dry-run);
#      SCALE_RATE (default 300000 probes/s).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PORTOLAN_BIN:-$ROOT/target/release/portolan}"
REAL="${SCALE_REAL:-/25 /24}"
DRY="${SCALE_DRY:-/25 /24 /20}"
RATE="${SCALE_RATE:-300000}"
P=pscale
TARGET=198.19.0.0/16
log() { printf '[scale] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)
[ -x /usr/bin/time ] || { log "/usr/bin/time missing (apt-get install time)"; exit 1; }

. "$ROOT/bench/answering-net.sh"
trap 'answering_net_down "$P"' EXIT
answering_net_up "$P" 198.18.3.1/30 198.18.3.2/30

OUT="$(mktemp -d)"
# measure LABEL BIN ARGS... -> "peak_MB seconds open_hosts"
measure() {
    local bin="$1"; shift
    local stats="$OUT/time" gn="$OUT/out.gnmap"
    rm -f "$gn"
    ip netns exec "$P-scan" /usr/bin/time -f "%M %e" -o "$stats" "$bin" "$@" >/dev/null 2>"$OUT/err" || true
    local kb s
    read -r kb s < "$stats" || { kb=0; s=0; }
    local open=0
    [ -f "$gn" ] && open="$(grep -c '80/open/' "$gn" || true)"
    awk -v kb="$kb" -v s="$s" -v o="$open" 'BEGIN{printf "%8.1f MB %8.2f s %6d", kb/1024, s, o}'
}
bins=("portolan:$BIN")
[ -n "${BEFORE_BIN:-}" ] && bins+=("before:$BEFORE_BIN")
printf '\n-sS -Pn -n -p- (65535 ports a host), peak RSS and wall time\n'
printf '%-9s %-6s %-16s %12s %10s %s\n' tool mode target peak time "hosts_with_80_open"
for entry in "${bins[@]}"; do
    name="${entry%%:*}"; bin="${entry#*:}"
    for pfx in $REAL; do
        t="198.19.0.0$pfx"
        r="$(measure "$bin" -sS -Pn -n -p- --max-rate "$RATE" -oG "$OUT/out.gnmap" "$t")"
        printf '%-9s %-6s %-16s %s\n' "$name" real "$t" "$r"
    done
    for pfx in $DRY; do
        t="198.19.0.0$pfx"
        r="$(measure "$bin" -sS -Pn -n -p- --max-retries 0 --dryrun "$t")"
        printf '%-9s %-6s %-16s %s\n' "$name" dryrun "$t" "$r"
    done
done
rm -rf "$OUT"
