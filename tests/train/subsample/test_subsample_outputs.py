"""AUC by the trapezoid rule, per-policy summaries and the paper's Table 1 row."""
import numpy as np
import pytest
from sklearn.metrics import auc as sklearn_auc

from fastaug.experiments.subsample import (CurveResult, SubsampleConfig, auc_table, summarize_curves, table1,
                                          trapezoid_auc)
from fastaug.experiments.subsample.experiment import ExperimentResult, default_checkpoints


def test_trapezoid_auc_by_hand_and_against_sklearn():
    # (1 - 0)(0.90 + 0.92)/2 + (10 - 1)(0.92 + 0.95)/2 + (50 - 10)(0.95 + 0.97)/2 = 0.91 + 8.415 + 38.4
    assert trapezoid_auc([0, 1, 10, 50], [0.90, 0.92, 0.95, 0.97]) == pytest.approx(47.725, abs=1e-12)
    rng = np.random.default_rng(0)
    x = np.unique(rng.integers(0, 1000, 12))
    y = rng.random(x.size)
    assert trapezoid_auc(x, y) == pytest.approx(sklearn_auc(x, y))  # the authors' function
    assert trapezoid_auc([0, 1000], [1.0, 1.0]) == 1000.0  # the paper's scale: at most the number of points
    with pytest.raises(ValueError, match="increasing"):
        trapezoid_auc([0, 10, 5], [1, 1, 1])


def test_default_checkpoints_scale_the_papers():
    assert default_checkpoints(1000) == [0, 1, 10, 50, 100, 250, 500, 750, 1000]
    assert default_checkpoints(800) == [0, 1, 8, 40, 80, 200, 400, 600, 800]


def _result():
    cps = [0, 1, 2, 5, 10, 20]
    acc = {("baseline", 0): [.90, .90, .91, .92, .93, .95], ("baseline", 1): [.90, .91, .91, .93, .94, .95],
           ("det_prop", 0): [.90, .93, .94, .95, .95, .95],
           ("random_inverse", 0): [.90, .90, .90, .90, .92, .95], ("random_inverse", 1): [.90, .90, .90, .91, .91, .95]}
    curves = [CurveResult(p, s, r, cps, a, [], [], 0.0) for s in ("loss", "influence") for (p, r), a in acc.items()]
    meta = dict(n_train=20, dataset="toy", augmentation="rotate")
    return ExperimentResult(SubsampleConfig(), meta, cps, 0.97, 0.90, 0.95, {}, {}, curves, {}), acc


def test_summaries_auc_table_and_table1():
    result, acc = _result()
    summary = summarize_curves(result)
    e = summary["loss"]["baseline"]
    runs = np.array([acc[("baseline", 0)], acc[("baseline", 1)]])
    np.testing.assert_allclose(e["mean"], runs.mean(0))
    np.testing.assert_allclose(e["std"], runs.std(0, ddof=1))
    aucs = [trapezoid_auc(result.checkpoints, r) for r in runs]
    assert e["auc_mean"] == pytest.approx(np.mean(aucs)) and e["auc_std"] == pytest.approx(np.std(aucs, ddof=1))
    assert summary["loss"]["det_prop"]["std"] is None and summary["loss"]["det_prop"]["auc_std"] is None
    rows = auc_table(summary, 20)
    assert [r["policy"] for r in rows[:3]] == ["det_prop", "baseline", "random_inverse"]  # best first
    assert [r["score"] for r in rows] == ["loss"] * 3 + ["influence"] * 3
    assert rows[0]["auc_per_1000"] == pytest.approx(rows[0]["auc_mean"] * 50)
    row = table1(result, summary)
    # 5 % of 20 points = 1, 10 % = 2, 25 % = 5: baseline means vs the best policy at each.
    assert row["baseline_5%"] == pytest.approx(0.905) and row["best_5%"] == pytest.approx(0.93)
    assert row["best_25%_policy"] == "Det Prop (loss)" and row["baseline_25%"] == pytest.approx(0.925)
    assert (row["no_aug"], row["full_aug"]) == (0.90, 0.95)
