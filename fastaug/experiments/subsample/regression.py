"""L2-regularised multinomial logistic regression on frozen features: Newton's method on the device,
warm-started, with the Hessian of fastaug.influence; scikit-learn's ``C`` mapped explicitly.

Objective (fastaug.influence's mean-loss convention, see :mod:`fastaug.influence`)::

    F(Theta) = (1/N) sum_i w_i l_i(Theta) + lam/2 ||W||^2 + lam/(2K) (sum_c b_c)^2

with ``Theta = [W b]`` of shape (K, D+1), ``l_i`` the softmax cross-entropy of row i, ``w_i`` its
sample weight (1 unless downweighted) and N the number of rows. scikit-learn's
``LogisticRegression(C=C)`` minimises ``1/2 ||coef||^2 + C sum_i w_i l_i`` without penalising the
intercept; dividing by ``C N`` gives the form above with

* ``lam = 1 / (C N)`` for K >= 3 classes (sklearn's multinomial model), and
* ``lam = 2 / (C N)`` for K = 2: sklearn fits a *binary* model ``v = W_1 - W_0``; the two-row softmax
  with ``lam/2 (||W_0||^2 + ||W_1||^2)`` has its minimum at ``W_1 = -W_0 = v/2``, where the penalty
  is ``lam/4 ||v||^2``, so ``lam = 2/(C N)`` makes it sklearn's binary objective (same decision
  function, same probabilities, and the same self-influence g^T H^-1 g).

The intercepts are not penalised (as in sklearn) except along their sum ``sum_c b_c``: the softmax
cannot see that direction (adding a constant to every logit changes nothing), so without a term
there the Hessian would be singular; the penalty pins the sum to 0 (where sklearn's solution also
lies) and changes neither the fitted probabilities nor any self-influence (every per-sample gradient
is orthogonal to that direction). :class:`RegressionHessian` is fastaug.influence's
:class:`~fastaug.influence.LastLayerHessian` with exactly this damping, so Newton steps, loss and
self-influence all use the Hessian of the objective actually minimised.

Newton's method with a backtracking (Armijo) line search, warm-started from the previous
checkpoint's solution (``init=``). Forming the (K(D+1))^2 Hessian (:meth:`LastLayerHessian.dense`,
a Gram matrix of the rows) is the expensive part, so its Cholesky factor is kept across steps while
it still cuts the gradient at least 4-fold per step (a chord/simplified Newton step costs one
gradient and one triangular solve) and refreshed otherwise; the stopping rule is always the true
gradient. Everything runs in float64 on the features' device.
"""
import copy
import math

import torch
import torch.nn.functional as F

from ...influence import LastLayerHessian, self_influence

__all__ = ["l2_coefficient", "RegressionHessian", "LogisticRegressionL2"]


def l2_coefficient(C, n_rows, num_classes):
    """scikit-learn's inverse regularisation ``C`` -> the damping ``lam`` of the mean-loss objective
    on ``n_rows`` rows (see the module docstring for the factor 2 of the binary case)."""
    if not C > 0 or math.isinf(C):
        raise ValueError(f"C must be a finite number > 0, got {C}")
    if n_rows < 1:
        raise ValueError(f"the regression needs at least one row, got {n_rows}")
    return (2.0 if num_classes == 2 else 1.0) / (float(C) * n_rows)


class RegressionHessian(LastLayerHessian):
    """The Hessian of :class:`LogisticRegressionL2`'s objective: fastaug.influence's last-layer Hessian
    with ``damping`` on the weights and on the sum of the intercepts only (sklearn leaves intercepts
    unpenalised). Same constructor, shapes and index order as :class:`LastLayerHessian`."""

    def _bias_fix(self, v):
        # The base class adds damping * v everywhere; on the bias column replace it by
        # damping * mean_c(v_b) (the Hessian of lam/(2K) (sum b)^2 applied to v_b).
        vb = v[..., -1]
        return self.damping * (vb.mean(-1, keepdim=True) - vb)

    def matvec(self, v):
        out = super().matvec(v)
        out[..., -1] += self._bias_fix(v)
        return out

    __call__ = matvec

    def diagonal(self):
        out = super().diagonal()
        out[:, -1] += self.damping * (1.0 / self.C - 1.0)
        return out

    def dense(self, chunk_size=None, progress=False):
        H = self._dense_binary() if self.C == 2 else super().dense(chunk_size, progress)
        idx = torch.arange(self.C, device=H.device) * (self.D + 1) + self.D
        H[idx, idx] -= self.damping
        H[idx[:, None], idx[None, :]] += self.damping / self.C
        return H

    def _dense_binary(self, chunk_size=65536):
        """H for two classes from one (D+1)^2 Gram matrix: A_i = p_i0 p_i1 [[1, -1], [-1, 1]], so
        H = [[S, -S], [-S, S]] + damping I with S = scale sum_i w_i p_i0 p_i1 h~_i h~_i^T (the
        generic :meth:`LastLayerHessian.dense` does about five times the multiply-adds)."""
        D1 = self.D + 1
        S = torch.zeros(D1, D1, dtype=self.dtype, device=self.device)
        for start in range(0, self.N, chunk_size):
            rows = slice(start, min(self.N, start + chunk_size))
            ht, p = self._ht(rows), self.p[rows]
            S.addmm_(ht.T, ht * (self._coef(rows) * p[:, 0] * p[:, 1])[:, None])
        S = (S + S.T) / 2
        H = torch.cat([torch.cat([S, -S], 1), torch.cat([-S, S], 1)], 0)
        H.diagonal().add_(self.damping)
        return H

    def first_rows(self, n):
        """The same operator (same H, same cached Cholesky factor) whose cached samples are only the
        first ``n`` rows: :func:`fastaug.influence.self_influence` then scores those rows alone."""
        view = copy.copy(self)
        view.h, view.p = self.h[:n], self.p[:n]
        view.weight = None if self.weight is None else self.weight[:n]
        view.N = n
        return view


def _augment(h):
    return torch.cat([h, torch.ones(h.shape[0], 1, dtype=h.dtype, device=h.device)], 1)


class LogisticRegressionL2:
    """L2-regularised multinomial logistic regression fitted by Newton's method (see module docstring).

    Args:
        C: scikit-learn's inverse regularisation strength (the paper fixes C = 10).
        num_classes: K (the labels are 0..K-1).
        tol: stop when the largest absolute gradient entry of the mean objective is <= tol.
        max_iter: Newton step cap (a RuntimeError if reached without convergence).

    After :meth:`fit`: ``theta`` (K, D+1) float64, ``iterations`` (Newton steps of the last fit),
    ``hessian_builds`` (Hessians formed in it), ``lam`` (the damping used).
    """

    def __init__(self, C=10.0, num_classes=2, *, tol=1e-9, max_iter=100):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.C, self.K, self.tol, self.max_iter = float(C), int(num_classes), float(tol), int(max_iter)
        l2_coefficient(self.C, 1, self.K)  # validates C
        self.theta = None
        self.iterations = 0
        self._fit_data = None
        self._hessian = None

    # ---- objective pieces -----------------------------------------------------------------------
    def logits(self, h):
        """(N, D) features -> (N, K) logits."""
        self._need_fit()
        return torch.addmm(self.theta[:, -1], h.to(self.theta.dtype), self.theta[:, :-1].T)

    def _objective(self, theta, ht, y, w, lam):
        z = ht @ theta.T
        loss = F.cross_entropy(z, y, reduction="none")
        data = (loss if w is None else loss * w).mean()
        return data + 0.5 * lam * (theta[:, :-1].square().sum() + theta[:, -1].sum().square() / self.K), z

    # ---- fitting --------------------------------------------------------------------------------
    def fit(self, h, y, weight=None, init=None):
        """Minimise the objective on features ``h`` (N, D), labels ``y`` (N,) and optional sample
        weights ``weight`` (N,), starting from ``init`` (K, D+1) (warm start; zeros when None or of
        another shape, e.g. after the features were refit). Returns self."""
        if h.dim() != 2 or y.shape != (h.shape[0],):
            raise ValueError(f"h must be (N, D) and y (N,), got {tuple(h.shape)} and {tuple(y.shape)}")
        if int(y.min()) < 0 or int(y.max()) >= self.K:
            raise ValueError(f"labels must be in [0, {self.K - 1}], got range [{int(y.min())}, {int(y.max())}]")
        h = h.to(torch.float64)
        N, D = h.shape
        w = None if weight is None else weight.to(h)
        lam = l2_coefficient(self.C, N, self.K)
        if init is not None and tuple(init.shape) != (self.K, D + 1):
            init = None  # a different feature size (e.g. features refit): start afresh
        theta = torch.zeros(self.K, D + 1, dtype=h.dtype, device=h.device) if init is None else init.to(h).clone()
        ht = _augment(h)
        obj, z = self._objective(theta, ht, y, w, lam)
        factor, last_gmax, self.hessian_builds = None, None, 0
        for it in range(self.max_iter + 1):
            p = torch.softmax(z, 1)
            delta = p - F.one_hot(y, self.K).to(p.dtype)
            if w is not None:
                delta = delta * w[:, None]
            grad = delta.T @ ht / N
            grad[:, :-1] += lam * theta[:, :-1]
            grad[:, -1] += lam * theta[:, -1].mean()
            gmax = float(grad.abs().max())
            if gmax <= self.tol:
                break
            if it == self.max_iter:
                raise RuntimeError(f"Newton's method did not reach tol={self.tol:g} in {self.max_iter} steps "
                                   f"(max gradient {gmax:.3e})")
            # Chord Newton: keep the last Hessian factor while it still cuts the gradient 4-fold per
            # step (steps after the first cost one gradient and one triangular solve), refresh it at
            # the current point otherwise. Every step is a descent direction (H is positive definite)
            # and the line search guarantees decrease; the stopping rule is on the true gradient.
            if factor is None or gmax > 0.25 * last_gmax:
                factor = RegressionHessian(h, p, weight=w, damping=lam).cholesky()
                self.hessian_builds += 1
            last_gmax = gmax
            step = torch.cholesky_solve(grad.reshape(-1, 1), factor).reshape(grad.shape)
            decrement = float((grad * step).sum())
            # Backtracking line search (Armijo, c = 1/4), skipped once the predicted decrease is below
            # what the objective's float64 value can resolve (the full step is then the right one).
            t, resolvable = 1.0, decrement > 1e-13 * max(1.0, abs(float(obj)))
            while True:
                trial = theta - t * step
                trial_obj, trial_z = self._objective(trial, ht, y, w, lam)
                if not resolvable or float(trial_obj) <= float(obj) - 0.25 * t * decrement or t < 1e-10:
                    break
                t *= 0.5
            theta, obj, z = trial, trial_obj, trial_z
        self.theta, self.iterations, self.lam = theta, it, lam
        self._fit_data = (h, y, w, z)
        self._hessian = None
        return self

    def _need_fit(self):
        if self.theta is None:
            raise RuntimeError("call fit(h, y) first")

    # ---- evaluation and scores --------------------------------------------------------------------
    @torch.no_grad()
    def accuracy(self, h, y):
        """Fraction of rows of ``h`` (N, D) classified as ``y`` (N,)."""
        return float((self.logits(h).argmax(1) == y).double().mean()) if y.numel() else float("nan")

    def hessian(self):
        """The objective's Hessian at the fitted parameters (a :class:`RegressionHessian`, cached)."""
        self._need_fit()
        if self._hessian is None:
            h, _, w, z = self._fit_data
            self._hessian = RegressionHessian(h, torch.softmax(z, 1), weight=w, damping=self.lam)
        return self._hessian

    def losses(self, rows=None):
        """Cross-entropy of the first ``rows`` fitted rows (all by default), (rows,)."""
        self._need_fit()
        _, y, _, z = self._fit_data
        n = y.shape[0] if rows is None else int(rows)
        return F.cross_entropy(z[:n], y[:n], reduction="none")

    def self_influence(self, rows=None):
        """Leave-one-out self-influence ``g_i^T H^-1 g_i`` of the first ``rows`` fitted rows, (rows,):
        one Cholesky factor of the objective's Hessian and one batched triangular solve
        (:func:`fastaug.influence.self_influence`). Removing row i raises its own loss by about
        ``self_influence_i / N`` (fastaug.influence's convention)."""
        self._need_fit()
        _, y, _, _ = self._fit_data
        n = y.shape[0] if rows is None else int(rows)
        hess = self.hessian()
        hess.cholesky()  # factor the full H once; the view below shares it
        return self_influence(hess.first_rows(n), y[:n], method="exact")
