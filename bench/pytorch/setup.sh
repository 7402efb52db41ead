#!/usr/bin/env bash
# Creates bench/pytorch/.venv (gitignored): Python 3.11 with a CPU-only PyTorch from PyPI, for
# bench/compare-pytorch.sh. Not part of CI.
#
# PyPI's Linux x86_64 torch wheel is the CUDA build: a plain `pip install torch` also pulls
# about 20 nvidia-*/cuda-* wheels (cuBLAS, cuDNN, NCCL, ...: several GB). This script instead
#   1. installs the torch wheel alone (`--no-deps`, about 540 MB) plus the pure-Python
#      packages torch imports (filelock, typing_extensions, sympy, mpmath, networkx, jinja2,
#      markupsafe, fsspec, setuptools, and numpy, which torch warns about without), pinned below;
#   2. runs make_cuda_stubs.py, which writes into torch/lib a small stub for each NVIDIA
#      library the wheel links against (same SONAME and symbol versions; every function
#      returns "no device"), so that the dynamic loader is satisfied. The CPU code (ATen,
#      MKL, oneDNN, OpenMP) is the wheel's own and runs unchanged; torch.cuda.is_available()
#      is False.
#   3. checks `torch.randn(2, 2) @ torch.randn(2, 2)`, autograd and AdamW.
# Needs python3.11, gcc, readelf and ldd (binutils, libc-bin). `FULL=1 setup.sh` installs the
# ordinary CUDA wheel with all its dependencies instead (no stubs).
#
#   bench/pytorch/setup.sh            # from anywhere; idempotent
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=$HERE/.venv
PY=${PYTHON:-python3.11}
TORCH_VERSION=2.15.0

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "$VENV: torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') already installed"
  exit 0
fi
command -v "$PY" >/dev/null || { echo "need $PY (Python 3.11)" >&2; exit 1; }
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
if [[ "${FULL:-0}" == 1 ]]; then
  "$VENV/bin/pip" install --quiet "torch==$TORCH_VERSION"
else
  "$VENV/bin/pip" install --quiet --no-deps "torch==$TORCH_VERSION"
  "$VENV/bin/pip" install --quiet \
    filelock==4.3.1 typing_extensions==4.16.0 sympy==1.14.0 mpmath==1.3.0 networkx==3.6.1 \
    jinja2==3.1.6 markupsafe==3.0.4 fsspec==2026.9.0 numpy==2.4.6 "setuptools>=77.0.3"
  for tool in gcc readelf ldd; do
    command -v $tool >/dev/null || { echo "need $tool for the CUDA loader stubs" >&2; exit 1; }
  done
  TORCH_LIB=$("$VENV/bin/python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin), "lib"))')
  "$VENV/bin/python" "$HERE/make_cuda_stubs.py" "$TORCH_LIB"
fi
"$VENV/bin/python" - <<'EOF'
import torch
a = torch.randn(2, 2) @ torch.randn(2, 2)
assert a.shape == (2, 2) and not torch.cuda.is_available()
w = torch.nn.Linear(4, 3)
opt = torch.optim.AdamW(w.parameters())
w(torch.randn(5, 4)).square().sum().backward()
opt.step()
print(f"torch {torch.__version__} works on the CPU ({torch.get_num_threads()} threads; "
      f"MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()})")
EOF
du -sh "$VENV" | awk '{print "venv size: " $1}'
