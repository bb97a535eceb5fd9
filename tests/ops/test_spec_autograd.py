"""Gradients of every op (tests/ops/opinfo.py): float64 gradcheck of every differentiable input, and
second order: gradgradcheck where the op supports double backward (warp, affine_flow_warp, appearance,
transform), a RuntimeError from differentiating the backward where it does not (policy, influence ops),
never a silent zero."""
import re

import pytest
import torch

from opinfo import OPS, requires_grad

IDS = [o.name for o in OPS]


def _fn_and_inputs(opinfo, sample):
    """fn(*tensors) calling the op with the differentiable inputs replaced; the inputs, requiring grad."""
    sample = requires_grad(sample, opinfo.grad_inputs)
    inputs = tuple(sample.kwargs[n] for n in opinfo.grad_inputs)

    def fn(*tensors):
        return opinfo.op(**dict(sample.kwargs, **dict(zip(opinfo.grad_inputs, tensors))))

    return fn, inputs


def _nondet(device):
    # CUDA: the gradient for x is an atomic scatter (as grid_sample's); float64 sums may differ in the last bits.
    return 1e-12 if device == "cuda" else 0.0


@pytest.mark.parametrize("opinfo", OPS, ids=IDS)
def test_gradcheck(opinfo, device):
    for sample in opinfo.grad_samples(device):
        fn, inputs = _fn_and_inputs(opinfo, sample)
        assert torch.autograd.gradcheck(fn, inputs, nondet_tol=_nondet(device), **opinfo.gradcheck_kwargs), sample


@pytest.mark.parametrize("opinfo", [o for o in OPS if o.gradgrad], ids=lambda o: o.name)
def test_gradgradcheck(opinfo, device):
    """Second derivatives of every differentiable input against finite differences of the first."""
    sample = opinfo.grad_samples(device)[0]
    fn, inputs = _fn_and_inputs(opinfo, sample)
    kwargs = dict(opinfo.gradcheck_kwargs, fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, inputs, nondet_tol=_nondet(device), **kwargs), sample


# What autograd itself says when nothing is differentiable: a refusal by the op must not look like this.
_NOT_A_REFUSAL = re.compile("does not require grad|does not have a grad_fn")


@pytest.mark.parametrize("opinfo", [o for o in OPS if not o.gradgrad], ids=lambda o: o.name)
def test_double_backward_raises(opinfo, device):
    """Differentiating the backward of an op without double backward raises a RuntimeError from the op
    (at the first backward with create_graph=True, or at the second), never a silent zero."""
    sample = opinfo.grad_samples(device)[0]
    fn, inputs = _fn_and_inputs(opinfo, sample)
    with pytest.raises(RuntimeError) as info:
        out = fn(*inputs)
        grads = torch.autograd.grad(out.square().sum(), inputs, create_graph=True)
        torch.autograd.grad(sum(g.square().sum() for g in grads), inputs)
    assert not _NOT_A_REFUSAL.search(str(info.value)), f"not a refusal by the op: {info.value}"
