"""The comparison's outputs: ``patching.md`` / ``patching.csv`` (the paper's Table 1), ``patching.png``, saliency.

Table 1 of the paper (and the blog) reports, per method, the accuracy of every (class, subgroup)
group, the aggregate accuracy, the robust accuracy (the worst group) and the subgroup gap of each
class (best minus worst subgroup), as mean (std) over seeds. The rows here are the final epoch of
each run; std is the sample standard deviation (blank for one seed).
"""
import csv
import io
import math

import torch

from ...figures import pyplot

__all__ = ["table_rows", "write_table", "curves_figure", "saliency_maps", "saliency_figure", "PAPER_ROBUST"]

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


def write_table(finals, group_names, classes, dataset, seeds, note=""):
    """``(markdown, csv)`` texts of the table."""
    header, rows = table_rows(finals, group_names, classes)
    md = io.StringIO()
    md.write(f"# Model patching on {dataset}\n\nFinal-epoch test accuracy (%), mean ± std over seeds "
             f"{', '.join(str(s) for s in seeds)}; robust = worst group, gap = best - worst subgroup of a class.\n\n")
    if note:
        md.write(note + "\n\n")
    md.write("| " + " | ".join(header + ["seeds"]) + " |\n|" + "---|" * (len(header) + 1) + "\n")
    for row in rows:
        md.write("| " + " | ".join([row[0]] + [_fmt(c) for c in row[1:-1]] + [str(row[-1])]) + " |\n")
    if dataset == "mnist-correlation":
        md.write("\nThe paper's robust accuracy on MNIST-Correlation (full MNIST, 3 trials): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in PAPER_ROBUST.items())
                 + ". These runs use MNIST-5k (~20 minority images per class at 0.99) and minutes of CPU, "
                   "so the numbers are not comparable one to one.\n")
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["method"] + [f"{h}_{s}" for h in header[1:] for s in ("mean", "std")] + ["seeds"])
    for row in rows:
        w.writerow([row[0]] + [f"{v:.4f}" if v is not None else "" for c in row[1:-1] for v in c] + [row[-1]])
    return md.getvalue(), out.getvalue()


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
