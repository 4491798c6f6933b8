#!/usr/bin/env bash
# Install what lab/lab.sh and bench/ need (Debian 12).  Only installs what is
# missing; safe to run repeatedly.  Must run as root.
set -euo pipefail

log() { printf '[install-lab-deps] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root"; exit 1
fi

# "package:command" — a package is considered present if the command exists
# (or, when no command is given, if dpkg says it is installed).
DEPS=(
    "nmap:nmap"
    "ndiff:ndiff"
    "libxml2-utils:xmllint"
    "nginx-light:nginx"
    "openssh-server:/usr/sbin/sshd"
    "redis-server:redis-server"
    "vsftpd:vsftpd"
    "dnsmasq-base:dnsmasq"
    "snmpd:snmpd"
    "postgresql:"
    "mariadb-server:mariadb-install-db"
    "memcached:memcached"
    "nftables:nft"
    "iproute2:ip"
    "openssl:openssl"
    "procps:pkill"
    "python3:python3"
    "tcpdump:tcpdump"
    "iputils-ping:ping"
    "time:/usr/bin/time"
    "zmap:zmap"
    "masscan:masscan"
)

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then apt-get update; APT_UPDATED=1; fi
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

have() {  # package command
    local pkg="$1" cmd="$2"
    if [ -n "$cmd" ]; then
        if [ "${cmd#/}" != "$cmd" ]; then [ -x "$cmd" ]; else command -v "$cmd" >/dev/null 2>&1; fi
    else
        pkg_installed "$pkg"
    fi
}

missing=()
for entry in "${DEPS[@]}"; do
    pkg="${entry%%:*}"; cmd="${entry#*:}"
    if ! have "$pkg" "$cmd"; then
        missing+=("$pkg")   # nginx from any flavour (nginx, nginx-core...) counts
    fi
done

# Daemons whose packages start a system instance in the root namespace.
DAEMON_PKGS=" openssh-server nginx-light redis-server vsftpd snmpd postgresql mariadb-server memcached "

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_update_once
    apt-get install -y --no-install-recommends "${missing[@]}"

    # The lab runs its own instances inside network namespaces bound to
    # 198.18.0.x, so system instances would not conflict; still, stop any that
    # an install started so they do not sit on the root namespace's ports.
    for pkg in "${missing[@]}"; do
        case "$DAEMON_PKGS" in *" $pkg "*) ;; *) continue ;; esac
        case "$pkg" in
            openssh-server) svc=ssh ;;
            nginx-light)    svc=nginx ;;
            mariadb-server) svc=mariadb ;;
            *)              svc="$pkg" ;;
        esac
        if command -v service >/dev/null 2>&1; then
            service "$svc" stop >/dev/null 2>&1 || true
        fi
    done
else
    log "all Debian packages present"
fi

# Python packages the output tests use: python-libnmap (a real Nmap-XML client) and
# jsonschema (validates our JSON output against docs/portolan.schema.json).
for mod_pkg in libnmap:python-libnmap jsonschema:jsonschema; do
    mod="${mod_pkg%%:*}"; pkg="${mod_pkg#*:}"
    if python3 -c "import $mod" >/dev/null 2>&1; then
        log "$pkg present"
        continue
    fi
    log "installing $pkg from PyPI"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_update_once
        apt-get install -y --no-install-recommends python3-pip
    fi
    # Debian's system python refuses plain pip installs (PEP 668).
    python3 -m pip install --quiet "$pkg" \
        || python3 -m pip install --quiet --break-system-packages "$pkg"
    python3 -c "import $mod" || { log "$pkg still not importable"; exit 1; }
done

log "done"
