#!/usr/bin/env bash
# Issue 11's benchmark: Nmap's scripts run by portolan and by nmap on the same lab hosts, in
# one run: `-sC` and `--script vuln` (BENCH_SETS to choose). Prints each tool's wall time,
# the ratio, and how many findings (host, port, script) are identical.
#
# Nmap's own output is not stable from run to run for some scripts (salts, uptimes, table
# key order): nmap runs twice, and a finding whose text differs between Nmap's two runs is
# counted as "unstable in Nmap" rather than compared. Texts are compared as the lab test
# compares them: lines sorted (a plain table's keys come in Lua's salted `pairs` order),
# the ids of a vulns report sorted, HTTP dates left out.
# BENCH_ANALYSE_ONLY=1 prints the figures again from the outputs of the last run.
#
# Env: PORTOLAN_BIN (default target/release/portolan), BENCH_OUT (default
#      /tmp/portolan-bench-nse), BENCH_SETS (default "sC vuln"), BENCH_PORTS, BENCH_HOSTS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB="$ROOT/lab/lab.sh"
BIN="${PORTOLAN_BIN:-$ROOT/target/release/portolan}"
OUT="${BENCH_OUT:-/tmp/portolan-bench-nse}"
SETS="${BENCH_SETS:-sC vuln}"
export PLAB_PREFIX="${PLAB_PREFIX:-pbnse}"
export PLAB_DIR="${PLAB_DIR:-/tmp/portolan-bench-nse-lab}"
log() { printf '[bench] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --locked)
cleanup() { "$LAB" down >/dev/null 2>&1 || true; }
if [ "${BENCH_ANALYSE_ONLY:-0}" != 1 ]; then
    trap cleanup EXIT
    "$LAB" up >/dev/null
fi
PORTS="${BENCH_PORTS:-21,22,80,139,443,445,3306,5432,6379,8443,9443,11211}"
HOSTS="${BENCH_HOSTS:-198.18.0.10 198.18.0.15 198.18.0.20 198.18.0.21 198.18.0.22}"
# shellcheck disable=SC2206
TARGETS=($HOSTS)
run() { # tool set tag
    local cmd=nmap; [ "$1" = portolan ] && cmd="$BIN"
    local sel=(-sC); [ "$2" = vuln ] && sel=(--script vuln)
    local t0 t1
    t0="$(date +%s.%N)"
    ip netns exec "$PLAB_PREFIX-scan" "$cmd" "${sel[@]}" -T4 -n -Pn -p "$PORTS" \
        -oX "$OUT/$1-$2-$3.xml" "${TARGETS[@]}" >"$OUT/$1-$2-$3.log" 2>&1 || log "$1 $2 failed"
    t1="$(date +%s.%N)"
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", b-a}' > "$OUT/$1-$2-$3.time"
    log "$1 $2 ($3): $(cat "$OUT/$1-$2-$3.time") s"
}
if [ "${BENCH_ANALYSE_ONLY:-0}" != 1 ]; then
    rm -rf "$OUT"; mkdir -p "$OUT"
    for set in $SETS; do
        run nmap "$set" a
        run portolan "$set" a
        run nmap "$set" b
    done
fi
python3 - "$OUT" "$SETS" <<'PY'
import os, sys
import xml.etree.ElementTree as ET
out, sets = sys.argv[1], sys.argv[2].split()
def norm(text):
    lines = []
    for l in (text or "").split("\n"):
        l = l.rstrip()
        if " GMT" in l or l.lstrip().startswith("Cipher Suite: "):
            continue
        if l.lstrip().startswith("IDs:"):
            l = "IDs: " + " ".join(sorted(l.lstrip()[4:].split()))
        lines.append(l)
    return "\n".join(sorted(lines))
def findings(path):
    res = {}
    root = ET.parse(path).getroot()
    for h in root.iter("host"):
        ip = next(a.get("addr") for a in h.findall("address") if a.get("addrtype") in ("ipv4", "ipv6"))
        for p in h.iter("port"):
            for s in p.findall("script"):
                res[(ip, p.get("protocol") + "/" + p.get("portid"), s.get("id"))] = norm(s.get("output"))
        hs = h.find("hostscript")
        if hs is not None:
            for s in hs.findall("script"):
                res[(ip, "host", s.get("id"))] = norm(s.get("output"))
    for tag in ("prescript", "postscript"):
        for el in root.findall(tag):
            for s in el.findall("script"):
                res[("-", tag, s.get("id"))] = norm(s.get("output"))
    return res
def t(name):
    return float(open(os.path.join(out, name + ".time")).read())
for s in sets:
    pa, na, nb = (findings(os.path.join(out, "%s-%s-%s.xml" % (tool, s, tag)))
                  for tool, tag in (("portolan", "a"), ("nmap", "a"), ("nmap", "b")))
    unstable = {k for k in set(na) | set(nb) if na.get(k) != nb.get(k)}
    stable = {k: v for k, v in na.items() if k not in unstable}
    same = [k for k, v in stable.items() if pa.get(k) == v]
    differ = [k for k in stable if pa.get(k) != stable[k]]
    extra = [k for k in pa if k not in na and k not in nb]
    pt, nt = t("portolan-%s-a" % s), t("nmap-%s-a" % s)
    print()
    print("--script set: %s" % ("-sC" if s == "sC" else "--script " + s))
    print("%-9s %9s" % ("tool", "wall_s"))
    print("%-9s %9.3f" % ("portolan", pt))
    print("%-9s %9.3f   (second run %.3f)" % ("nmap", nt, t("nmap-%s-b" % s)))
    print("ratio portolan/nmap: %.2f" % (pt / nt))
    print("findings: nmap %d (%d unstable between Nmap's own runs); identical %d of %d stable; differing %d; only portolan %d"
          % (len(na), len(unstable), len(same), len(stable), len(differ), len(extra)))
    for k in sorted(differ):
        print("  differs: %s %s %s" % k)
        print("    nmap:     %r" % stable[k][:200])
        print("    portolan: %r" % (pa.get(k) or "")[:200])
    for k in sorted(extra):
        print("  only portolan: %s %s %s" % k)
PY
