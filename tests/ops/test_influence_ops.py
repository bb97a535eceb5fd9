"""What only the influence ops have: the gradient of I_aug through a frozen classifier (both paths), the
HVP's backward (H applied to the output gradient; refused for h), half-precision features and long
reductions on CUDA. Parity with the autograd references, gradcheck, compile, export and bad arguments
for every op: the spec-driven files (tests/ops/opinfo.py, test_spec_*.py)."""
import pytest
import torch
import torch.nn.functional as F

import fastaug
from opinfo import influence_problem, seeded
from oracles.influence import reference_hvp


def test_gradient_through_frozen_classifier(device):
    """d I_aug / d h_aug through both paths (h~ directly and the logits) equals autograd of the
    explicit formula."""
    h, theta, y, _ = influence_problem(9, 5, 3, device)
    s = seeded(theta.shape, device, seed=1, normal=True)
    D = h.shape[1]
    logits_of = lambda f: f @ theta[:, :D].T + theta[:, D]  # noqa: E731
    h_aug = (h + 0.2).requires_grad_()
    ours = fastaug.influence_aug(h, logits_of(h), h_aug, logits_of(h_aug), y, s)
    (g_ours,) = torch.autograd.grad(ours.sum(), h_aug)
    h_ref = h_aug.detach().clone().requires_grad_()
    delta = torch.softmax(logits_of(h_ref), 1) - F.one_hot(y, 3).double()
    ref = -((delta * (h_ref @ s[:, :D].T + s[:, D])).sum(1))
    (g_ref,) = torch.autograd.grad(ref.sum(), h_ref)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-12)


def test_hvp_backward_is_the_hessian_applied_to_the_gradient(device):
    """v -> Hv is linear and H symmetric: the backward is H grad (damping included); h is refused."""
    h, theta, y, logits = influence_problem(13, 4, 3, device)
    p = torch.softmax(logits, 1)
    V = seeded((2, *theta.shape), device, seed=2, normal=True).requires_grad_()
    G = seeded(V.shape, device, seed=3, normal=True)
    (gv,) = torch.autograd.grad(fastaug.last_layer_hvp(h, p, V, damping=0.2), V, G)
    torch.testing.assert_close(gv, reference_hvp(h, p, G, damping=0.2), rtol=1e-10, atol=1e-10)
    with pytest.raises(RuntimeError, match="differentiable with respect to v only"):
        fastaug.last_layer_hvp(h.clone().requires_grad_(), p, V.detach()).sum().backward()


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_features_cuda(dtype):
    h, theta, y, z = influence_problem(300, 64, 10, "cuda", torch.float32)
    s = seeded(theta.shape, "cuda", torch.float32, 4, 0.1, normal=True)
    ref = fastaug.influence_score(h.double(), z.double(), y, s.double())
    hh = h.to(dtype).requires_grad_()
    zz = z.detach().requires_grad_()
    out = fastaug.influence_score(hh, zz, y, s)
    assert out.dtype == torch.float32
    tol = 3e-2 if dtype == torch.bfloat16 else 5e-3
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())
    out.sum().backward()
    assert hh.grad.dtype == dtype and torch.isfinite(hh.grad.float()).all()
    p = torch.softmax(z, 1).to(dtype)
    V = seeded((2, *theta.shape), "cuda", torch.float32, 5, normal=True)
    hv = fastaug.last_layer_hvp(h.to(dtype), p, V.to(dtype)).double()
    hv_ref = fastaug.last_layer_hvp(h.double(), p.double(), V.double())
    assert (hv - hv_ref).norm() <= 3 * tol * hv_ref.norm()


@pytest.mark.cuda
@pytest.mark.parametrize("N,C", [(257, 100), (9001, 7)])  # many classes; a long reduction over samples
def test_cuda_matches_cpu_on_long_reductions(N, C):
    h, theta, y, logits = influence_problem(N, 33, C, "cpu")
    p = torch.softmax(logits, 1)
    V = seeded((3, *theta.shape), seed=6, normal=True)
    w = seeded((N,), seed=7)
    cpu = fastaug.last_layer_hvp(h, p, V, weight=w, damping=0.2)
    gpu = fastaug.last_layer_hvp(h.cuda(), p.cuda(), V.cuda(), weight=w.cuda(), damping=0.2)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-10)
