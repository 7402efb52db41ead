"""Writes the Hugging Face parity fixtures of `autotune-neural` (issue 17).

Each fixture is a tiny checkpoint with random weights, saved by transformers'
`save_pretrained` exactly as a model on the hub is, plus `expected.json`: what transformers
computes with it (its logits on fixed prompts, and its greedy continuation of each). The Rust
tests (`crates/autotune-neural/tests/hf_parity.rs`) load the directory and compare, without
Python. The fixtures are committed; this script regenerates them:

    scripts/make-hf-fixtures.sh            # makes the venv (bench/pytorch/.venv) if needed

Weights are drawn larger than transformers' defaults (std 0.2 instead of 0.02, and the norms'
scales and every bias perturbed) so that logits differ by more than rounding and every
parameter matters; `expected.json` records the smallest top-1/top-2 margin met during greedy
decoding, so a reader can see the greedy tokens are not decided by rounding.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import transformers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

PROMPTS = [
    [1, 5, 9, 17, 33],
    [1, 60, 2, 7],
    [1, 40, 41, 42, 43, 44, 45, 46, 47, 11, 3],
    [1],
]
NEW_TOKENS = 12


def perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def expected(model: torch.nn.Module) -> dict:
    logits, greedy, margin = [], [], float("inf")
    with torch.no_grad():
        for prompt in PROMPTS:
            out = model(torch.tensor([prompt])).logits[0]
            logits.append(out.tolist())
            seq = list(prompt)
            for _ in range(NEW_TOKENS):
                last = model(torch.tensor([seq])).logits[0, -1]
                top = torch.topk(last, 2).values
                margin = min(margin, float(top[0] - top[1]))
                seq.append(int(last.argmax()))
            greedy.append(seq[len(prompt):])
    return {
        "made_by": "scripts/make_hf_fixtures.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "prompts": PROMPTS,
        "logits": logits,
        "new_tokens": NEW_TOKENS,
        "greedy": greedy,
        "min_greedy_margin": margin,
    }


def gpt2(out: Path) -> None:
    config = GPT2Config(
        vocab_size=96,
        n_positions=48,
        n_embd=32,
        n_layer=2,
        n_head=4,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = perturbed(GPT2LMHeadModel(config), 1)
    model.config._attn_implementation = "eager"
    # f32, one file.
    d = out / "gpt2-tiny"
    model.save_pretrained(d, safe_serialization=True)
    (d / "expected.json").write_text(json.dumps(expected(model)))
    # bf16, sharded: the expected values are those of the bf16 weights computed in f32.
    d = out / "gpt2-tiny-bf16-sharded"
    model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True, max_shard_size="40KB")
    model.to(torch.float32)
    (d / "expected.json").write_text(json.dumps(expected(model)))


def llama(out: Path) -> None:
    # Grouped-query attention (4 query heads, 2 key/value heads), Llama 3's rope scaling with
    # an original context shorter than the prompts (so every branch of the scaling is used),
    # an untied head.
    config = LlamaConfig(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=48,
        rms_norm_eps=1e-6,
        rope_theta=500.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 4.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
        tie_word_embeddings=False,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="eager",
    )
    torch.manual_seed(2)
    model = perturbed(LlamaForCausalLM(config), 3)
    d = out / "llama-tiny"
    model.save_pretrained(d, safe_serialization=True)
    (d / "expected.json").write_text(json.dumps(expected(model)))


def qwen2(out: Path) -> None:
    # Qwen2: biases on q, k and v, a tied head, plain rope.
    config = Qwen2Config(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=48,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="eager",
    )
    torch.manual_seed(4)
    model = perturbed(Qwen2ForCausalLM(config), 5)
    d = out / "qwen2-tiny"
    model.save_pretrained(d, safe_serialization=True)
    (d / "expected.json").write_text(json.dumps(expected(model)))


CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a careful solver.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TOKENIZER_TEXTS = [
    "What is 47+85?",
    "47+85 = 132, so the answer is 132.",
    "  leading spaces and trailing  ",
    "Ünïcödé: ß, 東京, 🙂 and tabs\tand\nnewlines",
    "<|im_start|>user\nhi<|im_end|>",
    "",
]


def tokenizer(out: Path) -> None:
    # A byte-level BPE trained here on a small corpus (no hub download), with a pad, an end
    # token and the chat tokens, and a ChatML chat template, saved by transformers.
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        f"What is {a}+{b}? {a}+{b} = {a + b}. The answer is {a + b}."
        for a in range(0, 200, 7)
        for b in range(0, 90, 11)
    ] + ["The quick brown fox jumps over the lazy dog."] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    d = out / "tokenizer-bpe"
    fast.save_pretrained(d)
    messages = [
        [{"role": "user", "content": "What is 47+85? "}],
        [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
        ],
    ]
    want = {
        "made_by": "scripts/make_hf_fixtures.py",
        "transformers": transformers.__version__,
        "vocab_size": len(fast),
        "eos_token_id": fast.eos_token_id,
        "pad_token_id": fast.pad_token_id,
        "texts": TOKENIZER_TEXTS,
        "ids": [fast.encode(t, add_special_tokens=False) for t in TOKENIZER_TEXTS],
        "decoded": [
            fast.decode(fast.encode(t, add_special_tokens=False)) for t in TOKENIZER_TEXTS
        ],
        "messages": messages,
        "chat": [
            fast.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
            for m in messages
        ],
    }
    (d / "expected.json").write_text(json.dumps(want, ensure_ascii=False))


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# (prompt, target): the loss is the mean cross-entropy over the target tokens of the batch.
LORA_BATCH = [
    ([1, 5, 9, 17], [33, 12, 2]),
    ([1, 60, 2, 7, 8, 9], [40, 41, 2]),
    ([1, 40], [41, 42, 43, 44, 45, 2]),
]
LORA_STEPS = 3


def masked_loss(model: torch.nn.Module) -> torch.Tensor:
    total, count = torch.zeros(()), 0
    for prompt, target in LORA_BATCH:
        tokens = torch.tensor([prompt + target])
        logp = torch.log_softmax(model(tokens).logits[0, :-1].float(), dim=-1)
        picked = logp.gather(1, tokens[0, 1:, None])[:, 0]
        total = total - picked[len(prompt) - 1 :].sum()
        count += len(target)
    return total / count


def qwen2_lora(out: Path) -> None:
    # PEFT LoRA on qwen2-tiny: the adapter as PEFT saves it before training (B drawn non-zero
    # so that A gets a gradient in the first step too), then AdamW steps on a fixed batch with
    # the loss before each step and after the last.
    from peft import LoraConfig, get_peft_model
    import peft

    base = Qwen2ForCausalLM.from_pretrained(out / "qwen2-tiny", attn_implementation="eager")
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS, lora_dropout=0.0)
    torch.manual_seed(6)
    model = get_peft_model(base, config)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    d = out / "qwen2-tiny-lora"
    model.save_pretrained(d)
    (d / "README.md").unlink(missing_ok=True)  # PEFT's model card template
    optim = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-5, weight_decay=0.01)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], **optim)
    losses = []
    for _ in range(LORA_STEPS):
        opt.zero_grad()
        loss = masked_loss(model)
        losses.append(float(loss))
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(float(masked_loss(model)))
    want = {
        "made_by": "scripts/make_hf_fixtures.py",
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "torch": torch.__version__,
        "base": "qwen2-tiny",
        "batch": [{"prompt": p, "target": t} for p, t in LORA_BATCH],
        "optimizer": {"name": "AdamW", **optim},
        "losses": losses,
    }
    (d / "expected.json").write_text(json.dumps(want))


CHAT_MESSAGES = [
    [{"role": "user", "content": "What is 47+85?"}],
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ],
]


def qwen2_chat(out: Path) -> None:
    # A Qwen2 with the BPE tokenizer and its chat template in one directory, as a chat model
    # ships: chats rendered by transformers, tokenised, and greedily continued (a fixed number
    # of tokens, not stopped at the end token), so that the whole path from messages to
    # generated text is compared.
    from transformers import AutoTokenizer

    d = out / "qwen2-tiny-chat"
    tok = AutoTokenizer.from_pretrained(out / "tokenizer-bpe")
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        initializer_range=0.2,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        attn_implementation="eager",
    )
    torch.manual_seed(8)
    model = perturbed(Qwen2ForCausalLM(config), 9)
    model.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    rendered, ids, greedy, texts = [], [], [], []
    with torch.no_grad():
        for messages in CHAT_MESSAGES:
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prompt = tok(text, add_special_tokens=False).input_ids
            seq = list(prompt)
            for _ in range(NEW_TOKENS):
                seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
            rendered.append(text)
            ids.append(prompt)
            greedy.append(seq[len(prompt):])
            texts.append(tok.decode(seq[len(prompt):], skip_special_tokens=False))
    want = {
        "made_by": "scripts/make_hf_fixtures.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "messages": CHAT_MESSAGES,
        "rendered": rendered,
        "prompt_ids": ids,
        "new_tokens": NEW_TOKENS,
        "greedy": greedy,
        "greedy_text": texts,
    }
    (d / "expected.json").write_text(json.dumps(want, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="crates/autotune-neural/tests/fixtures/hf")
    parser.add_argument("--only", help="make this fixture only (e.g. qwen2-tiny-lora)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    makers = {
        "gpt2-tiny": gpt2,
        "llama-tiny": llama,
        "qwen2-tiny": qwen2,
        "tokenizer-bpe": tokenizer,
        "qwen2-tiny-lora": qwen2_lora,
        "qwen2-tiny-chat": qwen2_chat,
    }
    for name, make in makers.items():
        if args.only in (None, name):
            make(out)
    for d in sorted(out.iterdir()):
        files = sorted(p.name for p in d.iterdir())
        print(f"{d}: {', '.join(files)}")


if __name__ == "__main__":
    main()
