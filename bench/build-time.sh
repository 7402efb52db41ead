#!/usr/bin/env bash
# Cold release build of the CLI, as a newcomer's first `cargo run --release -p autotune-cli --
# demo` does it: for each REV (a commit of this repository), a fresh clone and a fresh target
# directory, `cargo build --release -p autotune-cli --timings`; prints the wall time, the
# binary's size and the slowest units of the build, then the demo's wall time with that binary.
# The crates' sources are taken from cargo's local registry (already downloaded), so the
# time is the build's, not the download's.
#
#   bench/build-time.sh REV [REV...]      e.g. bench/build-time.sh HEAD~1 HEAD
#
# Run it alone: both cores are the build's.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out=${OUT:-/tmp/autotune-build-time}
rm -rf "$out" && mkdir -p "$out"
for rev in "$@"; do
    sha=$(git rev-parse --short "$rev")
    dir="$out/$sha"
    git clone -q "$repo" "$dir/src"
    git -C "$dir/src" checkout -q "$sha"
    start=$(date +%s.%N)
    (cd "$dir/src" && CARGO_TARGET_DIR="$dir/target" cargo build --release -q -p autotune-cli --timings)
    end=$(date +%s.%N)
    bin="$dir/target/release/autotune"
    printf '%s: cold build %.0f s, binary %.1f MB\n' "$sha" "$(echo "$end - $start" | bc)" \
        "$(echo "$(stat -c %s "$bin") / 1000000" | bc -l)"
    python3 - "$dir"/target/cargo-timings/cargo-timing-*.html <<'PY'
import json, re, sys
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", open(sys.argv[1]).read(), re.S).group(1))
units.sort(key=lambda u: -u["duration"])
total = sum(u["duration"] for u in units)
print(f"  {len(units)} units, {total:.0f} s summed; slowest: " + ", ".join(
    f"{u['name']} {u['duration']:.0f} s" for u in units[:5]))
PY
    "$bin" demo --out "$dir/demo" > "$dir/demo.log" 2>&1
    echo "  demo: $(grep 'total wall time' "$dir/demo.log")"
done
