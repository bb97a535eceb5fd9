"""The comparison's outputs: ``patching.md`` / ``patching.csv`` (the paper's Table 1), ``patching.png``, saliency.

Table 1 of the paper (and the blog) reports, per method, the accuracy of every (class, subgroup)
group, the aggregate accuracy, the robust accuracy (the worst group) and the subgroup gap of each
class (best minus worst subgroup), as mean (std) over seeds. ``patching.md`` gives the table at the
epoch selected on the validation split (:mod:`.selection`) and at the last epoch, every seed's robust
accuracy, and stage 1's graded translations; ``patching.csv`` is the last epoch's table (as it always
was) and ``patching_selected.csv`` the selected epoch's. std is the sample standard deviation (blank
for one seed).
"""
import csv
import io
import math

import torch

from ...figures import pyplot

__all__ = ["table_rows", "table_csv", "write_table", "per_seed_markdown", "quality_markdown", "curves_figure",
           "saliency_maps", "saliency_figure", "PAPER_ROBUST"]

#: Robust accuracy (%) on MNIST-Correlation in the paper (full MNIST, 3 trials).
PAPER_ROBUST = {"erm": 71.47, "gdro": 93.31, "camel": 97.77}


def _mean_std(values):
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def table_rows(finals, group_names, classes):
    """Rows of the table from ``finals`` = {method: [final metrics record of each seed]}.

    Returns (header, rows): each row a list of (mean, std) in percent, method first.
    """
    header = ["method"] + list(group_names) + ["aggregate", "robust"] + [f"gap {c}" for c in classes]
    rows = []
    for method, records in finals.items():
        cols = [[r["group_acc"][g] for r in records] for g in group_names]
        cols += [[r["aggregate_acc"] for r in records], [r["robust_acc"] for r in records]]
        cols += [[r["gap"][c] for r in records] for c in classes]
        rows.append([method] + [_mean_std([100.0 * v for v in col]) for col in cols] + [len(records)])
    return header, rows


def _fmt(ms):
    m, s = ms
    return f"{m:.2f}" if s is None else f"{m:.2f} ± {s:.2f}"


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header + ["seeds"]) + " |", "|" + "---|" * (len(header) + 1)]
    lines += ["| " + " | ".join([row[0]] + [_fmt(c) for c in row[1:-1]] + [str(row[-1])]) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def table_csv(finals, group_names, classes):
    """The CSV text of the table of ``finals`` (one row per method: mean and std of every column)."""
    header, rows = table_rows(finals, group_names, classes)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["method"] + [f"{h}_{s}" for h in header[1:] for s in ("mean", "std")] + ["seeds"])
    for row in rows:
        w.writerow([row[0]] + [f"{v:.4f}" if v is not None else "" for c in row[1:-1] for v in c] + [row[-1]])
    return out.getvalue()


def per_seed_markdown(tables, seeds):
    """Robust accuracy (%) of every seed: ``tables`` = {row label: {method: [record of each seed]}}."""
    lines = ["| method | epoch | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
             "|" + "---|" * (len(seeds) + 3)]
    for label, finals in tables.items():
        for method, records in finals.items():
            vals = [100.0 * r["robust_acc"] for r in records]
            cells = [f"{v:.1f} (ep {r['epoch']})" for v, r in zip(vals, records)]
            lines.append(f"| {method} | {label} | " + " | ".join(cells) + f" | {_fmt(_mean_std(vals))} |")
    return "\n".join(lines) + "\n"


def quality_markdown(quality, thresholds):
    """The stage-1 section of ``patching.md``: the graded translations and their flags."""
    lines = [f"## Stage 1: translation quality ({quality['held_out']} held-out images)", "",
             "Per class and direction, on held-out images of the source subgroup: target = share of F(x) the "
             "subgroup judge puts in the target subgroup, class kept = share the class model gives x's class, "
             "change = mean |F(x) - x| per pixel (intensities in [0, 1]).", "",
             "| class | direction | images | target | class kept | change |", "|---|---|---|---|---|---|"]
    for d in quality["directions"]:
        pct = ["n/a" if v is None else f"{100 * v:.1f} %" for v in (d["target"], d["class_kept"])]
        change = "n/a" if d["change"] is None else f"{d['change']:.3f}"
        lines.append(f"| {d['class']} | {d['from']} -> {d['to']} | {d['images']} | {pct[0]} | {pct[1]} | {change} |")
    acc = ", ".join(f"{g} {100 * a:.1f} %" for g, a in quality["judge_acc"].items() if a is not None)
    cls = ", ".join(f"{g} {100 * a:.1f} %" for g, a in quality["class_acc"].items() if a is not None)
    lines += ["", f"The graders on the real held-out images: judge {acc}; class model {cls}.", ""]
    lines.append(f"Flagged (near-copy: target below {100 * thresholds['near_copy_target']:.0f} % with mean "
                 f"|F(x) - x| below {thresholds['replaced_change']:.2f}, 'replaces the image' above; class changed: "
                 f"class kept below {100 * thresholds['class_kept']:.0f} %; directions with fewer than "
                 f"{thresholds['min_images']} images are not flagged): "
                 + ("; ".join(quality["flags"]) if quality["flags"] else "none") + ".")
    return "\n".join(lines) + "\n"


def write_table(finals, group_names, classes, dataset, seeds, note="", selected=None, selection_rule=""):
    """``(markdown, csv)`` texts of the table of the last epochs ``finals``; with ``selected`` (the same
    for the selected epochs) the markdown leads with those, and lists every seed's robust accuracy."""
    seed_text = ", ".join(str(s) for s in seeds)
    md = io.StringIO()
    md.write(f"# Model patching on {dataset}\n\nTest accuracy (%), mean ± std over seeds {seed_text}; robust = "
             f"worst group, gap = best - worst subgroup of a class.\n\n")
    if note:
        md.write(note + "\n\n")
    if selected is not None:
        md.write(f"## Selected epoch ({selection_rule})\n\n")
        md.write(_markdown_table(*table_rows(selected, group_names, classes)) + "\n## Last epoch\n\n")
    md.write(_markdown_table(*table_rows(finals, group_names, classes)))
    if dataset == "mnist-correlation":
        md.write("\nThe paper's robust accuracy on MNIST-Correlation (full MNIST, 3 trials): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in PAPER_ROBUST.items())
                 + ". These runs use MNIST-5k (~20 minority images per class at 0.99) and minutes of CPU, "
                   "so the numbers are not comparable one to one.\n")
    tables = ({"selected": selected} if selected is not None else {}) | {"last": finals}
    md.write("\n## Robust accuracy per seed\n\n" + per_seed_markdown(tables, seeds))
    return md.getvalue(), table_csv(finals, group_names, classes)


def curves_figure(histories, dataset):
    """Robust and aggregate test accuracy per epoch per method (mean over seeds): a matplotlib Figure.

    ``histories`` = {method: [metrics history (list of records) of each seed]}.
    """
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for method, runs in histories.items():
        n = min(len(h) for h in runs)
        if n == 0:
            continue
        epochs = [runs[0][i]["epoch"] for i in range(n)]
        for ax, key in zip(axes, ("robust_acc", "aggregate_acc")):
            ys = [sum(h[i][key] for h in runs) / len(runs) for i in range(n)]
            ax.plot(epochs, [100 * y for y in ys], marker="o", ms=3, label=method)
    for ax, title in zip(axes, ("robust (worst group)", "aggregate")):
        ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=title)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    fig.suptitle(f"model patching on {dataset}: mean over seeds")
    fig.tight_layout()
    return fig


def saliency_maps(model, x, y):
    """|d logit_y / d x| summed over channels: (B, H, W), each map scaled to [0, 1] (input-gradient saliency)."""
    was = model.training
    model.eval()
    x = x.detach().clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), x)
    model.train(was)
    s = grad.abs().sum(1)
    return s / s.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]


def saliency_figure(models, x, y, titles):
    """Rows: the images, then each model's input-gradient saliency with its prediction. ``models`` =
    {name: classifier}; ``x`` (B, C, H, W) in [0, 1]; ``titles``: a caption per image."""
    plt = pyplot()

    b = x.shape[0]
    fig, axes = plt.subplots(1 + len(models), b, figsize=(1.4 * b + 1, 1.5 * (1 + len(models))), squeeze=False)
    img = x.permute(0, 2, 3, 1).cpu()
    for j in range(b):
        axes[0, j].imshow(img[j].squeeze(-1) if img.shape[-1] == 1 else img[j], cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(titles[j], fontsize=7)
    for i, (name, model) in enumerate(models.items(), start=1):
        maps = saliency_maps(model, x, y).cpu()
        with torch.no_grad():
            pred = model.eval()(x).argmax(1).cpu()
        for j in range(b):
            axes[i, j].imshow(maps[j], cmap="inferno", vmin=0, vmax=1)
            axes[i, j].set_title(f"{name}: {'right' if pred[j] == y[j].cpu() else 'wrong'}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("where the models look on minority-subgroup test images (|d logit_y / d x|)", fontsize=9)
    fig.tight_layout()
    return fig
