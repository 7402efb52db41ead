#!/usr/bin/env python3
"""Agreement and speed of the Rust `math` verifier against Hugging Face's math-verify.

Run through compare.sh (it makes the venv and builds the Rust side). Steps:
  1. math-verify: verdict of every corpus item, `verify(parse(gold), parse(prediction))` with
     the default extraction configs (LaTeX + expressions). The gold is wrapped in `$...$`
     unless it already has an unescaped `$` or a `\\boxed` (math-verify's README parses golds that way:
     a bare `\\frac{1}{2}` outside math mode would be read as the number 1). Timed in one
     process after a warm-up (best of 3 passes); the labels are written to labels.jsonl.
  2. Rust: the verdicts file written by the `math_corpus` example (also timed, single thread).
  3. Prints the agreement rate, every disagreement, the verdicts/second of both, the ratio.

Usage: compare.py CORPUS LABELS_OUT RUST_VERDICTS RUST_TIMING_JSON
"""

import json
import re
import sys
import time


PASSES = 3


def wrap_gold(gold: str) -> str:
    unescaped_dollar = re.search(r"(?<!\\)\$", gold) is not None
    if unescaped_dollar or "\\boxed" in gold:
        return gold
    return f"${gold}$"


def excerpt(s: str, n: int = 160) -> str:
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else "..." + s[-n:]


def label(items):
    from math_verify import parse, verify

    def one(it):
        g = parse(wrap_gold(it["gold"]))
        p = parse(it["prediction"])
        return verify(g, p), g, p

    # Warm-up: the first pass imports sympy's lazy parts and compiles the regexes.
    for it in items[:50]:
        one(it)
    labels = []
    for it in items:
        ok, g, p = one(it)
        labels.append({"correct": bool(ok), "gold_parsed": [str(x) for x in g], "pred_parsed": [str(x) for x in p]})
    # Timing: best of PASSES full passes (the Rust side also reports its best pass).
    best = float("inf")
    for _ in range(PASSES):
        t0 = time.perf_counter()
        for it in items:
            one(it)
        best = min(best, time.perf_counter() - t0)
    return labels, best


def main():
    corpus, labels_out, rust_verdicts, rust_timing = sys.argv[1:5]
    items = [json.loads(l) for l in open(corpus, encoding="utf-8") if l.strip()]
    n = len(items)
    import math_verify  # noqa: F401
    from importlib.metadata import version

    labels, mv_secs = label(items)
    with open(labels_out, "w", encoding="utf-8") as f:
        for lab in labels:
            f.write(json.dumps({"correct": lab["correct"]}) + "\n")
    mv_rate = n / mv_secs

    rust = [json.loads(l) for l in open(rust_verdicts, encoding="utf-8") if l.strip()]
    timing = json.load(open(rust_timing, encoding="utf-8"))
    assert len(rust) == n, f"{len(rust)} Rust verdicts for {n} items"
    rust_rate = timing["verdicts_per_second"]

    dis = [i for i in range(n) if labels[i]["correct"] != bool(rust[i]["correct"])]
    agree = n - len(dis)
    pos = sum(l["correct"] for l in labels)
    print(f"corpus: {corpus} ({n} items; math-verify says {pos} correct, {n - pos} wrong)")
    print(f"math-verify {version('math-verify')}, latex2sympy2_extended {version('latex2sympy2_extended')}, sympy {version('sympy')}")
    print()
    print(f"agreement: {agree}/{n} = {agree / n:.4f}")
    kinds = sorted({it["category"].split("/")[-1] for it in items})
    if len(kinds) > 1:
        # By the kind of prediction (the reasoning-gym corpus: boxed, plain statement, wrong).
        for kind in kinds:
            idx = [i for i in range(n) if items[i]["category"].split("/")[-1] == kind]
            a = sum(1 for i in idx if labels[i]["correct"] == bool(rust[i]["correct"]))
            mv = sum(1 for i in idx if labels[i]["correct"])
            ru = sum(1 for i in idx if rust[i]["correct"])
            print(f"  {kind:>6}: agreement {a}/{len(idx)}; accepted: math-verify {mv}, rust {ru}")
    print()
    # Plain statements are listed by count only: math-verify cannot read them.
    listed = [i for i in dis if items[i]["category"].split("/")[-1] != "plain"]
    print(f"disagreements ({len(dis)}, {len(dis) - len(listed)} of them plain statements, not listed):")
    for i in listed:
        it = items[i]
        print(f"- line {i + 1} [{it['category']}] gold={it['gold']!r}")
        print(f"    prediction: {excerpt(it['prediction'])!r}")
        print(f"    math-verify: {labels[i]['correct']} (gold {labels[i]['gold_parsed']}, pred {labels[i]['pred_parsed']})")
        print(f"    rust: {bool(rust[i]['correct'])} (extracted {rust[i].get('extracted')!r}, reason {rust[i].get('reason')!r})")
    print()
    print(f"math-verify: {mv_rate:10.1f} verdicts/s ({1e3 * mv_secs / n:.3f} ms/item, parse+verify, 1 process, best of {PASSES} passes)")
    print(f"rust math  : {rust_rate:10.1f} verdicts/s ({1e6 / rust_rate:.2f} us/item, 1 thread, {timing['repeats']} timed passes)")
    print(f"speed ratio: {rust_rate / mv_rate:.0f}x")


if __name__ == "__main__":
    main()
