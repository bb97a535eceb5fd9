"""Augmentation scores of the original training points from a fitted regression (the paper's section 4.1).

* ``loss``: the training loss l(z_i) (cross-entropy of the regularised fit; the authors' ``log_losses``
  without the penalty term);
* ``influence``: the leave-one-out self-influence ``g_i^T H^-1 g_i`` (>= 0), H the Hessian of the
  regularised objective actually minimised (fastaug.influence's mean-loss convention: removing z_i
  raises its own loss by about ``influence_i / N``). The paper's ``I_LOO = -g^T H^-1 g`` with the sign
  dropped; scale does not matter to any policy. The authors' code inverts the Hessian of the summed
  loss with a negligible 1e-10 ridge (``include_reg=False``); fastaug includes the L2 term, so the
  Hessian is the one whose inverse gives the actual leave-one-out change (checked against exact
  refits in the tests).

Only the first ``n`` fitted rows are scored: the regression's rows are the n originals first, then
the augmentations (when re-scoring for ``update`` policies, as the authors do).
"""
__all__ = ["SCORES", "compute_scores"]

SCORES = ("loss", "influence")


def compute_scores(regression, kind, n):
    """(n,) scores ``kind`` ("loss" | "influence") of the first n rows of ``regression``'s last fit."""
    if kind == "loss":
        return regression.losses(n)
    if kind == "influence":
        return regression.self_influence(n)
    raise ValueError(f"unknown score {kind!r}; choose one of {', '.join(SCORES)}")
