"""Locate the CUDA toolkit for the build (used by setup.py; tested in tests/test_build.py).

Kept apart from setup.py so it can be imported and tested without running a build.
"""
import glob
import os
import re
import shutil


def _is_toolkit(home):
    """True when ``home`` looks like a real CUDA toolkit: nvcc, headers and cudart."""
    if not home or not os.path.isfile(os.path.join(home, "bin", "nvcc")):
        return False
    if not os.path.isfile(os.path.join(home, "include", "cuda_runtime.h")):
        libdirs = glob.glob(os.path.join(home, "targets", "*", "include", "cuda_runtime.h"))
        if not libdirs:
            return False
    cudart = glob.glob(os.path.join(home, "lib64", "libcudart.so*")) + glob.glob(
        os.path.join(home, "targets", "*", "lib", "libcudart.so*")
    )
    return bool(cudart)


def _toolkit_from_nvcc(nvcc):
    """Follow ``nvcc`` on PATH to the toolkit it really runs.

    On some machines ``nvcc`` is a shell wrapper (``exec /usr/local/cuda-13.0/bin/nvcc "$@"``)
    in ``/usr/local/bin``; torch would guess ``/usr/local`` from it and then fail to link
    (``cannot find -lcudart``). We resolve symlinks and read the wrapper's target instead.
    """
    real = os.path.realpath(nvcc)
    home = os.path.dirname(os.path.dirname(real))
    if _is_toolkit(home):
        return home
    try:
        with open(real, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head.startswith(b"\x7fELF"):
        return None
    for match in re.finditer(rb"(/[^\s\"']+)/bin/nvcc\b", head):
        candidate = match.group(1).decode()
        if _is_toolkit(candidate):
            return candidate
    return None


def find_cuda_home():
    """Return the CUDA toolkit root or None. An explicit CUDA_HOME/CUDA_PATH always wins."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    nvcc = shutil.which("nvcc")
    if nvcc:
        home = _toolkit_from_nvcc(nvcc)
        if home:
            return home
    for candidate in ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True):
        if _is_toolkit(candidate):
            return candidate
    return None


def library_headers(cuda_home):
    """Include dirs for CUDA library headers (cuBLAS, cuSPARSE...) that torch's CUDA headers pull in.

    Slim toolkits ship only the compiler and runtime; torch's pip wheels bring the libraries'
    headers in ``site-packages/nvidia/*/include``. They go after the toolkit's own include dir.
    """
    if os.path.isfile(os.path.join(cuda_home, "include", "cusparse.h")):
        return []
    import site

    dirs = []
    for base in site.getsitepackages() + [site.getusersitepackages()]:
        dirs += sorted(glob.glob(os.path.join(base, "nvidia", "*", "include")))
    return [d for d in dirs if os.path.isfile(os.path.join(d, "cusparse.h"))]
