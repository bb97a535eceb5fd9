"""Selection policies against a plain reference implementation (same scores, same generator), the
sampling distribution of the random policies, update re-scoring and downweighting inside a curve."""
import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from fastaug.experiments.subsample import (PAPER_TABLE_POLICIES, POLICY_NAMES, CurveData, FrozenFeatures,
                                          parse_policy, policy_order, run_curve, sample_weights)
from fastaug.experiments.subsample.policies import selection_weights


def reference_order(name, scores, generator):
    """Plain Python: weights |s| (zeros floored at min(smallest positive, 1e-20)) or their inverse;
    deterministic = stable sort; random = successive sampling where the next point is the one whose
    exponential clock E_j / w_j rings first among those left (E_j drawn from the generator)."""
    base = parse_policy(name).base
    n = len(scores)
    s = [abs(float(v)) for v in scores]
    positive = [v for v in s if v > 0]
    floor = min(min(positive), 1e-20) if positive else 1.0
    w = [1.0] * n if base == "baseline" or not positive else [v if v > 0 else floor for v in s]
    if base in ("random_inverse",):
        w = [1.0 / v for v in w]
    if base == "det_prop":
        return sorted(range(n), key=lambda i: (-w[i], i))
    if base == "det_inverse":
        return sorted(range(n), key=lambda i: (w[i], i))
    clocks = torch.empty(n, dtype=torch.float64).exponential_(1.0, generator=generator).tolist()
    left, out = list(range(n)), []
    while left:
        nxt = min(left, key=lambda j: (clocks[j] / w[j], j))
        out.append(nxt)
        left.remove(nxt)
    return out


def reference_selection(name, scores0, checkpoints, generator, rescore):
    """The whole selection of a curve: take points in order up to each checkpoint; with update,
    re-score (``rescore(k)`` = the scores after the k-th refit) and re-order the rest."""
    policy = parse_policy(name)
    order = reference_order(name, scores0, generator)
    chosen = []
    for k, cp in enumerate(checkpoints):
        while len(chosen) < cp:
            chosen.append(order.pop(0))
        if policy.update and order:
            new = rescore(k)
            rest = sorted(order)
            order = [rest[i] for i in reference_order(name, [new[j] for j in rest], generator)]
    return chosen


def test_policy_names_and_errors():
    assert len(POLICY_NAMES) == 18 and set(PAPER_TABLE_POLICIES) <= set(POLICY_NAMES)
    p = parse_policy("random_prop_update_downweight")
    assert (p.base, p.update, p.downweight, p.display_name) == ("random_prop", True, True, "Rand Prop Update Down")
    assert parse_policy("det_inverse").display_name == "Det Inverse Prop" and not parse_policy("det_inverse").is_random
    for bad in ("random", "baseline_update", "det_prop_downweight_update"):
        with pytest.raises(ValueError, match="choose from: baseline, baseline_downweight, random_prop"):
            parse_policy(bad)


def test_selection_weights_floor_and_inverse():
    s = torch.tensor([0.0, 0.5, -2.0, 0.0])
    torch.testing.assert_close(selection_weights(s), torch.tensor([1e-20, 0.5, 2.0, 1e-20], dtype=torch.float64))
    torch.testing.assert_close(selection_weights(s, inverse=True), torch.tensor([1e20, 2.0, 0.5, 1e20],
                                                                                  dtype=torch.float64))
    tiny = torch.tensor([0.0, 1e-30, 1.0], dtype=torch.float64)
    assert float(selection_weights(tiny)[0]) == 1e-30  # floor = the smallest positive score when below 1e-20
    torch.testing.assert_close(selection_weights(torch.zeros(3)), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        selection_weights(torch.tensor([1.0, float("nan")]))


@pytest.mark.parametrize("name", ["baseline", "random_prop", "det_prop", "random_inverse", "det_inverse"])
def test_order_matches_reference_implementation(name):
    g = torch.Generator().manual_seed(3)
    scores = torch.rand(40, generator=g, dtype=torch.float64) ** 3
    scores[[4, 9]] = 0.0
    scores[[11, 12]] = float(scores[13])  # ties
    for seed in range(3):
        ours = policy_order(name, scores, torch.arange(40), torch.Generator().manual_seed(seed))
        ref = reference_order(name, scores.tolist(), torch.Generator().manual_seed(seed))
        assert ours.tolist() == ref


def test_random_orders_are_successive_sampling_proportional_to_the_weights():
    """Over many draws: first pick ~ p_i / sum p and the full order's frequency ~ the product of
    successive normalised weights (Plackett-Luce), for proportional and inverse policies."""
    trials = 12000
    for name, scores in (("random_prop", [1.0, 2.0, 3.0, 4.0]), ("random_inverse", [1.0, 2.0, 4.0, 8.0])):
        w = np.array(scores) if name == "random_prop" else 1 / np.array(scores)
        g = torch.Generator().manual_seed(11)
        s = torch.tensor(scores, dtype=torch.float64)
        counts = {}
        for _ in range(trials):
            o = tuple(policy_order(name, s, torch.arange(4), g).tolist())
            counts[o] = counts.get(o, 0) + 1
        perms = list(itertools.permutations(range(4)))

        def plackett_luce(o):
            left, prob = list(o), 1.0
            for i in o:
                prob *= w[i] / w[left].sum()
                left.remove(i)
            return prob

        expected = np.array([plackett_luce(o) for o in perms]) * trials
        observed = np.array([counts.get(o, 0) for o in perms])
        assert chisquare(observed, expected).pvalue > 1e-3
        first = np.array([sum(c for o, c in counts.items() if o[0] == i) for i in range(4)]) / trials
        np.testing.assert_allclose(first, w / w.sum(), atol=0.02)


def _toy_curve_data(n=24, A=3, D=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    h = torch.randn(n, D, generator=g, dtype=torch.float64) + y[:, None]
    ha = h[:, None] + 0.1 * torch.randn(n, A, D, generator=g, dtype=torch.float64)
    return CurveData(h, y, ha, h.clone(), y.clone())


class RecordingRegression:
    """Stands in for the regression: records every fit; its scores after the k-th fit are table[k]."""

    def __init__(self, table):
        self.table, self.fits, self.theta, self.iterations = table, [], None, 0

    def fit(self, h, y, weight, init=None):
        self.fits.append((h.shape[0], None if weight is None else weight.clone(), y.clone()))
        return self

    def accuracy(self, h, y):
        return float(len(self.fits))

    def losses(self, n):
        return self.table[len(self.fits) - 1][:n]

    self_influence = losses


@pytest.mark.parametrize("name", ["random_prop_update", "det_prop_update", "random_inverse_update",
                                  "det_inverse_update", "random_prop", "baseline"])
@pytest.mark.parametrize("score", ["loss", "influence"])
def test_curve_selection_matches_reference_and_update_rescores(name, score):
    data = _toy_curve_data()
    n = data.h.shape[0]
    g = torch.Generator().manual_seed(5)
    table = [torch.rand(n, generator=g, dtype=torch.float64) for _ in range(12)]
    s0 = torch.rand(n, generator=g, dtype=torch.float64)
    cps = [0, 1, 3, 8, 15, n]
    reg = RecordingRegression(table)
    res = run_curve(FrozenFeatures(data), name, score, s0, cps, torch.Generator().manual_seed(9), reg)
    ref = reference_selection(name, s0.tolist(), cps, torch.Generator().manual_seed(9), lambda k: table[k].tolist())
    assert res.order == ref and sorted(res.order) == list(range(n))
    assert res.checkpoints == cps and res.accuracy == [float(i + 1) for i in range(len(cps))]
    assert [f[0] for f in reg.fits] == [n + c * data.count for c in cps]  # originals + all augmentations
    if parse_policy(name).update:  # the update follows the refit's scores, not the initial ones
        static = reference_selection(name.replace("_update", ""), s0.tolist(), cps, torch.Generator().manual_seed(9),
                                     None)
        assert res.order != static


def test_downweight_conserves_each_source_points_weight():
    data = _toy_curve_data(n=20, A=5)
    table = [torch.rand(20, dtype=torch.float64) for _ in range(10)]
    reg = RecordingRegression(table)
    res = run_curve(FrozenFeatures(data), "random_prop_downweight", "loss", torch.rand(20, dtype=torch.float64),
                    [0, 2, 7, 20], torch.Generator().manual_seed(0), reg)
    for (rows, w, y), cp in zip(reg.fits, res.checkpoints):
        selected = torch.tensor(res.order[:cp], dtype=torch.int64)
        source = torch.cat([torch.arange(20), selected.repeat_interleave(5)])  # row -> its source point
        per_point = torch.zeros(20, dtype=torch.float64).index_add_(0, source, w)
        torch.testing.assert_close(per_point, torch.ones(20, dtype=torch.float64))
        if cp:
            assert float(w[selected].max()) == pytest.approx(1 / 6) and float(w[20:].min()) == pytest.approx(1 / 6)
    plain = RecordingRegression(table)
    run_curve(FrozenFeatures(data), "random_prop", "loss", torch.rand(20, dtype=torch.float64), [0, 5, 20],
              torch.Generator().manual_seed(0), plain)
    assert all(w is None for _, w, _ in plain.fits)
    assert sample_weights(3, torch.tensor([2]), 4, False) is None
