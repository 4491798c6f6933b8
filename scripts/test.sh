#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, output tests against Nmap's own
# tools (xmllint + nmap.dtd, ndiff, python-libnmap) and the lab tests (real services in
# network namespaces, compared with ground truth and with Nmap).
#
# As root it installs whatever is missing (scripts/install-lab-deps.sh) and requires the
# lab tests and the web view's browser test to run. Without root it runs everything that
# needs no privileges; the lab and browser tests then say "skipped".
#
# Last, it builds every fuzz target and runs each a few seconds on its committed corpus
# (fuzz/smoke.sh; installs cargo-fuzz if missing). PORTOLAN_FUZZ=0 leaves that out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The packages the build links against (and Nmap's scripts, read at run time).
bash scripts/install-build-deps.sh --runtime
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/install-lab-deps.sh
    export PORTOLAN_LAB=required
    # The PostgreSQL store's tests start their own cluster (crates/portolan-testpg).
    export PORTOLAN_PG=required
    # The web view's test in headless Chromium (installed just above) must run too.
    export PORTOLAN_BROWSER=required
else
    echo "[test] not root: lab tests will be skipped (run as root for the full suite)" >&2
fi

echo "[test] cargo fmt --check" >&2
cargo fmt --all -- --check
echo "[test] cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "[test] lab services' own tests (python3 unittest)" >&2
python3 -m unittest discover -s lab -p 'test_*.py'
echo "[test] cargo test" >&2
log=$(mktemp)
cargo test --workspace --locked -- --nocapture 2>&1 | tee "$log"
passed=$(grep -oE '^test result: ok\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
rm -f "$log"

if [ "${PORTOLAN_FUZZ:-1}" = 0 ]; then
    echo "[test] fuzz smoke run skipped (PORTOLAN_FUZZ=0)" >&2
else
    echo "[test] fuzz targets: build, replay the corpus, fuzz ${PORTOLAN_FUZZ_SECONDS:-5} s each" >&2
    bash fuzz/smoke.sh
fi
echo "test: $passed passed, 0 failed"
