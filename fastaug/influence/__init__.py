"""Last-layer influence functions: Hessian operator, iHVP solvers, influence scores (docs/design.md K4).

Sign and scale conventions (the one place they are written down; every function here follows them)
==================================================================================================

Model: a classifier's last layer ``z = W h + b`` with C classes and D features, ``p = softmax(z)``,
``delta = p - onehot(y)``, ``h~ = [h; 1]``, parameters ``Theta = [W b]`` of shape (C, D+1), flattened
row-major (index ``c * (D+1) + d``). Per-sample loss ``l(z) = cross_entropy``; its gradient
``g = grad_Theta l = delta h~^T``. The training objective is the **mean** loss plus ``damping/2 *
||Theta||^2`` (bias included), so the Hessian is

    H = (1/N) sum_i (h~_i h~_i^T) kron A_i + damping * I,     A_i = diag(p_i) - p_i p_i^T.

A last layer without a bias (``nn.Linear(..., bias=False)``) has ``Theta = W`` (C, D), ``h~ = h`` and the
same formulas without the bias column (index ``c * D + d``); ``LastLayerInfluence`` reads this from the layer.

Influence (Koh & Liang; the papers *Learning to Augment Influential Data*, eqs. 10-19, and *Efficient
Augmentation via Data Subsampling*, eq. 1):

* ``s_val = H^-1 grad_Theta L(z_val)`` with ``L`` the **mean** validation loss.
* ``I_up,loss(z, z') = -grad l(z')^T H^-1 grad l(z)``: the derivative of the loss at z' when z is
  upweighted by epsilon. For the validation set, ``I_up,loss(z_i, val) = -s_val^T g_i =
  -delta_i^T S h~_i`` (S = s_val as (C, D+1)); :func:`fastaug.influence_score` computes
  ``s_val^T g_i``.
* **Removing** z_i (upweighting by epsilon = -1/N) changes the loss at z' by about
  ``-(1/N) * I_up,loss(z_i, z') = +(1/N) * grad l(z')^T H^-1 g_i`` (the first paper's eq. 10). So a positive
  ``I_up,loss(z_i, val)`` means removing z_i lowers the validation loss (z_i hurts), a negative one
  that removing it raises the validation loss (z_i helps).
* **Replacing** z_i by its augmentation z~_i changes the validation loss by about ``+(1/N) * I_aug``
  with ``I_aug = I_up,loss(z~_i, val) - I_up,loss(z_i, val) = -s_val^T (g(z~_i) - g(z_i))`` (its eq. 15).
* **Self-influence** (leave-one-out, the data-subsampling paper): ``self_influence_i = g_i^T H^-1 g_i
  >= 0`` = ``-I_up,loss(z_i, z_i)`` (that paper drops the sign); removing z_i raises its own loss by
  about ``self_influence_i / N``.

These rules are checked against actual retraining in ``tests/influence/test_retraining.py``.
"""
from .hessian import LastLayerHessian
from .last_layer import LastLayerInfluence, find_last_linear
from .scores import (influence_up_loss, mean_gradient, per_sample_gradients, per_sample_loss,
                     self_influence)
from .solvers import (SolveInfo, SolverError, SolverWarning, conjugate_gradient, lissa, solve,
                      solve_exact)

__all__ = [
    "LastLayerHessian", "LastLayerInfluence", "find_last_linear",
    "influence_up_loss", "mean_gradient", "per_sample_gradients", "per_sample_loss", "self_influence",
    "SolveInfo", "SolverError", "SolverWarning", "conjugate_gradient", "lissa", "solve", "solve_exact",
]
