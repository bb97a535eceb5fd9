"""The build: toolkit discovery, build info, and the rebuild message on a torch mismatch."""
import os
import re
import sys
import types

import pytest
import torch

import fastaug
from fastaug import _loader

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from buildtools.cuda_env import find_cuda_home  # noqa: E402


def test_build_info_describes_this_build():
    """The record matches this torch; a CUDA build lists its target architectures (whatever they are:
    the default sm_80 + sm_90, or the one architecture scripts/gpu_check.sh builds for) and, when a GPU
    is visible, covers it: its own architecture, or PTX of an older one that the driver can JIT."""
    info = fastaug.build_info()
    assert info["torch_version"] == torch.__version__
    assert isinstance(info["cuda"], bool)
    assert int(fastaug._C.limits()["max_smooth"]) == 64  # the C++ constant the Python checks read
    if not info["cuda"]:
        assert info["cuda_archs"] == ""
        return
    entries = info["cuda_archs"].replace(" ", ";").split(";")
    entries = [e for e in entries if e]
    assert entries and all(re.fullmatch(r"\d+\.\d+[a-z]?(\+PTX)?", e) for e in entries), info["cuda_archs"]
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_capability()
        archs = {tuple(int(re.match(r"\d+", v).group()) for v in e.split("+")[0].split(".")): e.endswith("+PTX")
                 for e in entries}
        assert gpu in archs or any(ptx and a <= gpu for a, ptx in archs.items()), (gpu, info["cuda_archs"])


def _fake_toolkit(root):
    for d in ("bin", "include", "lib64"):
        os.makedirs(os.path.join(root, d))
    for f in ("bin/nvcc", "include/cuda_runtime.h", "lib64/libcudart.so"):
        open(os.path.join(root, f), "w").close()
    return str(root)


def test_nvcc_wrapper_script_resolves_to_the_real_toolkit(tmp_path, monkeypatch):
    """nvcc on PATH may be a shell wrapper in /usr/local/bin; the toolkit is where it execs."""
    toolkit = _fake_toolkit(tmp_path / "cuda-13.0")
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "nvcc"
    wrapper.write_text(f'#!/bin/sh\nexec {toolkit}/bin/nvcc "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setenv("PATH", str(wrapper_dir))
    assert find_cuda_home() == toolkit


def test_explicit_cuda_home_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    assert find_cuda_home() == str(tmp_path)


def test_mismatched_torch_gives_one_clear_sentence(monkeypatch):
    record = types.SimpleNamespace(TORCH_VERSION="1.0.0", WITH_CUDA=False)
    monkeypatch.setitem(sys.modules, "fastaug._built_with", record)
    monkeypatch.setattr(fastaug, "_built_with", record, raising=False)
    with pytest.raises(ImportError, match=r"compiled against torch 1\.0\.0 but torch .* is installed; rebuild"):
        _loader.load_extension()


def test_gpu_check_dry_run_prints_every_command_and_they_parse_without_a_gpu(tmp_path):
    """scripts/gpu_check.sh --dry-run: the build, one pytest per test file under coreutils timeout
    (no pytest-timeout option), the memcheck pass over the CUDA op tests, the carried wheels of the
    benchmarks' optional baselines (no index), and the benchmarks."""
    import subprocess

    root = os.path.join(os.path.dirname(__file__), "..")
    (tmp_path / "kornia-0.9.0-py3-none-any.whl").write_bytes(b"")
    res = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run", "warp"], cwd=root, capture_output=True,
                         text=True, timeout=600,
                         env=dict(os.environ, PYTHON=sys.executable, FASTAUG_WHEELS=str(tmp_path)))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # each command as printed, without the log it appends to
    commands = [line.split(" >> ")[0] for line in res.stdout.splitlines() if line.startswith("+ ")]
    assert not any("--timeout" in c for c in commands)  # pytest-timeout is not a dependency
    test_files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(os.path.join(root, "tests"))
                        for f in fs if f.startswith("test_") and f.endswith(".py"))
    runs = [c for c in commands if " -m pytest " in c and "compute-sanitizer" not in c]
    assert sorted(c.split()[-1] for c in runs) == test_files and all(c.startswith("+ timeout ") for c in runs)
    memcheck = [c for c in commands if "compute-sanitizer --tool memcheck" in c]
    assert sorted(c.split()[-1] for c in memcheck) == [f for f in test_files if f.startswith("tests/ops/")]
    assert all("PYTORCH_NO_CUDA_MEMORY_CACHING=1" in c and "-k cuda" in c for c in memcheck)
    assert sum("benchmarks.run --device cuda --only warp" in c for c in commands) == 1
    wheels = [i for i, c in enumerate(commands) if "pip install -q --no-index --no-deps" in c]
    assert len(wheels) == 1 and commands[wheels[0]].endswith(str(tmp_path / "kornia-0.9.0-py3-none-any.whl"))
    assert wheels[0] < next(i for i, c in enumerate(commands) if "benchmarks.run" in c)
    assert f"pytest collects all {len(test_files)} test files" in res.stdout
    assert "benchmark families import: warp" in res.stdout


def test_gpu_check_help_and_an_unknown_family_run_nothing():
    """``--help`` prints the script's header and ``gpu_check.sh warpp`` (a typo) is refused before the build,
    naming the families (benchmarks/bench_<family>.py); neither writes anything under $OUT."""
    import subprocess
    import tempfile

    root = os.path.join(os.path.dirname(__file__), "..")
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, PYTHON=sys.executable, OUT=os.path.join(out, "o"))
        res = subprocess.run(["bash", "scripts/gpu_check.sh", "--help"], cwd=root, capture_output=True, text=True,
                             timeout=60, env=env)
        assert res.returncode == 0 and res.stdout.startswith("On a machine with an NVIDIA GPU")
        assert "--dry-run" in res.stdout and "set -uo" not in res.stdout
        res = subprocess.run(["bash", "scripts/gpu_check.sh", "warp", "warpp"], cwd=root, capture_output=True,
                             text=True, timeout=60, env=env)
        assert res.returncode == 2 and "unknown benchmark family 'warpp'" in res.stderr
        assert "warp" in res.stderr.split("families: ")[1] and res.stdout == ""
        assert not os.path.exists(os.path.join(out, "o"))
