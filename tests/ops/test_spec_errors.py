"""Every public op refuses each bad argument of its spec (tests/ops/opinfo.py, ``OpInfo.bad_args``) with
the expected exception and a message naming the argument. (Direct calls of the registered ops, without
the Python checks: test_direct_calls.py.)"""
import pytest

from opinfo import OPS

CASES = [pytest.param(o, i, id=f"{o.name}-{i}") for o in OPS for i in range(len(o.bad_args))]


@pytest.mark.parametrize("opinfo,case", CASES)
def test_bad_argument_is_named(opinfo, case):
    mutate, exc, match = opinfo.bad_args[case]
    sample = opinfo.samples("cpu", opinfo.dtypes[0])[0]
    with pytest.raises(exc, match=match):
        opinfo.op(**mutate(dict(sample.kwargs)))
