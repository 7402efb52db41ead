#!/usr/bin/env python3
"""The arith-file comparison's table from run directories (`autotune compare --out DIR`):
per strategy and seed, the demonstrations to held-out error <= eps, the training steps, the
verifier calls and the wall seconds at that checkpoint, or the last checkpoint of a run that
had not reached eps (stopped, or still running).

    bench/arith-file/table.py LABEL=RUN_DIR [LABEL=RUN_DIR ...]
"""

import json
import sys


def main() -> None:
    print("| path | strategy | seed | demos to eps | training steps | verifier calls | wall s | held-out error |")
    print("|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        label, run = arg.split("=", 1)
        rows = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
        ends = {(r["strategy"], r["seed"]): r for r in rows if r.get("record") == "end"}
        evals = {}
        for r in rows:
            if r.get("record") == "eval":
                evals[(r["strategy"], r["seed"])] = r
        for key in sorted(set(evals) | set(ends)):
            strategy, seed = key
            if key in ends and ends[key]["reached"]:
                e = ends[key]
                c = e["cost_to_eps"]
                demos, err = f"{e['demos_to_eps']:,}", e["final_error"]
            else:
                e = evals[key]
                c = e["ledger"]
                demos, err = f"not reached at {e['demos']:,}", e["heldout_error"]
            print(
                f"| {label} | {strategy} | {seed} | {demos} | {c['training_steps']:,} | "
                f"{c['verifier_calls']:,} | {c['wall_seconds']:.0f} | {err} |"
            )


if __name__ == "__main__":
    main()
