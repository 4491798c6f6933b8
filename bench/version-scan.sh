#!/usr/bin/env bash
# Issue 4's benchmark: portolan -sV -T4 and nmap -sV -T4 on the same lab ports, side by
# side in one run: the lab's nine known services (vsftpd, OpenSSH, nginx, nginx over TLS,
# Redis, dnsmasq, MariaDB, PostgreSQL, memcached), services that serve one client at a
# time (issue 13: an sshd with MaxStartups 1, net-snmp's SMUX, a single-threaded web
# server), a silent listener, and hostile ones (never answers, closes at once). Prints each tool's wall time, the ratio, and whether
# service, product and version agree on every port Nmap identifies.
#
# Env: PORTOLAN_BIN (default target/release/portolan), BENCH_RUNS (default 1: Nmap needs
#      minutes for the silent ports), BENCH_OUT (default /tmp/portolan-bench-sv),
#      SV_HOSTILE=0 to leave out the silent and hostile ports.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB="$ROOT/lab/lab.sh"
BIN="${PORTOLAN_BIN:-$ROOT/target/release/portolan}"
RUNS="${BENCH_RUNS:-1}"
OUT="${BENCH_OUT:-/tmp/portolan-bench-sv}"
export PLAB_PREFIX="${PLAB_PREFIX:-pbench}"
export PLAB_DIR="${PLAB_DIR:-/tmp/portolan-bench-lab}"
log() { printf '[bench] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)
cleanup() { "$LAB" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$LAB" up >/dev/null
rm -rf "$OUT"; mkdir -p "$OUT"
PORTS="21,22,53,80,199,443,3306,5432,6379,8000,11211"
HOSTS="198.18.0.10 198.18.0.11 198.18.0.15 198.18.0.17"
if [ "${SV_HOSTILE:-1}" = 1 ]; then
    PORTS="$PORTS,31337,7002,7005"
    HOSTS="$HOSTS 198.18.0.16"
fi
ARGS=(-sV -T4 -n -Pn -p "$PORTS")
# shellcheck disable=SC2206
TARGETS=($HOSTS)
for i in $(seq 1 "$RUNS"); do
    for tool in nmap portolan; do
        cmd=nmap; [ "$tool" = portolan ] && cmd="$BIN"
        t0="$(date +%s.%N)"
        ip netns exec "$PLAB_PREFIX-scan" "$cmd" "${ARGS[@]}" -oX "$OUT/$tool-$i.xml" "${TARGETS[@]}" \
            >"$OUT/$tool-$i.log" 2>&1 || log "$tool run $i failed"
        t1="$(date +%s.%N)"
        awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", b-a}' >> "$OUT/$tool.times"
        log "$tool run $i: $(tail -1 "$OUT/$tool.times")s"
    done
done
python3 - "$OUT" "$RUNS" "${ARGS[*]} ${TARGETS[*]}" <<'PY'
import os, statistics, sys
import xml.etree.ElementTree as ET
out, runs, args = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def times(t):
    return [float(x) for x in open(os.path.join(out, t + ".times")).read().split()]
def services(path):
    res = {}
    for h in ET.parse(path).getroot().iter("host"):
        ip = next(a.get("addr") for a in h.findall("address") if a.get("addrtype") in ("ipv4", "ipv6"))
        for p in h.iter("port"):
            s = p.find("service")
            if s is None or s.get("method") != "probed":
                continue
            name = ("ssl/" if s.get("tunnel") == "ssl" else "") + s.get("name", "")
            res[(ip, int(p.get("portid")))] = (name, s.get("product", ""), s.get("version", ""))
    return res
pt, nt = times("portolan"), times("nmap")
pm, nm = statistics.median(pt), statistics.median(nt)
print()
print("-sV: %s  (%d run(s) each, median wall time)" % (args, runs))
print("%-9s %9s   %s" % ("tool", "median_s", "runs (s)"))
print("%-9s %9.3f   %s" % ("portolan", pm, " ".join("%.3f" % t for t in pt)))
print("%-9s %9.3f   %s" % ("nmap", nm, " ".join("%.3f" % t for t in nt)))
print("ratio portolan/nmap: %.2f" % (pm / nm))
ref = services(os.path.join(out, "nmap-1.xml"))
diff = []
for i in range(1, runs + 1):
    ours = services(os.path.join(out, "portolan-%d.xml" % i))
    diff += ["%s:%d nmap %s, portolan %s" % (k[0], k[1], v, ours.get(k)) for k, v in sorted(ref.items()) if ours.get(k) != v]
print("ports Nmap identified: %d; identical answers: %s" % (len(ref), "yes" if not diff else "NO"))
for d in diff:
    print("  " + d)
for k, v in sorted(ref.items()):
    print("  %s:%d %s" % (k[0], k[1], " ".join(x for x in v if x)))
PY
