"""LastLayerHessian (dense form, diagonal, bound) and the exact / CG / LiSSA solvers."""
import warnings

import pytest
import torch
import torch.nn.functional as F

from fastaug.influence import (LastLayerHessian, SolverError, SolverWarning, conjugate_gradient, lissa, solve,
                               solve_exact)


def problem(N=60, D=5, C=3, damping=0.1, weighted=False, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, D, generator=g, dtype=torch.float64)
    theta = torch.randn(C, D + 1, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (N,), generator=g)
    w = torch.rand(N, generator=g, dtype=torch.float64) if weighted else None
    z = h @ theta[:, :D].T + theta[:, D]
    hess = LastLayerHessian(h.to(device), torch.softmax(z, 1).to(device), damping=damping,
                            weight=None if w is None else w.to(device))
    return hess, h, theta, y, w


def autograd_hessian(h, theta, y, w, damping):
    D = h.shape[1]

    def loss(t):
        l = F.cross_entropy(h @ t[:, :D].T + t[:, D], y, reduction="none")
        return (l if w is None else l * w).sum() / h.shape[0]

    P = theta.numel()
    return torch.autograd.functional.hessian(loss, theta).reshape(P, P) + damping * torch.eye(P, dtype=h.dtype)


@pytest.mark.parametrize("weighted", [False, True])
def test_dense_diagonal_and_bound(weighted):
    hess, h, theta, y, w = problem(weighted=weighted)
    ref = autograd_hessian(h, theta, y, w, 0.1)
    H = hess.dense(chunk_size=7)  # several chunks
    torch.testing.assert_close(H, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(hess.diagonal().reshape(-1), ref.diagonal(), rtol=0, atol=1e-12)
    assert torch.linalg.eigvalsh(ref).max() <= hess.lambda_max_bound()
    # lambda_max(diag(p) - p p^T) <= 1/2, the fact the LiSSA bound rests on
    p = torch.softmax(torch.randn(200, 7, dtype=torch.float64) * 3, 1)
    A = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    assert torch.linalg.eigvalsh(A).max() <= 0.5 + 1e-12


@pytest.mark.parametrize("precond", [None, "jacobi"])
def test_cg_matches_exact(device, precond):
    hess, *_ = problem(N=80, D=6, C=4, damping=0.05, device=device)
    B = torch.randn(5, *hess.shape, dtype=torch.float64, device=device)
    x_exact, info_e = solve_exact(hess, B)
    assert info_e.residual < 1e-12
    x_cg, info = conjugate_gradient(hess, B, preconditioner=precond, tol=1e-12)
    assert info.converged and info.iterations <= hess.num_params + 5
    rel = (x_cg - x_exact).flatten(1).norm(dim=1) / x_exact.flatten(1).norm(dim=1)
    assert rel.max() < 1e-8, rel
    x1, _ = conjugate_gradient(hess, B[2], preconditioner=precond, tol=1e-12)  # one RHS, (C, D+1)
    torch.testing.assert_close(x1, x_exact[2], rtol=1e-8, atol=1e-10)


def test_lissa_matches_exact(device):
    hess, *_ = problem(N=80, D=6, C=4, damping=0.2, device=device)
    B = torch.randn(3, *hess.shape, dtype=torch.float64, device=device)
    x_exact, _ = solve_exact(hess, B)
    x, info = lissa(hess, B, tol=1e-7)
    assert info.converged and info.scale == pytest.approx(hess.lambda_max_bound())
    rel = (x - x_exact).flatten(1).norm(dim=1) / x_exact.flatten(1).norm(dim=1)
    assert rel.max() < 1e-4, rel
    # stochastic minibatch LiSSA is reproducible with a generator and lands near the solution
    xs1, _ = lissa(hess, B[0], batch_size=40, max_iter=300, generator=torch.Generator().manual_seed(3))
    xs2, _ = lissa(hess, B[0], batch_size=40, max_iter=300, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(xs1, xs2)
    assert (xs1 - x_exact[0]).norm() < 0.5 * x_exact[0].norm()


def test_iteration_caps_warn():
    hess, *_ = problem(damping=1e-3)
    b = torch.randn(*hess.shape, dtype=torch.float64)
    with pytest.warns(SolverWarning, match="iteration cap"):
        _, info = conjugate_gradient(hess, b, max_iter=2)
    assert info.iterations == 2 and not info.converged and info.residual > 1e-10
    with pytest.warns(SolverWarning, match="iteration cap"):
        _, info = lissa(hess, b, max_iter=3)
    assert not info.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solve(hess, b, "cg", max_iter=500)  # converges: no warning


def test_lissa_divergence_and_nan_raise():
    hess, *_ = problem(damping=0.1)
    b = torch.randn(*hess.shape, dtype=torch.float64)
    lam_max = float(torch.linalg.eigvalsh(hess.dense()).max())
    with pytest.raises(SolverError, match="diverged"):
        lissa(hess, b, scale=lam_max / 4, max_iter=2000)
    with pytest.raises(SolverError, match="NaN"):
        conjugate_gradient(hess, b, preconditioner=lambda r: r * float("nan"))


def test_bad_inputs():
    hess, h, *_ = problem()
    b = torch.randn(*hess.shape, dtype=torch.float64)
    with pytest.raises(ValueError, match="method must be one of"):
        solve(hess, b, "newton")
    with pytest.raises(ValueError, match="b must have shape"):
        solve(hess, b[:, :-1], "cg")
    with pytest.raises(ValueError, match="b contains NaN"):
        solve(hess, b * float("nan"), "cg")
    with pytest.raises(ValueError, match="max_params"):
        solve(hess, b, "exact", max_params=10)
    with pytest.raises(ValueError, match="damping"):
        LastLayerHessian(h, torch.softmax(torch.randn(h.shape[0], 3, dtype=h.dtype), 1), damping=-0.1)
    bad = h.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="h contains NaN or infinite"):
        LastLayerHessian(bad, torch.softmax(torch.randn(h.shape[0], 3, dtype=h.dtype), 1))
    singular = LastLayerHessian(h, torch.softmax(torch.randn(h.shape[0], 3, dtype=h.dtype), 1), damping=0.0)
    with pytest.raises(RuntimeError, match="not positive definite"):
        solve_exact(singular, b)  # softmax over-parametrisation: H is singular without damping
    empty = LastLayerHessian(h[:0], torch.softmax(torch.randn(0, 3, dtype=h.dtype), 1), damping=0.0)
    for method in ("exact", "cg", "lissa"):  # H = 0: every solver names the problem and the remedy
        with pytest.raises(RuntimeError, match="not positive definite.*increase damping"):
            solve(empty, b, method)
    with pytest.raises(ValueError, match="scale must be a finite number > 0, got -1"):
        lissa(hess, b, scale=-1)
    with pytest.raises(ValueError, match="v must have shape"):
        hess.matvec(b[:, :-1])
    with pytest.raises(TypeError, match="v must be torch.float64"):
        hess.matvec(b.float())
    torch.testing.assert_close(hess @ b, hess.matvec(b[None])[0], rtol=0, atol=0)
