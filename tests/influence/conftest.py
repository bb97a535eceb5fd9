"""The influence tests run many tiny ops (solver iterations, retraining steps): every one of them on
one intra-op thread (tests/conftest.py's ``one_thread``)."""
import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield
