"""Selection policies (the paper's Table 2 and appendix D): in which order the training points are augmented.

A policy is a base rule plus two switches:

==================  =========================================================================
base                order of the points (scores s_i >= 0: training loss or |LOO influence|)
==================  =========================================================================
``baseline``        uniformly random (ignores the scores)
``random_prop``     random without replacement, P(next = i) proportional to s_i among the rest
``det_prop``        deterministic, highest score first
``random_inverse``  random without replacement, P(next = i) proportional to 1 / s_i
``det_inverse``     deterministic, lowest score first
==================  =========================================================================

* ``_update``: at every checkpoint, after the regression is refit on the current augmented set,
  the original points are re-scored and the points not yet augmented are re-ordered by the new
  scores (the authors re-run the policy on the new scores and skip the points already chosen, which
  for the random policies is the same as drawing a fresh order of the remaining points).
* ``_downweight``: the source point and each of its |f_T(z)| augmentations weigh 1 / (1 + |f_T(z)|)
  in the regression, so every source point keeps a total weight of 1 (the paper's section 4.2).

Names: ``baseline``, ``baseline_downweight`` and ``<base>[_update][_downweight]`` for the four
score-based bases. The paper's tables label them "Rand Prop Update Down", "Det Inverse Prop", ...
(:attr:`Policy.display_name`).

Random orders use the exponential-race form of successive sampling: draw E_i ~ Exp(1) from the
generator and sort the points by ``E_i / p_i`` ascending. The first point is i with probability
``p_i / sum_j p_j``, and given the first k the next is drawn the same way among the rest (the minimum
of independent exponentials with rates p_i), i.e. exactly ``numpy.random.choice(n, n, p=p,
replace=False)``'s distribution, in one sort. Deterministic orders are stable sorts (ties by index).
Zero scores get the authors' floor ``min(smallest positive score, 1e-20)`` before weighting, so a
zero-score point is never impossible, and inverting never divides by zero.
"""
import dataclasses

import torch

__all__ = ["BASES", "POLICY_NAMES", "PAPER_TABLE_POLICIES", "Policy", "parse_policy", "selection_weights",
           "policy_order", "sample_weights"]

BASES = ("baseline", "random_prop", "det_prop", "random_inverse", "det_inverse")
POLICY_NAMES = ("baseline", "baseline_downweight") + tuple(
    f"{base}{u}{d}" for base in BASES[1:] for u in ("", "_update") for d in ("", "_downweight"))
#: The 11 rows of each of the paper's appendix D tables (Tables 3-20).
PAPER_TABLE_POLICIES = ("baseline", "random_prop", "random_prop_update", "random_prop_downweight",
                       "random_prop_update_downweight", "random_inverse", "det_prop", "det_prop_update",
                       "det_prop_downweight", "det_prop_update_downweight", "det_inverse")

_DISPLAY = {"baseline": "Baseline", "random_prop": "Rand Prop", "det_prop": "Det Prop",
            "random_inverse": "Rand Inverse Prop", "det_inverse": "Det Inverse Prop"}


@dataclasses.dataclass(frozen=True)
class Policy:
    """One selection policy: ``base`` in :data:`BASES`, ``update`` and ``downweight`` switches."""

    base: str
    update: bool = False
    downweight: bool = False

    @property
    def name(self):
        return self.base + ("_update" if self.update else "") + ("_downweight" if self.downweight else "")

    @property
    def display_name(self):
        """The paper's label, e.g. "Rand Prop Update Down"."""
        return _DISPLAY[self.base] + (" Update" if self.update else "") + (" Down" if self.downweight else "")

    @property
    def is_random(self):
        """Random policies are repeated over rounds; deterministic ones run once."""
        return self.base in ("baseline", "random_prop", "random_inverse")

    @property
    def uses_scores(self):
        return self.base != "baseline"


def parse_policy(name):
    """``"random_prop_update_downweight"`` -> Policy; ValueError listing the valid names otherwise."""
    if isinstance(name, Policy):
        return name
    if name not in POLICY_NAMES:
        raise ValueError(f"unknown policy {name!r}; choose from: {', '.join(POLICY_NAMES)}")
    update, downweight = "_update" in name, name.endswith("_downweight")
    base = name.replace("_update", "").replace("_downweight", "")
    return Policy(base, update, downweight)


def selection_weights(scores, inverse=False):
    """Sampling weights from scores (N,): |s| with zeros floored at min(smallest positive, 1e-20), or
    their reciprocals (``inverse``); float64, all > 0 (uniform when every score is zero)."""
    p = scores.detach().to(torch.float64).abs()
    if not bool(torch.isfinite(p).all()):
        raise ValueError("scores contain NaN or infinite values")
    positive = p[p > 0]
    if positive.numel() == 0:
        return torch.ones_like(p)
    p = torch.where(p > 0, p, torch.clamp(positive.min(), max=1e-20))
    return 1.0 / p if inverse else p


def policy_order(policy, scores, candidates, generator):
    """The order in which ``policy`` augments ``candidates`` (M,) int64 indices into ``scores``.

    Args:
        policy: a :class:`Policy` (or its name).
        scores: (N,) scores of all points (ignored by the baseline; may be None for it).
        candidates: (M,) indices of the points still to order, on any device.
        generator: CPU ``torch.Generator``; random policies draw exactly M exponentials from it.

    Returns:
        (M,) int64: ``candidates`` permuted, first to augment first (on the candidates' device).
    """
    policy = parse_policy(policy)
    m = candidates.numel()
    if policy.uses_scores:
        if scores is None:
            raise ValueError(f"policy {policy.name} needs scores")
        s = scores.detach().to("cpu", torch.float64)[candidates.cpu()]
    if policy.base in ("det_prop", "det_inverse"):
        w = selection_weights(s)
        key = -w if policy.base == "det_prop" else w
    else:
        w = torch.ones(m, dtype=torch.float64) if policy.base == "baseline" else \
            selection_weights(s, inverse=policy.base == "random_inverse")
        clocks = torch.empty(m, dtype=torch.float64).exponential_(1.0, generator=generator)
        key = clocks / w
    order = torch.sort(key, stable=True).indices
    return candidates[order.to(candidates.device)]


def sample_weights(n, selected, count, downweight, dtype=torch.float64, device=None):
    """Per-row weights of the regression's training set, or None when not downweighting.

    Rows are the ``n`` originals followed by the ``count`` augmentations of each ``selected`` point
    (in selection order). With ``downweight`` every selected original and its augmentations weigh
    ``1 / (1 + count)`` (the point's total weight stays 1); the other originals weigh 1.
    """
    if not downweight:
        return None
    share = 1.0 / (1 + count)
    w = torch.ones(n + selected.numel() * count, dtype=dtype, device=device)
    w[selected.to(w.device)] = share
    w[n:] = share
    return w
