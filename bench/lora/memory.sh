#!/usr/bin/env bash
# Peak memory of LoRA on a 0.5B Qwen2-shaped checkpoint (issue 17: within 8 GB), output in
# docs/results/lora-memory.txt:
#   1. the library alone (`examples/lora_memory.rs`): load the checkpoint, attach rank-8
#      adapters to every projection, 2 AdamW steps on 4 x 64 tokens, merge, generate;
#   2. the CLI: `autotune run --tasks ... --student neural --model DIR --param lora_rank=8`
#      (2 training steps, a held-out evaluation, the journal and --save-model), peak RSS from
#      /usr/bin/time -v.
# The checkpoint has random weights (bench/lora/make_qwen2_shape.py, Qwen2.5-0.5B's shape,
# bf16, about 1 GB) and is made once into bench/lora/.data (gitignored). Needs the venv of
# bench/pytorch/setup.sh for that step only.
#
#   bench/lora/memory.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
data=bench/lora/.data
model=$data/qwen2-0.5b
if [[ ! -f $model/model.safetensors ]]; then
  bench/pytorch/setup.sh
  bench/pytorch/.venv/bin/python bench/lora/make_qwen2_shape.py "$model"
fi
cargo build --release -p autotune-cli --features neural --quiet
cargo build --release -p autotune-neural --example lora_memory --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 0 19); do
  d=$(( (i * 7) % 10 ))
  echo "{\"id\": \"r$i\", \"prompt\": \"Copy the digit: $d (item $i)\", \"answer\": $d}"
done > "$work/tasks.jsonl"
{
  echo "# bench/lora/memory.sh ($(date -u +%F), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB)"
  echo
  echo "## 1. library: target/release/examples/lora_memory $model --rank 8 --steps 2 --batch 4 --seq 64 --new 8"
  target/release/examples/lora_memory "$model" --rank 8 --steps 2 --batch 4 --seq 64 --new 8
  echo
  echo "## 2. CLI: autotune run --tasks (20 records) --student neural --model $model --param lora_rank=8"
  /usr/bin/time -v target/release/autotune run --tasks "$work/tasks.jsonl" --verifier numeric \
    --student neural --model "$model" --param lora_rank=8 --param min_steps=2 \
    --param max_steps=2 --param max_len=96 --param batch=4 --strategy uniform --eps 0.5 \
    --max-demos 8 --out "$work/run" --save-model "$work/student.json" 2> "$work/time.txt" \
    | grep -v "^wrote\|^report"
  grep -E "Maximum resident|Elapsed" "$work/time.txt" | sed 's/^\s*//'
  echo "saved student: $(du -h "$work/student.json" | cut -f1); journal: $(du -h "$work/run/journal.jsonl" 2>/dev/null | cut -f1)"
} | sed "s#$work/##g" | tee docs/results/lora-memory.txt
