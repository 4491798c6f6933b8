#!/usr/bin/env bash
# Portolan test lab: network namespaces on a private bridge, 198.18.0.0/24 only.
#
#   lab/lab.sh up        build the lab (tears down a previous one first)
#   lab/lab.sh down      kill everything in the lab namespaces, delete them
#   lab/lab.sh exec CMD  run CMD inside the scanner namespace
#   lab/lab.sh status    namespaces and listening sockets
#
# Env: PLAB_PREFIX (default plab), PLAB_DIR (default /tmp/portolan-lab),
#      PLAB_PYTHON (default python3), PLAB_PG_BIN (default: the newest
#      /usr/lib/postgresql/*/bin).
#
# Safety: nothing is ever attached to the root namespace.  veth pairs are
# created directly between the switch namespace and each host namespace, and
# no namespace gets a default route.  See lab/README.md.
set -euo pipefail

P="${PLAB_PREFIX:-plab}"
DIR="${PLAB_DIR:-/tmp/portolan-lab}"
PY="${PLAB_PYTHON:-python3}"
LAB_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LISTENER="$LAB_SRC/listener.py"
HOSTILE="$LAB_SRC/hostile.py"
SMB1="$LAB_SRC/smb1_ms17_010.py"
SERIAL="$LAB_SRC/serial.py"
while [ "${DIR%/}" != "$DIR" ]; do DIR="${DIR%/}"; done
case "$DIR" in
    /?*) ;;
    *) printf '[lab] ERROR: PLAB_DIR must be an absolute path other than /: %s\n' "${PLAB_DIR:-}" >&2; exit 2 ;;
esac

SUBNET=198.18.0.0/24
SCAN_IP=198.18.0.1
SVC_IP=198.18.0.10
DNS_IP=198.18.0.11
FILT_IP=198.18.0.12
LOSSY_IP=198.18.0.13
SLOW_IP=198.18.0.14
DB_IP=198.18.0.15
HOSTILE_IP=198.18.0.16
SERIAL_IP=198.18.0.17
# Hosts for the NSE scripts (docs/lab-nse.md).
SMB_IP=198.18.0.20
SMB1_IP=198.18.0.21
WEB_IP=198.18.0.22
DOWN_IP=198.18.0.99
# IPv6 (RFC 5180's benchmarking prefix) on the scanner and the filtered host only.
SUBNET6=2001:2::/64
SCAN_IP6=2001:2::1
FILT_IP6=2001:2::12

# A routed path for traceroute: scanner -> r1 -> r2 -> r3 -> 198.18.2.0/24, where far1
# and far2 sit on a second bridge.  r1's LAN side is on the lab bridge; the routers are
# chained by veth pairs (/30 links in 198.18.1.0/24).  r2 never answers with ICMP time
# exceeded (nft drops it), so hop 2 is missing from every trace.
R1_IP=198.18.0.2
R1_LINK=198.18.1.1
R2_LINK_IN=198.18.1.2
R2_LINK_OUT=198.18.1.5
R3_LINK=198.18.1.6
R3_LAN=198.18.2.1
FAR_SUBNET=198.18.2.0/24
LINK_SUBNET=198.18.1.0/24
FAR1_IP=198.18.2.10
FAR2_IP=198.18.2.11
# What a trace from the scanner sees: one hop per TTL ("-" for the silent router).
ROUTED_PATH="$R1_IP - $R3_LINK"
# Names of the routed part for reverse DNS in the scanner namespace only: ip netns exec
# mounts /etc/netns/<scanner>/hosts over /etc/hosts (the lab hosts keep no name there).
ROUTED_NAMES="$R1_IP=r1.lab.test $R3_LINK=r3.lab.test $FAR1_IP=far1.lab.test $FAR2_IP=far2.lab.test"

SW="$P-sw"
SCAN="$P-scan"
# host short names; namespace is "$P-<name>".  Order matters for down (sw last).
HOSTS=(svc dns filt lossy slow db hostile serial smb smb1 web)
ROUTED_NS=("$P-r1" "$P-r2" "$P-r3" "$P-far1" "$P-far2")
ALL_NS=("$SCAN" "$P-svc" "$P-dns" "$P-filt" "$P-lossy" "$P-slow" "$P-db" "$P-hostile"
        "$P-serial" "$P-smb" "$P-smb1" "$P-web" "${ROUTED_NS[@]}" "$SW")

# ---- OS detection hosts (issue 12): plain listeners on stacks retuned by per-namespace
# sysctls, so that Nmap's OS probes get answers unlike the default Linux namespaces' (TTL,
# options, window, ECN).  One "name|ip|open tcp ports|sysctls" a line.
OS_LAB_HOSTS="oswin|198.18.0.30|135 445 3389|net.ipv4.ip_default_ttl=128 net.ipv4.tcp_timestamps=0 net.ipv4.tcp_sack=0 net.ipv4.tcp_window_scaling=0 net.ipv4.tcp_ecn=0
osttl|198.18.0.31|22 80|net.ipv4.ip_default_ttl=255 net.ipv4.tcp_window_scaling=0 net.ipv4.tcp_sack=0"
os_lab_field() {  # field-number: that field of every OS_LAB_HOSTS line
    printf '%s\n' "$OS_LAB_HOSTS" | cut -d'|' -f"$1"
}
for _os_host in $(os_lab_field 1); do
    HOSTS+=("$_os_host")
    # Before the switch, which goes last.
    ALL_NS=("${ALL_NS[@]:0:${#ALL_NS[@]}-1}" "$P-$_os_host" "$SW")
done
unset _os_host

# ---- ground-truth data (single source for setup and ground-truth.json) ----
SVC_TCP_OPEN="21 22 80 443 6379 8080 31337"
SVC_SERVICES="tcp/21=ftp tcp/22=ssh tcp/80=http tcp/443=https tcp/6379=redis"
DNS_TCP_OPEN="53 2222 9999"
DNS_UDP_OPEN="53 161"
DNS_SERVICES="tcp/53=domain udp/53=domain udp/161=snmp"
FILT_TCP_OPEN="80 8443"
FILT_TCP_FILTERED="81 135 139 445"
LOSSY_TCP_OPEN="80 443 5000"
LOSSY_TCP_FILTERED="135 139 445 3389"
LOSSY_DROP_PERCENT=3
SLOW_TCP_OPEN="80 443"
# A congested link: the host's replies leave through a 4 Mbit/s token bucket (~8000
# small packets/s), so a scan faster than that loses replies in proportion to its rate.
SLOW_RATE=4mbit
DB_TCP_OPEN="3306 5432 11211"
DB_UDP_OPEN="11211"
DB_SERVICES="tcp/3306=mysql tcp/5432=postgresql tcp/11211=memcached udp/11211=memcached"
# hostile.py modes, "mode=port" (see lab/hostile.py), plus Python's http.server.
HOSTILE_SERVE="stream=7001 silent=7002 garbage=7003 tls-garbage=7004 close=7005"
HOSTILE_HTTP_PORT=8000
HOSTILE_TCP_OPEN="$(for s in $HOSTILE_SERVE; do printf '%s ' "${s#*=}"; done)$HOSTILE_HTTP_PORT"
HOSTILE_SERVICES="tcp/$HOSTILE_HTTP_PORT=http"
# serial: services that serve one client at a time (issue 13): an sshd that drops every
# unauthenticated connection beyond the first (MaxStartups 1), net-snmp's SMUX (it reads
# a new peer's first packet before it serves anyone else), and lab/serial.py, a
# single-threaded web server.  Their SNMP agent listens on the host's loopback only.
SERIAL_SSH_PORT=22
SERIAL_SMUX_PORT=199
SERIAL_HTTP_PORT=8000
SERIAL_TCP_OPEN="$SERIAL_SSH_PORT $SERIAL_SMUX_PORT $SERIAL_HTTP_PORT"
SERIAL_SERVICES="tcp/$SERIAL_SSH_PORT=ssh tcp/$SERIAL_SMUX_PORT=smux tcp/$SERIAL_HTTP_PORT=http"
# smb: Debian's Samba smbd (SMB2/3 only, its default), a guest-readable share "public".
SMB_TCP_OPEN="139 445"
SMB_SERVICES="tcp/139=netbios-ssn tcp/445=netbios-ssn"  # what -sV names them (Nmap 7.93)
SMB_SHARE=public
# smb1: lab/smb1_ms17_010.py, "mode=port": an SMBv1 server that answers like a Windows
# without MS17-010 ("unpatched") and one that answers like a patched one.
SMB1_SERVE="unpatched=445 patched=4445"
SMB1_TCP_OPEN="445 4445"
SMB1_SERVICES="tcp/445=microsoft-ds tcp/4445=microsoft-ds"
# web: nginx serving one site with paths Nmap's http-enum knows, over HTTP on 80 and
# over three TLS setups, "name=port|protocols|TLS <= 1.2 cipher list|DH bits|whose cipher
# preference".  The legacy one offers TLS 1.0 and 1.1, CBC and anonymous suites and a
# 1024-bit DH group (OpenSSL's security level 0; Debian's OpenSSL has no 3DES, RC4 or
# SSLv3 at all).  It prefers its own order, ECDHE first: with the client's, OpenSSL
# clients (Nmap's http scripts among them) pick DHE first and then refuse the small group.
WEB_HTTP_PATHS="/admin/ /robots.txt /.git/HEAD /.git/config /.gitignore /backup.zip"
WEB_TLS="legacy=443|TLSv1 TLSv1.1 TLSv1.2|ALL:@SECLEVEL=0|1024|server
modern=8443|TLSv1.2 TLSv1.3|ECDHE+AESGCM:ECDHE+CHACHA20||client
tls13=9443|TLSv1.3|||client"
WEB_TCP_OPEN="80 $(printf '%s\n' "$WEB_TLS" | sed 's/^[^=]*=\([0-9]*\)|.*/\1/' | tr '\n' ' ')"
WEB_SERVICES="tcp/80=http tcp/443=https tcp/8443=https tcp/9443=https"
# PostgreSQL's versioned binaries (Debian keeps them out of PATH); newest wins.
PG_BIN="${PLAB_PG_BIN:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)}"
# Version ground truth, one "proto/port|Nmap product|binary" per line.  The version
# is read at lab-up time from the Debian package that owns the binary (see
# write_ground_truth); "python:http.server" means Python's http.server module.
SVC_VERSIONS="tcp/21|vsftpd|/usr/sbin/vsftpd
tcp/22|OpenSSH|/usr/sbin/sshd
tcp/80|nginx|/usr/sbin/nginx
tcp/443|nginx|/usr/sbin/nginx
tcp/6379|Redis key-value store|/usr/bin/redis-server"
DNS_VERSIONS="tcp/53|dnsmasq|/usr/sbin/dnsmasq
udp/53|dnsmasq|/usr/sbin/dnsmasq
udp/161|net-snmp|/usr/sbin/snmpd"
DB_VERSIONS="tcp/3306|MySQL|/usr/sbin/mariadbd
tcp/5432|PostgreSQL DB|$PG_BIN/postgres
tcp/11211|Memcached|/usr/bin/memcached
udp/11211|Memcached|/usr/bin/memcached"
HOSTILE_VERSIONS="tcp/$HOSTILE_HTTP_PORT|SimpleHTTPServer|python:http.server"
SERIAL_VERSIONS="tcp/$SERIAL_SSH_PORT|OpenSSH|/usr/sbin/sshd
tcp/$SERIAL_SMUX_PORT|Linux SNMP multiplexer|/usr/sbin/snmpd
tcp/$SERIAL_HTTP_PORT|SimpleHTTPServer|python:http.server"
SMB_VERSIONS="tcp/139|Samba smbd|/usr/sbin/smbd
tcp/445|Samba smbd|/usr/sbin/smbd"
WEB_VERSIONS="tcp/80|nginx|/usr/sbin/nginx
tcp/443|nginx|/usr/sbin/nginx
tcp/8443|nginx|/usr/sbin/nginx
tcp/9443|nginx|/usr/sbin/nginx"

log()  { printf '[lab] %s\n' "$*" >&2; }
die()  { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }

nsx() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

# ---------------------------------------------------------------- down ----
kill_ns_pids() {
    local ns="$1" pids sig i
    ns_exists "$ns" || return 0
    for sig in TERM TERM KILL KILL; do
        pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)"
        [ -n "${pids// /}" ] || return 0
        # shellcheck disable=SC2086
        kill "-$sig" $pids 2>/dev/null || true
        for i in 1 2 3 4 5 6 7 8 9 10; do
            pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)"
            [ -n "${pids// /}" ] || return 0
            sleep 0.2
        done
    done
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)"
    [ -z "${pids// /}" ] || log "warning: processes still in $ns: $pids"
}

cmd_down() {
    need_root
    local ns
    for ns in "${ALL_NS[@]}"; do kill_ns_pids "$ns"; done
    for ns in "${ALL_NS[@]}"; do
        if ns_exists "$ns"; then
            ip netns del "$ns" 2>/dev/null || log "warning: could not delete netns $ns"
        fi
    done
    # The scanner namespace's hosts file (mk_routed).
    if [ -d "/etc/netns/$SCAN" ]; then
        rm -f "/etc/netns/$SCAN/hosts"
        rmdir "/etc/netns/$SCAN" 2>/dev/null || true
        rmdir /etc/netns 2>/dev/null || true
    fi
    if [ -d "$DIR/run" ]; then
        rm -f "$DIR"/run/*.pid 2>/dev/null || true
    fi
    rm -f "$DIR/ground-truth.json" 2>/dev/null || true
    log "lab '$P' is down"
    return 0
}

# ------------------------------------------------------------------ up ----
wait_listen() {  # ns proto(tcp|udp) ip port what
    local ns="$1" proto="$2" ip="$3" port="$4" what="$5" flag i
    [ "$proto" = tcp ] && flag=-ltnH || flag=-lunH
    for i in $(seq 1 50); do
        if nsx "$ns" ss $flag 2>/dev/null | awk '{print $4}' | grep -qFx -- "$ip:$port"; then
            return 0
        fi
        sleep 0.1
    done
    log "--- $ns listening sockets:"; nsx "$ns" ss -ltnup >&2 || true
    die "$what did not start listening on $proto $ip:$port in $ns (logs in $DIR/logs)"
}

mk_ns() {  # name ip/cidr [ip6/cidr] — creates "$P-<name>" and a veth to the switch
    local name="$1" addr="$2" addr6="${3:-}" ns="$P-$1"
    ip netns add "$ns"
    if [ -z "$addr6" ]; then
        nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
    else
        # No router solicitations or autoconfiguration: the only IPv6 is ours.
        nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
            net.ipv6.conf.all.autoconf=0 net.ipv6.conf.default.autoconf=0 >/dev/null
    fi
    nsx "$ns" ip link set lo up
    # Create the pair inside the switch namespace with the peer going straight
    # into the host namespace: the root namespace never sees either end.
    ip -n "$SW" link add "v-$name" type veth peer name eth0 netns "$ns"
    ip -n "$SW" link set "v-$name" master br0
    ip -n "$SW" link set "v-$name" up
    nsx "$ns" ip addr add "$addr" dev eth0
    [ -n "$addr6" ] && nsx "$ns" ip -6 addr add "$addr6" dev eth0 nodad
    nsx "$ns" ip link set eth0 up
}

mk_router() {  # name: a namespace that forwards IPv4 and answers ICMP without rate limits
    local ns="$P-$1"
    ip netns add "$ns"
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
    nsx "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0 >/dev/null
    nsx "$ns" ip link set lo up
}

link_ns() {  # ns-a dev-a ip-a/cidr ns-b dev-b ip-b/cidr: a veth pair between two lab namespaces
    ip -n "$1" link add "$2" type veth peer name "$5" netns "$4"
    nsx "$1" ip addr add "$3" dev "$2"
    nsx "$4" ip addr add "$6" dev "$5"
    nsx "$1" ip link set "$2" up
    nsx "$4" ip link set "$5" up
}

mk_far() {  # name ip: a host on the far bridge (br1), reached through the routers
    local name="$1" ns="$P-$1"
    ip netns add "$ns"
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
    nsx "$ns" sysctl -qw net.ipv4.icmp_ratelimit=0 >/dev/null
    nsx "$ns" ip link set lo up
    ip -n "$SW" link add "f-$name" type veth peer name eth0 netns "$ns"
    ip -n "$SW" link set "f-$name" master br1
    ip -n "$SW" link set "f-$name" up
    nsx "$ns" ip addr add "$2/24" dev eth0
    nsx "$ns" ip link set eth0 up
    nsx "$ns" ip route add "$SUBNET" via "$R3_LAN"
    nsx "$ns" ip route add "$LINK_SUBNET" via "$R3_LAN"
}

# The routed part of the lab (see ROUTED_PATH).  Only specific routes, no default.
mk_routed() {
    nsx "$SW" ip link add br1 type bridge stp_state 0 forward_delay 0
    nsx "$SW" ip link set br1 up
    mk_router r1
    ip -n "$SW" link add "v-r1" type veth peer name eth0 netns "$P-r1"
    ip -n "$SW" link set "v-r1" master br0
    ip -n "$SW" link set "v-r1" up
    nsx "$P-r1" ip addr add "$R1_IP/24" dev eth0
    nsx "$P-r1" ip link set eth0 up
    mk_router r2
    mk_router r3
    link_ns "$P-r1" eth1 "$R1_LINK/30" "$P-r2" eth0 "$R2_LINK_IN/30"
    link_ns "$P-r2" eth1 "$R2_LINK_OUT/30" "$P-r3" eth0 "$R3_LINK/30"
    ip -n "$SW" link add "v-r3" type veth peer name eth1 netns "$P-r3"
    ip -n "$SW" link set "v-r3" master br1
    ip -n "$SW" link set "v-r3" up
    nsx "$P-r3" ip addr add "$R3_LAN/24" dev eth1
    nsx "$P-r3" ip link set eth1 up
    nsx "$P-r1" ip route add 198.18.1.4/30 via "$R2_LINK_IN"
    nsx "$P-r1" ip route add "$FAR_SUBNET" via "$R2_LINK_IN"
    nsx "$P-r2" ip route add "$SUBNET" via "$R1_LINK"
    nsx "$P-r2" ip route add "$FAR_SUBNET" via "$R3_LINK"
    nsx "$P-r3" ip route add "$SUBNET" via "$R2_LINK_OUT"
    nsx "$P-r3" ip route add 198.18.1.0/30 via "$R2_LINK_OUT"
    nsx "$P-r2" nft -f - <<EOF
table ip plab {
    chain output {
        type filter hook output priority 0; policy accept;
        icmp type time-exceeded drop
    }
}
EOF
    # Nothing listens on them: every port closed (a silent port would keep -sV and -sC
    # waiting), which is also the probe Nmap prefers for a trace.
    mk_far far1 "$FAR1_IP"
    mk_far far2 "$FAR2_IP"
    nsx "$SCAN" ip route add "$LINK_SUBNET" via "$R1_IP"
    nsx "$SCAN" ip route add "$FAR_SUBNET" via "$R1_IP"
    local n
    mkdir -p "/etc/netns/$SCAN"
    {
        cat /etc/hosts
        for n in $ROUTED_NAMES; do printf '%s %s\n' "${n%%=*}" "${n#*=}"; done
    } > "/etc/netns/$SCAN/hosts"
}

start_listener() {  # ns ip tag listener-args...
    local ns="$1" ip="$2" tag="$3"; shift 3
    setsid ip netns exec "$ns" "$PY" "$LISTENER" --bind "$ip" --pidfile "$DIR/run/listener-$tag.pid" "$@" \
        </dev/null >>"$DIR/logs/listener-$tag.log" 2>&1 &
}

start_hostile() {  # hostile.py with every mode of $HOSTILE_SERVE, then http.server
    local args=() s
    for s in $HOSTILE_SERVE; do args+=(--serve "$s"); done
    setsid ip netns exec "$P-hostile" "$PY" "$HOSTILE" --bind "$HOSTILE_IP" \
        --pidfile "$DIR/run/hostile.pid" "${args[@]}" \
        </dev/null >>"$DIR/logs/hostile.log" 2>&1 &
    # Python's own http.server, serving a fixed page (not a directory listing).
    setsid ip netns exec "$P-hostile" "$PY" -m http.server --bind "$HOSTILE_IP" \
        --directory "$DIR/www" "$HOSTILE_HTTP_PORT" \
        </dev/null >>"$DIR/logs/http-server.log" 2>&1 &
}

# The database clusters are initialised once per server version into $DIR/cache
# (a few seconds) and copied afresh into place on every `up` (well under one), so
# each lab starts from a clean, identical state.  Both initialisations run inside
# the db namespace: their bootstrap servers never see the host's network.
prepare_db_templates() {
    [ -x "$PG_BIN/postgres" ] || die "PostgreSQL not found under /usr/lib/postgresql/*/bin (run scripts/install-lab-deps.sh)"
    if ! command -v mariadbd >/dev/null || ! command -v mariadb-install-db >/dev/null; then
        die "MariaDB not found (run scripts/install-lab-deps.sh)"
    fi
    command -v memcached >/dev/null || die "memcached not found (run scripts/install-lab-deps.sh)"
    local ver tmpl
    mkdir -p "$DIR/cache"

    ver="$("$PG_BIN/postgres" --version | awk '{print $3}' | tr -c 'A-Za-z0-9.\n' _)"
    tmpl="$DIR/cache/pg-$ver"
    if [ ! -s "$tmpl/PG_VERSION" ]; then
        log "initialising the PostgreSQL template cluster ($tmpl)"
        rm -rf "$tmpl" "$tmpl.new"
        install -d -o postgres -g postgres -m 700 "$tmpl.new"
        nsx "$P-db" setpriv --reuid=postgres --regid=postgres --init-groups -- \
            "$PG_BIN/initdb" -D "$tmpl.new" -U postgres -A trust -E UTF8 --locale=C \
            --no-sync --no-instructions >"$DIR/logs/initdb.log" 2>&1 \
            || die "initdb failed (see $DIR/logs/initdb.log)"
        mv "$tmpl.new" "$tmpl"
    fi
    PG_TEMPLATE="$tmpl"

    ver="$(mariadbd --version | awk '{print $3}' | tr -c 'A-Za-z0-9.\n' _)"
    tmpl="$DIR/cache/mariadb-$ver"
    if [ ! -d "$tmpl/mysql" ]; then
        log "initialising the MariaDB template datadir ($tmpl)"
        rm -rf "$tmpl" "$tmpl.new"
        install -d -o mysql -g mysql -m 750 "$tmpl.new"
        # A login for the lab subnet: without one, MariaDB answers a scanner with
        # "Host ... is not allowed to connect" instead of its versioned greeting.
        # (The bootstrap server starts without grant tables; FLUSH loads them.)
        printf '%s\n' \
            "FLUSH PRIVILEGES;" \
            "CREATE USER 'portolan'@'198.18.0.%' IDENTIFIED BY 'portolan-lab';" \
            > "$DIR/cache/mariadb-lab.sql"
        nsx "$P-db" mariadb-install-db --no-defaults --user=mysql --datadir="$tmpl.new" \
            --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve \
            --extra-file="$DIR/cache/mariadb-lab.sql" \
            --innodb-log-file-size=8M --innodb-buffer-pool-size=16M \
            >"$DIR/logs/mariadb-install-db.log" 2>&1 \
            || die "mariadb-install-db failed (see $DIR/logs/mariadb-install-db.log)"
        mv "$tmpl.new" "$tmpl"
    fi
    MARIADB_TEMPLATE="$tmpl"
}

start_db() {
    prepare_db_templates
    rm -rf "$DIR/pg" "$DIR/mariadb" "$DIR/mariadb-tmp"
    cp -a "$PG_TEMPLATE" "$DIR/pg"
    cp -a "$MARIADB_TEMPLATE" "$DIR/mariadb"
    install -d -o postgres -g postgres -m 755 "$DIR/run/pg"
    install -d -o mysql -g mysql -m 755 "$DIR/run/mariadb"
    install -d -o mysql -g mysql -m 700 "$DIR/mariadb-tmp"
    install -o mysql -g mysql -m 644 /dev/null "$DIR/logs/mariadb.log"

    # PostgreSQL: the postmaster in the foreground of its own session, as postgres
    # (setpriv execs: no PAM session process left in between).
    setsid ip netns exec "$P-db" setpriv --reuid=postgres --regid=postgres --init-groups -- \
        "$PG_BIN/postgres" -D "$DIR/pg" \
        -c listen_addresses="$DB_IP" -c port=5432 -c unix_socket_directories="$DIR/run/pg" \
        -c shared_buffers=16MB -c max_connections=200 -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off \
        </dev/null >>"$DIR/logs/postgres.log" 2>&1 &
    # MariaDB: also in the foreground; it drops to the mysql user itself.
    setsid ip netns exec "$P-db" mariadbd --no-defaults --user=mysql \
        --datadir="$DIR/mariadb" --tmpdir="$DIR/mariadb-tmp" \
        --bind-address="$DB_IP" --port=3306 \
        --socket="$DIR/run/mariadb/mariadb.sock" --pid-file="$DIR/run/mariadb/mariadb.pid" \
        --log-error="$DIR/logs/mariadb.log" --skip-name-resolve --skip-log-bin \
        --innodb-log-file-size=8M --innodb-buffer-pool-size=16M --max-connections=500 \
        </dev/null >>"$DIR/logs/mariadb.out" 2>&1 &
    # memcached: TCP and UDP (UDP is off unless -U is given).
    local mcuser=memcache
    getent passwd memcache >/dev/null || mcuser=nobody
    setsid ip netns exec "$P-db" memcached -u "$mcuser" -l "$DB_IP" -p 11211 -U 11211 \
        -m 16 -c 4096 </dev/null >>"$DIR/logs/memcached.log" 2>&1 &
}

write_configs() {
    mkdir -p "$DIR"/{run,logs,ssh,tls,ftp/pub,vsftpd-empty,redis,snmp,snmp-serial,nginx/tmp,www}
    cat > "$DIR/www/index.html" <<EOF
<!DOCTYPE html>
<html><head><title>Portolan lab http.server</title></head>
<body>Portolan lab: Python http.server on hostile.lab.test</body></html>
EOF
    chmod 755 "$DIR" "$DIR/ftp" "$DIR/ftp/pub" "$DIR/vsftpd-empty"
    echo "Portolan lab anonymous FTP" > "$DIR/ftp/pub/README.txt"

    # --- ssh host keys (kept across runs) + config
    local t
    for t in rsa ecdsa ed25519; do
        [ -s "$DIR/ssh/ssh_host_${t}_key" ] || \
            ssh-keygen -q -t "$t" -N '' -C "portolan-lab-$t" -f "$DIR/ssh/ssh_host_${t}_key" </dev/null
    done
    chmod 600 "$DIR"/ssh/ssh_host_*_key
    cat > "$DIR/sshd_config" <<EOF
Port 22
ListenAddress $SVC_IP
AddressFamily inet
HostKey $DIR/ssh/ssh_host_rsa_key
HostKey $DIR/ssh/ssh_host_ecdsa_key
HostKey $DIR/ssh/ssh_host_ed25519_key
PidFile $DIR/run/sshd.pid
UsePAM no
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
PrintMotd no
MaxStartups 1000:30:2000
LoginGraceTime 30
EOF

    # --- TLS cert (kept across runs)
    if [ ! -s "$DIR/tls/cert.pem" ] || [ ! -s "$DIR/tls/key.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
            -subj "/CN=svc.lab.test/O=Portolan Lab" \
            -addext "subjectAltName=DNS:svc.lab.test,IP:$SVC_IP" \
            -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" >/dev/null 2>&1 \
            || die "openssl could not create the self-signed certificate"
        chmod 600 "$DIR/tls/key.pem"
    fi

    # --- nginx
    cat > "$DIR/nginx.conf" <<EOF
user root root;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $DIR/run/nginx.pid;
error_log $DIR/logs/nginx-error.log;
events { worker_connections 8192; }
http {
    access_log $DIR/logs/nginx-access.log;
    client_body_temp_path $DIR/nginx/tmp/body;
    proxy_temp_path $DIR/nginx/tmp/proxy;
    fastcgi_temp_path $DIR/nginx/tmp/fastcgi;
    uwsgi_temp_path $DIR/nginx/tmp/uwsgi;
    scgi_temp_path $DIR/nginx/tmp/scgi;
    default_type text/plain;
    server_tokens on;
    server {
        listen $SVC_IP:80;
        server_name svc.lab.test;
        location / { return 200 "Portolan lab HTTP\n"; }
    }
    server {
        listen $SVC_IP:443 ssl;
        server_name svc.lab.test;
        ssl_certificate $DIR/tls/cert.pem;
        ssl_certificate_key $DIR/tls/key.pem;
        location / { return 200 "Portolan lab HTTPS\n"; }
    }
}
EOF

    # --- vsftpd
    local ftpuser=ftp
    getent passwd ftp >/dev/null || ftpuser=nobody
    cat > "$DIR/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=$SVC_IP
listen_port=21
background=YES
anonymous_enable=YES
no_anon_password=YES
anon_root=$DIR/ftp
ftp_username=$ftpuser
nopriv_user=nobody
local_enable=NO
write_enable=NO
secure_chroot_dir=$DIR/vsftpd-empty
connect_from_port_20=NO
pasv_enable=YES
pasv_min_port=40000
pasv_max_port=40100
dirmessage_enable=NO
xferlog_enable=YES
vsftpd_log_file=$DIR/logs/vsftpd.log
max_clients=0
max_per_ip=0
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
EOF
    chmod 600 "$DIR/vsftpd.conf"

    # --- snmpd
    cat > "$DIR/snmpd.conf" <<EOF
agentaddress udp:$DNS_IP:161
rocommunity public
sysLocation Portolan lab
sysContact lab@lab.test
sysName dns.lab.test
sysServices 72
EOF

    # --- serial: an sshd that admits one unauthenticated client at a time, SMUX
    sed -e "s/^ListenAddress .*/ListenAddress $SERIAL_IP/" -e "s/^Port .*/Port $SERIAL_SSH_PORT/" \
        -e "s|^PidFile .*|PidFile $DIR/run/sshd-serial.pid|" -e "s/^MaxStartups .*/MaxStartups 1/" \
        "$DIR/sshd_config" > "$DIR/sshd_config-serial"
    cat > "$DIR/snmpd-serial.conf" <<EOF
agentaddress udp:127.0.0.1:161
smuxsocket $SERIAL_IP
rocommunity public
sysName serial.lab.test
EOF
}

# ---- NSE hosts: smb (Samba), smb1 (smb1_ms17_010.py), web (nginx, HTTP and TLS).
# What each seed NSE script finds on them: docs/lab-nse.md.
write_nse_configs() {
    mkdir -p "$DIR"/samba/{lock,state,cache,private,ncalrpc,bind-dns} "$DIR/run/samba" \
        "$DIR/smb/$SMB_SHARE" "$DIR/web/admin" "$DIR/web/.git" "$DIR/nginx-web/tmp" "$DIR/tls-web"
    chmod 755 "$DIR/smb" "$DIR/smb/$SMB_SHARE"
    echo "Portolan lab Samba share" > "$DIR/smb/$SMB_SHARE/README.txt"

    # --- Samba: every directory it writes is under $DIR; no nmbd, no winbind, no printing.
    cat > "$DIR/smb.conf" <<EOF
[global]
    workgroup = LAB
    netbios name = SMB-LAB
    server string = Portolan lab Samba
    server role = standalone server
    interfaces = $SMB_IP
    bind interfaces only = yes
    smb ports = 445 139
    lock directory = $DIR/samba/lock
    state directory = $DIR/samba/state
    cache directory = $DIR/samba/cache
    private dir = $DIR/samba/private
    ncalrpc dir = $DIR/samba/ncalrpc
    binddns dir = $DIR/samba/bind-dns
    pid directory = $DIR/run/samba
    passdb backend = tdbsam:$DIR/samba/private/passdb.tdb
    usershare path =
    max log size = 1000
    map to guest = Bad User
    guest account = nobody
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes

[$SMB_SHARE]
    path = $DIR/smb/$SMB_SHARE
    comment = Portolan lab public share
    read only = yes
    guest ok = yes
    browseable = yes
EOF

    # --- web: a site with what http-enum and http-git look for.
    cat > "$DIR/web/index.html" <<EOF
<!DOCTYPE html>
<html><head><title>Portolan lab web</title></head>
<body>Portolan lab: nginx on web.lab.test</body></html>
EOF
    cat > "$DIR/web/admin/index.html" <<EOF
<!DOCTYPE html>
<html><head><title>Portolan lab admin</title></head>
<body><form method="post" action="/admin/login"><input name="user"><input name="pass" type="password"></form></body></html>
EOF
    printf 'User-agent: *\nDisallow: /admin/\nDisallow: /backup.zip\n' > "$DIR/web/robots.txt"
    printf '*.bak\n' > "$DIR/web/.gitignore"
    printf 'ref: refs/heads/main\n' > "$DIR/web/.git/HEAD"
    printf 'Portolan lab web site\n' > "$DIR/web/.git/description"
    cat > "$DIR/web/.git/config" <<EOF
[core]
	repositoryformatversion = 0
	filemode = true
	bare = false
[remote "origin"]
	url = https://git.lab.test/portolan/web.git
	fetch = +refs/heads/*:refs/remotes/origin/*
EOF
    "$PY" -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr(zipfile.ZipInfo("index.html", (2020, 1, 1, 0, 0, 0)), open(sys.argv[2]).read())' \
        "$DIR/web/backup.zip" "$DIR/web/index.html"

    # --- TLS certificate and the legacy server's weak DH group (kept across runs)
    if [ ! -s "$DIR/tls-web/cert.pem" ] || [ ! -s "$DIR/tls-web/key.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
            -subj "/CN=web.lab.test/O=Portolan Lab" \
            -addext "subjectAltName=DNS:web.lab.test,IP:$WEB_IP" \
            -keyout "$DIR/tls-web/key.pem" -out "$DIR/tls-web/cert.pem" >/dev/null 2>&1 \
            || die "openssl could not create the web certificate"
        chmod 600 "$DIR/tls-web/key.pem"
    fi
    local line name rest port protocols ciphers dh prefer servers=""
    while IFS= read -r line; do
        name="${line%%=*}"; rest="${line#*=}"
        IFS='|' read -r port protocols ciphers dh prefer <<<"$rest"
        servers+="    server {  # $name
        listen $WEB_IP:$port ssl;
        server_name web.lab.test;
        root $DIR/web;
        index index.html;
        ssl_certificate $DIR/tls-web/cert.pem;
        ssl_certificate_key $DIR/tls-web/key.pem;
        ssl_protocols $protocols;
        ssl_prefer_server_ciphers $([ "$prefer" = server ] && echo on || echo off);
"
        [ -z "$ciphers" ] || servers+="        ssl_ciphers $ciphers;
"
        if [ -n "$dh" ]; then
            [ -s "$DIR/tls-web/dh$dh.pem" ] || openssl dhparam -out "$DIR/tls-web/dh$dh.pem" "$dh" \
                >/dev/null 2>&1 || die "openssl could not make $dh-bit DH parameters"
            servers+="        ssl_dhparam $DIR/tls-web/dh$dh.pem;
"
        fi
        servers+="    }
"
    done <<<"$WEB_TLS"

    cat > "$DIR/nginx-web.conf" <<EOF
user root root;
worker_processes 1;
pid $DIR/run/nginx-web.pid;
error_log $DIR/logs/nginx-web-error.log;
events { worker_connections 1024; }
http {
    access_log $DIR/logs/nginx-web-access.log;
    client_body_temp_path $DIR/nginx-web/tmp/body;
    proxy_temp_path $DIR/nginx-web/tmp/proxy;
    fastcgi_temp_path $DIR/nginx-web/tmp/fastcgi;
    uwsgi_temp_path $DIR/nginx-web/tmp/uwsgi;
    scgi_temp_path $DIR/nginx-web/tmp/scgi;
    types { text/html html; text/plain txt; application/zip zip; }
    default_type text/plain;
    server_tokens on;
    server {
        listen $WEB_IP:80;
        server_name web.lab.test;
        root $DIR/web;
        index index.html;
    }
$servers}
EOF
}

start_nse_services() {
    # ---- smb: Samba's smbd in the foreground with its own config; nmbd is not run.
    # The RPC helpers smbd starts on demand (samba-dcerpcd, rpcd_*) create empty logs in
    # Debian's /var/log/samba before they read their arguments: smbd runs with
    # $DIR/logs/samba mounted there, in the mount namespace `ip netns exec` gives it
    # (its mounts do not propagate back), so nothing lands outside $DIR.
    [ -x /usr/sbin/smbd ] || die "smbd not found (run scripts/install-lab-deps.sh)"
    mkdir -p "$DIR/logs/samba"
    # shellcheck disable=SC2016
    setsid ip netns exec "$P-smb" sh -c \
        'if [ -d /var/log/samba ]; then mount --bind "$1" /var/log/samba || exit 1; fi; shift; exec "$@"' \
        sh "$DIR/logs/samba" /usr/sbin/smbd --foreground --no-process-group \
        --log-basename="$DIR/logs" --configfile="$DIR/smb.conf" \
        </dev/null >>"$DIR/logs/smbd.out" 2>&1 &

    # ---- smb1: the SMBv1 test service
    local args=() spec
    for spec in $SMB1_SERVE; do args+=(--serve "$spec"); done
    setsid ip netns exec "$P-smb1" "$PY" "$SMB1" --bind "$SMB1_IP" \
        --pidfile "$DIR/run/smb1.pid" "${args[@]}" </dev/null >>"$DIR/logs/smb1.log" 2>&1 &

    # ---- web: nginx, HTTP and the TLS setups
    nsx "$P-web" nginx -c "$DIR/nginx-web.conf" -e "$DIR/logs/nginx-web-error.log" -p "$DIR/nginx-web" \
        || die "nginx (web) failed to start (see $DIR/logs/nginx-web-error.log)"
}

verify_nse_services() {
    local p
    for p in $SMB_TCP_OPEN; do wait_listen "$P-smb" tcp "$SMB_IP" "$p" smbd; done
    for p in $SMB1_TCP_OPEN; do wait_listen "$P-smb1" tcp "$SMB1_IP" "$p" smb1_ms17_010.py; done
    for p in $WEB_TCP_OPEN; do wait_listen "$P-web" tcp "$WEB_IP" "$p" nginx; done
}

start_services() {
    # ---- svc: sshd, vsftpd, nginx, redis, listeners
    mkdir -p /run/sshd && chmod 755 /run/sshd
    nsx "$P-svc" /usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/logs/sshd.log" \
        || die "sshd failed to start (see $DIR/logs/sshd.log)"
    nsx "$P-svc" vsftpd "$DIR/vsftpd.conf" </dev/null >>"$DIR/logs/vsftpd.out" 2>&1 \
        || die "vsftpd failed to start (see $DIR/logs/vsftpd.out)"
    nsx "$P-svc" nginx -c "$DIR/nginx.conf" -e "$DIR/logs/nginx-error.log" -p "$DIR/nginx" \
        || die "nginx failed to start (see $DIR/logs/nginx-error.log)"
    nsx "$P-svc" redis-server --bind "$SVC_IP" --port 6379 --protected-mode no \
        --daemonize yes --pidfile "$DIR/run/redis.pid" --dir "$DIR/redis" \
        --logfile "$DIR/logs/redis.log" --save '' --appendonly no \
        || die "redis-server failed to start (see $DIR/logs/redis.log)"
    start_listener "$P-svc" "$SVC_IP" svc \
        --port 8080 --banner "PORTOLAN-LAB banner svc tcp/8080" \
        --port 31337

    # ---- dns: dnsmasq, snmpd, listeners
    nsx "$P-dns" dnsmasq --no-resolv --no-hosts --conf-file=/dev/null \
        --listen-address="$DNS_IP" --bind-interfaces --port=53 \
        --user=root --group=root --pid-file="$DIR/run/dnsmasq.pid" \
        --log-facility="$DIR/logs/dnsmasq.log" \
        --address=/lab.test/"$SVC_IP" \
        --host-record=svc.lab.test,"$SVC_IP" \
        --host-record=dns.lab.test,"$DNS_IP" \
        --host-record=filt.lab.test,"$FILT_IP" \
        --host-record=lossy.lab.test,"$LOSSY_IP" \
        --host-record=db.lab.test,"$DB_IP" \
        --host-record=hostile.lab.test,"$HOSTILE_IP" \
        --host-record=serial.lab.test,"$SERIAL_IP" \
        --host-record=smb.lab.test,"$SMB_IP" \
        --host-record=smb1.lab.test,"$SMB1_IP" \
        --host-record=web.lab.test,"$WEB_IP" \
        --host-record=scan.lab.test,"$SCAN_IP" \
        || die "dnsmasq failed to start (see $DIR/logs/dnsmasq.log)"
    SNMP_PERSISTENT_DIR="$DIR/snmp" MIBS="" nsx "$P-dns" snmpd -C -c "$DIR/snmpd.conf" -I -smux \
        -Lf "$DIR/logs/snmpd.log" -p "$DIR/run/snmpd.pid" \
        || die "snmpd failed to start (see $DIR/logs/snmpd.log)"
    start_listener "$P-dns" "$DNS_IP" dns \
        --port 2222 --banner "PORTOLAN-LAB banner dns tcp/2222" \
        --port 9999

    # ---- filt: listeners + nft drop
    start_listener "$P-filt" "$FILT_IP" filt --port 80 --port 8443
    start_listener "$P-filt" "$FILT_IP6" filt6 --port 80 --port 8443
    nsx "$P-filt" nft -f - <<EOF
table inet plab {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport { $(echo "$FILT_TCP_FILTERED" | sed 's/ /, /g') } drop
    }
}
EOF

    # ---- lossy: listeners + nft drop + random output loss
    start_listener "$P-lossy" "$LOSSY_IP" lossy --port 80 --port 443 --port 5000
    nsx "$P-lossy" nft -f - <<EOF
table inet plab {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport { $(echo "$LOSSY_TCP_FILTERED" | sed 's/ /, /g') } drop
    }
    chain output {
        type filter hook output priority 0; policy accept;
        numgen random mod 100 < $LOSSY_DROP_PERCENT drop
    }
}
EOF

    # ---- slow: listeners behind a rate-limited (tbf) outgoing link
    start_listener "$P-slow" "$SLOW_IP" slow --port 80 --port 443
    nsx "$P-slow" tc qdisc add dev eth0 root tbf rate "$SLOW_RATE" burst 16kb latency 20ms

    # ---- db: PostgreSQL, MariaDB, memcached
    start_db

    # ---- hostile: misbehaving services + Python http.server
    start_hostile

    # ---- serial: services that serve one client at a time
    nsx "$P-serial" /usr/sbin/sshd -f "$DIR/sshd_config-serial" -E "$DIR/logs/sshd-serial.log" \
        || die "sshd (serial) failed to start (see $DIR/logs/sshd-serial.log)"
    SNMP_PERSISTENT_DIR="$DIR/snmp-serial" MIBS="" nsx "$P-serial" snmpd -C -c "$DIR/snmpd-serial.conf" \
        -Lf "$DIR/logs/snmpd-serial.log" -p "$DIR/run/snmpd-serial.pid" \
        || die "snmpd (serial) failed to start (see $DIR/logs/snmpd-serial.log)"
    setsid ip netns exec "$P-serial" "$PY" "$SERIAL" --bind "$SERIAL_IP" --port "$SERIAL_HTTP_PORT" \
        --directory "$DIR/www" --pidfile "$DIR/run/serial.pid" \
        </dev/null >>"$DIR/logs/serial.log" 2>&1 &

    start_nse_services
}

verify_services() {
    local p
    wait_listen "$P-svc" tcp "$SVC_IP" 21 vsftpd
    wait_listen "$P-svc" tcp "$SVC_IP" 22 sshd
    wait_listen "$P-svc" tcp "$SVC_IP" 80 nginx
    wait_listen "$P-svc" tcp "$SVC_IP" 443 nginx
    wait_listen "$P-svc" tcp "$SVC_IP" 6379 redis-server
    wait_listen "$P-svc" tcp "$SVC_IP" 8080 listener.py
    wait_listen "$P-svc" tcp "$SVC_IP" 31337 listener.py
    wait_listen "$P-dns" tcp "$DNS_IP" 53 dnsmasq
    wait_listen "$P-dns" udp "$DNS_IP" 53 dnsmasq
    wait_listen "$P-dns" udp "$DNS_IP" 161 snmpd
    wait_listen "$P-dns" tcp "$DNS_IP" 2222 listener.py
    wait_listen "$P-dns" tcp "$DNS_IP" 9999 listener.py
    for p in $FILT_TCP_OPEN;  do wait_listen "$P-filt"  tcp "$FILT_IP"  "$p" listener.py; done
    for p in $FILT_TCP_OPEN;  do wait_listen "$P-filt"  tcp "[$FILT_IP6]"  "$p" listener.py; done
    for p in $LOSSY_TCP_OPEN; do wait_listen "$P-lossy" tcp "$LOSSY_IP" "$p" listener.py; done
    for p in $SLOW_TCP_OPEN;  do wait_listen "$P-slow"  tcp "$SLOW_IP"  "$p" listener.py; done
    wait_listen "$P-db" tcp "$DB_IP" 5432 postgres
    wait_listen "$P-db" tcp "$DB_IP" 3306 mariadbd
    wait_listen "$P-db" tcp "$DB_IP" 11211 memcached
    wait_listen "$P-db" udp "$DB_IP" 11211 memcached
    for p in $HOSTILE_SERVE; do wait_listen "$P-hostile" tcp "$HOSTILE_IP" "${p#*=}" hostile.py; done
    wait_listen "$P-hostile" tcp "$HOSTILE_IP" "$HOSTILE_HTTP_PORT" "python3 -m http.server"
    wait_listen "$P-serial" tcp "$SERIAL_IP" "$SERIAL_SSH_PORT" "sshd (serial)"
    wait_listen "$P-serial" tcp "$SERIAL_IP" "$SERIAL_SMUX_PORT" "snmpd (serial, SMUX)"
    wait_listen "$P-serial" tcp "$SERIAL_IP" "$SERIAL_HTTP_PORT" serial.py
    verify_nse_services
    nsx "$P-r2" nft list table ip plab >/dev/null || die "nft rules missing in $P-r2"
    # The routed hosts answer through the routers (a RST: nothing listens there).
    local far out
    for far in "$FAR1_IP" "$FAR2_IP"; do
        out="$(nsx "$SCAN" timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/80"' _ "$far" 2>&1 || true)"
        case "$out" in
            *refused*) ;;
            *) die "scanner cannot reach $far through the routers: $out" ;;
        esac
    done
    nsx "$P-slow" tc qdisc show dev eth0 | grep -q tbf || die "tbf missing in $P-slow"
    nsx "$P-filt"  nft list table inet plab >/dev/null || die "nft rules missing in $P-filt"
    nsx "$P-lossy" nft list table inet plab >/dev/null || die "nft rules missing in $P-lossy"
    # L2/L3 sanity from the scanner: a TCP connect to one open port per host.
    local target
    for target in "$SVC_IP/22" "$DNS_IP/53" "$FILT_IP/80" "$LOSSY_IP/80" "$SLOW_IP/80" \
                  "$DB_IP/5432" "$HOSTILE_IP/$HOSTILE_HTTP_PORT" "$SERIAL_IP/$SERIAL_HTTP_PORT" "$SMB_IP/445" \
                  "$SMB1_IP/445" "$WEB_IP/80"; do
        tcp_probe "$target" || tcp_probe "$target" || tcp_probe "$target" \
          || die "scanner cannot connect to ${target%/*} port ${target#*/}"
    done
}

tcp_probe() {  # ip/port, from the scanner namespace
    nsx "$SCAN" timeout 3 bash -c 'exec 3<>"/dev/tcp/$1"' _ "$1" >/dev/null 2>&1
}

write_ground_truth() {
    local out="$DIR/ground-truth.json"
    PLAB_GT_PREFIX="$P" PLAB_GT_OUT="$out" \
    PLAB_GT_SVC_VERSIONS="$SVC_VERSIONS" PLAB_GT_DNS_VERSIONS="$DNS_VERSIONS" \
    PLAB_GT_DB_VERSIONS="$DB_VERSIONS" PLAB_GT_HOSTILE_VERSIONS="$HOSTILE_VERSIONS" \
    PLAB_GT_SERIAL_VERSIONS="$SERIAL_VERSIONS" \
    PLAB_GT_SMB_VERSIONS="$SMB_VERSIONS" PLAB_GT_WEB_VERSIONS="$WEB_VERSIONS" \
    PLAB_GT_WEB_TLS="$WEB_TLS" \
    "$PY" - <<EOF
import json, os, re, subprocess, sys
P = os.environ["PLAB_GT_PREFIX"]

def ports(s):
    return [int(x) for x in s.split()]

def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None

def package_of(path):
    for p in (path, os.path.realpath(path)):
        out = run("dpkg-query", "-S", p)
        for line in (out or "").splitlines():
            pkgs, _, owned = line.partition(": ")
            if owned.strip() == p and not line.startswith("diversion"):
                return pkgs.split(",")[0].strip().split(":")[0]
    return None

def upstream(debver):
    # "1:9.2p1-2+deb12u3" -> "9.2p1": no epoch, no Debian revision, no repack tag.
    v = debver.split(":", 1)[-1]
    if "-" in v:
        v = v.rsplit("-", 1)[0]
    return re.sub(r"[+~](dfsg|ds|repack)[0-9.]*$", "", v)

def version_of(product, binary):
    if binary == "python:http.server":
        import http.server, platform
        return {"product": product, "version": http.server.__version__,
                "python": platform.python_version()}
    pkg = package_of(binary)
    debver = run("dpkg-query", "-W", "-f=\${Version}", pkg) if pkg else None
    if not debver:
        sys.stderr.write("[lab] warning: no package version for %s\n" % binary)
        return {"product": product}
    return {"product": product, "version": upstream(debver),
            "package": pkg, "package_version": debver}

def versions(env):
    out = {}
    for line in os.environ[env].splitlines():
        if line.strip():
            key, product, binary = line.split("|", 2)
            out[key] = version_of(product, binary)
    return out

def host(name, ip, tcp_open="", tcp_filtered="", udp_open="", services="", lossy=False,
         versions_env=None):
    tcp = {p: "open" for p in ports(tcp_open)}
    tcp.update({p: "filtered" for p in ports(tcp_filtered)})
    return {
        "name": name, "ns": "%s-%s" % (P, name), "ip": ip, "up": True,
        "tcp_default": "closed",
        "tcp": {str(p): tcp[p] for p in sorted(tcp)},
        "udp": {str(p): "open" for p in sorted(ports(udp_open))},
        "services": dict(kv.split("=", 1) for kv in services.split()),
        "versions": versions(versions_env) if versions_env else {},
        "lossy": lossy,
    }

hostile = host("hostile", "$HOSTILE_IP", tcp_open="$HOSTILE_TCP_OPEN",
               services="$HOSTILE_SERVICES", versions_env="PLAB_GT_HOSTILE_VERSIONS")
hostile["hostile"] = {"tcp/" + mp.split("=")[1]: mp.split("=")[0]
                      for mp in "$HOSTILE_SERVE".split()}

smb = host("smb", "$SMB_IP", tcp_open="$SMB_TCP_OPEN", services="$SMB_SERVICES",
           versions_env="PLAB_GT_SMB_VERSIONS")
smb["smb"] = {"dialects": "SMB2/3", "shares": ["$SMB_SHARE"], "guest": True}
smb1 = host("smb1", "$SMB1_IP", tcp_open="$SMB1_TCP_OPEN", services="$SMB1_SERVICES")
smb1["smb1"] = {"tcp/" + mp.split("=")[1]: mp.split("=")[0] for mp in "$SMB1_SERVE".split()}
web = host("web", "$WEB_IP", tcp_open="$WEB_TCP_OPEN", services="$WEB_SERVICES",
           versions_env="PLAB_GT_WEB_VERSIONS")
web["http_paths"] = {"tcp/80": "$WEB_HTTP_PATHS".split()}
web["tls"] = {}
for line in os.environ["PLAB_GT_WEB_TLS"].splitlines():
    name, rest = line.split("=", 1)
    port, protocols, ciphers, dh, prefer = rest.split("|")
    web["tls"]["tcp/" + port] = {"name": name, "protocols": protocols.split(),
                                 "ciphers": ciphers or None,
                                 "dh_bits": int(dh) if dh else None,
                                 "cipher_preference": prefer}

gt = {
    "prefix": P,
    "scanner_ns": "%s-scan" % P,
    "scanner_ip": "$SCAN_IP",
    "scanner_ip6": "$SCAN_IP6",
    "hosts": [
        host("svc", "$SVC_IP", tcp_open="$SVC_TCP_OPEN", services="$SVC_SERVICES",
             versions_env="PLAB_GT_SVC_VERSIONS"),
        host("dns", "$DNS_IP", tcp_open="$DNS_TCP_OPEN", udp_open="$DNS_UDP_OPEN",
             services="$DNS_SERVICES", versions_env="PLAB_GT_DNS_VERSIONS"),
        dict(host("filt", "$FILT_IP", tcp_open="$FILT_TCP_OPEN",
                  tcp_filtered="$FILT_TCP_FILTERED"), ip6="$FILT_IP6"),
        host("lossy", "$LOSSY_IP", tcp_open="$LOSSY_TCP_OPEN",
             tcp_filtered="$LOSSY_TCP_FILTERED", lossy=True),
        host("slow", "$SLOW_IP", tcp_open="$SLOW_TCP_OPEN"),
        host("db", "$DB_IP", tcp_open="$DB_TCP_OPEN", udp_open="$DB_UDP_OPEN",
             services="$DB_SERVICES", versions_env="PLAB_GT_DB_VERSIONS"),
        hostile,
        host("serial", "$SERIAL_IP", tcp_open="$SERIAL_TCP_OPEN", services="$SERIAL_SERVICES",
             versions_env="PLAB_GT_SERIAL_VERSIONS"),
        smb,
        smb1,
        web,
    ],
    "down": ["$DOWN_IP"],
    # Hosts behind routers, and the hops a trace from the scanner sees (None: silent).
    "routed": {
        "hosts": [
            dict(host("far1", "$FAR1_IP"), distance=4),
            dict(host("far2", "$FAR2_IP"), distance=4),
        ],
        "path": [None if h == "-" else h for h in "$ROUTED_PATH".split()],
        "names": dict(n.split("=", 1) for n in "$ROUTED_NAMES".split()),
    },
}
tmp = os.environ["PLAB_GT_OUT"] + ".tmp"
with open(tmp, "w") as f:
    json.dump(gt, f, indent=2)
    f.write("\n")
os.replace(tmp, os.environ["PLAB_GT_OUT"])
EOF
}

# The OS detection hosts: namespace, sysctls, listeners (up), listening (verify), and their
# entries in the ground truth, "os" giving the sysctls each was set up with.
start_os_hosts() {
    local name ip open sysctls p args
    while IFS='|' read -r name ip open sysctls; do
        [ -n "$name" ] || continue
        mk_ns "$name" "$ip/24"
        # shellcheck disable=SC2086
        nsx "$P-$name" sysctl -qw $sysctls >/dev/null
        args=()
        for p in $open; do args+=(--port "$p"); done
        start_listener "$P-$name" "$ip" "$name" "${args[@]}"
    done <<<"$OS_LAB_HOSTS"
}

verify_os_hosts() {
    local name ip open sysctls p kv
    while IFS='|' read -r name ip open sysctls; do
        [ -n "$name" ] || continue
        for kv in $sysctls; do
            [ "$(nsx "$P-$name" sysctl -n "${kv%%=*}")" = "${kv#*=}" ] \
                || die "$P-$name: sysctl ${kv%%=*} is not ${kv#*=}"
        done
        for p in $open; do wait_listen "$P-$name" tcp "$ip" "$p" listener.py; done
        tcp_probe "$ip/${open%% *}" || tcp_probe "$ip/${open%% *}" \
            || die "scanner cannot connect to $ip port ${open%% *}"
    done <<<"$OS_LAB_HOSTS"
}

add_os_ground_truth() {
    PLAB_GT_OUT="$DIR/ground-truth.json" PLAB_GT_PREFIX="$P" PLAB_GT_OS="$OS_LAB_HOSTS" \
    "$PY" - <<'EOF'
import json, os
path = os.environ["PLAB_GT_OUT"]
with open(path) as f:
    gt = json.load(f)
for line in os.environ["PLAB_GT_OS"].splitlines():
    if not line.strip():
        continue
    name, ip, tcp_open, sysctls = line.split("|")
    gt["hosts"].append({
        "name": name, "ns": "%s-%s" % (os.environ["PLAB_GT_PREFIX"], name), "ip": ip,
        "up": True, "tcp_default": "closed",
        "tcp": {p: "open" for p in sorted(tcp_open.split(), key=int)},
        "udp": {}, "services": {}, "versions": {}, "lossy": False,
        "os": dict(kv.split("=", 1) for kv in sysctls.split()),
    })
with open(path + ".tmp", "w") as f:
    json.dump(gt, f, indent=2)
    f.write("\n")
os.replace(path + ".tmp", path)
EOF
}

cmd_up() {
    need_root
    local ns
    for ns in "${ALL_NS[@]}"; do
        if ns_exists "$ns"; then log "previous lab '$P' found; tearing it down"; cmd_down; break; fi
    done
    # On any failure below, leave nothing half-built behind.
    trap 'rc=$?; if [ $rc -ne 0 ]; then log "up failed; tearing down"; cmd_down || true; fi' EXIT

    mkdir -p "$DIR"
    rm -rf "$DIR/run" "$DIR/logs" "$DIR/nginx" "$DIR/redis" "$DIR/www" \
        "$DIR/samba" "$DIR/smb" "$DIR/web" "$DIR/nginx-web"
    write_configs
    write_nse_configs

    log "creating namespaces (prefix '$P')"
    ip netns add "$SW"
    nsx "$SW" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
    nsx "$SW" ip link set lo up
    nsx "$SW" ip link add br0 type bridge stp_state 0 forward_delay 0
    nsx "$SW" ip link set br0 up
    mk_ns scan "$SCAN_IP/24" "$SCAN_IP6/64"
    mk_ns svc "$SVC_IP/24"
    mk_ns dns "$DNS_IP/24"
    mk_ns filt "$FILT_IP/24" "$FILT_IP6/64"
    mk_ns lossy "$LOSSY_IP/24"
    mk_ns slow "$SLOW_IP/24"
    mk_ns db "$DB_IP/24"
    mk_ns hostile "$HOSTILE_IP/24"
    mk_ns serial "$SERIAL_IP/24"
    mk_ns smb "$SMB_IP/24"
    mk_ns smb1 "$SMB1_IP/24"
    mk_ns web "$WEB_IP/24"
    mk_routed

    # Safety check: the scanner must only know the lab subnets.
    local routes
    routes="$(nsx "$SCAN" ip -4 route show | awk '{print $1}' | sort -u | tr '\n' ' ')"
    [ "$routes" = "$SUBNET $LINK_SUBNET $FAR_SUBNET " ] || die "unexpected routes in $SCAN: $routes"
    routes="$(nsx "$SCAN" ip -6 route show | awk '{print $1}' | sort -u | tr '\n' ' ')"
    [ "$routes" = "$SUBNET6 fe80::/64 " ] || die "unexpected IPv6 routes in $SCAN: $routes"

    log "starting services"
    start_services
    start_os_hosts
    verify_services
    verify_os_hosts
    write_ground_truth
    add_os_ground_truth
    trap - EXIT

    log "lab '$P' is up"
    echo "ground truth: $DIR/ground-truth.json"
    echo "scanner:      ip netns exec $SCAN <cmd>   (or: lab/lab.sh exec <cmd>)"
}

# -------------------------------------------------------------- status ----
cmd_status() {
    local ns found=0
    echo "== namespaces (prefix '$P')"
    for ns in "${ALL_NS[@]}"; do
        if ns_exists "$ns"; then
            found=1
            echo "-- $ns"
            nsx "$ns" ip -4 -br addr show 2>/dev/null | grep -v '^lo ' | sed 's/^/   /' || true
            nsx "$ns" ss -ltnuH 2>/dev/null | awk '{printf "   %-4s %s\n", $1, $5}' || true
        fi
    done
    [ "$found" = 1 ] || echo "(lab is down)"
    [ -f "$DIR/ground-truth.json" ] && echo "ground truth: $DIR/ground-truth.json"
    return 0
}

cmd_exec() {
    ns_exists "$SCAN" || die "scanner namespace $SCAN does not exist (run: lab/lab.sh up)"
    [ "$#" -gt 0 ] || die "usage: lab/lab.sh exec CMD..."
    exec ip netns exec "$SCAN" "$@"
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
    up)     shift; cmd_up "$@" ;;
    down)   shift; cmd_down "$@" ;;
    exec)   shift; cmd_exec "$@" ;;
    status) shift; cmd_status "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
