"""The last-layer Hessian of the mean softmax cross-entropy as a matrix-free operator (docs/design.md K4).

``H = scale * sum_i w_i (h~_i h~_i^T) kron A_i + damping * I`` with ``A_i = diag(p_i) - p_i p_i^T``,
``h~_i = [h_i; 1]``, ``scale = 1/N`` by default (the Hessian of the mean loss). Parameters are
``Theta = [W b]`` of shape (C, D+1); the flattened index of ``Theta[c, d]`` is ``c * (D+1) + d``
(row-major), which is also the row/column order of :meth:`LastLayerHessian.dense`.

A last layer without a bias (``nn.Linear(..., bias=False)``, ``bias=False`` here) has the parameters
``Theta = W`` only, of shape (C, D), index ``c * D + d``, and ``h~_i = h_i``: the same formulas with
the bias column left out. The ops (:func:`fastaug.last_layer_hvp`, :func:`fastaug.influence_score`)
always carry the bias column; the bias-free operator pads its directions with a zero bias column
and drops that column of the product, which is exact: the W-block of H does not involve the bias.
"""
import torch

from ..ops._validate import check_finite
from ..ops.influence import last_layer_hvp


def augmented(h, bias=True):
    """h~ = [h, 1] (N, D+1) from features h (N, D): the input of the last layer's [W b]; ``h`` itself
    (N, D) when ``bias=False`` (a last layer without a bias, parameters W only)."""
    if not bias:
        return h
    return torch.cat([h, torch.ones(h.shape[0], 1, dtype=h.dtype, device=h.device)], 1)


def with_bias_column(v):
    """(..., C, D) -> (..., C, D+1) with a zero last (bias) column: a W-only direction in the ops' layout."""
    return torch.cat([v, v.new_zeros(v.shape[:-1] + (1,))], -1)


class LastLayerHessian:
    """Matrix-free Hessian of a last linear layer under softmax cross-entropy, with damping.

    Args:
        h: (N, D) cached features (the last layer's input).
        p: (N, C) cached softmax probabilities, same dtype/device.
        weight: optional (N,) per-sample weights (0 removes a sample).
        damping: lambda >= 0, added times the identity.
        scale: factor of the sum over samples; default ``1/N``.
        bias: whether the layer has a bias. True: parameters ``[W b]``, directions (C, D+1); False
            (``nn.Linear(..., bias=False)``): parameters ``W`` only, directions (C, D).
    """

    def __init__(self, h, p, *, weight=None, damping=0.0, scale=None, bias=True):
        # One call validates shapes, dtypes, devices, damping and finiteness (and warms the op up).
        C, D = p.shape[-1], h.shape[-1]
        last_layer_hvp(h, p, torch.zeros(0, C, D + 1, dtype=h.dtype, device=h.device), weight=weight,
                       damping=damping, scale=scale)
        if weight is not None:
            check_finite(weight, "weight")
            weight = weight.to(h.dtype)
        self.h, self.p, self.weight = h, p, weight
        self.damping = float(damping)
        self.N, self.D, self.C = h.shape[0], D, C
        self.scale = float(scale) if scale is not None else 1.0 / max(self.N, 1)
        self.bias = bool(bias)
        self.shape = (self.C, self.D + 1 if self.bias else self.D)
        self.num_params = self.C * self.shape[1]
        self._cholesky = None

    @property
    def dtype(self):
        return self.h.dtype

    @property
    def device(self):
        return self.h.device

    def matvec(self, v):
        """H V for V of shape ``self.shape`` ((C, D+1), or (C, D) without a bias) or (K, *self.shape):
        two GEMMs and one fused pass (no autograd).

        Solvers call this every iteration: h, p and the weights were validated once in ``__init__``,
        so only V is checked here and the op is called directly (the public function's checks cost
        more host time than a whole product on a GPU)."""
        if not isinstance(v, torch.Tensor) or v.dim() not in (2, 3) or tuple(v.shape[-2:]) != self.shape:
            raise ValueError(f"v must have shape {self.shape} or (K, {self.C}, {self.shape[1]}), "
                             f"got {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}")
        if v.dtype != self.dtype or v.device != self.device:
            raise TypeError(f"v must be {self.dtype} on {self.device} like the cached features, "
                            f"got {v.dtype} on {v.device}")
        single = v.dim() == 2
        v = v.unsqueeze(0) if single else v
        if not self.bias:  # the op's layout has a bias column: a zero one, dropped from the product
            v = with_bias_column(v)
        out = torch.ops.fastaug.last_layer_hvp(self.h, self.p, v, self.weight, self.scale, self.damping)
        if not self.bias:
            out = out[..., :-1]
        return out.squeeze(0) if single else out

    __call__ = matvec

    def __matmul__(self, v):
        return self.matvec(v)

    def with_damping(self, damping):
        """The same Hessian with another damping (shares the cached features); keeps a subclass's type."""
        return type(self)(self.h, self.p, weight=self.weight, damping=damping, scale=self.scale, bias=self.bias)

    def subsample(self, index):
        """The Hessian estimated on the samples ``index`` only (scale 1/len(index), for stochastic LiSSA)."""
        w = None if self.weight is None else self.weight[index]
        n = index.numel() if isinstance(index, torch.Tensor) else len(index)
        return type(self)(self.h[index], self.p[index], weight=w, damping=self.damping,
                          scale=self.scale * self.N / max(n, 1), bias=self.bias)

    def _coef(self, rows):
        c = torch.full((rows.stop - rows.start,), self.scale, dtype=self.dtype, device=self.device)
        return c if self.weight is None else c * self.weight[rows]

    def _ht(self, rows):
        return augmented(self.h[rows], self.bias)

    def diagonal(self):
        """diag(H) reshaped to ``self.shape``: ``scale * sum_i w_i p_ic (1 - p_ic) h~_id^2 + damping``."""
        out = torch.full(self.shape, self.damping, dtype=self.dtype, device=self.device)
        for start in range(0, self.N, 65536):
            rows = slice(start, min(self.N, start + 65536))
            p = self.p[rows]
            out += (p * (1 - p) * self._coef(rows)[:, None]).T @ self._ht(rows).square()
        return out

    def lambda_max_bound(self):
        """An upper bound on the largest eigenvalue of H, from lambda_max(A_i) <= 1/2 (Gershgorin:
        row c of A_i sums to 2 p_c (1 - p_c) <= 1/2): ``1/2 * scale * sum_i |w_i| ||h~_i||^2 + damping``,
        which is at most docs/design.md's ``1/2 * max ||h~||^2 + damping`` for unit weights
        (``h~ = h`` without a bias)."""
        sq = self.h.square().sum(1) + (1 if self.bias else 0)
        if self.weight is not None:
            sq = sq * self.weight.abs()
        return 0.5 * self.scale * float(sq.sum()) + self.damping

    def dense(self, chunk_size=None, progress=False):
        """Form H as a (P, P) matrix, ``P = num_params`` (C(D+1), or CD without a bias), index
        ``c * (D+1) + d`` (``c * D + d``), in chunks of samples.

        Cost ``~ N (C(D+1))^2`` multiply-adds (only the upper block triangle is multiplied out).
        """
        C, D1, P = self.C, self.shape[1], self.num_params
        H = torch.zeros(P, P, dtype=self.dtype, device=self.device)
        if chunk_size is None:
            chunk_size = max(256, min(8192, (1 << 25) // max(P, 1)))
        starts = range(0, self.N, chunk_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="forming H", unit="chunk")
        for start in starts:
            rows = slice(start, min(self.N, start + chunk_size))
            ht, p, coef = self._ht(rows), self.p[rows], self._coef(rows)
            M = (p[:, :, None] * ht[:, None, :]).reshape(ht.shape[0], P)  # rows h~_i kron p_i
            Mw = M * coef[:, None]
            for c in range(C):
                blk = slice(c * D1, (c + 1) * D1)
                # - sum_i w_i (p_ic h~_i)(p_ic' h~_i)^T for c' >= c, then the diagonal block's diag(p) part.
                H[blk, c * D1:].addmm_(Mw[:, blk].T, M[:, c * D1:], alpha=-1)
                H[blk, blk].addmm_(ht.T, ht * (coef * p[:, c])[:, None])
        upper = torch.triu(H)
        H = upper + torch.triu(H, 1).T
        H.diagonal().add_(self.damping)
        return H

    def cholesky(self, max_params=20000, progress=False):
        """Lower Cholesky factor of the dense H (cached). Raises ValueError when num_params > max_params
        and RuntimeError when H is not positive definite (add damping)."""
        if self._cholesky is None:
            if self.num_params > max_params:
                raise ValueError(
                    f"the exact solver forms H with {'C*(D+1)' if self.bias else 'C*D'} = {self.num_params} "
                    f"parameters, above "
                    f"max_params={max_params}; use method='cg' or 'lissa', or raise max_params")
            L, info = torch.linalg.cholesky_ex(self.dense(progress=progress))
            if int(info) != 0:
                raise RuntimeError(
                    f"the last-layer Hessian is not positive definite (Cholesky failed at column {int(info)}); "
                    f"increase damping (now {self.damping})")
            self._cholesky = L
        return self._cholesky
