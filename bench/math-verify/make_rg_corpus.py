#!/usr/bin/env python3
"""(gold, prediction) pairs from reasoning-gym's answers, labelled by math-verify.

The first corpus (make_corpus.py) was written with the `math` verifier in mind; this one takes
the answers of many reasoning-gym families as they are (task files hold golds as plain text:
`4.58e-09`, `3a0`, `05:15:50`, `[1, 2]`, words), so that the agreement is measured on answers
the verifier was not built around. Per family, `PER_FAMILY` entries (fixed seed) whose answer
is one line of at most 60 characters; per entry three predictions:
  - `plain`: "... so the answer is GOLD." (the gold as a model writes it at the end of a CoT);
  - `boxed`: "... the final answer is \\boxed{GOLD}";
  - `wrong`: another entry's different answer of the same family, boxed.
Each line: {"gold", "prediction", "category": "rg/FAMILY/INTENT", "math_verify": bool}, where
`math_verify` is `verify(parse(gold), parse(prediction))` as compare.py computes it.

Usage (the venv of compare.sh, with reasoning-gym installed):
  bench/math-verify/.venv/bin/python bench/math-verify/make_rg_corpus.py [OUT] [PER_FAMILY]
(default OUT: crates/autotune-verify/tests/data/math/rg_corpus.jsonl, PER_FAMILY: 8)
"""

import json
import os
import random
import sys
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from compare import wrap_gold  # noqa: E402

SEED = 20261207


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "crates/autotune-verify/tests/data/math/rg_corpus.jsonl"
    per_family = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    warnings.filterwarnings("ignore")
    import reasoning_gym
    from reasoning_gym.factory import DATASETS
    from math_verify import parse, verify

    rng = random.Random(SEED)
    lines = []
    families = []
    for name in sorted(DATASETS):
        try:
            ds = reasoning_gym.create_dataset(name, size=4 * per_family, seed=SEED)
            answers = []
            for i in range(len(ds)):
                a = ds[i]["answer"]
                if isinstance(a, str) and a.strip() and "\n" not in a and len(a) <= 60:
                    answers.append(a.strip())
        except Exception:  # a family that needs extra data or fails to build: left out
            continue
        if len(answers) < 2:
            continue
        families.append(name)
        for gold in answers[:per_family]:
            others = [a for a in answers if a != gold]
            preds = [
                ("plain", f"Working through it step by step, so the answer is {gold}."),
                ("boxed", f"Working through it step by step, the final answer is \\boxed{{{gold}}}"),
            ]
            if others:
                preds.append(("wrong", f"Working through it step by step, the final answer is \\boxed{{{rng.choice(others)}}}"))
            for intent, pred in preds:
                try:
                    ok = bool(verify(parse(wrap_gold(gold)), parse(pred)))
                except Exception:
                    ok = False
                lines.append({"gold": gold, "prediction": pred, "category": f"rg/{name}/{intent}", "math_verify": ok})
    with open(out, "w", encoding="utf-8") as f:
        for l in lines:
            f.write(json.dumps(l, ensure_ascii=False) + "\n")
    print(f"{len(lines)} pairs from {len(families)} reasoning-gym families -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
