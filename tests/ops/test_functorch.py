"""The ops under torch.func's reverse-mode transforms (grad, vjp, jacrev, vmap of grad: per-sample
gradients), from a user trial: torch.library.register_autograd's Function has no setup_context, which
functorch refuses (pytorch/pytorch#168393), so torch.func.grad of every op raised "it must override
the setup_context staticmethod" where torch.autograd.grad works (and grid_sample works with both)."""
import warnings

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

import fastaug

D = torch.float64


def _maps(seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, k=1.0: torch.randn(*s, generator=g, dtype=D) * k  # noqa: E731
    x = torch.rand(2, 3, 6, 7, generator=g, dtype=D)
    return x, {"warp": (lambda a, m: fastaug.warp(a, m, padding_mode="reflection"), r(2, 2, 6, 7)),
               "affine_flow_warp": (lambda a, m: fastaug.affine_flow_warp(a, m[:, :4], m[:, 4:], smooth=2),
                                    r(2, 6, 6, 7, k=0.1)),
               "appearance": (lambda a, m: fastaug.appearance(a, m[:, :9], m[:, 9:], smooth=2), r(2, 12, 6, 7, k=0.1)),
               "transform": (lambda a, m: fastaug.transform(a, m, smooth=3), r(2, 18, 6, 7, k=0.05))}


def _autograd(fn, args, argnum):
    args = [a.clone().requires_grad_(i == argnum) for i, a in enumerate(args)]
    return torch.autograd.grad(fn(*args), args[argnum])[0]


@pytest.mark.parametrize("op", ["warp", "affine_flow_warp", "appearance", "transform"])
def test_grad_jacrev_and_per_sample_grads_of_the_image_ops(op):
    x, cases = _maps()
    fn, m = cases[op]
    loss = lambda a, mm: fn(a, mm).pow(2).sum()  # noqa: E731
    for argnum in (0, 1):
        torch.testing.assert_close(grad(loss, argnums=argnum)(x, m), _autograd(loss, (x, m), argnum))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vmap's "no batching rule" performance warning
        per_sample = vmap(grad(lambda a, mm: loss(a[None], mm[None]), argnums=1))(x, m)
    torch.testing.assert_close(per_sample, _autograd(loss, (x, m), 1))
    xs, ms = x[:1, :, :2, :3].contiguous(), m[:1, :, :2, :3].contiguous()
    torch.testing.assert_close(jacrev(lambda mm: fn(xs, mm))(ms),
                               torch.autograd.functional.jacobian(lambda mm: fn(xs, mm), ms))


def test_per_sample_gradients_of_a_layers_head():
    torch.manual_seed(0)
    layer = fastaug.nn.Warp(nn.Conv2d(3, 2, 3, padding=1).double())
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = torch.rand(3, 3, 5, 5, dtype=D)

    def loss(p, a):
        return functional_call(layer, p, (a[None],), {"context": a[None]}).pow(2).sum()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = vmap(grad(loss), in_dims=(None, 0))(params, x)
    for i in range(3):
        want = torch.autograd.grad(loss(dict(layer.named_parameters()), x[i]), list(layer.parameters()))
        for (name, _), w in zip(layer.named_parameters(), want):
            torch.testing.assert_close(got[name][i], w)


def test_apply_ops_and_influence_ops_under_grad():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 5, 5, generator=g)
    ops = (torch.tensor([5, 6]), torch.tensor([0.5, 0.7]), torch.ones(2), torch.arange(2))
    loss = lambda a: fastaug.apply_ops(a, *ops).pow(2).sum()  # noqa: E731
    torch.testing.assert_close(grad(loss)(x), _autograd(loss, (x,), 0))
    h, logits, s = torch.randn(5, 4, generator=g, dtype=D), torch.randn(5, 3, generator=g, dtype=D), torch.randn(3, 5, generator=g, dtype=D)
    target = torch.tensor([0, 1, 2, 0, 1])
    score = lambda a: fastaug.influence_score(a, logits, target, s).pow(2).sum()  # noqa: E731
    torch.testing.assert_close(grad(score)(h), _autograd(score, (h,), 0))
    p, v = torch.softmax(logits, 1), torch.randn(3, 5, generator=g, dtype=D)
    hvp = lambda a: fastaug.last_layer_hvp(h, p, a).pow(2).sum()  # noqa: E731
    torch.testing.assert_close(grad(hvp)(v), _autograd(hvp, (v,), 0))


def test_what_functorch_cannot_do_is_one_sentence():
    x, cases = _maps()
    fn, m = cases["warp"]
    xs, ms = x[:1, :1, :3, :3].contiguous(), m[:1, :, :3, :3].contiguous()
    with pytest.raises(RuntimeError, match="fastaug.warp: this second derivative is not supported under torch.func"):
        jacrev(jacrev(lambda mm: fn(xs, mm).pow(2).sum()))(ms)
    with pytest.raises(RuntimeError, match="fastaug.warp does not support forward-mode differentiation"):
        torch.func.hessian(lambda mm: fn(xs, mm).pow(2).sum())(ms)
    # the second derivative in x alone (the op is linear in x) needs no reference: it works
    torch.testing.assert_close(jacrev(jacrev(lambda a: fn(a, ms).pow(2).sum()))(xs),
                               torch.autograd.functional.hessian(lambda a: fn(a, ms).pow(2).sum(), xs))


def test_vmap_alone_keeps_the_registered_ops_autograd_double_backward_included():
    """vmap without a torch.func differentiation transform, under autograd: the registered op, batched by
    PyTorch's fallback, as before the torch.func formulas (a gradient penalty through vmap)."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 2, 3, 5, 5, generator=g, dtype=D, requires_grad=True)
    f = torch.randn(3, 2, 2, 5, 5, generator=g, dtype=D, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = vmap(fastaug.warp)(x, f)
    g1 = torch.autograd.grad(y.pow(2).sum(), f, create_graph=True)[0]
    g2 = torch.autograd.grad(g1.pow(2).sum(), x)[0]
    x2, f2 = x.detach().flatten(0, 1).requires_grad_(), f.detach().flatten(0, 1).requires_grad_()
    h1 = torch.autograd.grad(fastaug.warp(x2, f2).pow(2).sum(), f2, create_graph=True)[0]
    torch.testing.assert_close(g1.flatten(0, 1), h1)
    torch.testing.assert_close(g2.flatten(0, 1), torch.autograd.grad(h1.pow(2).sum(), x2)[0])
