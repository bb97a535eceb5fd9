"""One accuracy curve: points augmented in a policy's order, the regression refit at every checkpoint.

Following the paper's appendix B (and the authors' ``aug_experiment``): start from the un-augmented
training set; take points in the policy's order and add all their augmentations; at every checkpoint
(number of augmented points) refit the regression on originals + augmentations (warm-started from
the previous checkpoint's solution), record the accuracy on the poisoned test set, and, for
``update`` policies, re-score the original points with the refit model and re-order the points not
yet augmented.
"""
import dataclasses
import time

import torch

from .policies import parse_policy, policy_order, sample_weights
from .scores import compute_scores

__all__ = ["CurveResult", "run_curve", "normalize_checkpoints"]


@dataclasses.dataclass
class CurveResult:
    """What one curve recorded.

    Attributes:
        policy, score: names; round: repetition index.
        checkpoints: numbers of augmented points; accuracy: poisoned-test accuracy at each.
        order: the points in the order they were augmented (up to the last checkpoint).
        iterations: regression solver iterations at each checkpoint.
        seconds: wall time of the curve.
    """

    policy: str
    score: str
    round: int
    checkpoints: list
    accuracy: list
    order: list
    iterations: list
    seconds: float


def normalize_checkpoints(checkpoints, n):
    """Sorted unique checkpoints with 0 and n added; ValueError if any lies outside [0, n]."""
    cps = sorted({int(c) for c in checkpoints} | {0, int(n)})
    bad = [c for c in cps if not 0 <= c <= n]
    if bad:
        raise ValueError(f"checkpoints must be numbers of augmented points in [0, {n}] (the training set), "
                         f"got {bad}")
    return cps


def run_curve(source, policy, score, initial_scores, checkpoints, generator, regression, *, init=None,
              round_index=0):
    """Run one curve.

    Args:
        source: the features at each checkpoint: ``source.at(selected) -> CurveData``
            (:class:`~.features.FrozenFeatures` or :class:`~.features.RetrainedFeatures`).
        policy: a :class:`~.policies.Policy` or its name.
        score: "loss" | "influence" (what ``update`` re-scores with).
        initial_scores: (n,) scores of the original points from the un-augmented fit.
        checkpoints: numbers of augmented points (0 and n are added).
        generator: CPU ``torch.Generator`` for the random policies (used in order: the initial order,
            then one redraw per ``update``).
        regression: an object with ``fit(h, y, weight, init)``, ``accuracy(h, y)``, ``theta`` and the
            score methods (:class:`~.regression.LogisticRegressionL2`, or a reference implementation).
        init: parameters to warm-start the first fit from (e.g. the un-augmented solution).
    """
    policy = parse_policy(policy)
    start = time.perf_counter()
    data = source.at(torch.zeros(0, dtype=torch.int64))
    n, A = data.h.shape[0], data.count
    cps = normalize_checkpoints(checkpoints, n)
    device = data.h.device
    pending = policy_order(policy, initial_scores, torch.arange(n), generator)  # CPU order of the rest
    selected = torch.zeros(0, dtype=torch.int64)
    accuracy, iterations = [], []
    theta = init
    for cp in cps:
        take = cp - selected.numel()
        selected, pending = torch.cat([selected, pending[:take]]), pending[take:]
        data = source.at(selected)
        h, y = data.training_rows(selected)
        w = sample_weights(n, selected, A, policy.downweight, device=device)
        regression.fit(h, y, w, init=theta)
        theta = regression.theta
        accuracy.append(regression.accuracy(data.h_test, data.y_test))
        iterations.append(int(getattr(regression, "iterations", 0)))
        if policy.update and pending.numel():
            scores = compute_scores(regression, score, n)
            pending = policy_order(policy, scores, pending.sort().values, generator)
    return CurveResult(policy.name, score, round_index, cps, accuracy, selected.tolist(), iterations,
                       time.perf_counter() - start)
