#!/usr/bin/env python3
"""Training and generation throughput of model.py's Gpt (autotune-neural's architecture) on
PyTorch, CPU, for the workload of crates/autotune-neural/examples/throughput.rs:

- training: one warm-up step, then --steps timed steps (forward, masked cross-entropy,
  backward, per-tensor clipping, AdamW update, and the loss read back as a float, as
  Trainer::train_step does) on one batch of --batch sequences of --seq tokens whose first
  --prompt tokens are not learned; tokens/s counts --seq tokens per sequence, as the Rust
  example does;
- generation: greedy, KV cache, the --batch prompts of --prompt tokens, --new new tokens;
  one warm-up run, then --gen-reps timed runs.

The last line is `RESULT {json}`: tokens/s over all timed steps and runs, and (`*_best_*`)
of the fastest single step and run, as the Rust example prints. `--check DIR` instead compares with a Rust run's
`--dump DIR`: the loss of every step from the same initial weights, and the greedy tokens of
the same trained weights.
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import BurnAdamW, Gpt, batch_tensors, load_burn_weights, masked_loss  # noqa: E402


def examples(batch, seq, prompt, vocab):
    """The Rust example's batch: token (i*7 + j*3 + i*j) % vocab, the first `prompt` not
    learned."""
    out = []
    for i in range(batch):
        toks = [(i * 7 + j * 3 + i * j) % vocab for j in range(seq)]
        out.append((toks, [False] * prompt + [True] * (seq - prompt)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--gen-reps", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=26)
    ap.add_argument("--max-len", type=int, default=308)
    ap.add_argument("--d-model", type=int, default=96)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", choices=["explicit", "sdpa"], default="explicit",
                    help="explicit: matmul, mask_fill, softmax, matmul as burn; sdpa: "
                         "F.scaled_dot_product_attention with the same mask")
    ap.add_argument("--optim", choices=["default", "foreach", "fused"], default="default",
                    help="torch.optim.AdamW's implementation (default: its own choice on CPU)")
    ap.add_argument("--check", metavar="DIR", help="compare with `throughput --dump DIR`")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    d_ff = 4 * a.d_model

    def new_model():
        return Gpt(a.vocab, a.d_model, a.layers, a.heads, d_ff, a.max_len, sdpa=a.attn == "sdpa")

    model = new_model()
    params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, attention {a.attn}, "
          f"AdamW {a.optim}")
    print(f"model: {params} params ({a.layers} layers, d_model {a.d_model}, {a.heads} heads, "
          f"d_ff {d_ff}, vocab {a.vocab}, max_len {a.max_len}), batch {a.batch} x {a.seq} tokens")
    data = examples(a.batch, a.seq, a.prompt, a.vocab)
    tensors = batch_tensors(data)
    prompts = [toks[:a.prompt] for toks, _ in data]

    if a.check:
        return check(a, new_model, tensors, prompts)

    opt = BurnAdamW(model.parameters(), impl=a.optim)

    def step():
        opt.zero_grad()
        loss = masked_loss(model, *tensors)
        loss.backward()
        opt.step()
        return loss.item()

    loss = step()  # warm-up
    start = time.perf_counter()
    best_step = float("inf")
    for _ in range(a.steps):
        one = time.perf_counter()
        loss = step()
        best_step = min(best_step, time.perf_counter() - one)
    secs = time.perf_counter() - start
    steps_per_s = a.steps / secs
    train_tps = a.steps * a.batch * a.seq / secs
    print(f"training: {steps_per_s:.2f} steps/s, {train_tps:.0f} tokens/s (loss {loss:.3f})")

    model.eval()
    per_run = sum(len(r) for r in model.generate_greedy(prompts, a.new))  # warm-up
    start = time.perf_counter()
    produced = 0
    best_gen = float("inf")
    for _ in range(a.gen_reps):
        one = time.perf_counter()
        produced += sum(len(r) for r in model.generate_greedy(prompts, a.new))
        best_gen = min(best_gen, time.perf_counter() - one)
    gen_tps = produced / (time.perf_counter() - start)
    print(f"generation (greedy, KV cache, batch {a.batch}, prompt {a.prompt} + {a.new} new): "
          f"{gen_tps:.0f} tokens/s")
    result = dict(impl="pytorch", torch=torch.__version__, threads=torch.get_num_threads(),
                  attn=a.attn, optim=a.optim, params=params, batch=a.batch, seq=a.seq,
                  prompt=a.prompt, new=a.new, train_steps=a.steps,
                  train_steps_per_s=round(steps_per_s, 4), train_tokens_per_s=round(train_tps, 1),
                  gen_reps=a.gen_reps, gen_tokens_per_s=round(gen_tps, 1),
                  train_best_tokens_per_s=round(a.batch * a.seq / best_step, 1),
                  gen_best_tokens_per_s=round(per_run / best_gen, 1))
    print("RESULT " + json.dumps(result, separators=(",", ":")))


def check(a, new_model, tensors, prompts):
    """The same function as the Rust model: losses step by step from the same weights, the
    same greedy tokens from the same trained weights."""
    with open(os.path.join(a.check, "rust.json")) as f:
        rust = json.load(f)
    model = new_model()
    load_burn_weights(model, os.path.join(a.check, "init", "model.safetensors"))
    opt = BurnAdamW(model.parameters(), impl=a.optim)
    ours = []
    for _ in rust["losses"]:
        opt.zero_grad()
        loss = masked_loss(model, *tensors)
        loss.backward()
        opt.step()
        ours.append(loss.item())
    worst = max(abs(x - y) for x, y in zip(ours, rust["losses"]))
    print(f"losses over {len(ours)} steps from the Rust initial weights: first rust "
          f"{rust['losses'][0]:.6f} torch {ours[0]:.6f}; last rust {rust['losses'][-1]:.6f} "
          f"torch {ours[-1]:.6f}; max |difference| {worst:.2e}")
    trained = new_model()
    load_burn_weights(trained, os.path.join(a.check, "trained", "model.safetensors"))
    trained.eval()
    gen = trained.generate_greedy(prompts, a.new)
    flat = [(x, y) for g, r in zip(gen, rust["generated"]) for x, y in zip(g, r)]
    same = sum(x == y for x, y in flat)
    rows = sum(g == r for g, r in zip(gen, rust["generated"]))
    print(f"greedy tokens from the Rust trained weights: {same}/{len(flat)} equal, "
          f"{rows}/{len(gen)} rows identical")
    ok = worst < 1e-3 and rows == len(gen)
    print("CHECK " + ("ok" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
