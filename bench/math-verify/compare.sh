#!/usr/bin/env bash
# Agreement and speed of the Rust `math` verifier against Hugging Face's math-verify on the
# corpus crates/autotune-verify/tests/data/math/corpus.jsonl. Writes the math-verify labels
# (crates/autotune-verify/tests/data/math/labels.jsonl, used by the Rust agreement test) and
# the report bench/math-verify/results.txt.
#
#   bench/math-verify/compare.sh            # from the repository root
#   REGEN_CORPUS=1 bench/math-verify/compare.sh   # also regenerate the corpus first
#   REGEN_RG=1 bench/math-verify/compare.sh       # also regenerate the reasoning-gym corpus
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/math-verify
DATA=crates/autotune-verify/tests/data/math
VENV=$HERE/.venv

if [[ "${REGEN_CORPUS:-0}" == 1 ]]; then
  python3 "$HERE/make_corpus.py" "$DATA/corpus.jsonl"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -r "$HERE/requirements.txt"
fi

# The reasoning-gym corpus (rg_corpus.jsonl, labels inline), used by the Rust test
# reasoning_gym_answers_on_their_own_terms.
if [[ "${REGEN_RG:-0}" == 1 ]]; then
  "$VENV/bin/pip" install --quiet reasoning-gym==0.1.25
  "$VENV/bin/python" "$HERE/make_rg_corpus.py" "$DATA/rg_corpus.jsonl"
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cargo build --release --quiet -p autotune-verify --example math_corpus
cargo run --release --quiet -p autotune-verify --example math_corpus -- \
  "$DATA/corpus.jsonl" "$TMP/rust.jsonl" "$TMP/rust_timing.json"
{
  echo "# math verifier vs math-verify ($(date -u +%Y-%m-%d), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  "$VENV/bin/python" "$HERE/compare.py" "$DATA/corpus.jsonl" "$DATA/labels.jsonl" "$TMP/rust.jsonl" "$TMP/rust_timing.json"
  echo
  # The reasoning-gym corpus (issue 16): its labels are inline; this run labels it again and
  # times both verifiers on it. The agreement that counts is on the boxed and wrong
  # predictions; plain statements are what math-verify cannot read (docs/guide/own-tasks.md).
  cargo run --release --quiet -p autotune-verify --example math_corpus -- \
    "$DATA/rg_corpus.jsonl" "$TMP/rg_rust.jsonl" "$TMP/rg_rust_timing.json"
  "$VENV/bin/python" "$HERE/compare.py" "$DATA/rg_corpus.jsonl" "$TMP/rg_labels.jsonl" "$TMP/rg_rust.jsonl" "$TMP/rg_rust_timing.json"
} | tee "$HERE/results.txt"
