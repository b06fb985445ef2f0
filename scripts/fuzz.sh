#!/usr/bin/env bash
# Runs every cargo-fuzz (libFuzzer) target for N seconds each (default 120).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Installs cargo-fuzz from crates.io when it is missing. cargo-fuzz needs
# nightly compiler flags; on a stable toolchain they are unlocked with
# RUSTC_BOOTSTRAP=1. Corpora grow in fuzz/corpus/<target>/ (seeded from
# tests/fixtures/fuzz/<target>/), crashes land in fuzz/artifacts/<target>/;
# copy a crash into tests/fixtures/fuzz/<target>/ so the regression tests
# (tests/api/fuzz_regressions.rs) replay it. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-120}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(period json_decode snapshot_read wal_read)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
failed=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    cp -n tests/fixtures/fuzz/"$target"/* "$corpus"/ 2>/dev/null || true
    echo "== $target: ${seconds}s"
    if ! cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "findings in: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "no findings"
