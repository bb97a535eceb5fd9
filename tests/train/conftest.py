"""Fixtures of the training tests."""
import pytest

from _train_utils import small_args


@pytest.fixture
def small(tmp_path):
    """``small(name="run", **overrides)``: arguments of a few-second MNIST-5k run in tmp_path/name."""
    return lambda name="run", **kw: small_args(tmp_path / name, **kw)
