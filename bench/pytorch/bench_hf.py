#!/usr/bin/env python3
"""Training and generation throughput of transformers' own model (LlamaForCausalLM, eager
attention) on CPU, for the workload of crates/autotune-neural/examples/throughput.rs with
`--family llama` (issue 17): the model is the Rust example's initial weights, written with
`--dump-hf DIR`, so that both start from the same function (the first step's loss is printed
by both and compared by bench/compare-llama.sh).

- training: one warm-up step, then --steps timed steps (forward, masked cross-entropy on the
  tokens after the first --prompt, backward, burn's per-tensor gradient clipping, AdamW with
  burn's epsilon, the loss read back) on --batch sequences of --seq tokens;
- generation: `model.generate` (greedy, KV cache, exactly --new new tokens) after the --batch
  prompts of --prompt tokens; one warm-up run, then --gen-reps timed runs.

The last line is `RESULT {json}`, with the keys the Rust example prints.
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import examples  # noqa: E402
from model import BurnAdamW  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=48)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--gen-reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = AutoModelForCausalLM.from_pretrained(a.dir, attn_implementation="eager", torch_dtype=torch.float32)
    vocab = model.config.vocab_size
    params = sum(p.numel() for p in model.parameters())
    rows = examples(a.batch, a.seq, a.prompt, vocab)
    tokens = torch.tensor([t for t, _ in rows])
    mask = torch.tensor([m for _, m in rows])
    inputs, targets, weights = tokens[:, :-1], tokens[:, 1:], mask[:, 1:].float()
    count = weights.sum()
    opt = BurnAdamW(model.parameters())

    def step():
        model.train()
        opt.zero_grad()
        logits = model(inputs).logits
        nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        loss = (nll * weights.flatten()).sum() / count
        loss.backward()
        opt.step()
        return float(loss)

    first = step()
    start, best = time.perf_counter(), float("inf")
    for _ in range(a.steps):
        one = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - one)
    train_secs = time.perf_counter() - start
    model.eval()
    prompts = tokens[:, : a.prompt]
    kw = dict(max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False, use_cache=True,
              pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        model.generate(prompts, **kw)
        start, best_gen, produced = time.perf_counter(), float("inf"), 0
        for _ in range(a.gen_reps):
            one = time.perf_counter()
            out = model.generate(prompts, **kw)
            produced += out.shape[0] * (out.shape[1] - a.prompt)
            best_gen = min(best_gen, time.perf_counter() - one)
        gen_secs = time.perf_counter() - start
    per_run = produced // a.gen_reps
    result = {
        "impl": f"transformers {transformers.__version__} (torch {torch.__version__})",
        "params": params,
        "batch": a.batch,
        "seq": a.seq,
        "prompt": a.prompt,
        "new": a.new,
        "train_steps": a.steps,
        "train_tokens_per_s": round(a.steps * a.batch * a.seq / train_secs, 1),
        "gen_tokens_per_s": round(produced / gen_secs, 1),
        "train_best_tokens_per_s": round(a.batch * a.seq / best, 1),
        "gen_best_tokens_per_s": round(per_run / best_gen, 1),
        "first_loss": round(first, 6),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
