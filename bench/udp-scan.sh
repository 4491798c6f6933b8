#!/usr/bin/env bash
# Issue 3's UDP benchmark, Portolan vs Nmap in the lab (bench/compare.sh):
#   -sU -T4 -F on the host running DNS (dnsmasq) and SNMP (snmpd).
# Goal: at most 1/5 of Nmap's time, the same open ports. The target's kernel limits ICMP
# port unreachables (one a second after a burst), which is what makes Nmap slow; the
# silent ports that limit leaves unanswered are open|filtered for both tools.
here="$(dirname "${BASH_SOURCE[0]}")"
BENCH_PROTO=udp BENCH_RUNS="${BENCH_RUNS:-1}" \
    "$here/compare.sh" "UDP scan, DNS + SNMP host" -sU -T4 -F -n -Pn 198.18.0.11
