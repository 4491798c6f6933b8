#!/usr/bin/env bash
# Build every fuzz target and run each for a few seconds on its committed corpus, so that a
# parser change that breaks a target's build, or crashes on a known input, fails the test
# command (scripts/test.sh runs this; see fuzz/README.md).
#
#   fuzz/smoke.sh [TARGET...]        (default: every target in fuzz/Cargo.toml)
#
# PORTOLAN_FUZZ_SECONDS  how long each target runs after its corpus (default 5)
# PORTOLAN_FUZZ_RELEASE  1: optimised build (cargo fuzz's default; about 3 times longer to
#                        build, faster to run); otherwise a dev build (--dev), enough to
#                        replay the corpus and fuzz a few seconds
# CARGO_TARGET_DIR       where to build: $CARGO_TARGET_DIR/fuzz (default fuzz/target)
#
# The committed seeds (corpus/<target>, and regressions/<target> when it exists) are read,
# never written: libFuzzer writes what it finds into a copy under the target directory.
# A crashing input is kept in artifacts/<target>/ and named in the failure message.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

log() { printf '[fuzz] %s\n' "$*" >&2; }

seconds="${PORTOLAN_FUZZ_SECONDS:-5}"
if [ "${PORTOLAN_FUZZ_RELEASE:-0}" = 1 ]; then
    profile=(); profdir=release
else
    profile=(--dev); profdir=debug
fi
tdir="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}"
tdir="${tdir:-$PWD/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || { log "no fuzz targets found"; exit 1; }

# Stable toolchain: RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz passes.
start=$SECONDS
log "building ${#targets[@]} targets"
build() {  # [TARGET]: every target when none is named
    local st
    set +e
    RUSTC_BOOTSTRAP=1 cargo fuzz build "${profile[@]}" --target-dir "$tdir" "$@" 2>&1 \
        | grep -vE '^ +(Compiling|Checking|Downloaded|Downloading|Locking|Adding|Updating) ' >&2
    st=${PIPESTATUS[0]}
    set -e
    return "$st"
}
if [ "$#" -gt 0 ]; then
    for t in "${targets[@]}"; do build "$t" || { log "$t: build failed"; exit 1; }; done
else
    build || { log "build failed"; exit 1; }
fi
log "built in $((SECONDS - start)) s"

triple=$(rustc -vV | sed -n 's/^host: //p')
bindir="$tdir/$triple/$profdir"
failed=()
for t in "${targets[@]}"; do
    work="$tdir/smoke-corpus/$t"
    rm -rf "$work"
    mkdir -p "$work" "artifacts/$t"
    seeds=("corpus/$t")
    [ -d "regressions/$t" ] && seeds+=("regressions/$t")
    for s in "${seeds[@]}"; do
        [ -d "$s" ] || { log "$t: no seed corpus at fuzz/$s"; failed+=("$t"); continue 2; }
    done
    out="$tdir/smoke-$t.log"
    if "$bindir/$t" "$work" "${seeds[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$out" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
        log "$t: ok (${runs:-?} runs in ${seconds} s)"
    else
        log "$t: FAILED, last lines of $out:"
        tail -n 30 "$out" >&2
        crash=$(grep -oE "artifacts/$t/[a-z-]+-[0-9a-f]+" "$out" | tail -1 || true)
        [ -n "$crash" ] && log "$t: reproduce with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $t $crash"
        failed+=("$t")
    fi
done

log "done in $((SECONDS - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    log "failed: ${failed[*]}"
    exit 1
fi
