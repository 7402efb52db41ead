#!/usr/bin/env bash
# Regenerates the Hugging Face parity fixtures of autotune-neural
# (crates/autotune-neural/tests/fixtures/hf/) with a pinned transformers on CPU torch:
# bench/pytorch/setup.sh makes the venv (bench/pytorch/.venv, gitignored) if needed.
# Not part of CI: the fixtures are committed and the Rust tests read them without Python.
#
#   scripts/make-hf-fixtures.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
TRANSFORMERS_VERSION=5.8.0
bench/pytorch/setup.sh
py=bench/pytorch/.venv/bin/python
if [[ "$($py -c 'import transformers; print(transformers.__version__)' 2>/dev/null)" != "$TRANSFORMERS_VERSION" ]]; then
  bench/pytorch/.venv/bin/pip install --quiet "transformers==$TRANSFORMERS_VERSION" safetensors
fi
$py scripts/make_hf_fixtures.py "$@"
