#!/usr/bin/env bash
# Install the Debian packages Portolan's build links against, when they are missing:
#   lua-lpeg-dev  LPeg for Lua 5.4 (static liblua5.4-lpeg.a), as Nmap's Debian build links it
#   libssl-dev    OpenSSL, for TLS sockets and the `openssl` module of Nmap's scripts
#   zlib1g-dev    zlib, for the `zlib` module of Nmap's scripts
#   pkg-config    how the openssl and zlib crates find them
# With --runtime it also installs nmap-common: Nmap's scripts, nse_main.lua and data files,
# which Portolan reads at run time for -sC/--script/-sV (it never copies them).
#
# Packages already present are left alone; nothing is upgraded (--no-upgrade) and no
# recommends are pulled in. Needs root (or sudo) only when something is missing.
set -euo pipefail
log() { printf '[install-build-deps] %s\n' "$*" >&2; }

PKGS=(lua-lpeg-dev libssl-dev zlib1g-dev pkg-config)
[ "${1:-}" = "--runtime" ] && PKGS+=(nmap-common)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        log "missing Debian packages: ${missing[*]}; install them as root:"
        log "  apt-get install --no-install-recommends ${missing[*]}"
        exit 1
    fi
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >/dev/null 2>&1 || true
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}" >/dev/null
