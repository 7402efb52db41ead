#!/usr/bin/env bash
# `autotune serve`'s restart time after many outcomes (issue 16): this checkout's binary and,
# when given, an earlier one (BASE), each on a fresh store filled with the same outcomes over
# HTTP, SIGKILLed, then started again (crates/autotune-service/examples/restart.rs).
#
#   bench/service-restart.sh [BASE_BINARY] [OUTCOMES]     (default 10,000,000 outcomes)
#
# Stores go under ${OUT:-/tmp/autotune-service-restart} (about 1 GB each at 10M outcomes
# without compaction); removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-}
n=${2:-10000000}
out=${OUT:-/tmp/autotune-service-restart}
rm -rf "$out" && mkdir -p "$out"
cargo build --release -q -p autotune-cli
cargo build --release -q -p autotune-service --example restart
cp target/release/autotune "$out/autotune-new"
echo "# bench/service-restart.sh $(date -u +%F), $(nproc) cores, $n outcomes"
for bin in ${base:+"$base"} "$out/autotune-new"; do
    target/release/examples/restart --binary "$bin" --outcomes "$n" --dir "$out/store"
    rm -rf "$out/store"
done
