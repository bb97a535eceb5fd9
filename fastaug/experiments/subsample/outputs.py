"""What a run writes: curves.json, auc.csv, table1.csv/.md, summary.json (figures: :mod:`.figures`).

* AUC (the paper's appendix D): the trapezoid rule over raw point counts from 0, accuracy as a fraction
  (the authors' ``sklearn.metrics.auc(all_samples_points, accuracy)`` with the no-augmentation
  accuracy at 0), so on 1,000 points the maximum is 1,000. Mean and standard deviation (ddof = 1, as
  pandas) over rounds; deterministic policies run once and have no standard deviation ("—" in the
  paper's tables, empty in the CSV). Rows are sorted as the paper's tables: per score, by AUC mean,
  best first. ``auc_per_1000`` rescales to the paper's 1,000-point axis (AUC * 1000 / n) for
  comparison with its tables when the training set is smaller.
* Table 1 (the paper's section 3): accuracy with no augmentation (0 %), the uniform baseline's mean
  accuracy and the best policy's mean accuracy (over every policy and score of the run) at 5, 10 and
  25 % of the training points augmented, and with full augmentation (100 %).
"""
import csv
import json
import math
import os

import numpy as np

from .experiment import TABLE1_FRACTIONS, fraction_points
from .policies import parse_policy

__all__ = ["trapezoid_auc", "summarize_curves", "auc_table", "table1", "write_outputs"]


def trapezoid_auc(points, accuracy):
    """Area under the accuracy curve by the trapezoid rule over the raw point counts ``points``."""
    x = np.asarray(points, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"points and accuracy must be 1-D of one length, got {x.shape} and {y.shape}")
    if np.any(np.diff(x) < 0):
        raise ValueError("points must be in increasing order")
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _std(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def summarize_curves(result):
    """{score: {policy: {checkpoints, mean, std, runs, aucs, auc_mean, auc_std, rounds, display_name}}}."""
    out = {}
    for c in result.curves:
        entry = out.setdefault(c.score, {}).setdefault(c.policy, {"runs": [], "checkpoints": c.checkpoints})
        entry["runs"].append(c.accuracy)
    for score, policies in out.items():
        for name, e in policies.items():
            runs = np.asarray(e["runs"], dtype=np.float64)
            aucs = [trapezoid_auc(e["checkpoints"], r) for r in runs]
            e.update(mean=runs.mean(0).tolist(),
                     std=runs.std(0, ddof=1).tolist() if len(runs) > 1 else None,
                     aucs=aucs, auc_mean=float(np.mean(aucs)), auc_std=_std(aucs), rounds=len(runs),
                     display_name=parse_policy(name).display_name)
    return out


def auc_table(summary, n_points):
    """Rows (dicts) of auc.csv, sorted per score by AUC mean (best first)."""
    rows = []
    for score in summary:
        block = sorted(summary[score].items(), key=lambda kv: -kv[1]["auc_mean"])
        for name, e in block:
            rows.append(dict(score=score, policy=name, display_name=e["display_name"], auc_mean=e["auc_mean"],
                             auc_std=e["auc_std"], rounds=e["rounds"],
                             auc_per_1000=e["auc_mean"] * 1000.0 / n_points))
    return rows


def table1(result, summary):
    """The paper's Table 1 row for this run (dict): accuracies at 0, 5, 10, 25 and 100 % augmented."""
    n = result.meta["n_train"]
    row = {"dataset": result.meta["dataset"], "augmentation": result.meta["augmentation"], "n_train": n,
           "no_aug": result.no_aug_accuracy, "full_aug": result.full_aug_accuracy}
    for f in TABLE1_FRACTIONS:
        k = fraction_points(f, n)
        pct = f"{round(f * 100)}%"
        base = [e for s, ps in summary.items() for p, e in ps.items() if p == "baseline"]
        if base:
            i = base[0]["checkpoints"].index(k)
            row[f"baseline_{pct}"] = base[0]["mean"][i]
        best = None
        for s, ps in summary.items():
            for p, e in ps.items():
                if p == "baseline":
                    continue
                acc = e["mean"][e["checkpoints"].index(k)]
                if best is None or acc > best[0]:
                    best = (acc, f"{e['display_name']} ({s})")
        if best is not None:
            row[f"best_{pct}"], row[f"best_{pct}_policy"] = best
        row[f"points_{pct}"] = k
    return row


def _fmt(v):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _write_csv(path, rows, fields):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k)) for k in fields})


def _table1_markdown(row):
    pcts = [f"{round(f * 100)}%" for f in TABLE1_FRACTIONS]
    head = ("| Dataset | No Aug. 0% | " + " | ".join(f"Baseline {p}" for p in pcts) + " | "
            + " | ".join(f"Best {p}" for p in pcts) + " | Full Aug. 100% |")
    cells = [f"{row['dataset']} {row['augmentation']}", f"{100 * row['no_aug']:.1f}%"]
    cells += [f"{100 * row[f'baseline_{p}']:.1f}%" if f"baseline_{p}" in row else "n/a" for p in pcts]
    cells += [f"{100 * row[f'best_{p}']:.1f}%" if f"best_{p}" in row else "n/a" for p in pcts]
    cells.append(f"{100 * row['full_aug']:.1f}%")
    best = "; ".join(f"{p}: {row[f'best_{p}_policy']}" for p in pcts if f"best_{p}_policy" in row)
    points = ", ".join(f"{p} = {row[f'points_{p}']}" for p in pcts)
    # on a small training set several fractions round to the same point count: say so, not three columns apart
    note = ("; at this training size some of these fractions are the same points, and their columns repeat one "
            "measurement" if len({row[f"points_{p}"] for p in pcts}) < len(pcts) else "")
    return (head + "\n|" + "---|" * (len(cells)) + "\n| " + " | ".join(cells) + " |\n\nBest policies: " + best
            + f"\n\nAugmented points: {points} of {row['n_train']}{note}.\n")


def write_outputs(result, output_dir, figures=True):
    """Write every output of ``result`` into ``output_dir``; returns {name: path}."""
    os.makedirs(output_dir, exist_ok=True)
    summary = summarize_curves(result)
    n = result.meta["n_train"]
    paths = {}
    curves = {"meta": result.meta, "checkpoints": result.checkpoints,
              "no_aug_clean_accuracy": result.no_aug_clean_accuracy, "no_aug_accuracy": result.no_aug_accuracy,
              "full_aug_accuracy": result.full_aug_accuracy,
              "curves": {s: {p: {k: e[k] for k in ("display_name", "checkpoints", "mean", "std", "rounds", "runs")}
                             for p, e in ps.items()} for s, ps in summary.items()}}
    paths["curves.json"] = os.path.join(output_dir, "curves.json")
    with open(paths["curves.json"], "w") as f:
        json.dump(curves, f, indent=1)
    rows = auc_table(summary, n)
    paths["auc.csv"] = os.path.join(output_dir, "auc.csv")
    _write_csv(paths["auc.csv"], rows, ["score", "policy", "display_name", "auc_mean", "auc_std", "rounds",
                                        "auc_per_1000"])
    t1 = table1(result, summary)
    paths["table1.csv"] = os.path.join(output_dir, "table1.csv")
    _write_csv(paths["table1.csv"], [t1], list(t1))
    paths["table1.md"] = os.path.join(output_dir, "table1.md")
    with open(paths["table1.md"], "w") as f:
        f.write(_table1_markdown(t1))
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(result.config).items()}
    summ = {"config": cfg, "meta": result.meta, "timings": result.timings, "checkpoints": result.checkpoints,
            "no_aug_clean_accuracy": result.no_aug_clean_accuracy, "no_aug_accuracy": result.no_aug_accuracy,
            "full_aug_accuracy": result.full_aug_accuracy, "table1": t1, "auc": rows,
            "curve_seconds": {f"{c.score}/{c.policy}/{c.round}": c.seconds for c in result.curves}}
    paths["summary.json"] = os.path.join(output_dir, "summary.json")
    with open(paths["summary.json"], "w") as f:
        json.dump(summ, f, indent=1, default=_fmt)
    if figures:
        from .figures import curves_figure, scores_figure

        paths["curves.png"] = curves_figure(os.path.join(output_dir, "curves.png"), result, summary)
        paths["scores.png"] = scores_figure(os.path.join(output_dir, "scores.png"), result)
    return paths
