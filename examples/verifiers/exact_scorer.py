#!/usr/bin/env python3
"""The smallest AutoTune verifier process: exact match, Python's standard library only.

    autotune run --tasks examples/tasks/arith.jsonl --verifier "cmd:python3 examples/verifiers/exact_scorer.py" ...

Reads one JSON object per line from stdin ({"gold", "prediction", "tests"?, "meta"?}) and
answers one line per item, flushed: {"correct": true} or {"correct": false, "reason": ...}.
The prediction is correct when, stripped and case-folded, it equals the gold or ends with
it after "answer is" or inside \\boxed{...}.
"""

from __future__ import annotations

import json
import re
import sys


def answer_of(prediction: str) -> str:
    """The final answer of a prediction: the last \\boxed{...}, else what follows the last
    "answer is", else the whole prediction."""
    boxed = re.findall(r"\\boxed\{([^{}]*)\}", prediction)
    if boxed:
        return boxed[-1]
    parts = re.split(r"answer is", prediction, flags=re.IGNORECASE)
    return parts[-1].strip().rstrip(".") if len(parts) > 1 else prediction


def verdict(item: dict) -> dict:
    got = answer_of(item["prediction"]).strip().casefold()
    want = str(item["gold"]).strip().casefold()
    if got == want:
        return {"correct": True}
    return {"correct": False, "reason": f"{got!r} is not {want!r}"}


def main() -> None:
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(verdict(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
