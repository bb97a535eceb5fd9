"""Influence scores on cached last-layer features (sign and scale: see :mod:`fastaug.influence`).

All functions are batched over samples: no per-sample Python loop, no autograd graph (except
:func:`fastaug.influence_score` itself, which is differentiable).
"""
import torch
import torch.nn.functional as F

from ..ops._validate import check_labels
from ..ops.influence import influence_score
from .hessian import augmented
from .solvers import solve

__all__ = ["deltas", "augmented", "mean_gradient", "per_sample_gradients", "per_sample_loss", "influence_up_loss",
           "self_influence"]


def deltas(p, target):
    """delta_i = p_i - onehot(y_i), (N, C), from probabilities p (N, C)."""
    return p - F.one_hot(target, p.shape[1]).to(p.dtype)


def mean_gradient(h, logits, target):
    """grad_Theta of the mean cross-entropy over the given samples: (1/N) sum_i delta_i h~_i^T, (C, D+1)."""
    check_labels(target, h.shape[0], logits.shape[1])
    d = deltas(torch.softmax(logits.to(h.dtype), 1), target)
    return d.T @ augmented(h) / max(h.shape[0], 1)


def per_sample_gradients(h, logits, target):
    """grad_Theta l(z_i) = delta_i h~_i^T for every sample, (N, C, D+1). Memory N*C*(D+1)."""
    return _gradients(torch.softmax(logits.to(h.dtype), 1), target, h)


def _gradients(p, target, h):
    """delta_i h~_i^T (N, C, D+1) from probabilities p (N, C), labels (N,) and features h (N, D)."""
    return deltas(p, target)[:, :, None] * augmented(h)[:, None, :]


def per_sample_loss(logits, target):
    """Training loss l(z_i) (cross-entropy), (N,)."""
    return F.cross_entropy(logits, target, reduction="none")


def influence_up_loss(h, logits, target, s_val):
    """I_up,loss(z_i, val) = -s_val^T grad l(z_i) for every sample, (N,): one GEMM and one fused pass."""
    return -influence_score(h, logits, target, s_val)


def self_influence(hessian, target, *, method="exact", batch_size=None, progress=False, **solver_kwargs):
    """Leave-one-out self-influence g_i^T H^-1 g_i (>= 0) for every cached sample, (N,).

    ``g_i = delta_i h~_i^T`` from the Hessian's cached features and probabilities. "exact" reuses the
    Cholesky factor L of H: ``||L^-1 g_i||^2`` for blocks of samples (one triangular solve per block);
    "cg"/"lissa" solve ``H X = G`` with a block of right-hand sides at a time.
    """
    check_labels(target, hessian.N, hessian.C)
    P = hessian.num_params
    if batch_size is None:
        batch_size = max(1, min(4096, (1 << 24) // max(P, 1))) if method == "exact" else 256
    out = torch.empty(hessian.N, dtype=hessian.dtype, device=hessian.device)
    L = hessian.cholesky(**{k: v for k, v in solver_kwargs.items() if k == "max_params"}) if method == "exact" else None
    starts = range(0, hessian.N, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"self-influence ({method})", unit="block")
    for start in starts:
        rows = slice(start, min(hessian.N, start + batch_size))
        G = _gradients(hessian.p[rows], target[rows], hessian.h[rows])
        if method == "exact":
            Y = torch.linalg.solve_triangular(L, G.reshape(G.shape[0], P).T, upper=False)
            out[rows] = Y.square().sum(0)
        else:
            X, _ = solve(hessian, G, method, **solver_kwargs)
            out[rows] = (X * G).flatten(1).sum(1)
    return out
