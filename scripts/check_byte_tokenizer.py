"""Checks the byte tokenizer `autotune export-hf` writes beside a task-file student trained from
scratch (issue 17), in transformers: `AutoTokenizer` gives the start token and the UTF-8 bytes
of each text (the ids the student was trained on), decodes them back to the text, and the
model loads and generates from them.

    check_byte_tokenizer.py EXPORTED_DIR
"""

from __future__ import annotations

import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

TEXTS = [
    "Copy the digit: 7 (item 1)",
    "  leading spaces and trailing  ",
    "Ünïcödé: ß, 東京, 🙂 and tabs\tand\nnewlines",
]


def main() -> None:
    out = sys.argv[1]
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    print(f"transformers {transformers.__version__}: {type(tok).__name__}, {type(model).__name__}")
    ok = True
    for text in TEXTS:
        ids = tok(text).input_ids
        want = [257] + list(text.encode("utf-8"))
        back = tok.decode(ids, skip_special_tokens=True)
        same = ids == want and back == text
        ok &= same
        print(f"{text!r}: {len(ids)} ids, start token + UTF-8 bytes: {ids == want}, decodes back: {back == text}")
    with torch.no_grad():
        ids = torch.tensor([tok(TEXTS[0]).input_ids])
        gen = model.generate(ids, max_new_tokens=8, do_sample=False)
    print(f"greedy continuation of {TEXTS[0]!r}: {tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)!r}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
