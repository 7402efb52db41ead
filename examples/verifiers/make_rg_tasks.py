#!/usr/bin/env python3
"""Writes reasoning-gym records (question, answer, metadata) as a task file for AutoTune.

    examples/verifiers/.venv/bin/python examples/verifiers/make_rg_tasks.py OUT.jsonl [PER_FAMILY]
"""

from __future__ import annotations

import json
import sys

import reasoning_gym

FAMILIES = [
    "basic_arithmetic",
    "chain_sum",
    "leg_counting",
    "letter_counting",
    "word_sorting",
    "spell_backward",
    "caesar_cipher",
    "base_conversion",
    "gcd",
    "number_sorting",
]


def main() -> None:
    out, per = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with open(out, "w") as f:
        for name in FAMILIES:
            for entry in reasoning_gym.create_dataset(name, size=per, seed=7):
                meta = {k: v for k, v in entry["metadata"].items() if k != "source_dataset"}
                meta["source_dataset"] = name
                record = {"question": entry["question"], "answer": entry["answer"], "metadata": meta}
                f.write(json.dumps(record, default=str) + "\n")
    print(f"wrote {len(FAMILIES) * per} records of {len(FAMILIES)} families to {out}")


if __name__ == "__main__":
    main()
