"""Build script for fastaug's compiled core, ``fastaug._C``.

C++ CPU kernels are always built. CUDA kernels are built whenever torch is a CUDA
build and a CUDA toolkit is found, GPU present or not. Environment switches:

* ``FASTAUG_CUDA=0`` forces a CPU-only build; ``FASTAUG_CUDA=1`` forces a CUDA build
  and fails loudly when one is impossible.
* ``CUDA_HOME`` (or ``CUDA_PATH``) names the toolkit explicitly and always wins.
* ``TORCH_CUDA_ARCH_LIST`` overrides the target architectures (default: sm_80 and
  sm_90 plus PTX, and the visible GPU's own architecture when there is one).
* ``FASTAUG_DEBUG=1`` builds with ``-O0 -g``.
"""
import glob
import os
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
from buildtools.cuda_env import find_cuda_home, library_headers  # noqa: E402


FORCE = os.environ.get("FASTAUG_CUDA")
if FORCE not in (None, "", "0", "1"):
    sys.exit(f"FASTAUG_CUDA must be 0 or 1, got {FORCE!r}")

CUDA_HOME = find_cuda_home() if FORCE != "0" else None
if CUDA_HOME:
    # torch.utils.cpp_extension reads CUDA_HOME once, at import time: set it first.
    os.environ["CUDA_HOME"] = CUDA_HOME

import torch  # noqa: E402
from torch.utils import cpp_extension  # noqa: E402

WITH_CUDA = FORCE != "0" and torch.version.cuda is not None and CUDA_HOME is not None
if FORCE == "1" and not WITH_CUDA:
    why = (
        "torch is a CPU-only build" if torch.version.cuda is None else "no CUDA toolkit was found (set CUDA_HOME)"
    )
    sys.exit(f"FASTAUG_CUDA=1 asks for a CUDA build, but {why}.")


def cuda_arch_list():
    """Target architectures: the user's TORCH_CUDA_ARCH_LIST, else sm_80, sm_90 (+PTX) and any visible GPU."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    archs = {"8.0", "9.0"}
    try:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                major, minor = torch.cuda.get_device_capability(i)
                archs.add(f"{major}.{minor}")
    except Exception:  # a broken driver must not break a CPU-side build
        pass
    ordered = sorted(archs, key=lambda a: tuple(int(p) for p in a.split(".")))
    ordered[-1] += "+PTX"  # PTX of the newest arch lets future GPUs JIT-compile
    return ";".join(ordered)


def extension():
    debug = os.environ.get("FASTAUG_DEBUG") == "1"
    opt = ["-O0", "-g"] if debug else ["-O3"]
    sources = sorted(glob.glob("csrc/**/*.cpp", recursive=True))
    # at::parallel_for is header code built on OpenMP pragmas: without -fopenmp it runs serially.
    cxx = opt + ["-fopenmp"]  # the C++ standard is left to torch (C++17 before 2.10, C++20 after)
    define = [("FASTAUG_TORCH_VERSION", f'"{torch.__version__}"')]
    kwargs = dict(include_dirs=[os.path.join(ROOT, "csrc")], extra_link_args=["-fopenmp"])
    if WITH_CUDA:
        archs = cuda_arch_list()
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs
        sources += sorted(glob.glob("csrc/**/*.cu", recursive=True))
        kwargs["include_dirs"] += library_headers(CUDA_HOME)
        define += [("FASTAUG_WITH_CUDA", None), ("FASTAUG_CUDA_ARCHS", f'"{archs}"')]
        nvcc = opt + ["--expt-relaxed-constexpr", "-lineinfo"]
        return cpp_extension.CUDAExtension(
            "fastaug._C", sources, define_macros=define,
            extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **kwargs,
        )
    return cpp_extension.CppExtension(
        "fastaug._C", sources, define_macros=define, extra_compile_args={"cxx": cxx}, **kwargs
    )


def write_build_record():
    """Record the torch version we build against, so ``import fastaug`` can detect a mismatch."""
    path = os.path.join(ROOT, "fastaug", "_built_with.py")
    text = (
        "# Written by setup.py at build time; do not edit.\n"
        f"TORCH_VERSION = {torch.__version__!r}\n"
        f"WITH_CUDA = {WITH_CUDA!r}\n"
    )
    with open(path, "w") as f:
        f.write(text)


write_build_record()
print(f"fastaug: building {'with CUDA (' + CUDA_HOME + ')' if WITH_CUDA else 'CPU-only'} against torch {torch.__version__}")

setup(
    packages=find_packages(include=["fastaug", "fastaug.*"]),
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
