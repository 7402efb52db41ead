#!/usr/bin/env bash
# Re-measures the published halfspace-cot, skills, RL and file-task comparisons under the
# default stop certificate (certificate=spent since issue 15). Outputs: docs/results/spent-*.
# About 3 minutes on 2 cores after the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
A=target/release/autotune
R=docs/results
O=autotune-runs/spent
mkdir -p "$O"
$A compare --task halfspace-cot --eps 0.1,0.01,0.001 --seeds 5 --json $R/spent-halfspace-all.json --out $O/halfspace-all > $R/spent-halfspace-all.txt
$A compare --task skills --eps 0.1,0.01,0.001 --seeds 5 --json $R/spent-skills-all.json --out $O/skills-all > $R/spent-skills-all.txt
$A compare --task halfspace-cot --kappa 32 --eps 0.01,0.001 --seeds 5 --strategies rft-uniform,autotune-rl,uniform,autotune-cex --json $R/spent-rl-halfspace.json --out $O/rl-halfspace > $R/spent-rl-halfspace.txt
$A compare --task halfspace-cot --kappa 4,16,64 --eps 0.01,0.001 --seeds 5 --strategies rft-uniform,autotune-rl --json $R/spent-rl-burn-in.json --out $O/rl-burn-in > $R/spent-rl-burn-in.txt
$A compare --tasks examples/tasks/arith.jsonl --strategies uniform,autotune-cex,autotune-filterboost,zero-variance --eps 0.05,0.01 --seeds 5 --json $R/spent-arith-file.json --out $O/arith-file > $R/spent-arith-file.txt
