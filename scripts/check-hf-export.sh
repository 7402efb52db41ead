#!/usr/bin/env bash
# `autotune export-hf` checked in transformers (issue 17), output in docs/results/hf-export.txt:
#   1. every Hugging Face parity fixture, read by AutoTune and written back by it, loads in
#      transformers and computes what the original computed (logits and greedy tokens of the
#      fixture's expected.json);
#   2. the arith student (trained by the command below, or ARITH_STUDENT=FILE from
#      `autotune run --task arith ... --save-model FILE` with the same --param values),
#      exported, gives in transformers the greedy tokens AutoTune gives on 200 held-out
#      prompts (`export-hf --check 200`: the saved student's own task and parameters).
# Needs the venv of scripts/make-hf-fixtures.sh (transformers on CPU torch).
#
#   scripts/check-hf-export.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p autotune-cli --features neural --quiet
fixtures=crates/autotune-neural/tests/fixtures/hf
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pairs=()
for f in gpt2-tiny gpt2-tiny-bf16-sharded llama-tiny qwen2-tiny; do
  target/release/autotune export-hf "$fixtures/$f" "$out/$f"
  pairs+=("$out/$f:$fixtures/$f/expected.json")
done
arith=(--param max_digits=4 --param mul_max_digits=1 --param d_model=64 --param layers=2)
student=${ARITH_STUDENT:-}
if [[ -z "$student" ]]; then
  student=$out/arith-student.json
  target/release/autotune run --task arith --strategy autotune-cex --eps 0.05 \
    --strategy-param batch=64 "${arith[@]}" --param lr=0.005 --param schedule=cosine \
    --param min_steps=100 --out "$out/arith-run" --save-model "$student" >/dev/null
fi
target/release/autotune export-hf "$student" "$out/arith-student" --check 200
pairs+=("$out/arith-student:$out/arith-student/autotune_check.json")
{
  echo "# scripts/check-hf-export.sh ($(date -u +%F), $(nproc) cores)"
  bench/pytorch/.venv/bin/python scripts/check_hf_export.py "${pairs[@]}" 2>/dev/null
} | sed "s#$out/##" | tee docs/results/hf-export.txt
