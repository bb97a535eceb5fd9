"""Build script for fastaug's compiled core, ``fastaug._C``.

C++ CPU kernels are always built. CUDA kernels are built whenever torch is a CUDA
build and a CUDA toolkit is found, GPU present or not. Environment switches:

* ``FASTAUG_CUDA=0`` forces a CPU-only build; ``FASTAUG_CUDA=1`` forces a CUDA build
  and fails loudly when one is impossible.
* ``CUDA_HOME`` (or ``CUDA_PATH``) names the toolkit explicitly and always wins.
* ``TORCH_CUDA_ARCH_LIST`` overrides the target architectures (default: sm_80 and
  sm_90 plus PTX, and the visible GPU's own architecture when there is one).
* ``FASTAUG_DEBUG=1`` builds with ``-O0 -g``.

The kernels compile against the torch already installed, so a build must see that torch:
``pip install --no-build-isolation .``. Making an sdist (``python -m build --sdist``) and pip's
metadata steps need no torch; a build without one stops with one sentence saying so (no traceback).
"""
import glob
import os
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
from buildtools.cuda_env import find_cuda_home, library_headers  # noqa: E402

PACKAGES = find_packages(include=["fastaug", "fastaug.*"])

# setup.py commands that only describe or package the sources: they run without torch (pip's
# isolated metadata steps, `python -m build --sdist`); every other command compiles.
NO_COMPILE = {"sdist", "egg_info", "dist_info", "check", "clean"}
NEED_TORCH = (
    "fastaug compiles its kernels against the torch installed in your environment, which pip's isolated "
    "build cannot see: install torch first, then `pip install --no-build-isolation .` "
    "(or `pip install --no-build-isolation git+<url>`)."
)


def compiles(argv):
    """True unless the first setup.py command (the first argument not starting with '-') is in NO_COMPILE."""
    words = [a for a in argv[1:] if not a.startswith("-")]
    return bool(words) and words[0] not in NO_COMPILE


def cuda_arch_list(torch):
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


def extension(torch, cpp_extension, cuda_home):
    debug = os.environ.get("FASTAUG_DEBUG") == "1"
    opt = ["-O0", "-g"] if debug else ["-O3"]
    sources = sorted(glob.glob("csrc/**/*.cpp", recursive=True))
    # at::parallel_for is header code built on OpenMP pragmas: without -fopenmp it runs serially.
    # -ffp-contract=off: the CPU kernels exist once per instruction set (csrc/common/cpu_kernels.h) and
    # every copy must round exactly as the baseline one, so no copy may fuse a multiply and an add on
    # its own (GCC's default fuses wherever the target has FMA).
    cxx = opt + ["-fopenmp", "-ffp-contract=off"]  # the C++ standard is left to torch (C++17 before 2.10, C++20 after)
    define = [("FASTAUG_TORCH_VERSION", f'"{torch.__version__}"')]
    kwargs = dict(include_dirs=[os.path.join(ROOT, "csrc")], extra_link_args=["-fopenmp"])
    if cuda_home:
        archs = cuda_arch_list(torch)
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs
        sources += sorted(glob.glob("csrc/**/*.cu", recursive=True))
        kwargs["include_dirs"] += library_headers(cuda_home)
        define += [("FASTAUG_WITH_CUDA", None), ("FASTAUG_CUDA_ARCHS", f'"{archs}"')]
        nvcc = opt + ["--expt-relaxed-constexpr", "-lineinfo"]
        return cpp_extension.CUDAExtension(
            "fastaug._C", sources, define_macros=define,
            extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **kwargs,
        )
    return cpp_extension.CppExtension(
        "fastaug._C", sources, define_macros=define, extra_compile_args={"cxx": cxx}, **kwargs
    )


def write_build_record(torch, with_cuda):
    """Record the torch version we build against, so ``import fastaug`` can detect a mismatch."""
    path = os.path.join(ROOT, "fastaug", "_built_with.py")
    text = (
        "# Written by setup.py at build time; do not edit.\n"
        f"TORCH_VERSION = {torch.__version__!r}\n"
        f"WITH_CUDA = {with_cuda!r}\n"
    )
    with open(path, "w") as f:
        f.write(text)


def build():
    """setup() with the compiled extension; exits with one sentence when the build cannot happen."""
    force = os.environ.get("FASTAUG_CUDA")
    if force not in (None, "", "0", "1"):
        sys.exit(f"FASTAUG_CUDA must be 0 or 1, got {force!r}")
    cuda_home = find_cuda_home() if force != "0" else None
    if cuda_home:
        # torch.utils.cpp_extension reads CUDA_HOME once, at import time: set it first.
        os.environ["CUDA_HOME"] = cuda_home
    try:
        import torch
    except ImportError:
        sys.exit(NEED_TORCH)
    from torch.utils import cpp_extension

    with_cuda = force != "0" and torch.version.cuda is not None and cuda_home is not None
    if force == "1" and not with_cuda:
        why = "torch is a CPU-only build" if torch.version.cuda is None else "no CUDA toolkit was found (set CUDA_HOME)"
        sys.exit(f"FASTAUG_CUDA=1 asks for a CUDA build, but {why}.")
    write_build_record(torch, with_cuda)
    where = f"with CUDA ({cuda_home})" if with_cuda else "CPU-only"
    print(f"fastaug: building {where} against torch {torch.__version__}")
    setup(
        packages=PACKAGES,
        ext_modules=[extension(torch, cpp_extension, cuda_home if with_cuda else None)],
        cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
    )


if compiles(sys.argv):
    build()
else:
    setup(packages=PACKAGES)
