#!/usr/bin/env bash
# The demo's journal size, and that its results are unchanged: runs `autotune demo` with this
# checkout's binary and, when given, with an earlier binary (BASE), then prints each journal's
# size, its records by operation, and compares the two demos' results (wall times aside).
#
#   bench/journal-size.sh [BASE_BINARY]
#
# Writes its run directories under ${OUT:-/tmp/autotune-journal-size}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/autotune-journal-size}
rm -rf "$out" && mkdir -p "$out"
cargo build --release -q -p autotune-cli
dirs=()
run() {
    local name=$1 bin=$2
    "$bin" demo --out "$out/$name" > "$out/$name.log" 2>&1
    python3 - "$out/$name" "$name" <<'PY'
import json, os, sys, collections
d, name = sys.argv[1], sys.argv[2]
path = os.path.join(d, "journal.jsonl")
n, size = collections.Counter(), collections.Counter()
with open(path) as f:
    for line in f:
        op = json.loads(line)["op"]
        n[op] += 1
        size[op] += len(line)
total = os.path.getsize(path)
ops = ", ".join(f"{op} {n[op]} records {size[op] / 1e6:.1f} MB" for op in sorted(n))
print(f"{name}: journal.jsonl {total / 1e6:.1f} MB ({ops})")
PY
    dirs+=("$out/$name")
}
if [ $# -ge 1 ]; then
    run before "$1"
fi
run after target/release/autotune
if [ ${#dirs[@]} -eq 2 ]; then
    python3 scripts/same-results.py "${dirs[0]}" "${dirs[1]}"
fi
