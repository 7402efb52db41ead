#!/usr/bin/env bash
# TRL's GRPOTrainer with AutoTune choosing the prompts, run for real on the CPU. A tiny Qwen2
# from a config and a byte-level tokenizer built in scripts/e2e_trl.py (no hub download);
# `autotune serve` on 127.0.0.1 with a fresh store. Runs: training in one process and in two
# (`torchrun --nproc_per_node 2`), a restart from a trainer checkpoint, a pool that runs dry,
# a service that is down. Checks, per run: no duplicate outcome, no lease left open, every
# completion trained reported exactly once, every lease trained or released (at most the chunk
# fetched ahead released: nothing leased to be discarded).
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
    $py - "$1" "$2" <<'PY'
import json, sys
r, max_steps = json.loads(sys.argv[1]), int(sys.argv[2])
trained = r["leases_taken"] - r["released_untrained"]
chunk = r["generation_batch_size"] // r["num_generations"]
assert r["service_duplicates"] == 0, r
assert r["service_leases_open"] == 0, r
assert r["completions_rewarded"] == trained * r["num_generations"], r
assert r["outcomes_reported"] == r["completions_rewarded"] == r["service_outcomes"], r
assert r["service_prompts_leased"] == r["leases_taken"], r
# At most the chunk the data loader fetched ahead is leased and not trained: nothing is
# leased to be discarded (a restart does not skip batches by leasing them).
assert r["released_untrained"] <= chunk, r
if r["mode"] == "flaky":
    # Every lost answer was sent again and replayed, not counted twice.
    i = r["injected"]
    assert i["requests_lost"] >= 1 and i["answers_lost"] >= 1, r
    assert i["replayed"] >= i["answers_lost"], r
    r["warnings"] = [f"injected: {i['reports']} report calls, {i['requests_lost']} requests lost, "
                     f"{i['answers_lost']} answers lost, {i['replayed']} replayed by the service; "
                     f"{len(r['warnings'])} warnings (each failed report kept and sent again)"]
if r["mode"] == "dry":
    assert r["steps"] < max_steps and any("no eligible prompt left" in w for w in r["warnings"]), r
else:
    assert r["steps"] == max_steps, r
print(f"| {r['mode']} | {r['processes']} | {r['steps']} | {r['generation_batch_size']} "
      f"| {r['sampler_len']} | {r['leases_taken']} | {trained} | {r['released_untrained']} "
      f"| {r['completions_rewarded']} | {r['service_outcomes']} | {r['service_duplicates']} "
      f"| {r['service_leases_open']} |")
for w in r["warnings"]:
    print(f"|   | warning: {w} |||||||||||")
PY
}
run() {
    # run NAME LAUNCHER... -- ARGS: the E2E line of one run, or its log's end on failure.
    local name=$1; shift
    "$@" --url "http://127.0.0.1:$port" --pool "$name" --out "$tmp/$name" 2> "$tmp/$name.log" \
        | grep '^E2E ' | cut -c5- || { tail -20 "$tmp/$name.log" >&2; return 1; }
}
{
    echo "# scripts/e2e-trl.sh $steps ($(date -u +%F), $(nproc) cores, CPU)"
    $py -c "import importlib.metadata as m; print('# ' + ', '.join(f'{p} {m.version(p)}' for p in ['trl', 'transformers', 'accelerate', 'torch', 'datasets']))"
    echo "# num_generations 4, per-device batch 4, gradient_accumulation_steps 2 (steps_per_generation 2), num_iterations 2"
    echo
    echo "| run | processes | steps | generation batch | sampler length | prompts leased | leases trained | leases released untrained | completions rewarded | outcomes at the service | duplicates | leases open at the end |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    check "$(run train $py scripts/e2e_trl.py --steps "$steps")" "$steps"
    # `accelerate launch --cpu --num_processes 2` starts one process (its simple launcher);
    # torchrun starts two, and accelerate inside the trainer joins them over gloo.
    check "$(run train2 bench/pytorch/.venv/bin/torchrun --nproc_per_node 2 scripts/e2e_trl.py --steps "$steps")" "$steps"
    # Resumed from the checkpoint at step STEPS to 2 x STEPS: the row is the resumed half.
    check "$(run restart $py scripts/e2e_trl.py --mode restart --steps "$steps")" $((2 * steps))
    # Reports that fail inside the trainer: lost requests and lost answers, sent again.
    check "$(run flaky $py scripts/e2e_trl.py --mode flaky --steps "$steps")" "$steps"
    # Every answer right under the counterexample mask: the pool runs dry in the second epoch.
    check "$(run dry $py scripts/e2e_trl.py --mode dry --steps 40)" 40
    echo
    echo '$ python scripts/e2e_trl.py --mode down --url http://127.0.0.1:1 ...'
    set +e
    $py scripts/e2e_trl.py --mode down --url http://127.0.0.1:1 --pool down --out "$tmp/down" 2> /dev/null
    code=$?
    set -e
    echo "exit $code (training not started)"
    [ "$code" = 3 ]
} | tee docs/results/e2e-trl.txt
