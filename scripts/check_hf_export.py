"""Checks directories written by `autotune export-hf` in transformers (issue 17).

Each argument is EXPORTED_DIR:EXPECTED_JSON. The exported directory is loaded with
`AutoModelForCausalLM.from_pretrained` (transformers must recognise every file and tensor:
missing or unexpected weights are an error here, not a warning), and its greedy tokens (and
logits, where EXPECTED_JSON has them) on EXPECTED_JSON's prompts are compared with what that
file records: transformers' own on the checkpoint that was exported (the parity fixtures'
`expected.json`), or AutoTune's own (`autotune_check.json`, written by
`autotune export-hf --check-task`). Prints one table row per directory; exits 1 when any
greedy token differs or a logit differs by more than 1e-4.
"""

from __future__ import annotations

import json
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM


def check(exported: str, expected_path: str) -> tuple[float, bool, str]:
    want = json.load(open(expected_path))
    model, info = AutoModelForCausalLM.from_pretrained(
        exported, output_loading_info=True, attn_implementation="eager"
    )
    bad = {k: v for k, v in info.items() if v and k != "error_msgs"}
    if bad or info.get("error_msgs"):
        raise SystemExit(f"{exported}: transformers did not load every weight: {info}")
    model.eval()
    worst, greedy = 0.0, []
    with torch.no_grad():
        logits = want.get("logits") or [None] * len(want["prompts"])
        for prompt, rows in zip(want["prompts"], logits):
            if rows is not None:
                out = model(torch.tensor([prompt])).logits[0]
                worst = max(worst, float((out - torch.tensor(rows)).abs().max()))
            else:
                worst = float("nan")
            seq = list(prompt)
            for _ in range(want["new_tokens"]):
                seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
            greedy.append(seq[len(prompt):])
    same = sum(g == w for g, w in zip(greedy, want["greedy"]))
    return worst, f"{same}/{len(want['greedy'])}", type(model).__name__


def main() -> None:
    print(f"# transformers {transformers.__version__}, torch {torch.__version__}")
    print("| exported directory | loaded as | max abs logit diff | prompts with identical greedy tokens |")
    print("|---|---|---|---|")
    ok = True
    for arg in sys.argv[1:]:
        exported, expected = arg.split(":")
        diff, same, cls = check(exported, expected)
        shown = "-" if diff != diff else f"{diff:.2e}"
        print(f"| {exported} | {cls} | {shown} | {same} |")
        n, total = same.split("/")
        ok &= n == total and not diff > 1e-4
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
