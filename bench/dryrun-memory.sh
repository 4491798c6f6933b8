#!/usr/bin/env bash
# Issue 3's memory benchmark: peak memory of a discovery sweep (-sn, Nmap's default raw
# probes) over a /8 in dry-run mode, which builds and prints every probe and sends none.
# Goal: under 64 MB. It runs in a namespace of its own with no route at all, so even a
# bug could send nothing anywhere; torn down on exit. Neither zmap nor masscan has a dry
# run of the same probe set, so the figure is set against the budget.
#
# Env: PORTOLAN_BIN (default target/release/portolan), DRY_TARGET (default 10.0.0.0/8),
#      DRY_RETRIES (--max-retries, default 0: every probe printed once).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PORTOLAN_BIN:-$ROOT/target/release/portolan}"
TARGET="${DRY_TARGET:-10.0.0.0/8}"
RETRIES="${DRY_RETRIES:-0}"
NS=pdryrun
log() { printf '[dryrun] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root (network namespace)"; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release)
[ -x /usr/bin/time ] || { log "/usr/bin/time missing (apt-get install time)"; exit 1; }
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
[ -z "$(ip -n "$NS" route show)" ] || { log "namespace has routes"; exit 1; }
out="$(mktemp)"
lines="$( { ip netns exec "$NS" /usr/bin/time -v "$BIN" -sn --dryrun --max-retries "$RETRIES" "$TARGET" \
    2>"$out" | wc -l; } )"
rss_kb="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")"
wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out")"
rm -f "$out"
echo
echo "dry-run discovery sweep of $TARGET (-sn, default probes, --max-retries $RETRIES)"
echo "probes printed: $lines"
echo "wall time:      $wall"
awk -v kb="$rss_kb" 'BEGIN { printf "peak RSS:       %.1f MB (budget 64 MB: %s)\n", kb/1024, (kb < 65536 ? "met" : "NOT met") }'
