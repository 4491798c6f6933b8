# Sourced by bench scripts: a network of two namespaces of its own, joined by a veth pair,
# where the sink answers for every address of 198.19.0.0/16 (`ip route add local ... dev
# lo`; SYN cookies answer whatever the backlog cannot hold) with a listener on port 80, and
# the scanner routes only that /16. Nothing else is reachable from the scanner.
#
#   answering_net_up PREFIX SCANNER_ADDR/30 SINK_ADDR/30    namespaces PREFIX-scan, PREFIX-sink
#   answering_net_down PREFIX                               kills what runs there, deletes them
# Sets SINK_MAC (the sink's MAC, for tools that send frames) and ANSWERING_NET (the /16).

ANSWERING_NET=198.19.0.0/16

answering_net_down() {
    local p="$1" ns
    for ns in "$p-scan" "$p-sink"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}

answering_net_up() {
    local p="$1" scan_cidr="$2" sink_cidr="$3" ns
    local sink_ip="${sink_cidr%/*}" link
    link="$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_interface(sys.argv[1]).network)' "$scan_cidr")"
    answering_net_down "$p"
    ip netns add "$p-scan"; ip netns add "$p-sink"
    for ns in "$p-scan" "$p-sink"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    ip link add s0 netns "$p-scan" type veth peer name t0 netns "$p-sink"
    ip -n "$p-scan" addr add "$scan_cidr" dev s0
    ip -n "$p-sink" addr add "$sink_cidr" dev t0
    ip -n "$p-scan" link set s0 up
    ip -n "$p-sink" link set t0 up
    ip -n "$p-scan" route add "$ANSWERING_NET" via "$sink_ip"
    ip -n "$p-sink" route add local "$ANSWERING_NET" dev lo
    ip netns exec "$p-sink" sysctl -qw net.ipv4.tcp_syncookies=1 net.ipv4.tcp_max_syn_backlog=65536 net.core.somaxconn=65535
    # Safety: the scanner knows only its link and the /16.
    local routes
    routes="$(ip -n "$p-scan" -4 route show | awk '{print $1}' | sort | tr '\n' ' ')"
    if [ "$routes" != "$link $ANSWERING_NET " ]; then
        printf 'unexpected scanner routes: %s\n' "$routes" >&2
        return 1
    fi
    setsid ip netns exec "$p-sink" python3 "$ROOT/lab/listener.py" --bind 0.0.0.0 --port 80 \
        </dev/null >/dev/null 2>&1 &
    for _ in $(seq 1 50); do
        ip netns exec "$p-sink" ss -ltnH | grep -q ':80 ' && break; sleep 0.1
    done
    SINK_MAC="$(ip -n "$p-sink" link show t0 | awk '/link\/ether/ {print $2}')"
}
