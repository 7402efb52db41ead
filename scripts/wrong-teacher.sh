#!/usr/bin/env bash
# A teacher that answers wrong: a student trained on 10 demonstrations of examples/tasks/arith.jsonl,
# served as the teacher (--teacher-checkpoint). Prints, per strategy, the teacher calls bought,
# how many the verifier rejected, the stop and the exit code. Output: docs/results/wrong-teacher.txt.
# A few seconds after the release build.
set -uo pipefail
cd "$(dirname "$0")/.."
A=target/release/autotune
O=autotune-runs/wrong-teacher
rm -rf "$O"
mkdir -p "$O"
T=examples/tasks/arith.jsonl
$A run --tasks $T --strategy uniform --eps 0.1 --max-demos 10 --run-to-stop --out $O/weak --save-model $O/weak.json > /dev/null
for s in uniform autotune-cex autotune-filterboost; do
  echo "\$ autotune run --tasks $T --strategy $s --eps 0.02 --teacher-checkpoint weak.json"
  $A run --tasks $T --strategy $s --eps 0.02 --teacher-checkpoint $O/weak.json --out $O/$s 2>&1 | grep -E "^(ledger|teacher|error|$s)"
  echo "exit ${PIPESTATUS[0]}"
  echo
done
