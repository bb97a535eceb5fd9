"""Influence scores on cached last-layer features (sign and scale: see :mod:`fastaug.influence`).

All functions are batched over samples: no per-sample Python loop, no autograd graph (except
:func:`fastaug.influence_score` itself, which is differentiable).
"""
import torch
import torch.nn.functional as F

from ..ops._validate import check_labels
from ..ops.influence import influence_score
from .hessian import augmented, with_bias_column
from .solvers import solve

__all__ = ["deltas", "augmented", "mean_gradient", "per_sample_gradients", "per_sample_loss", "influence_up_loss",
           "self_influence"]


def deltas(p, target):
    """delta_i = p_i - onehot(y_i), (N, C), from probabilities p (N, C)."""
    return p - F.one_hot(target, p.shape[1]).to(p.dtype)


def mean_gradient(h, logits, target, *, bias=True):
    """grad_Theta of the mean cross-entropy over the given samples: (1/N) sum_i delta_i h~_i^T, (C, D+1);
    (C, D), the gradient in W, with ``bias=False`` (a last layer without a bias)."""
    check_labels(target, h.shape[0], logits.shape[1])
    d = deltas(torch.softmax(logits.to(h.dtype), 1), target)
    return d.T @ augmented(h, bias) / max(h.shape[0], 1)


def per_sample_gradients(h, logits, target, *, bias=True):
    """grad_Theta l(z_i) = delta_i h~_i^T for every sample, (N, C, D+1) ((N, C, D) with ``bias=False``).
    Memory N*C*(D+1)."""
    return _gradients(torch.softmax(logits.to(h.dtype), 1), target, h, bias)


def _gradients(p, target, h, bias=True):
    """delta_i h~_i^T (N, C, D+1) (or (N, C, D) without a bias) from probabilities p (N, C), labels (N,)
    and features h (N, D)."""
    return deltas(p, target)[:, :, None] * augmented(h, bias)[:, None, :]


def per_sample_loss(logits, target):
    """Training loss l(z_i) (cross-entropy), (N,)."""
    return F.cross_entropy(logits, target, reduction="none")


def influence_up_loss(h, logits, target, s_val):
    """I_up,loss(z_i, val) = -s_val^T grad l(z_i) for every sample, (N,): one GEMM and one fused pass.

    ``h`` (N, D), ``logits`` (N, C), ``target`` (N,); ``s_val`` (C, D+1) for a layer ``[W b]``, or
    (C, D) for a last layer without a bias (then ``grad l`` is the gradient in W only)."""
    if isinstance(s_val, torch.Tensor) and isinstance(h, torch.Tensor) and s_val.dim() == 2 and h.dim() == 2 \
            and s_val.shape[1] == h.shape[1]:
        s_val = with_bias_column(s_val)  # s^T grad_W l = [s, 0]^T grad_[W b] l
    return -influence_score(h, logits, target, s_val)


def self_influence(hessian, target, *, method="exact", batch_size=None, progress=False, **solver_kwargs):
    """Leave-one-out self-influence g_i^T H^-1 g_i (>= 0) for every cached sample, (N,).

    ``g_i = delta_i h~_i^T`` ((C, D+1), or (C, D) when ``hessian.bias`` is False) from the Hessian's
    cached features and probabilities. "exact" reuses the
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
        G = _gradients(hessian.p[rows], target[rows], hessian.h[rows], hessian.bias)
        if method == "exact":
            Y = torch.linalg.solve_triangular(L, G.reshape(G.shape[0], P).T, upper=False)
            out[rows] = Y.square().sum(0)
        else:
            X, _ = solve(hessian, G, method, **solver_kwargs)
            out[rows] = (X * G).flatten(1).sum(1)
    return out
