#!/usr/bin/env bash
# Training and generation throughput of autotune-neural's Llama-family model (Rust, burn flex)
# against transformers' LlamaForCausalLM on this CPU (2 threads each), the same config and
# initial weights (issue 17). Not part of CI.
#
#   bench/compare-llama.sh                    # both sizes, ROUNDS=3 alternations
#   ROUNDS=5 STEPS=10 bench/compare-llama.sh
#
# For each size, the Rust example (crates/autotune-neural/examples/throughput.rs, --family
# llama) writes its initial weights as a Hugging Face directory (--dump-hf) and
# bench/pytorch/bench_hf.py loads them into transformers, so both compute the same function:
# their first training step's losses must agree. The two then run one after another, ROUNDS
# times, the order reversed every other round; the table gives medians and ratios
# (Rust / transformers). Output: docs/results/llama-throughput.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-5}
GEN_REPS=${GEN_REPS:-2}
OUT=${OUT:-docs/results/llama-throughput.txt}
bench/pytorch/setup.sh >/dev/null
py=bench/pytorch/.venv/bin/python
cargo build --release -p autotune-neural --example throughput --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# name: model flags; batch flags
sizes=(
  "2M|--vocab 512 --d-model 128 --layers 6 --heads 4 --kv-heads 2 --d-ff 512 --max-len 128|--batch 32 --seq 64 --prompt 16 --new 32"
  "30M|--vocab 4096 --d-model 512 --layers 7 --heads 8 --kv-heads 4 --d-ff 2048 --max-len 128|--batch 16 --seq 64 --prompt 16 --new 32"
)
result() { grep '^RESULT ' | sed 's/^RESULT //'; }
{
  echo "# bench/compare-llama.sh ($(date -u +%F), $(nproc) cores, ROUNDS=$ROUNDS STEPS=$STEPS GEN_REPS=$GEN_REPS)"
  for size in "${sizes[@]}"; do
    IFS='|' read -r name model batch <<< "$size"
    dir=$work/$name
    rust=(target/release/examples/throughput --family llama $model $batch --steps "$STEPS" --gen-reps "$GEN_REPS")
    RAYON_NUM_THREADS=2 "${rust[@]}" --dump-hf "$dir" > "$work/$name-dump.txt"
    : > "$work/$name-rust.jsonl"; : > "$work/$name-hf.jsonl"
    for r in $(seq 1 "$ROUNDS"); do
      run_rust() { RAYON_NUM_THREADS=2 "${rust[@]}" | result >> "$work/$name-rust.jsonl"; }
      run_hf() { $py bench/pytorch/bench_hf.py "$dir" $batch --steps "$STEPS" --gen-reps "$GEN_REPS" 2>/dev/null | result >> "$work/$name-hf.jsonl"; }
      if (( r % 2 )); then run_rust; run_hf; else run_hf; run_rust; fi
    done
    $py - "$name" "$work/$name-rust.jsonl" "$work/$name-hf.jsonl" <<'PY'
import json, statistics, sys
name, rust, hf = sys.argv[1], *[[json.loads(l) for l in open(p)] for p in sys.argv[2:]]
med = lambda rows, k: statistics.median(r[k] for r in rows)
print(f"\n## {name}: {rust[0]['params']:,} parameters, batch {rust[0]['batch']} x {rust[0]['seq']} tokens, generation {rust[0]['batch']} x ({rust[0]['prompt']} + {rust[0]['new']}); {hf[0]['impl']}")
print(f"first-step loss: AutoTune {rust[0]['first_loss']:.6f}, transformers {hf[0]['first_loss']:.6f} (same initial weights)")
print("| | AutoTune (burn flex) | transformers | ratio |")
print("|---|---|---|---|")
for k, label in [("train_tokens_per_s", "training tokens/s"), ("gen_tokens_per_s", "generation tokens/s")]:
    a, b = med(rust, k), med(hf, k)
    print(f"| {label} (median of {len(rust)}) | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")
PY
  done
} | tee "$OUT"
