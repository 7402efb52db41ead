#!/usr/bin/env bash
# Exports a run's SFT data (both TRL styles) and its RL prompt set (verl style), then loads
# each file with Hugging Face `datasets` in a local virtual environment and checks the columns
# the trainers read. Not part of CI (it installs `datasets` from PyPI).
#
#   scripts/exports-in-datasets.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-autotune-runs/exports}
VENV=${VENV:-bench/.venv-datasets}
mkdir -p "$OUT"
cargo build --release -q -p autotune-cli
BIN=target/release/autotune
TASKS=examples/tasks/arith.jsonl
"$BIN" run --tasks "$TASKS" --strategy autotune-cex --eps 0.01 --out "$OUT/run-messages" \
  --export-sft "$OUT/sft-messages.jsonl" --export-rl "$OUT/rl-prompts.jsonl" >/dev/null
"$BIN" run --tasks "$TASKS" --strategy autotune-cex --eps 0.01 --out "$OUT/run-completion" \
  --export-sft "$OUT/sft-prompt-completion.jsonl" --sft-style prompt-completion >/dev/null
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "datasets>=2.19"
fi
"$VENV/bin/python" - "$OUT" <<'PY'
import sys, datasets
out = sys.argv[1]
print("datasets", datasets.__version__)
def load(name):
    ds = datasets.load_dataset("json", data_files=f"{out}/{name}", split="train")
    print(f"{name}: {ds.num_rows} rows, columns {ds.column_names}")
    return ds
m = load("sft-messages.jsonl")
assert m.column_names == ["messages"], m.column_names
roles = [x["role"] for x in m[0]["messages"]]
assert roles == ["user", "assistant"], roles
assert all(isinstance(x["content"], str) for x in m[0]["messages"])
pc = load("sft-prompt-completion.jsonl")
assert sorted(pc.column_names) == ["completion", "prompt"], pc.column_names
assert pc.num_rows == m.num_rows
rl = load("rl-prompts.jsonl")
for c in ["data_source", "prompt", "ability", "reward_model", "extra_info"]:
    assert c in rl.column_names, c
row = rl[0]
assert row["prompt"][0]["role"] == "user"
assert isinstance(row["reward_model"]["ground_truth"], str)
meta = row["extra_info"]["autotune"]
assert set(meta) >= {"rank", "max_rank", "weight", "selected"}, meta
sel = sum(1 for r in rl["extra_info"] if r["autotune"]["selected"])
print(f"rl-prompts.jsonl: {sel} of {rl.num_rows} prompts selected by the final mask")
print("all exports load in datasets with the expected columns")
PY
