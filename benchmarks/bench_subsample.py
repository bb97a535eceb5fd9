"""Subsampling family: one whole accuracy curve of the data-subsampling loop vs the authors' way.

A curve = all checkpoints of one policy: points added in the policy's order, the L2 logistic
regression refit at every checkpoint on originals + augmentations, and (``update`` policies) every
original point re-scored by leave-one-out influence after each refit. Timed here on MNIST 3 vs 8
(mnist5k, 800 points) with the rotate set (14 augmentations per point, up to 12,000 rows) and the
heaviest policy, ``random_prop_update`` on influence; the LeNet features are computed once, outside
the timing, for both sides.

* ours: :class:`fastaug.experiments.subsample.LogisticRegressionL2` (Newton on the device, warm-started
  from the previous checkpoint) and self-influence through fastaug.influence (one Cholesky factor,
  one batched triangular solve);
* the authors' way (github.com/mkuchnik/Efficient_Augmentation): scikit-learn
  ``LogisticRegression(C=10, tol=1e-7, max_iter=10000)`` (lbfgs, their settings) refit from scratch at
  every checkpoint, and LOO influence from an explicit numpy inverse of the Hessian (here vectorised
  with one einsum; their code loops over points with autograd, which is slower still), with the same
  regularised Hessian as ours so the two curves select the same points;
* the same with scikit-learn's default ``tol=1e-4`` (a faster but looser solver).

Both sides run the same policy code with the same generator; the note of each row gives the largest
accuracy difference between the two curves and at how many checkpoints they had augmented different
sets of points (near-ties of the random keys can swap when two solvers' scores differ in the last
digits).
Target (docs/subsample.md): >= 10x on CPU. Whole curves take seconds, so instead of the harness' autorange
each side runs once per round, sides interleaved, median over rounds.
"""
import sys
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from fastaug.experiments.subsample import (CurveData, FrozenFeatures, LogisticRegressionL2, SubsampleConfig,
                                          build_augmentation, compute_scores, default_checkpoints, featurize, run_curve,
                                          train_feature_model)
from fastaug.experiments.subsample.experiment import prepare_data

from .harness import Row, device_name

POLICY, SCORE, AUGMENTATION, C = "random_prop_update", "influence", "rotate", 10.0


class AuthorsRegression:
    """The authors' regression step: sklearn refit from scratch, numpy Hessian inverse for LOO (binary)."""

    def __init__(self, C=10.0, tol=1e-7):
        self.C, self.tol, self.theta, self.iterations = C, tol, None, 0

    def fit(self, h, y, weight=None, init=None):
        self.X, self.y = h.detach().cpu().double().numpy(), y.detach().cpu().numpy()
        self.w = np.ones(len(self.y)) if weight is None else weight.detach().cpu().double().numpy()
        self.model = LogisticRegression(C=self.C, tol=self.tol, max_iter=10000)
        self.model.fit(self.X, self.y, sample_weight=self.w)
        self.iterations = int(np.max(self.model.n_iter_))
        return self

    def accuracy(self, h, y):
        return float(self.model.score(h.detach().cpu().double().numpy(), y.detach().cpu().numpy()))

    def _p(self):
        return self.model.predict_proba(self.X)[:, 1]

    def losses(self, n):
        p = self._p()[:n]
        return torch.from_numpy(-np.log(np.where(self.y[:n] == 1, p, 1 - p)))

    def self_influence(self, n):
        """g_i^T H^-1 g_i with H the Hessian of sklearn's objective / (C N): explicit inverse."""
        if len(self.model.classes_) != 2:
            raise NotImplementedError("the authors' influence code is binary")
        N = len(self.y)
        Xb = np.hstack([self.X, np.ones((N, 1))])
        p = self._p()
        H = (Xb * (self.w * p * (1 - p))[:, None]).T @ Xb / N
        H[np.arange(Xb.shape[1] - 1), np.arange(Xb.shape[1] - 1)] += 1.0 / (self.C * N)
        H_inv = np.linalg.inv(H)
        G = (p[:n] - self.y[:n])[:, None] * Xb[:n]
        return torch.from_numpy(np.einsum("nd,de,ne->n", G, H_inv, G))


def _features(device, quick):
    """LeNet features of mnist5k 3 vs 8 and of every rotation (train) and the poisoned test set."""
    cfg = SubsampleConfig(train_size=120 if quick else None, feature_epochs=3 if quick else 40,
                          augmentation=AUGMENTATION)
    train, test = prepare_data(cfg, torch.device(device))
    aug = build_augmentation(AUGMENTATION, "mnist5k")
    model = train_feature_model(train.images, train.labels, 2, cfg.feature_config(), mean=train.mean, std=train.std)
    test_aug = aug.apply(test.images)
    poisoned = torch.cat([test.images, test_aug.reshape(-1, *test.images.shape[1:])])
    poisoned_y = torch.cat([test.labels, test.labels.repeat_interleave(aug.count)])
    data = CurveData(featurize(model, train.images), train.labels, featurize(model, aug.apply(train.images)),
                     featurize(model, poisoned), poisoned_y)
    return data, aug


def _curve(data, make_regression):
    """The initial fit and scores, then the curve, all with ``make_regression()``'s solver."""
    n = data.h.shape[0]
    first = make_regression().fit(data.h, data.y)
    scores = compute_scores(first, SCORE, n)
    gen = torch.Generator().manual_seed(0)
    return run_curve(FrozenFeatures(data), POLICY, SCORE, scores, default_checkpoints(n), gen, make_regression(),
                     init=first.theta)


def run(device, quick=False):
    data, aug = _features(device, quick)
    n = data.h.shape[0]
    sides = {"ours": lambda: _curve(data, lambda: LogisticRegressionL2(C, 2)),
             "sklearn LogisticRegression(C=10, tol=1e-7) refit + numpy inverse Hessian (authors' way)":
                 lambda: _curve(data, lambda: AuthorsRegression(C, 1e-7)),
             "same with sklearn's default tol=1e-4": lambda: _curve(data, lambda: AuthorsRegression(C, 1e-4))}
    rounds = 1 if quick else 3
    times = {k: [] for k in sides}
    results = {}
    for r in range(rounds):
        for name, fn in sides.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append((time.perf_counter() - start) * 1e3)
            print(f"[bench] subsample: round {r} {name[:40]}: {times[name][-1] / 1e3:.2f} s", file=sys.stderr,
                  flush=True)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    ours = results["ours"]
    size = (f"MNIST 3v8 n={n}, {aug.name} x{aug.count} (up to {n * (aug.count + 1)} rows), LeNet 84-d, "
            f"{len(ours.checkpoints)} checkpoints")
    target = 10.0 if device == "cpu" and not quick else None  # the target: >= 10x on CPU, full size
    rows = []
    for name in list(sides)[1:]:
        other = results[name]
        diff = max(abs(a - b) for a, b in zip(ours.accuracy, other.accuracy))
        # What a curve depends on is the set of points augmented at each checkpoint (not their order
        # inside a segment): count the checkpoints where the two runs had augmented different sets.
        differ = sum(set(ours.order[:k]) != set(other.order[:k]) for k in ours.checkpoints)
        note = (f"{POLICY} on {SCORE}; max |accuracy difference| over the curve {diff:.4f}; augmented sets differ "
                f"at {differ} of {len(ours.checkpoints)} checkpoints; at the last checkpoint sklearn lbfgs ran "
                f"{other.iterations[-1]} iterations, our Newton {ours.iterations[-1]} steps")
        rows.append(Row("subsample", "one whole curve (refits + LOO re-scoring)", size, device_name(device),
                        med["ours"], name, med[name], target if "authors" in name else None, note=note))
    return rows
