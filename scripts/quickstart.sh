#!/usr/bin/env bash
# One command from a fresh machine to a working fastaug: make a virtual environment, install
# torch + torchvision (pinned to the release this project is developed against), build fastaug
# (C++ CPU kernels; CUDA kernels too when a CUDA toolkit is found), then run one job:
#
#   bash scripts/quickstart.sh demo    # the main job (default): compare augmentation methods on MNIST-5k,
#                                      # 500 training digits, 30 epochs of batch 32 (minutes on 2 CPU cores)
#   bash scripts/quickstart.sh test    # the test suite
#   bash scripts/quickstart.sh bench   # kernel microbenchmarks: ratio table vs stock PyTorch
#
# Set-up is done once: a stamp in the venv records a fingerprint of the C++/CUDA sources and
# build files, and a later command with the same fingerprint skips installing and compiling.
# Environment: FASTAUG_VENV (default .venv), PYTHON (default python3), MAX_JOBS (default 2),
# FASTAUG_CUDA=0/1 (force a CPU-only / CUDA build), extra arguments go to the job.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

job="${1:-demo}"
shift || true
venv="${FASTAUG_VENV:-.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[quickstart] creating $venv"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
pins="torch==2.14.1 torchvision==0.29.1"

# What a build depends on: sources, build scripts, the pins above and the build switches.
fingerprint() {
  {
    find csrc buildtools -type f | LC_ALL=C sort | xargs sha256sum
    sha256sum setup.py pyproject.toml
    echo "$pins FASTAUG_CUDA=${FASTAUG_CUDA:-} CUDA_HOME=${CUDA_HOME:-} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-}"
  } | sha256sum | cut -d' ' -f1
}
stamp="$venv/.fastaug-build-stamp"
want="$(fingerprint)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls fastaug/_C*.so >/dev/null 2>&1 \
    && "$py" -c "import fastaug" >/dev/null 2>&1; then
  echo "[quickstart] $venv is up to date with the sources: nothing to install or build"
else
  echo "[quickstart] installing build tools and torch"
  "$py" -m pip install -q --upgrade pip setuptools wheel ninja
  "$py" -m pip install -q $pins
  echo "[quickstart] building fastaug (this compiles C++/CUDA kernels: several minutes the first time)"
  MAX_JOBS="${MAX_JOBS:-2}" "$py" -m pip install -q --no-build-isolation -e ".[test,bench,train]"
  echo "$want" > "$stamp"
fi
"$py" -c "import fastaug; print('[quickstart] fastaug', fastaug.__version__, fastaug.build_info())"

case "$job" in
  # the demo's sizes come first so that the caller's arguments override them
  demo)  exec "$py" -m fastaug compare --train-size 500 --epochs 30 --batch-size 32 --instances 4 --output-dir runs/demo "$@" ;;
  test)  exec "$py" -m pytest -q "$@" ;;
  bench) exec "$py" -m benchmarks.run "$@" ;;
  *) echo "usage: bash scripts/quickstart.sh [demo|test|bench] [args...]" >&2; exit 2 ;;
esac
