#!/usr/bin/env bash
# Issue 10's scale check: peak memory (and time) of `-sS -p-` over many hosts, real and
# --dryrun. The goal: memory bounded by what a scan finds, not by hosts × ports; a /20
# under 200 MB.
#
# The network is sweep.sh's: two namespaces of its own joined by a veth pair, the sink
# answering for all of 198.19.0.0/16 (`ip route add local ... dev lo`, so every port of
# every address answers: RST, or SYN-ACK on port 80), the scanner routing only that /16.
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

down() {
    for ns in "$P-scan" "$P-sink"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap down EXIT
down
ip netns add "$P-scan"; ip netns add "$P-sink"
for ns in "$P-scan" "$P-sink"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip link add s0 netns "$P-scan" type veth peer name t0 netns "$P-sink"
ip -n "$P-scan" addr add 198.18.3.1/30 dev s0
ip -n "$P-sink" addr add 198.18.3.2/30 dev t0
ip -n "$P-scan" link set s0 up
ip -n "$P-sink" link set t0 up
ip -n "$P-scan" route add "$TARGET" via 198.18.3.2
ip -n "$P-sink" route add local "$TARGET" dev lo
ip netns exec "$P-sink" sysctl -qw net.ipv4.tcp_syncookies=1 net.ipv4.tcp_max_syn_backlog=65536 net.core.somaxconn=65535
routes="$(ip -n "$P-scan" -4 route show | awk '{print $1}' | sort | tr '\n' ' ')"
[ "$routes" = "198.18.3.0/30 $TARGET " ] || { log "unexpected scanner routes: $routes"; exit 1; }
setsid ip netns exec "$P-sink" python3 "$ROOT/lab/listener.py" --bind 0.0.0.0 --port 80 \
    </dev/null >/dev/null 2>&1 &
for _ in $(seq 1 50); do
    ip netns exec "$P-sink" ss -ltnH | grep -q ':80 ' && break; sleep 0.1
done

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
