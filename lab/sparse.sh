#!/usr/bin/env bash
# A sparse-network lab for connect scans (issue 13): two /24s where almost nothing answers.
#
#   lab/sparse.sh up        build it (tears down a previous one first)
#   lab/sparse.sh down      delete its namespaces
#   lab/sparse.sh exec CMD  run CMD inside the scanner namespace
#
# Two namespaces joined by one veth pair, nothing attached to the root namespace:
#   "$P-scan" 198.18.10.20/24 on-link: 198.18.10.0/24 is the veth's subnet, but only
#             198.18.10.10 exists there, so ARP for every other address goes unanswered;
#             198.18.11.0/24 is routed via 198.18.10.10.
#   "$P-live" 198.18.10.10 (and 198.18.11.10, local): tcp/80 open, 22 and 443 closed.
#             It forwards the rest of 198.18.11.0/24 into a black hole: nft drops it
#             silently (no ICMP), so connects there get no answer at all.
#
# Env: PLAB_PREFIX (default psparse), PLAB_DIR (default /tmp/psparse-lab).
set -euo pipefail

P="${PLAB_PREFIX:-psparse}"
DIR="${PLAB_DIR:-/tmp/psparse-lab}"
PY="${PLAB_PYTHON:-python3}"
SCAN="$P-scan"
LIVE="$P-live"
SCAN_IP=198.18.10.20
LIVE_IP=198.18.10.10
HOLE_LIVE_IP=198.18.11.10
OPEN_PORT=80

log() { printf '[sparse-lab] %s\n' "$*" >&2; }

down() {
    for ns in "$SCAN" "$LIVE"; do
        if ip netns list | grep -qw "^$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    return 0
}

up() {
    down
    mkdir -p "$DIR"
    ip netns add "$SCAN"
    ip netns add "$LIVE"
    ip -n "$SCAN" link set lo up
    ip -n "$LIVE" link set lo up
    ip -n "$SCAN" link add eth0 type veth peer name eth0 netns "$LIVE"
    ip -n "$SCAN" addr add "$SCAN_IP/24" dev eth0
    ip -n "$LIVE" addr add "$LIVE_IP/24" dev eth0
    ip -n "$LIVE" addr add "$HOLE_LIVE_IP/32" dev lo
    ip -n "$SCAN" link set eth0 up
    ip -n "$LIVE" link set eth0 up
    ip -n "$SCAN" route add 198.18.11.0/24 via "$LIVE_IP"
    # The black hole: a route out of a device that leads nowhere (a veth pair with both
    # ends here), and nft dropping what is forwarded there first (no ICMP back).
    ip -n "$LIVE" link add hole type veth peer name hole-end
    ip -n "$LIVE" link set hole up
    ip -n "$LIVE" link set hole-end up
    ip -n "$LIVE" route add 198.18.11.0/24 dev hole
    ip netns exec "$LIVE" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0
    ip netns exec "$LIVE" nft -f - <<EOF
table ip psparse {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip daddr 198.18.11.0/24 drop
    }
}
EOF
    # The one service: a listener on both live addresses.
    ip netns exec "$LIVE" "$PY" -c '
import socket, sys, os
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(512)
if os.fork(): sys.exit(0)
os.setsid()
while True:
    c, _ = s.accept(); c.close()
' "$OPEN_PORT" </dev/null >/dev/null 2>&1
    for _ in $(seq 50); do
        ip netns exec "$LIVE" ss -ltn | grep -q ":$OPEN_PORT " && break
        sleep 0.1
    done
    ip netns exec "$LIVE" ss -ltn | grep -q ":$OPEN_PORT " || { log "listener did not start"; exit 1; }
    log "up: scanner $SCAN ($SCAN_IP), live host $LIVE_IP and $HOLE_LIVE_IP (tcp/$OPEN_PORT open)"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    exec) shift; exec ip netns exec "$SCAN" "$@" ;;
    *) echo "usage: $0 up|down|exec CMD..." >&2; exit 2 ;;
esac
