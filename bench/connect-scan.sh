#!/usr/bin/env bash
# Connect scan benchmarks, Portolan vs Nmap (bench/compare.sh):
# - issue 2: -sT -T4 -p- on two clean lab hosts;
# - issue 13: -sT over a /24 where almost nothing answers (lab/sparse.sh), once on-link
#   (ARP goes unanswered) and once routed into a black hole (nft drops silently), each
#   with one live host.
set -euo pipefail
D="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${BENCH_OUT:-/tmp/portolan-bench}"
BENCH_OUT="$OUT/clean" "$D/compare.sh" "Connect scan, two clean hosts" \
    -sT -T4 -p- -n -Pn 198.18.0.10 198.18.0.11
export BENCH_LAB="$D/../lab/sparse.sh"
export PLAB_PREFIX="${SPARSE_PREFIX:-psparse}" PLAB_DIR="${SPARSE_DIR:-/tmp/psparse-lab}"
# Neighbours a scan left FAILED make the next scan's connects fail with host-unreach within
# the timeouts, and the RTT of those errors slows Nmap and Portolan alike (25 s instead of
# 3): every run starts from an empty neighbour table.
export BENCH_BEFORE_RUN="ip neigh flush all"
BENCH_OUT="$OUT/sparse-onlink" "$D/compare.sh" "Connect scan, sparse on-link /24" \
    -sT -Pn -n -p 22,80,443 --exclude 198.18.10.20,198.18.10.255 198.18.10.0/24
BENCH_OUT="$OUT/sparse-blackhole" "$D/compare.sh" "Connect scan, sparse /24 routed into a black hole" \
    -sT -Pn -n -p 22,80,443 --exclude 198.18.11.20,198.18.11.255 198.18.11.0/24
