#!/usr/bin/env bash
# Training and generation throughput of autotune-neural (Rust, burn flex) against PyTorch on
# this CPU, same architecture, same batch (issue 8). Not part of CI.
#
#   bench/compare-pytorch.sh                 # from anywhere
#   ROUNDS=9 bench/compare-pytorch.sh        # more alternations (default 7)
#   STEPS=30 GEN_REPS=10 bench/compare-pytorch.sh    # timed steps and generation runs per process
#   PT_ARGS="--attn sdpa" bench/compare-pytorch.sh   # another PyTorch variant (see bench.py -h)
#   OUT=/tmp/x.txt bench/compare-pytorch.sh  # write the table elsewhere
#
# 1. bench/pytorch/setup.sh (once): bench/pytorch/.venv with a CPU PyTorch from PyPI.
# 2. Builds crates/autotune-neural/examples/throughput (mimalloc, as the example sets it) and
#    throughput_system (the system allocator, which the `autotune` binary uses).
# 3. Checks that the two models are the same function: the Rust example dumps its initial and
#    trained weights, losses and greedy tokens; bench.py --check loads them into PyTorch.
# 4. Runs the three (Rust mimalloc, Rust system, PyTorch with 2 threads) one after another,
#    ROUNDS times, the order reversed every other round, and prints medians and ratios.
# The table goes into $OUT (default docs/results/pytorch-bench.txt) between the lines
# "=== measured by bench/compare-pytorch.sh" and "=== end of measurement"; the rest of that
# file (notes, profiles) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}
STEPS=${STEPS:-30}
GEN_REPS=${GEN_REPS:-10}
PT_ARGS=${PT_ARGS:-}
OUT=${OUT:-docs/results/pytorch-bench.txt}
VENV=bench/pytorch/.venv

bench/pytorch/setup.sh >/dev/null
cargo build --release --quiet -p autotune-neural --example throughput --example throughput_system
RUST_MI=target/release/examples/throughput
RUST_SYS=target/release/examples/throughput_system
# The example's global allocator: mimalloc's symbols are linked into `throughput` only.
grep -q mi_malloc "$RUST_MI" || { echo "$RUST_MI does not use mimalloc" >&2; exit 1; }
if grep -q mi_malloc "$RUST_SYS"; then echo "$RUST_SYS links mimalloc" >&2; exit 1; fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== identity check (same weights in both: losses step by step, greedy tokens)"
"$RUST_MI" --steps "$STEPS" --gen-reps 0 --dump "$TMP/dump" >/dev/null
"$VENV/bin/python" bench/pytorch/bench.py --check "$TMP/dump" $PT_ARGS | tee "$TMP/check.txt"

run_rust_mi() { "$RUST_MI" --steps "$STEPS" --gen-reps "$GEN_REPS" | grep '^RESULT' >>"$TMP/results"; }
run_rust_sys() { "$RUST_SYS" --steps "$STEPS" --gen-reps "$GEN_REPS" | grep '^RESULT' >>"$TMP/results"; }
run_torch() {
  "$VENV/bin/python" bench/pytorch/bench.py --steps "$STEPS" --gen-reps "$GEN_REPS" $PT_ARGS \
    | grep '^RESULT' >>"$TMP/results"
}
for ((r = 1; r <= ROUNDS; r++)); do
  echo "== round $r/$ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))"
  if ((r % 2)); then run_rust_mi; run_rust_sys; run_torch; else run_torch; run_rust_sys; run_rust_mi; fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates/autotune-neural || echo "+changes")
"$VENV/bin/python" - "$TMP/results" "$TMP/check.txt" "$OUT" "$ROUNDS" "$CPU" "$(nproc)" \
  "$LOAD_BEFORE" "$LOAD_AFTER" "$COMMIT" <<'EOF'
import datetime, json, os, statistics, sys

results, check, out, rounds, cpu, ncpu, load_before, load_after, commit = sys.argv[1:]
runs = [json.loads(l.split(" ", 1)[1]) for l in open(results) if l.startswith("RESULT ")]
def key(r):
    return "rust-" + r["allocator"] if r["impl"] == "rust" else "pytorch"
groups = {}
for r in runs:
    groups.setdefault(key(r), []).append(r)
torch_runs = groups["pytorch"]
params = {k: v[0]["params"] for k, v in groups.items()}
if len(set(params.values())) != 1:
    sys.exit(f"parameter counts differ: {params}")
w = runs[0]
med = lambda k, f: statistics.median(r[f] for r in groups[k])
rng = lambda k, f: (min(r[f] for r in groups[k]), max(r[f] for r in groups[k]))
pt = torch_runs[0]
lines = [
    f"=== measured by bench/compare-pytorch.sh, {datetime.date.today()}, commit {commit}",
    f"CPU: {cpu}, {ncpu} cores; load average {load_before} before, {load_after} after",
    f"model: {w['params']} parameters in both (Rust {params['rust-mimalloc']}, PyTorch "
    f"{params['pytorch']}): 4 layers, d_model 96, 4 heads, d_ff 384, vocab 26, max_len 308",
    f"workload: training batch {w['batch']} x {w['seq']} tokens ({w['prompt']} prompt + "
    f"{w['seq'] - w['prompt']} learned), {w['train_steps']} timed steps after 1 warm-up; "
    f"generation greedy, KV cache, {w['batch']} prompts of {w['prompt']} + {w['new']} new "
    f"tokens, {w['gen_reps']} timed runs after 1 warm-up",
    f"PyTorch {pt['torch']}, {pt['threads']} threads, attention {pt['attn']}, AdamW {pt['optim']}; "
    f"Rust burn 0.22.1 flex (simd, rayon), 2 cores",
    f"medians of {rounds} alternating rounds [min, max]; ratio = Rust / PyTorch",
    "",
    f"{'':<26}{'training tokens/s':>30}{'ratio':>8}{'generation tokens/s':>30}{'ratio':>8}",
]
pt_train, pt_gen = med("pytorch", "train_tokens_per_s"), med("pytorch", "gen_tokens_per_s")
for k, label in [("rust-mimalloc", "Rust (mimalloc)"), ("rust-system", "Rust (system allocator)"),
                 ("pytorch", "PyTorch")]:
    t, g = med(k, "train_tokens_per_s"), med(k, "gen_tokens_per_s")
    (tl, th), (gl, gh) = rng(k, "train_tokens_per_s"), rng(k, "gen_tokens_per_s")
    lines.append(
        f"{label:<26}{t:>10.0f} [{tl:>7.0f}, {th:>7.0f}]{t / pt_train:>8.2f}"
        f"{g:>10.0f} [{gl:>7.0f}, {gh:>7.0f}]{g / pt_gen:>8.2f}")
lines.append("")
lines.append("fastest single training step and generation run, as tokens/s (median over rounds; less")
lines.append("sensitive to other work on the machine):")
bt, bg = med("pytorch", "train_best_tokens_per_s"), med("pytorch", "gen_best_tokens_per_s")
for k, label in [("rust-mimalloc", "Rust (mimalloc)"), ("rust-system", "Rust (system allocator)"),
                 ("pytorch", "PyTorch")]:
    t, g = med(k, "train_best_tokens_per_s"), med(k, "gen_best_tokens_per_s")
    lines.append(f"{label:<26}{t:>10.0f}{' ':>20}{t / bt:>8.2f}{g:>10.0f}{' ':>20}{g / bg:>8.2f}")
lines.append("")
lines.append("training steps/s (median): " + ", ".join(
    f"{k} {med(k, 'train_steps_per_s'):.2f}" for k in ("rust-mimalloc", "rust-system", "pytorch")))
lines.append("identity check: " + " | ".join(
    l.strip() for l in open(check) if l.startswith(("losses", "greedy", "CHECK"))))
lines.append("=== end of measurement")
block = "\n".join(lines) + "\n"
print()
print(block, end="")
text = open(out).read() if os.path.exists(out) else ""
start = text.find("=== measured by bench/compare-pytorch.sh")
end = text.find("=== end of measurement")
if start >= 0 and end > start:
    text = text[:start] + block + text[end + len("=== end of measurement\n"):]
else:
    text = text + ("\n" if text else "") + block
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out, "w") as f:
    f.write(text)
print(f"written to {out}")
EOF
