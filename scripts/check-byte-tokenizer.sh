#!/usr/bin/env bash
# The byte tokenizer of a task-file student, exported by `autotune export-hf`, read by
# transformers (issue 17); output in docs/results/byte-tokenizer.txt. Needs the venv of
# scripts/make-hf-fixtures.sh.
#
#   scripts/check-byte-tokenizer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p autotune-cli --features neural --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq 0 39); do
  d=$(( (i * 7) % 10 ))
  echo "{\"id\": \"r$i\", \"prompt\": \"Copy the digit: $d (item $i)\", \"answer\": $d}"
done > "$out/tasks.jsonl"
# tied_head=true: GPT-2's head (the embedding, no bias) at any width.
target/release/autotune run --tasks "$out/tasks.jsonl" --verifier numeric --student neural \
  --param d_model=64 --param tied_head=true --param layers=1 --param heads=2 --param max_len=64 --param min_steps=100 \
  --param max_steps=100 --strategy uniform --eps 0.1 --max-demos 40 --out "$out/run" \
  --save-model "$out/student.json" >/dev/null
{
  echo "# scripts/check-byte-tokenizer.sh ($(date -u +%F), $(nproc) cores)"
  target/release/autotune export-hf "$out/student.json" "$out/hf"
  bench/pytorch/.venv/bin/python scripts/check_byte_tokenizer.py "$out/hf" 2>/dev/null
} | sed "s#$out/##g" | tee docs/results/byte-tokenizer.txt
