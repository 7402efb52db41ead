#!/usr/bin/env bash
# reasoning-gym's own scorers as AutoTune's verifier, end to end: 10 families x 30 records,
# `compare` of uniform and autotune-cex with the built-in `math` verifier and with
# `cmd:... reasoning_gym_scorer.py`. Output: docs/results/reasoning-gym-scorer.txt.
#
#   examples/verifiers/check-reasoning-gym.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
examples/verifiers/setup.sh > /dev/null
cargo build --release -q -p autotune-cli
py=examples/verifiers/.venv/bin/python
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scorer="cmd:$py examples/verifiers/reasoning_gym_scorer.py"
common=(--tasks "$tmp/rg.jsonl" --format reasoning-gym --strategies uniform,autotune-cex
        --eps 0.05 --seeds 3)
{
  echo "# examples/verifiers/check-reasoning-gym.sh ($(date -u +%F), $(nproc) cores)"
  $py examples/verifiers/make_rg_tasks.py "$tmp/rg.jsonl" 30
  echo
  echo '$ autotune compare ... --verifier math'
  target/release/autotune compare "${common[@]}" --verifier math --out "$tmp/math" 2>&1
  echo "exit $?"
  echo
  echo '$ autotune compare ... --verifier math --skip-bad'
  target/release/autotune compare "${common[@]}" --verifier math --skip-bad \
    --out "$tmp/math-skip" 2>&1 | grep -v "^warning: skipped"
  echo "exit $?"
  echo
  echo "\$ autotune compare ... --verifier \"cmd:$py examples/verifiers/reasoning_gym_scorer.py\""
  target/release/autotune compare "${common[@]}" --verifier "$scorer" --out "$tmp/cmd" 2>&1
  echo "exit $?"
} | sed "s|$tmp|TMP|g"
