#!/usr/bin/env bash
# The venv for examples/verifiers/reasoning_gym_scorer.py: reasoning-gym from PyPI.
#   examples/verifiers/setup.sh   ->  examples/verifiers/.venv/bin/python
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
.venv/bin/pip install --quiet reasoning-gym==0.1.25
.venv/bin/python -c "import reasoning_gym; print('reasoning-gym', reasoning_gym.__version__)"
