#!/usr/bin/env bash
# Issue 2's benchmark: -sT -T4 -p- on two clean lab hosts, Portolan vs Nmap (bench/compare.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/compare.sh" "Connect scan, two clean hosts" \
    -sT -T4 -p- -n -Pn 198.18.0.10 198.18.0.11
