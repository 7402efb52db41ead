#!/usr/bin/env bash
# Re-measures the published halfspace-cot, skills, RL and file-task comparisons (the commands of
# scripts/remeasure-spent.sh) under the stop certificate RULE (spent, sequential, phase, naive)
# given to every strategy that has one. Outputs: docs/results/RULE-*.{txt,json}.
#
#   scripts/remeasure-certificate.sh sequential
set -euo pipefail
cd "$(dirname "$0")/.."
rule=${1:?usage: scripts/remeasure-certificate.sh RULE}
A=target/release/autotune
R=docs/results
O=autotune-runs/$rule
P=(--strategy-param "certificate=$rule")
mkdir -p "$O"
$A compare --task halfspace-cot --eps 0.1,0.01,0.001 --seeds 5 "${P[@]}" --json $R/$rule-halfspace-all.json --out $O/halfspace-all > $R/$rule-halfspace-all.txt
$A compare --task skills --eps 0.1,0.01,0.001 --seeds 5 "${P[@]}" --json $R/$rule-skills-all.json --out $O/skills-all > $R/$rule-skills-all.txt
$A compare --task halfspace-cot --kappa 32 --eps 0.01,0.001 --seeds 5 --strategies rft-uniform,autotune-rl,uniform,autotune-cex "${P[@]}" --json $R/$rule-rl-halfspace.json --out $O/rl-halfspace > $R/$rule-rl-halfspace.txt
$A compare --task halfspace-cot --kappa 4,16,64 --eps 0.01,0.001 --seeds 5 --strategies rft-uniform,autotune-rl "${P[@]}" --json $R/$rule-rl-burn-in.json --out $O/rl-burn-in > $R/$rule-rl-burn-in.txt
$A compare --tasks examples/tasks/arith.jsonl --strategies uniform,autotune-cex,autotune-filterboost,zero-variance --eps 0.05,0.01 --seeds 5 "${P[@]}" --json $R/$rule-arith-file.json --out $O/arith-file > $R/$rule-arith-file.txt
