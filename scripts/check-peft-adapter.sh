#!/usr/bin/env bash
# `autotune export-hf --adapter` checked in PEFT (issue 17), output in
# docs/results/peft-adapter.txt: a LoRA student (lora_rank=4 on every projection) fine-tunes a
# small random Qwen2 on a task file; its adapter, loaded by `PeftModel.from_pretrained` onto
# the base, must compute the logits of the same student exported merged.
# Needs the venv of scripts/make-hf-fixtures.sh (transformers and peft on CPU torch).
#
#   scripts/check-peft-adapter.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p autotune-cli --features neural --quiet
py=bench/pytorch/.venv/bin/python
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
$py scripts/check_peft_adapter.py base "$out/base"
for i in $(seq 0 39); do
  d=$(( (i * 7) % 10 ))
  echo "{\"id\": \"r$i\", \"prompt\": \"Copy the digit: $d (item $i)\", \"answer\": $d}"
done > "$out/tasks.jsonl"
target/release/autotune run --tasks "$out/tasks.jsonl" --verifier numeric --student neural \
  --model "$out/base" --param lora_rank=4 --param lr=0.01 --param min_steps=20 \
  --param max_steps=20 --param max_len=96 --strategy uniform --eps 0.1 --max-demos 32 \
  --out "$out/run" --save-model "$out/student.json" >/dev/null
target/release/autotune export-hf "$out/student.json" "$out/adapter" --adapter
target/release/autotune export-hf "$out/student.json" "$out/merged"
{
  echo "# scripts/check-peft-adapter.sh ($(date -u +%F), $(nproc) cores)"
  $py scripts/check_peft_adapter.py compare "$out/base" "$out/adapter" "$out/merged" 2>/dev/null
} | tee docs/results/peft-adapter.txt
