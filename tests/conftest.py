"""Shared test set-up.

* A test that takes a ``device`` argument runs on "cpu" and on "cuda"; the CUDA case skips unless
  fastaug was built with CUDA kernels and a GPU is visible.
* ``@pytest.mark.cuda`` marks a test that needs both; it skips otherwise.
* ``@pytest.mark.slow`` marks tests that take more than a few seconds (still run by default).
"""
import pytest
import torch

import fastaug

HAS_CUDA = bool(fastaug.build_info()["cuda"]) and torch.cuda.is_available()
CUDA_SKIP = "needs fastaug built with CUDA kernels and a visible GPU"


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA build of fastaug and a GPU")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        metafunc.parametrize(
            "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason=CUDA_SKIP))]
        )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(pytest.mark.skip(reason=CUDA_SKIP))
