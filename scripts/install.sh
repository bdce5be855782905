#!/usr/bin/env bash
# Create the virtualenv and install xlt-sweep with the tested versions (constraints.txt).
# torch: on a machine with an NVIDIA GPU, the normal (CUDA) build from PyPI; without one, the
# CPU build of torch 2.13.0 -- a local CPU wheel if pip is configured with one (find-links),
# else PyTorch's CPU wheel index -- so no CUDA wheels are pulled onto a CPU machine.
# Usage: scripts/install.sh [VENV] [EXTRAS]   (EXTRAS default "dev"; cluster nodes: "cluster")
set -euo pipefail
venv="${1:-.venv}"
extras="${2:-dev}"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "install: NVIDIA GPU found: CUDA build of torch 2.13.0"
  "${pip[@]}" install torch==2.13.0
elif "${pip[@]}" install --no-index --no-deps torch==2.13.0 2>/dev/null; then
  echo "install: no GPU: local CPU build of torch 2.13.0"
  "${pip[@]}" install torch==2.13.0  # its dependencies, from the index
else
  echo "install: no GPU: CPU build of torch 2.13.0 from PyTorch's CPU index"
  "${pip[@]}" install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
fi
"${pip[@]}" install -c constraints.txt -e ".[$extras]"
"$venv/bin/python" -c "import torch, ray, mlflow, optuna, transformers; print('install: torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| ray', ray.__version__, '| mlflow', mlflow.__version__, '| optuna', optuna.__version__, '| transformers', transformers.__version__)"
