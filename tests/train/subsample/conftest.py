"""The subsampling tests solve many tiny regressions (a few hundred rows): one thread each, since on a
busy shared machine OpenMP's thread start-up and spin-waits cost ~100x the work itself."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
