"""Shared test set-up.

* A test that takes a ``device`` argument runs on "cpu" and on "cuda"; the CUDA case skips unless
  fastaug was built with CUDA kernels and a GPU is visible.
* ``@pytest.mark.cuda`` marks a test that needs both; it skips otherwise.
* ``@pytest.mark.slow`` marks tests that take more than a few seconds (still run by default).
* Every test starts from seeded random number generators (torch on CPU and CUDA, numpy, random),
  so inputs drawn without an explicit ``generator=`` are reproducible too.
"""
import random

import pytest
import torch

import fastaug

HAS_CUDA = bool(fastaug.build_info()["cuda"]) and torch.cuda.is_available()
CUDA_SKIP = "needs fastaug built with CUDA kernels and a visible GPU"


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA build of fastaug and a GPU")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture(autouse=True)
def _seeded_rngs():
    random.seed(0)
    torch.manual_seed(0)  # also seeds every CUDA device
    try:
        import numpy as np

        np.random.seed(0)
    except ImportError:
        pass


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: suites of many tiny ops (solver iterations, small refits)
    otherwise spend their time in OpenMP thread start-up and barrier spins on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        metafunc.parametrize(
            "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason=CUDA_SKIP))]
        )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(pytest.mark.skip(reason=CUDA_SKIP))
