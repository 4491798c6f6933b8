#!/usr/bin/env bash
# Issue 3's SYN benchmarks, Portolan vs Nmap in the lab (bench/compare.sh):
#  1. -sS -T4 -p- on one clean host (goal: at most 1/3 of Nmap's time, same results);
#  2. -sS -T4 -p- on the host that drops 3% of its replies and firewalls 4 ports
#     (goal: at most 1/5 of Nmap's time, every open port, the 4 filtered).
here="$(dirname "${BASH_SOURCE[0]}")"
"$here/compare.sh" "SYN scan, clean host" -sS -T4 -p- -n -Pn 198.18.0.10
BENCH_OUT="${BENCH_OUT:-/tmp/portolan-bench}-lossy" \
    "$here/compare.sh" "SYN scan, 3% loss and 4 firewalled ports" -sS -T4 -p- -n -Pn 198.18.0.13
