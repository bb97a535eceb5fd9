"""The influence tests run many tiny ops (solver iterations, retraining steps): one intra-op thread
avoids OpenMP barrier stalls, which dominate on a shared, busy machine."""
import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
