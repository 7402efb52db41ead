"""TRL's GRPOTrainer with AutoTune choosing the prompts, for real, on the CPU.

Run by scripts/e2e-trl.sh (which starts `autotune serve` and makes the venv), in one process
and under torchrun. A tiny Qwen2 built from a config (no hub download) with a byte-level
tokenizer built here; a dataset of addition prompts with ids; GRPOTrainer (use_vllm=False)
with `autotune.trl`. Modes:

- ``train``: ``--steps`` steps; prints one JSON line of results (``E2E {...}``).
- ``restart``: ``--steps`` steps saving a checkpoint, then a new trainer resumes from it for
  ``--steps`` more; the results are those of the resumed run.
- ``dry``: every answer is right and the mask is the counterexample mask, so the pool runs
  dry; the epoch ends early and says why.
- ``down``: the service URL answers nothing; the error comes before training starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: E402
from trl import GRPOConfig  # noqa: E402

from autotune.client import ServiceDown  # noqa: E402
from autotune.trl import AutoTune, _gather, _is_main, grpo_trainer_class  # noqa: E402


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """256 byte tokens (GPT-2's byte-to-unicode alphabet) and two specials, no merges."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab["<pad>"] = len(vocab)
    vocab["<eos>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def tiny_model(tokenizer: PreTrainedTokenizerFast) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(config)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--mode", choices=["train", "restart", "dry", "down", "flaky"], default="train")
    args = ap.parse_args()

    tokenizer = byte_tokenizer()
    n = 8 if args.mode == "dry" else args.prompts
    ids = [f"add-{i}" for i in range(n)]
    data = Dataset.from_dict(
        {
            "id": ids,
            "prompt": [f"{i % 10}+{i // 10}=" for i in range(n)],
            "answer": [str(i % 10 + i // 10) for i in range(n)],
        }
    )
    seen: list[str] = []

    def correctness(prompts: list, completions: list, answer: list, id: list, **kw: object) -> list:
        seen.extend(id)
        if args.mode == "dry":
            return [1.0] * len(completions)
        return [1.0 if a in c else 0.0 for c, a in zip(completions, answer)]

    mask = {"strategy": "autotune-cex" if args.mode == "dry" else "learnability"}
    try:
        at = AutoTune(args.url, pool=args.pool, mask=mask, ids=ids)
    except ServiceDown as e:
        print(f"E2E-ERROR {e}", flush=True)
        sys.exit(3)

    # flaky: reports that fail inside the real trainer. Every 5th report from the 2nd on never
    # reaches the service; every 5th from the 4th on reaches it and its answer is lost. The
    # reporter keeps each with its idempotency key and sends it again with the next one.
    injected = {"reports": 0, "requests_lost": 0, "answers_lost": 0, "replayed": 0}
    if args.mode == "flaky":
        real_report = at.client.report

        def flaky_report(pool: str, results: list, idempotency_key: str | None = None) -> dict:
            injected["reports"] += 1
            if injected["reports"] % 5 == 2:
                injected["requests_lost"] += 1
                raise ServiceDown("injected: the request was lost")
            out = real_report(pool, results, idempotency_key=idempotency_key)
            injected["replayed"] += int(bool(out.get("replayed")))
            if injected["reports"] % 5 == 4:
                injected["answers_lost"] += 1
                raise ServiceDown("injected: the answer was lost")
            return out

        at.client.report = flaky_report  # type: ignore[method-assign]

    def trainer_for(max_steps: int, at: AutoTune, save: bool) -> object:
        cfg = GRPOConfig(
            output_dir=args.out,
            per_device_train_batch_size=4,
            num_generations=4,
            gradient_accumulation_steps=2,
            num_iterations=2,
            max_completion_length=6,
            max_steps=max_steps,
            learning_rate=1e-4,
            logging_steps=5,
            save_strategy="steps" if save else "no",
            save_steps=max_steps,
            report_to="none",
            use_cpu=True,
            bf16=False,
            seed=0,
        )
        return grpo_trainer_class()(
            model=tiny_model(tokenizer),
            args=cfg,
            processing_class=tokenizer,
            train_dataset=data,
            reward_funcs=[at.reward(correctness)],
            autotune=at,
        )

    caught: list[str] = []
    # The service's counters before the run measured (the first half of a restart is not).
    base = {"outcomes": 0, "prompts_leased": 0}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        if args.mode == "restart":
            first = trainer_for(args.steps, at, save=True)
            first.train()
            checkpoint = os.path.join(args.out, f"checkpoint-{args.steps}")
            seen.clear()
            if _is_main():
                c = at.client.state(args.pool, limit=1)["counters"]
                base = {k: c[k] for k in base}
            at = AutoTune(args.url, pool=args.pool)
            trainer = trainer_for(2 * args.steps, at, save=False)
            trainer.train(resume_from_checkpoint=checkpoint)
        else:
            trainer = trainer_for(args.steps, at, save=False)
            trainer.train()
        caught = [str(x.message) for x in w if "AutoTune" in str(x.message) or "eligible" in str(x.message)]

    every_seen = _gather(seen)
    if not _is_main():
        return
    state = at.client.state(args.pool, limit=1)
    counters = state["counters"]
    cfg = trainer.args
    result = {
        "mode": args.mode,
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "steps": trainer.state.global_step,
        "num_generations": cfg.num_generations,
        "generation_batch_size": cfg.generation_batch_size,
        "steps_per_generation": cfg.steps_per_generation,
        "num_iterations": cfg.num_iterations,
        "sampler_len": len(trainer._get_train_sampler()),
        "completions_rewarded": len(every_seen),
        "leases_taken": at.book.leased,
        "released_untrained": at.reporter.released,
        "outcomes_reported": at.reporter.reported,
        "service_outcomes": counters["outcomes"] - base["outcomes"],
        "service_prompts_leased": counters["prompts_leased"] - base["prompts_leased"],
        "service_duplicates": counters["duplicates"],
        "service_leases_open": state["leased"],
        "correct": counters["correct"],
        "warnings": caught,
        "injected": injected,
    }
    print("E2E " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
