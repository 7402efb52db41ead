"""Checks a PEFT adapter written by `autotune export-hf --adapter` in PEFT (issue 17).

    check_peft_adapter.py base OUT_DIR
        writes a small random Qwen2 (vocabulary 400, width 64, 2 layers) with the repository's
        BPE tokenizer and chat template: the base model the LoRA student fine-tunes;
    check_peft_adapter.py compare BASE_DIR ADAPTER_DIR MERGED_DIR
        loads BASE_DIR with the adapter through `PeftModel.from_pretrained` and compares its
        logits on fixed prompts with those of MERGED_DIR (the same student exported merged,
        `autotune export-hf` without --adapter) and with PEFT's own `merge_and_unload`;
        exits 1 when either differs by more than 1e-4, or when the adapter changes nothing.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import peft
import torch
import transformers
from peft import PeftModel
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

TOKENIZER = Path(__file__).resolve().parents[1] / "crates/autotune-neural/tests/fixtures/hf/tokenizer-bpe"
PROMPTS = [[1, 5, 9, 17, 33], [1, 60, 2, 7], [1, 40, 41, 42, 43, 44, 45, 46, 47, 11, 3]]


def base(out: Path) -> None:
    config = Qwen2Config(
        vocab_size=400,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(out, safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
        shutil.copy(TOKENIZER / f, out / f)


def logits(model: torch.nn.Module) -> list[torch.Tensor]:
    with torch.no_grad():
        return [model(torch.tensor([p])).logits[0] for p in PROMPTS]


def diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def compare(base_dir: str, adapter_dir: str, merged_dir: str) -> None:
    load = lambda d: AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").eval()
    plain = logits(load(base_dir))
    model = PeftModel.from_pretrained(load(base_dir), adapter_dir).eval()
    with_adapter = logits(model)
    merged = logits(load(merged_dir))
    unloaded = logits(model.merge_and_unload())
    rows = [
        ("PEFT (base + adapter) vs AutoTune merged export", diff(with_adapter, merged)),
        ("PEFT (base + adapter) vs PEFT merge_and_unload", diff(with_adapter, unloaded)),
        ("base alone vs AutoTune merged export (the adapter's effect)", diff(plain, merged)),
    ]
    print(f"transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}")
    print(f"{len(PROMPTS)} prompts, logits of every position")
    print("| comparison | max abs logit diff |")
    print("|---|---|")
    for name, d in rows:
        print(f"| {name} | {d:.3g} |")
    if rows[0][1] > 1e-4 or rows[1][1] > 1e-4 or rows[2][1] < 1e-3:
        raise SystemExit(1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["base"] and len(sys.argv) == 3:
        base(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 5:
        compare(*sys.argv[2:])
    else:
        raise SystemExit(__doc__)
