"""Markdown tables of ``fastaug subsample`` runs next to the paper's appendix D (MNIST) numbers.

    python -m fastaug.experiments.subsample_tables benchmarks/out/subsample      # reads s<seed>/<augmentation>/

Expects the layout written by the commands in benchmarks/RESULTS.md (one output folder per seed and
augmentation). Prints: per augmentation and score, seed 0's AUC table beside the paper's; the AUC
difference to the uniform baseline averaged over every seed found, with how many seeds each policy
beat the baseline; the Table 1 rows; the reference accuracies and timings of every run.
"""
import csv
import glob
import json
import os
import sys

import numpy as np

AUGMENTATIONS = ("translate", "rotate", "crop")
SCORES = ("loss", "influence")

# Kuchnik & Smith (ICLR 2019), appendix D, MNIST columns of Tables 3, 6, 9 (loss) and 12, 15, 18
# (influence): policy -> (AUC mean, AUC std or None), AUC over 0..1000 augmented points.
SEED_AUC = {
    ("translate", "loss"): {"Det Prop Update": (995.442, None), "Det Prop Update Down": (995.375, None),
                            "Rand Prop Update Down": (995.373, 0.350), "Rand Prop": (995.305, 0.242),
                            "Det Prop": (995.239, None), "Rand Prop Update": (995.231, 0.268),
                            "Det Prop Down": (995.167, None), "Rand Prop Down": (995.153, 0.154),
                            "Baseline": (993.599, 0.355), "Rand Inverse Prop": (985.775, 0.656),
                            "Det Inverse Prop": (984.249, None)},
    ("rotate", "loss"): {"Det Prop": (997.285, None), "Rand Prop Update Down": (997.266, 0.152),
                         "Rand Prop Update": (997.246, 0.167), "Rand Prop Down": (997.215, 0.193),
                         "Rand Prop": (997.076, 0.213), "Det Prop Update": (996.966, None),
                         "Det Prop Down": (996.914, None), "Det Prop Update Down": (996.847, None),
                         "Baseline": (995.393, 0.637), "Rand Inverse Prop": (990.824, 0.466),
                         "Det Inverse Prop": (989.941, None)},
    ("crop", "loss"): {"Det Prop Down": (995.839, None), "Rand Prop Down": (995.806, 0.475),
                       "Rand Prop": (995.768, 0.307), "Rand Prop Update Down": (995.650, 0.302),
                       "Rand Prop Update": (995.533, 0.461), "Det Prop": (995.472, None),
                       "Det Prop Update Down": (995.260, None), "Det Prop Update": (994.901, None),
                       "Baseline": (992.704, 0.566), "Det Inverse Prop": (984.146, None),
                       "Rand Inverse Prop": (983.969, 0.384)},
    ("translate", "influence"): {"Rand Prop Update": (995.416, 0.409), "Rand Prop": (995.358, 0.148),
                                 "Det Prop": (995.307, None), "Rand Prop Down": (995.230, 0.404),
                                 "Det Prop Down": (995.142, None), "Rand Prop Update Down": (995.136, 0.376),
                                 "Det Prop Update": (995.014, None), "Det Prop Update Down": (994.455, None),
                                 "Baseline": (993.934, 0.591), "Det Inverse Prop": (985.555, None),
                                 "Rand Inverse Prop": (985.164, 1.487)},
    ("rotate", "influence"): {"Rand Prop Update Down": (997.277, 0.071), "Det Prop Update Down": (997.249, None),
                              "Rand Prop": (997.200, 0.081), "Rand Prop Update": (997.162, 0.167),
                              "Det Prop Update": (997.128, None), "Det Prop Down": (997.111, None),
                              "Rand Prop Down": (997.054, 0.200), "Det Prop": (996.671, None),
                              "Baseline": (995.120, 0.329), "Rand Inverse Prop": (990.701, 0.418),
                              "Det Inverse Prop": (990.458, None)},
    ("crop", "influence"): {"Rand Prop": (996.018, 0.425), "Det Prop": (995.966, None),
                            "Det Prop Down": (995.959, None), "Rand Prop Update Down": (995.883, 0.392),
                            "Rand Prop Update": (995.828, 0.534), "Det Prop Update Down": (995.825, None),
                            "Det Prop Update": (995.724, None), "Rand Prop Down": (995.266, 0.575),
                            "Baseline": (992.996, 0.693), "Rand Inverse Prop": (984.038, 1.097),
                            "Det Inverse Prop": (982.945, None)},
}


def _read(folder):
    with open(os.path.join(folder, "auc.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(folder, "summary.json")) as f:
        summary = json.load(f)
    return rows, summary


def _f(v, fmt="{:.3f}"):
    return "—" if v in (None, "") else fmt.format(float(v))


def seed_tables(root, seed=0):
    out = []
    for aug in AUGMENTATIONS:
        folder = os.path.join(root, f"s{seed}", aug)
        if not os.path.isdir(folder):
            continue
        rows, summary = _read(folder)
        n = summary["meta"]["n_train"]
        for score in SCORES:
            ours = [r for r in rows if r["score"] == score]
            ref = SEED_AUC[(aug, score)]
            ref_rank = {p: i + 1 for i, p in enumerate(sorted(ref, key=lambda p: -ref[p][0]))}
            out.append(f"\n**MNIST {aug}, {score}** (n = {n}; seed: n = 1000)\n")
            out.append("| rank | policy | AUC mean | AUC std | per 1000 | − baseline (per 1000) | paper's rank | "
                       "paper's AUC mean | paper's std | paper's − baseline |")
            out.append("|---|---|---|---|---|---|---|---|---|---|")
            base = next(float(r["auc_per_1000"]) for r in ours if r["policy"] == "baseline")
            for i, r in enumerate(ours):
                name = r["display_name"]
                sm, ss = ref.get(name, (None, None))
                d_ref = None if sm is None else sm - ref["Baseline"][0]
                out.append(f"| {i + 1} | {name} | {_f(r['auc_mean'])} | {_f(r['auc_std'])} | "
                           f"{_f(r['auc_per_1000'])} | {float(r['auc_per_1000']) - base:+.3f} | "
                           f"{ref_rank.get(name, '—')} | {_f(sm)} | {_f(ss)} | "
                           f"{'—' if d_ref is None else f'{d_ref:+.3f}'} |")
    return "\n".join(out)


def across_seeds(root):
    seeds = sorted(int(os.path.basename(p)[1:]) for p in glob.glob(os.path.join(root, "s*")) if os.path.isdir(p))
    diffs = {}
    for s in seeds:
        for aug in AUGMENTATIONS:
            folder = os.path.join(root, f"s{s}", aug)
            if not os.path.isdir(folder):
                continue
            rows, _ = _read(folder)
            for score in SCORES:
                ours = {r["display_name"]: float(r["auc_per_1000"]) for r in rows if r["score"] == score}
                for name, v in ours.items():
                    diffs.setdefault(name, {}).setdefault((aug, score), []).append(v - ours["Baseline"])
    cols = [(a, s) for a in AUGMENTATIONS for s in SCORES]
    lines = [f"\nAUC − baseline AUC, per 1000 points, mean over seeds {seeds} (in brackets: seeds in which the "
             "policy's AUC beat the baseline's)\n",
             "| policy | " + " | ".join(f"{a} {s}" for a, s in cols) + " |", "|---|" + "---|" * len(cols)]
    order = sorted(diffs, key=lambda p: -np.mean([np.mean(diffs[p].get(c, [0])) for c in cols]))
    for name in order:
        if name == "Baseline":
            continue
        cells = []
        for c in cols:
            v = diffs[name].get(c, [])
            cells.append(f"{np.mean(v):+.2f} ({sum(x > 0 for x in v)}/{len(v)})" if v else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table1_and_runs(root):
    lines = ["\n| seed | augmentation | no aug (clean test) | no aug (poisoned) | full aug | baseline 5/10/25 % | "
             "best 5/10/25 % | best policies | run time (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for folder in sorted(glob.glob(os.path.join(root, "s*", "*"))):
        if not os.path.isfile(os.path.join(folder, "summary.json")):
            continue
        _, s = _read(folder)
        t = s["table1"]
        pct = ("5%", "10%", "25%")
        lines.append(
            f"| {s['config']['seed']} | {s['meta']['augmentation']} | {100 * s['no_aug_clean_accuracy']:.1f} | "
            f"{100 * t['no_aug']:.1f} | {100 * t['full_aug']:.1f} | "
            + " / ".join(f"{100 * t['baseline_' + p]:.1f}" for p in pct) + " | "
            + " / ".join(f"{100 * t['best_' + p]:.1f}" for p in pct) + " | "
            + "; ".join(t["best_" + p + "_policy"] for p in pct) + f" | {s['timings']['total_s']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = argv[0] if argv else "benchmarks/out/subsample"
    print(seed_tables(root))
    print(across_seeds(root))
    print(table1_and_runs(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
