#!/usr/bin/env bash
# One command from a fresh machine to a working fastaug: make a virtual environment, install
# torch + torchvision (pinned to the release this project is developed against), build fastaug
# (C++ CPU kernels; CUDA kernels too when a CUDA toolkit is found), then run one job:
#
#   bash scripts/quickstart.sh bench   # kernel microbenchmarks: ratio table vs stock PyTorch
#   bash scripts/quickstart.sh test    # the test suite
#
# Environment: FASTAUG_VENV (default .venv), PYTHON (default python3), MAX_JOBS (default 2),
# FASTAUG_CUDA=0/1 (force a CPU-only / CUDA build), extra arguments go to the job.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

job="${1:-bench}"
shift || true
venv="${FASTAUG_VENV:-.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[quickstart] creating $venv"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "[quickstart] installing build tools and torch"
"$py" -m pip install -q --upgrade pip setuptools wheel ninja
"$py" -m pip install -q torch==2.14.1 torchvision==0.29.1
echo "[quickstart] building fastaug (this compiles C++/CUDA kernels: several minutes the first time)"
MAX_JOBS="${MAX_JOBS:-2}" "$py" -m pip install -q --no-build-isolation -e ".[test,bench]"
"$py" -c "import fastaug; print('[quickstart] fastaug', fastaug.__version__, fastaug.build_info())"

case "$job" in
  bench) exec "$py" -m benchmarks.run "$@" ;;
  test)  exec "$py" -m pytest -q "$@" ;;
  *) echo "usage: bash scripts/quickstart.sh bench|test [args...]" >&2; exit 2 ;;
esac
