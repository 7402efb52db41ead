#!/usr/bin/env python3
"""The stop certificate's table (docs/results/paper.md, "The stop certificate"): for each task
and rule, runs certified, false certificates (held-out error above eps), worst certified error,
and the medians of demonstrations and verifier calls at the stop, read from the JSON that
`autotune compare ... --run-to-stop --strategy-param certificate=RULE --json FILE` writes.

    bench/certificate-table.py [EPS]     (reads docs/results/certificate-{TASK}-{RULE}.json)
"""
import json
import os
import statistics
import sys

eps = float(sys.argv[1]) if len(sys.argv) > 1 else 0.01
print("| task | rule | certified | false certificates | worst certified error | demos at stop (median) | verifier calls (median) |")
print("|---|---|---|---|---|---|---|")
for task in ["halfspace", "skills"]:
    base = None
    for rule in ["naive", "spent", "phase", "sequential"]:
        path = f"docs/results/certificate-{task}-{rule}.json"
        if not os.path.exists(path):
            continue
        runs = json.load(open(path))["runs"]
        cert = [r for r in runs if "certificate" in r["stop"]]
        false = [r for r in cert if r["final_error"] > eps]
        demos = statistics.median(r["final_ledger"]["teacher_calls"] for r in runs)
        calls = statistics.median(r["final_ledger"]["verifier_calls"] for r in runs)
        worst = max((r["final_error"] for r in cert), default=0.0)
        base = demos if base is None else base
        print(f"| {task} | {rule} | {len(cert)}/{len(runs)} | {len(false)} ({100 * len(false) / len(runs):.1f}%) "
              f"| {worst:.4f} | {demos:g} ({100 * (demos / base - 1):+.0f}%) | {calls:g} |")
