"""Inverse-Hessian-vector products ``x = H^-1 b`` for the last-layer Hessian: exact, CG, LiSSA.

Every solver takes a :class:`~fastaug.influence.hessian.LastLayerHessian` and right-hand sides of
its shape, (C, D+1) (or (C, D) for a last layer without a bias), or (K, C, D+1) (K solved at once:
one GEMM per product), returns ``(x, info)`` with a :class:`SolveInfo` (iterations and the relative
residual ``||b - H x|| / ||b||``, measured with one extra product at the end), warns with
:class:`SolverWarning` when it stops on its iteration cap, raises :class:`SolverError` on NaN or
divergence, and a RuntimeError (a SolverError from CG and LiSSA) naming damping when H is not
positive definite. Nothing is silently ignored.
"""
import dataclasses
import math
import warnings

import torch

METHODS = ("exact", "cg", "lissa")


class SolverWarning(RuntimeWarning):
    """An iterative solver stopped on its iteration cap before reaching its tolerance."""


class SolverError(RuntimeError):
    """A solver met NaN/inf or diverged."""


@dataclasses.dataclass
class SolveInfo:
    method: str
    iterations: int
    residual: float            # max over right-hand sides of ||b - H x|| / ||b||
    converged: bool
    residuals: torch.Tensor = None  # (K,) per right-hand side
    scale: float = None        # LiSSA's scale

    def __str__(self):
        extra = f", scale={self.scale:.4g}" if self.scale is not None else ""
        return (f"{self.method}: {self.iterations} iterations, relative residual {self.residual:.3e}, "
                f"{'converged' if self.converged else 'NOT converged'}{extra}")


def _as_batch(hessian, b):
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"b must be a torch.Tensor, got {type(b).__name__}")
    shape = tuple(hessian.shape)
    if tuple(b.shape[-2:]) != shape or b.dim() not in (2, 3):
        layout = "D+1 parameters, last column = bias" if getattr(hessian, "bias", True) else "D weights, no bias"
        raise ValueError(f"b must have shape {shape} or (K, {shape[0]}, {shape[1]}) (C classes x {layout}), "
                         f"got {tuple(b.shape)}")
    if b.device != hessian.device:
        raise ValueError(f"b must be on the Hessian's device ({hessian.device}), got {b.device}")
    b = b.to(hessian.dtype)
    if not bool(torch.isfinite(b).all()):
        raise ValueError("b contains NaN or infinite values")
    return (b.unsqueeze(0), True) if b.dim() == 2 else (b, False)


def _norms(x):
    return x.flatten(1).norm(dim=1)


def _dot(a, b):
    return (a * b).flatten(1).sum(1)


def _residuals(hessian, x, b):
    bn = _norms(b).clamp_min(torch.finfo(b.dtype).tiny)
    return _norms(b - hessian.matvec(x)) / bn


def _default_tol(dtype):
    return 1e-10 if dtype == torch.float64 else 1e-5


def _finish(method, hessian, x, b, iterations, tol, single, scale=None, cap=None):
    res = _residuals(hessian, x, b)
    if not bool(torch.isfinite(x).all()) or not bool(torch.isfinite(res).all()):
        raise SolverError(f"{method}: the solution contains NaN or infinite values")
    worst = float(res.max()) if res.numel() else 0.0
    converged = tol is None or worst <= tol * 10  # the recurrence residual met tol; allow rounding drift
    info = SolveInfo(method, iterations, worst, converged, res, scale)
    if cap is not None and iterations >= cap and not converged:
        warnings.warn(f"{method} stopped on its iteration cap max_iter={cap} with relative residual {worst:.3e} "
                      f"> tol={tol:.1e}; raise max_iter or damping", SolverWarning, stacklevel=3)
    return (x.squeeze(0) if single else x), info


def solve_exact(hessian, b, *, max_params=20000, progress=False):
    """Form H (when ``C*(D+1) <= max_params``), Cholesky-factor it once (cached on the Hessian) and
    solve all right-hand sides."""
    B, single = _as_batch(hessian, b)
    L = hessian.cholesky(max_params=max_params, progress=progress)
    X = torch.cholesky_solve(B.flatten(1).T, L).T.reshape(B.shape)
    return _finish("exact", hessian, X, B, 1, None, single)


def _jacobi(hessian):
    d = hessian.diagonal()
    if not bool((d > 0).all()):
        raise ValueError("the Jacobi preconditioner needs a positive Hessian diagonal; add damping")
    inv = 1.0 / d
    return lambda r: r * inv


def conjugate_gradient(hessian, b, *, tol=None, max_iter=1000, preconditioner=None, x0=None):
    """Batched (preconditioned) conjugate gradients: every right-hand side runs its own CG, but the
    products of all unconverged ones are one GEMM.

    Args:
        tol: stop a right-hand side when ``||r|| <= tol * ||b||`` (default 1e-10 in float64, 1e-5 else).
        max_iter: iteration cap (warns with SolverWarning when reached).
        preconditioner: None, ``"jacobi"`` (the exact diagonal of H) or a callable ``M^-1 r``.
        x0: optional initial guess of the shape of b.
    """
    B, single = _as_batch(hessian, b)
    tol = _default_tol(B.dtype) if tol is None else float(tol)
    if preconditioner is None:
        precond = lambda r: r  # noqa: E731
    elif preconditioner == "jacobi":
        precond = _jacobi(hessian)
    elif callable(preconditioner):
        precond = preconditioner
    else:
        raise ValueError(f"preconditioner must be None, 'jacobi' or a callable, got {preconditioner!r}")
    if int(max_iter) < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    X = torch.zeros_like(B) if x0 is None else _as_batch(hessian, x0)[0].clone()
    R = B - hessian.matvec(X) if x0 is not None else B.clone()
    bn = _norms(B)
    Z = precond(R)
    Pd = Z.clone()
    rz = _dot(R, Z)
    it = 0
    active = _norms(R) > tol * bn
    while it < max_iter and bool(active.any()):
        idx = active.nonzero().squeeze(1)
        Pa = Pd[idx]
        AP = hessian.matvec(Pa)
        pap = _dot(Pa, AP)
        if not bool(torch.isfinite(pap).all()):
            raise SolverError(f"cg: NaN or infinite value at iteration {it}")
        if bool((pap <= 0).any()):
            raise SolverError(f"cg: the Hessian is not positive definite along a search direction at iteration "
                              f"{it} (p^T H p = {float(pap.min()):.3e}); increase damping")
        alpha = rz[idx] / pap
        X[idx] += alpha[:, None, None] * Pa
        R[idx] -= alpha[:, None, None] * AP
        Zi = precond(R[idx])
        rz_new = _dot(R[idx], Zi)
        beta = rz_new / rz[idx]
        Pd[idx] = Zi + beta[:, None, None] * Pa
        rz[idx] = rz_new
        it += 1
        rn = _norms(R)
        if not bool(torch.isfinite(rn).all()):
            raise SolverError(f"cg: NaN or infinite residual at iteration {it}")
        active = rn > tol * bn
    return _finish("cg", hessian, X, B, it, tol, single, cap=int(max_iter))


def lissa(hessian, b, *, scale=None, tol=None, max_iter=10000, batch_size=None, generator=None,
          divergence=1e4):
    """LiSSA / Neumann series: ``x_{j+1} = b + x_j - H x_j / s``, estimate ``x_j / s``.

    The iteration converges when every eigenvalue of ``H / s`` lies in (0, 2). The default scale
    ``s = hessian.lambda_max_bound()`` (``1/2 * mean ||h~||^2 + damping``, since lambda_max(A_i) <= 1/2)
    bounds lambda_max(H), so the eigenvalues lie in (0, 1] and the error contracts by
    ``1 - lambda_min / s`` per step. With ``batch_size`` the products use a random minibatch per step
    (the stochastic estimator of Agarwal et al.; pass ``generator`` for reproducibility); the default
    uses all samples (deterministic). Stops when the relative residual of the full-batch recursion
    ``||b - H x_j/s|| / ||b||`` is <= tol (default 1e-10 in float64, 1e-5 else).

    Raises SolverError on NaN/inf, when the residual grows ``divergence``-fold (e.g. a user scale
    below lambda_max / 2), and when no scale is given and the bound is 0: then H = 0 (no samples,
    zero weights or zero features, and no damping), which is not positive definite.
    """
    B, single = _as_batch(hessian, b)
    tol = _default_tol(B.dtype) if tol is None else float(tol)
    bound = hessian.lambda_max_bound()
    if scale is None:
        if math.isinf(bound):
            raise SolverError(f"lissa: the bound on lambda_max(H) overflowed to {bound} (features too large for "
                              f"{hessian.dtype}); pass scale= or rescale the features")
        if not bound > 0:
            raise SolverError(
                f"lissa: the Hessian is not positive definite, so no scale can be estimated: the bound on "
                f"lambda_max(H) is {bound:.4g}, i.e. H = 0 ({hessian.N} samples, damping {hessian.damping}; "
                f"zero weights or features also give 0); increase damping")
        s = bound
    else:
        s = float(scale)
        if not s > 0 or math.isinf(s):
            raise ValueError(f"scale must be a finite number > 0, got {scale}")
    if batch_size is not None and not 1 <= int(batch_size):
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    bn = _norms(B).clamp_min(torch.finfo(B.dtype).tiny)
    X = B.clone()
    first = None
    it = 0
    active = torch.ones(B.shape[0], dtype=torch.bool, device=B.device)
    while it < max_iter:
        idx = active.nonzero().squeeze(1)
        if batch_size is None or batch_size >= hessian.N:
            op = hessian
        else:
            sel = torch.randperm(hessian.N, generator=generator)[:int(batch_size)].to(hessian.device)
            op = hessian.subsample(sel)
        diff = B[idx] - op.matvec(X[idx]) / s  # = x_{j+1} - x_j = residual of x_j / s
        X[idx] += diff
        it += 1
        rel = _norms(diff) / bn[idx]
        if not bool(torch.isfinite(rel).all()):
            raise SolverError(f"lissa: NaN or infinite value at iteration {it} (scale {s:.4g}, "
                              f"provable bound {bound:.4g})")
        worst = float(rel.max())
        first = worst if first is None else first
        if worst > divergence * max(first, 1e-30) and worst > 1:
            raise SolverError(f"lissa diverged: relative residual grew from {first:.3e} to {worst:.3e} at iteration "
                              f"{it}; the scale {s:.4g} must be >= lambda_max(H)/2 (provable bound {bound:.4g})")
        if batch_size is None:  # stochastic residuals are noisy: run to max_iter
            done = rel <= tol
            active[idx[done]] = False
            if not bool(active.any()):
                break
    return _finish("lissa", hessian, X / s, B, it, tol, single, scale=s,
                   cap=int(max_iter) if batch_size is None else None)


def solve(hessian, b, method="exact", **kwargs):
    """Dispatch to :func:`solve_exact` ("exact"), :func:`conjugate_gradient` ("cg") or :func:`lissa`.

    Which to use: forming H costs ~``N P^2 / 2`` multiply-adds (``P = C (D+1)``) once, a CG
    iteration ~``2 N P`` per right-hand side. For many right-hand sides (self-influence of every
    training point, or repeated solves on one model) "exact" wins: the factor is cached on the
    Hessian. For one right-hand side CG wins unless it needs more than ~``P / 4`` iterations; on
    a GPU the crossover is lower (benchmarks/RESULTS.md: exact won at P = 2560 on an H100 with one
    right-hand side). "lissa" (the Neumann series scaled by the bound of docs/design.md K4) is there for parity
    with the literature; it converges the slowest.
    """
    if method == "exact":
        return solve_exact(hessian, b, **kwargs)
    if method == "cg":
        return conjugate_gradient(hessian, b, **kwargs)
    if method == "lissa":
        return lissa(hessian, b, **kwargs)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
