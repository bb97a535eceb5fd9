"""fastaug.last_layer_hvp / influence_score / influence_aug: parity with autograd, gradcheck, opcheck,
torch.compile, bad input."""
import pytest
import torch
import torch.nn.functional as F

import fastaug


def make_problem(N=23, D=6, C=4, device="cpu", dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, D, generator=g, dtype=torch.float64)
    theta = torch.randn(C, D + 1, generator=g, dtype=torch.float64) * 0.5
    y = torch.randint(0, C, (N,), generator=g)
    return h.to(device, dtype), theta.to(device, dtype), y.to(device)


def logits_of(h, theta):
    D = h.shape[1]
    return h @ theta[:, :D].T + theta[:, D]


def autograd_hvp(h, theta, y, v, weight=None, damping=0.0):
    """Double-backward HVP of the (weighted) mean cross-entropy: the reference."""
    th = theta.detach().clone().requires_grad_()
    losses = F.cross_entropy(logits_of(h, th), y, reduction="none")
    if weight is not None:
        losses = losses * weight
    (g,) = torch.autograd.grad(losses.sum() / h.shape[0], th, create_graph=True)
    (hv,) = torch.autograd.grad(g, th, grad_outputs=v)
    return hv + damping * v


@pytest.mark.parametrize("damping", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_hvp_matches_autograd(device, damping, weighted):
    h, theta, y = make_problem(device=device)
    p = torch.softmax(logits_of(h, theta), 1)
    g = torch.Generator().manual_seed(1)
    V = torch.randn(3, *theta.shape, generator=g, dtype=torch.float64).to(device)
    w = torch.rand(h.shape[0], generator=g, dtype=torch.float64).to(device) if weighted else None
    out = fastaug.last_layer_hvp(h, p, V, weight=w, damping=damping)
    assert out.shape == V.shape
    for k in range(3):
        ref = autograd_hvp(h, theta, y, V[k], w, damping)
        torch.testing.assert_close(out[k], ref, rtol=0, atol=1e-10)
        single = fastaug.last_layer_hvp(h, p, V[k], weight=w, damping=damping)
        torch.testing.assert_close(single, ref, rtol=0, atol=1e-10)


def test_hvp_scale_noncontiguous_and_empty(device):
    h, theta, y = make_problem(device=device)
    p = torch.softmax(logits_of(h, theta), 1)
    V = torch.randn(theta.shape[1], theta.shape[0], dtype=torch.float64, device=device).T  # non-contiguous
    ref = autograd_hvp(h, theta, y, V) * h.shape[0]
    hT = h.T.contiguous().T
    torch.testing.assert_close(fastaug.last_layer_hvp(hT, p, V, scale=1.0), ref, rtol=0, atol=1e-9)
    empty = fastaug.last_layer_hvp(h[:0], p[:0], V, damping=0.5)
    torch.testing.assert_close(empty, 0.5 * V)


def test_hvp_float32(device):
    h, theta, y = make_problem(N=200, D=32, C=10, device=device, dtype=torch.float32)
    p = torch.softmax(logits_of(h, theta), 1)
    V = torch.randn(2, *theta.shape, device=device)
    ref = torch.stack([autograd_hvp(h.double(), theta.double(), y, V[k].double()) for k in range(2)])
    torch.testing.assert_close(fastaug.last_layer_hvp(h, p, V).double(), ref, rtol=1e-4, atol=1e-5)


def autograd_scores(h, theta, y, s):
    """s^T grad_Theta l(z_i) for every sample by a per-sample autograd loop."""
    out = []
    for i in range(h.shape[0]):
        th = theta.detach().clone().requires_grad_()
        loss = F.cross_entropy(logits_of(h[i:i + 1], th), y[i:i + 1])
        (g,) = torch.autograd.grad(loss, th)
        out.append((g * s).sum())
    return torch.stack(out)


def test_score_matches_autograd(device):
    h, theta, y = make_problem(device=device)
    s = torch.randn_like(theta)
    z = logits_of(h, theta)
    ref = autograd_scores(h, theta, y, s)
    torch.testing.assert_close(fastaug.influence_score(h, z, y, s), ref, rtol=0, atol=1e-12)
    h2 = h + 0.1 * torch.randn_like(h)
    z2 = logits_of(h2, theta)
    ref_aug = -(autograd_scores(h2, theta, y, s) - ref)
    torch.testing.assert_close(fastaug.influence_aug(h, z, h2, z2, y, s), ref_aug, rtol=0, atol=1e-12)


def test_score_gradcheck(device):
    h, theta, y = make_problem(N=7, D=4, C=3, device=device)
    z = logits_of(h, theta).detach()
    s = torch.randn_like(theta)
    h.requires_grad_()
    z.requires_grad_()
    s.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, c: fastaug.influence_score(a, b, y, c), (h, z, s))


def test_gradient_through_frozen_classifier(device):
    """d I_aug / d h_aug through both paths (h~ directly and the logits) equals autograd of the
    explicit formula."""
    h, theta, y = make_problem(N=9, D=5, C=3, device=device)
    s = torch.randn_like(theta)
    h_aug = (h + 0.2).requires_grad_()
    ours = fastaug.influence_aug(h, logits_of(h, theta), h_aug, logits_of(h_aug, theta), y, s)
    (g_ours,) = torch.autograd.grad(ours.sum(), h_aug)
    h_ref = h_aug.detach().clone().requires_grad_()
    D = h.shape[1]
    delta = torch.softmax(logits_of(h_ref, theta), 1) - F.one_hot(y, 3).double()
    ref = -((delta * (h_ref @ s[:, :D].T + s[:, D])).sum(1))
    (g_ref,) = torch.autograd.grad(ref.sum(), h_ref)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-12)


def test_hvp_gradient_wrt_v(device):
    # v -> Hv is linear and H symmetric: the backward is H grad; float64 gradcheck through the op.
    h, theta, y = make_problem(N=13, D=4, C=3, device=device)
    p = torch.softmax(logits_of(h, theta), 1)
    w = torch.rand(13, dtype=torch.float64, device=device)
    V = torch.randn(2, *theta.shape, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: fastaug.last_layer_hvp(h, p, v, weight=w, damping=0.2), (V,))
    G = torch.randn_like(V)
    (gv,) = torch.autograd.grad(fastaug.last_layer_hvp(h, p, V, damping=0.2), V, G)
    torch.testing.assert_close(gv, torch.stack([autograd_hvp(h, theta, y, G[k], damping=0.2) for k in range(2)]),
                               rtol=1e-10, atol=1e-10)
    with pytest.raises(RuntimeError, match="differentiable with respect to v only"):
        fastaug.last_layer_hvp(h.clone().requires_grad_(), p, V.detach()).sum().backward()


def test_opcheck(device):
    h, theta, y = make_problem(N=11, D=5, C=3, device=device)
    p = torch.softmax(logits_of(h, theta), 1)
    V = torch.randn(2, *theta.shape, dtype=torch.float64, device=device)
    w = torch.rand(11, dtype=torch.float64, device=device)
    torch.library.opcheck(torch.ops.fastaug.last_layer_hvp.default, (h, p, V, w, 0.1, 0.01))
    torch.library.opcheck(torch.ops.fastaug.last_layer_hvp.default, (h, p, V.clone().requires_grad_(), w, 0.1, 0.0))
    torch.library.opcheck(torch.ops.fastaug.last_layer_hvp.default, (h, p, V, None, 0.1, 0.0))
    z = logits_of(h, theta).requires_grad_()
    s = torch.randn_like(theta)
    torch.library.opcheck(torch.ops.fastaug.influence_score.default, (h.requires_grad_(), z, y, s))


@pytest.mark.slow
def test_compile_fullgraph():
    h, theta, y = make_problem(N=11, D=5, C=3)
    p = torch.softmax(logits_of(h, theta), 1)
    V = torch.randn(*theta.shape, dtype=torch.float64)
    s = torch.randn_like(theta)

    @torch.compile(fullgraph=True, backend="eager")
    def f(h, p, V, z, s):
        return fastaug.last_layer_hvp(h, p, V, damping=0.1, check_finite=False), fastaug.influence_score(h, z, y, s)

    z = logits_of(h, theta)
    hv, sc = f(h, p, V, z, s)
    torch.testing.assert_close(hv, fastaug.last_layer_hvp(h, p, V, damping=0.1))
    torch.testing.assert_close(sc, fastaug.influence_score(h, z, y, s))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_features_cuda(dtype):
    h, theta, y = make_problem(N=300, D=64, C=10, device="cuda", dtype=torch.float32)
    s = torch.randn_like(theta) * 0.1
    z = logits_of(h, theta)
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
    V = torch.randn(2, *theta.shape, device="cuda")
    hv = fastaug.last_layer_hvp(h.to(dtype), p, V.to(dtype)).double()
    hv_ref = fastaug.last_layer_hvp(h.double(), p.double(), V.double())
    assert (hv - hv_ref).norm() <= 3 * tol * hv_ref.norm()


@pytest.mark.cuda
@pytest.mark.parametrize("N,C", [(257, 100), (9001, 7)])  # many classes; a long reduction over samples
def test_cuda_matches_cpu(N, C):
    h, theta, y = make_problem(N=N, D=33, C=C)
    p = torch.softmax(logits_of(h, theta), 1)
    V = torch.randn(3, *theta.shape, dtype=torch.float64)
    w = torch.rand(N, dtype=torch.float64)
    cpu = fastaug.last_layer_hvp(h, p, V, weight=w, damping=0.2)
    gpu = fastaug.last_layer_hvp(h.cuda(), p.cuda(), V.cuda(), weight=w.cuda(), damping=0.2)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-10)


def test_bad_inputs():
    h, theta, y = make_problem()
    p = torch.softmax(logits_of(h, theta), 1)
    V = torch.randn_like(theta)
    with pytest.raises(ValueError, match="v must have shape"):
        fastaug.last_layer_hvp(h, p, V[:, :-1])
    with pytest.raises(ValueError, match="p must have shape"):
        fastaug.last_layer_hvp(h, p[:-1], V)
    with pytest.raises(ValueError, match="damping"):
        fastaug.last_layer_hvp(h, p, V, damping=-1.0)
    bad = h.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(ValueError, match="h contains NaN"):
        fastaug.last_layer_hvp(bad, p, V)
    with pytest.raises(TypeError, match="dtype of h"):
        fastaug.last_layer_hvp(h, p.float(), V)
    with pytest.raises(ValueError, match="weight must have shape"):
        fastaug.last_layer_hvp(h, p, V, weight=torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"h must have shape \(N, D\)"):
        fastaug.last_layer_hvp(h[0], p, V)
    with pytest.raises(TypeError, match="CUDA only"):
        fastaug.influence_score(h.half(), logits_of(h, theta).half(), y, theta.half())
    z = logits_of(h, theta)
    with pytest.raises(ValueError, match="s must have shape"):
        fastaug.influence_score(h, z, y, theta[:, :-1])
    with pytest.raises(ValueError, match="class labels"):
        fastaug.influence_score(h, z, y + 10, theta)
    with pytest.raises(TypeError, match="int64"):
        fastaug.influence_score(h, z, y.int(), theta)
    with pytest.raises(RuntimeError, match="class labels"):  # the C++ check behind the op
        torch.ops.fastaug.influence_score(h, z, y + 10, theta)
    with pytest.raises(RuntimeError, match="damping"):
        torch.ops.fastaug.last_layer_hvp(h, p, V[None], None, 1.0, -1.0)
