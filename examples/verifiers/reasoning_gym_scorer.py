#!/usr/bin/env python3
"""reasoning-gym's own scorers as an AutoTune verifier process.

    autotune run --tasks rg.jsonl --format reasoning-gym \
        --verifier "cmd:examples/verifiers/.venv/bin/python examples/verifiers/reasoning_gym_scorer.py" ...

AutoTune writes one JSON object per line to stdin, {"gold", "prediction", "meta"}, where
"meta" holds the record's "metadata" (reasoning-gym's, with "source_dataset"), and reads one
line back per item: {"score": s} (correct when s >= min_score, default 1) or, when the item
cannot be scored, {"correct": false, "reason": ...}. The prediction is the model's answer; an
<answer>...</answer> tag in it is read as reasoning-gym's own prompts ask.

Make its venv with examples/verifiers/setup.sh (reasoning-gym 0.1.25 from PyPI).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import reasoning_gym
from reasoning_gym.utils import extract_answer

Scorer = Callable[[str, dict[str, Any]], float]


def score(item: dict[str, Any], scorers: dict[str, Scorer]) -> dict[str, Any]:
    """One verdict line for one item."""
    metadata = (item.get("meta") or {}).get("metadata") or {}
    name = metadata.get("source_dataset")
    if not isinstance(name, str):
        return {"correct": False, "reason": "the record has no metadata.source_dataset"}
    if name not in scorers:
        try:
            scorers[name] = reasoning_gym.get_score_answer_fn(name)
        except Exception as e:  # an unknown dataset name: say so for this item
            return {"correct": False, "reason": f"no reasoning-gym scorer for {name}: {e}"}
    prediction = item.get("prediction", "")
    tagged = extract_answer(prediction) if "<answer>" in prediction else None
    answer = tagged if tagged is not None else prediction.strip()
    entry = {"question": item.get("question", ""), "answer": item["gold"], "metadata": metadata}
    return {"score": float(scorers[name](answer, entry))}


def main() -> None:
    scorers: dict[str, Scorer] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        print(json.dumps(score(json.loads(line), scorers)), flush=True)


if __name__ == "__main__":
    main()
