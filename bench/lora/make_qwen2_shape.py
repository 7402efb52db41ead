"""Writes a Qwen2-shaped checkpoint with random weights (no hub download) for the LoRA memory
bench (`bench/lora/memory.sh`): Qwen2.5-0.5B's shape by default (24 layers, width 896,
14 query heads, 2 key/value heads, feed-forward 4864, vocabulary 151,936, tied head, biases on
q, k and v), bf16 as the hub ships it, with the repository's small BPE tokenizer fixture
(400 tokens, which fit the embedding) so that the directory is a complete model.

    bench/pytorch/.venv/bin/python bench/lora/make_qwen2_shape.py OUT_DIR [--layers N]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

TOKENIZER = Path(__file__).resolve().parents[2] / "crates/autotune-neural/tests/fixtures/hf/tokenizer-bpe"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--layers", type=int, default=24)
    args = parser.parse_args()
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=args.layers,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    out = Path(args.out)
    model.save_pretrained(out, safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
        shutil.copy(TOKENIZER / f, out / f)
    n = sum(p.numel() for p in model.parameters())
    print(f"{out}: {n} parameters, {args.layers} layers")


if __name__ == "__main__":
    main()
