#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with cargo fuzz (libFuzzer), SECONDS_PER_TARGET each
# (default 60), and prints a table: target, seconds, runs, findings. Not part of CI: the
# findings so far are regression tests next to the code they broke (docs/results/fuzz.txt).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Environment: FUZZ_TARGETS="a b" runs only those targets; FUZZ_ARGS adds libFuzzer flags
# (e.g. "-max_len=30000"). It installs cargo-fuzz (and a nightly toolchain) when missing.
# Every target runs without a sanitizer (safe Rust; ASan finds nothing more and runs slower)
# and with debug assertions, so arithmetic overflow panics. Each run grows fuzz/corpus/TARGET
# from the committed seeds in fuzz/seeds/TARGET; a finding is written to fuzz/artifacts/TARGET
# (reproduce it: cargo +nightly fuzz run -s none -a TARGET fuzz/artifacts/TARGET/FILE).
set -euo pipefail

secs="${1:-60}"
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
    ;;
esac
cd "$(dirname "$0")/.."

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi

flags=(-s none -a)
cargo +nightly fuzz build "${flags[@]}"
targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"

mkdir -p fuzz/logs
rows=()
failed=0
for t in $targets; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/seeds/$t"
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    log="fuzz/logs/$t.log"
    start=$(date +%s)
    status=0
    # shellcheck disable=SC2086
    cargo +nightly fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
    took=$(($(date +%s) - start))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ -z "$runs" ]; then
        runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    findings=$(($(find "fuzz/artifacts/$t" -type f | wc -l) - before))
    if [ "$status" -ne 0 ] && [ "$findings" -eq 0 ]; then
        findings="error (exit $status, see $log)"
    fi
    if [ "$status" -ne 0 ]; then
        failed=1
    fi
    rows+=("$(printf '%-18s %8s %12s  %s' "$t" "${took}s" "${runs:-?}" "$findings")")
done

printf '\n%-18s %8s %12s  %s\n' target time runs findings
for r in "${rows[@]}"; do
    echo "$r"
done
if [ "$failed" -ne 0 ]; then
    echo
    echo "findings are in fuzz/artifacts/TARGET; logs in fuzz/logs/TARGET.log"
    exit 1
fi
