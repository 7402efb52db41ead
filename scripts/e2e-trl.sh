#!/usr/bin/env bash
# TRL's GRPOTrainer with AutoTune choosing the prompts, run for real on the CPU: one process,
# then two (`torchrun --nproc_per_node 2`). A tiny Qwen2 from a config and a
# byte-level tokenizer built in scripts/e2e_trl.py (no hub download); `autotune serve` on
# 127.0.0.1 with a fresh store. Checks, per run: no duplicate outcome, no lease left open,
# every completion trained reported exactly once, every lease trained or released.
# Output: docs/results/e2e-trl.txt (with the package versions).
#
#   scripts/e2e-trl.sh [STEPS]      (default 20; needs network for the first venv setup)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}
bench/pytorch/setup.sh > /dev/null
py=bench/pytorch/.venv/bin/python
$py -c "import trl" 2>/dev/null || bench/pytorch/.venv/bin/pip install --quiet trl==1.16.0
cargo build --release -q -p autotune-cli
tmp=$(mktemp -d)
port=$($py -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
target/release/autotune serve --port "$port" --store "$tmp/store.sqlite" > "$tmp/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
check() {
    # One JSON line of results: assert what must hold, print it as a table row.
    $py - "$1" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
trained = r["leases_taken"] - r["released_untrained"]
assert r["service_duplicates"] == 0, r
assert r["service_leases_open"] == 0, r
assert r["completions_rewarded"] == trained * r["num_generations"], r
assert r["outcomes_reported"] == r["completions_rewarded"] == r["service_outcomes"], r
assert r["service_prompts_leased"] == r["leases_taken"], r
print(f"| {r['processes']} | {r['steps']} | {r['num_generations']} | {r['generation_batch_size']} "
      f"| {r['steps_per_generation']} x {r['num_iterations']} | {r['sampler_len']} "
      f"| {r['leases_taken']} | {trained} | {r['released_untrained']} | {r['completions_rewarded']} "
      f"| {r['service_outcomes']} | {r['service_duplicates']} | {r['service_leases_open']} |")
PY
}
{
    echo "# scripts/e2e-trl.sh $steps ($(date -u +%F), $(nproc) cores, CPU)"
    $py -c "import importlib.metadata as m; print('# ' + ', '.join(f'{p} {m.version(p)}' for p in ['trl', 'transformers', 'accelerate', 'torch', 'datasets']))"
    echo
    echo "| processes | steps | num_generations | generation batch | steps_per_generation x num_iterations | sampler length | prompts leased | leases trained | leases released untrained | completions rewarded | outcomes at the service | duplicates | leases open at the end |"
    echo "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    one=$($py scripts/e2e_trl.py --url "http://127.0.0.1:$port" --pool one --out "$tmp/one" --steps "$steps" 2> "$tmp/one.log" | grep '^E2E ' | cut -c5-) \
        || { tail -20 "$tmp/one.log" >&2; exit 1; }
    check "$one"
    # `accelerate launch --cpu --num_processes 2` starts one process (its simple launcher);
    # torchrun starts two, and accelerate inside the trainer joins them over gloo.
    two=$(bench/pytorch/.venv/bin/torchrun --nproc_per_node 2 \
        scripts/e2e_trl.py --url "http://127.0.0.1:$port" --pool two --out "$tmp/two" --steps "$steps" \
        2> "$tmp/two.log" | grep '^E2E ' | cut -c5-) || { tail -20 "$tmp/two.log" >&2; exit 1; }
    check "$two"
} | tee docs/results/e2e-trl.txt
