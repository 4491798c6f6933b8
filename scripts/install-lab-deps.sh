#!/usr/bin/env bash
# Install what lab/lab.sh, bench/, the output tests and the browser test need (Debian 12),
# and nothing else.
# Safe to run repeatedly. Must run as root.
#
# What it does to the machine, and what it does not:
# - installs only the packages that are missing, with `apt-get install --no-install-recommends
#   --no-upgrade`: no `apt-get upgrade`, no other package upgraded unless a new package's own
#   dependencies require it;
# - no service starts during the install (a policy-rc.d that forbids it is in place while apt
#   runs; an existing one is put back afterwards);
# - the daemons the lab runs (sshd, nginx, vsftpd, redis, snmpd, PostgreSQL, MariaDB,
#   memcached, Samba) run inside the lab's network namespaces only: for every daemon package this
#   script installed, the system service it ships is disabled at boot and stopped. The
#   packages it installed are listed in /var/lib/portolan/lab-installed-packages, so a later
#   run (after an interrupted one, say) still disables them. A service that was installed and
#   enabled before the script ran is left alone;
#   `scripts/install-lab-deps.sh --disable-lab-services` disables all of them, for a machine
#   an earlier version of this script set up;
# - Python modules: Debian's packages when python3 is the system one, otherwise pip into that
#   python3's own environment (a virtualenv, pyenv), never `--break-system-packages`.
set -euo pipefail

log() { printf '[install-lab-deps] %s\n' "$*" >&2; }

DISABLE_ALL=0
for arg in "$@"; do
    case "$arg" in
        --disable-lab-services) DISABLE_ALL=1 ;;
        -h|--help)
            sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) log "unknown argument: $arg"; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root"; exit 1
fi

STATE_DIR=/var/lib/portolan
STATE="$STATE_DIR/lab-installed-packages"

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
    "samba:/usr/sbin/smbd"
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
    # The web view's browser test (crates/portolan-web/tests/browser.rs): headless Chromium
    # driven through WebDriver. Its fonts come with it (fontconfig-config needs one).
    "chromium:chromium"
    "chromium-driver:chromedriver"
)

# The system services a package ships that the lab runs its own instances of instead.
services_of() {
    case "$1" in
        openssh-server) echo "ssh ssh.socket" ;;
        nginx-light|nginx|nginx-core) echo "nginx" ;;
        redis-server)   echo "redis-server" ;;
        vsftpd)         echo "vsftpd" ;;
        snmpd)          echo "snmpd" ;;
        postgresql)     echo "postgresql" ;;
        mariadb-server) echo "mariadb" ;;
        memcached)      echo "memcached" ;;
        samba)          echo "smbd nmbd samba-ad-dc" ;;
        *)              echo "" ;;
    esac
}
LAB_DAEMON_PKGS=(openssh-server nginx-light redis-server vsftpd snmpd postgresql mariadb-server memcached samba)

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

systemd_running() { [ -d /run/systemd/system ]; }

# A policy-rc.d that forbids starting any service while apt runs (invoke-rc.d and
# deb-systemd-invoke both honour it); whatever was there before is restored on exit.
POLICY=/usr/sbin/policy-rc.d
POLICY_SAVED=""
POLICY_OURS=0
restore_policy() {
    [ "$POLICY_OURS" = 1 ] || return 0
    if [ -n "$POLICY_SAVED" ]; then
        mv -f "$POLICY_SAVED" "$POLICY"
    else
        rm -f "$POLICY"
    fi
    POLICY_OURS=0
}
forbid_service_starts() {
    if [ -e "$POLICY" ]; then
        POLICY_SAVED=$(mktemp "$POLICY.portolan-saved.XXXXXX")
        cp -p "$POLICY" "$POLICY_SAVED"
    fi
    trap restore_policy EXIT
    POLICY_OURS=1
    printf '#!/bin/sh\n# scripts/install-lab-deps.sh: no service starts while it installs\nexit 101\n' \
        > "$POLICY"
    chmod 0755 "$POLICY"
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt_update_once
    forbid_service_starts
    apt-get install -y --no-install-recommends --no-upgrade "$@"
    restore_policy
}

# Disable at boot (and stop, where systemd runs) the system services of package $1.
disable_services_of() {
    local pkg="$1" svc state
    for svc in $(services_of "$pkg"); do
        # (Captured first: `systemctl ... | grep -q` fails under pipefail when grep exits early.)
        local units=""
        if command -v systemctl >/dev/null 2>&1; then
            units=$(systemctl list-unit-files --no-legend "$svc*" 2>/dev/null || true)
        fi
        if grep -q "^${svc}[.@ ]" <<<"$units"; then
            state=$(systemctl is-enabled "$svc" 2>/dev/null || true)
            if systemd_running; then
                systemctl disable --now "$svc" >/dev/null 2>&1 || true
            else
                systemctl disable "$svc" >/dev/null 2>&1 || true
            fi
            # The SysV links too (systemctl only syncs them for units that have a script).
            if [ -x "/etc/init.d/$svc" ] && command -v update-rc.d >/dev/null 2>&1; then
                update-rc.d "$svc" disable >/dev/null 2>&1 || true
            fi
            local now
            now=$(systemctl is-enabled "$svc" 2>/dev/null || true)
            case "$now" in
                enabled|enabled-runtime)
                    log "$svc: still enabled at boot after disabling it"; exit 1 ;;
            esac
            [ "$state" = "$now" ] || log "$svc: $state -> $now at boot"
        elif [ -x "/etc/init.d/$svc" ] && command -v update-rc.d >/dev/null 2>&1; then
            if compgen -G "/etc/rc[2-5].d/S??$svc" >/dev/null; then
                update-rc.d "$svc" disable >/dev/null 2>&1 || true
                log "$svc: disabled at boot (SysV)"
            fi
        fi
    done
}

missing=()
for entry in "${DEPS[@]}"; do
    pkg="${entry%%:*}"; cmd="${entry#*:}"
    if ! have "$pkg" "$cmd"; then
        missing+=("$pkg")   # nginx from any flavour (nginx, nginx-core...) counts
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    mkdir -p "$STATE_DIR"
    # Recorded before apt runs, so an interrupted install is still cleaned up next time.
    for pkg in "${missing[@]}"; do
        grep -qxF "$pkg" "$STATE" 2>/dev/null || echo "$pkg" >> "$STATE"
    done
    apt_install "${missing[@]}"
else
    log "all Debian packages present"
fi

# Services to keep off: those of daemon packages this script installed (now or before), or
# all of them when asked.
if [ "$DISABLE_ALL" = 1 ]; then
    to_disable=("${LAB_DAEMON_PKGS[@]}")
elif [ -f "$STATE" ]; then
    mapfile -t to_disable < "$STATE"
else
    to_disable=()
fi
for pkg in "${to_disable[@]}"; do
    [ -n "$pkg" ] && pkg_installed "$pkg" && disable_services_of "$pkg"
done

# Python modules the output tests use: python-libnmap (a real Nmap-XML client) and
# jsonschema (validates our JSON output against docs/portolan.schema.json).
# "module:Debian package:PyPI package"
PY_MODULES=(
    "libnmap:python3-libnmap:python-libnmap"
    "jsonschema:python3-jsonschema:jsonschema"
)
py=$(command -v python3)
system_python=0
case "$(readlink -f "$py")" in /usr/bin/python3*) system_python=1 ;; esac
for entry in "${PY_MODULES[@]}"; do
    mod="${entry%%:*}"; rest="${entry#*:}"; deb="${rest%%:*}"; pypi="${rest#*:}"
    if python3 -c "import $mod" >/dev/null 2>&1; then
        log "$pypi present"
        continue
    fi
    if [ "$system_python" = 1 ]; then
        log "installing $deb"
        apt_install "$deb"
    else
        # A python3 of its own (virtualenv, pyenv): pip installs into it, not the system's.
        log "installing $pypi from PyPI into $py"
        if ! python3 -m pip --version >/dev/null 2>&1; then
            python3 -m ensurepip --upgrade >/dev/null 2>&1 || { log "$py has no pip"; exit 1; }
        fi
        python3 -m pip install --quiet "$pypi"
    fi
    python3 -c "import $mod" || { log "$pypi still not importable"; exit 1; }
done

log "done"
