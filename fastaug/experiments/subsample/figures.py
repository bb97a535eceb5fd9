"""The run's figures: ``curves.png`` (the paper's Figures 3/4/9/10) and ``scores.png`` (its Figures
1/2/6/7), drawn with :func:`fastaug.figures.pyplot` and written with :func:`fastaug.figures.save_figure`.

Kept in the loop's package (not fastaug/viz.py) so the loop owns its figures.
"""
import numpy as np
from scipy.stats import spearmanr

from ...figures import pyplot, save_figure

__all__ = ["curves_figure", "scores_figure"]

# One colour per base rule, one line style per refinement, so 11+ policies stay readable.
_COLOURS = {"baseline": "tab:red", "random_prop": "tab:blue", "det_prop": "tab:green",
            "random_inverse": "tab:purple", "det_inverse": "tab:brown"}
_STYLES = {(False, False): "-", (True, False): "--", (False, True): ":", (True, True): "-."}


def _save(fig, path):
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def curves_figure(path, result, summary):
    """Accuracy on the poisoned test set vs number of augmented points, one panel per score: every
    policy's mean over rounds (shaded: +-1 std for random policies), the no-augmentation line (red
    dotted) and the full-augmentation line (green dotted), as the paper's Figure 3. The x axis is
    symmetric-log so that the first 1 % of points, where the policies differ most, is visible."""
    from .policies import parse_policy

    plt = pyplot()
    scores = list(summary)
    fig, axes = plt.subplots(1, len(scores), figsize=(6.4 * len(scores), 4.6), squeeze=False)
    n = result.meta["n_train"]
    for ax, score in zip(axes[0], scores):
        for name, e in summary[score].items():
            pol = parse_policy(name)
            x, m = np.asarray(e["checkpoints"]), np.asarray(e["mean"])
            ax.plot(x, m, _STYLES[(pol.update, pol.downweight)], color=_COLOURS[pol.base], marker="o", ms=3,
                    lw=1.4, label=f"{e['display_name']} (AUC {e['auc_mean']:.1f})")
            if e["std"] is not None:
                s = np.asarray(e["std"])
                ax.fill_between(x, m - s, m + s, color=_COLOURS[pol.base], alpha=0.08)
        ax.axhline(result.no_aug_accuracy, color="tab:red", ls=":", lw=1, label="no augmentation")
        ax.axhline(result.full_aug_accuracy, color="tab:green", ls=":", lw=1, label="full augmentation")
        ax.set_xscale("symlog", linthresh=max(1, n // 100))
        ax.set_xlim(0, n)
        ax.set(xlabel="number of augmented points", ylabel="poisoned test accuracy",
               title=f"score: {score}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    meta = result.meta
    fig.suptitle(f"{meta['dataset']} {' vs '.join(meta['classes'])}, {meta['augmentation']} "
                 f"(x{meta['augmentations_per_point']}), n={n}, {meta['feature_model']} features ({meta['features']}), "
                 f"C={meta['C']:g}", fontsize=10)
    return _save(fig, path)


def _np(t):
    return t.detach().cpu().double().numpy() if hasattr(t, "detach") else np.asarray(t, dtype=np.float64)


def _log_floor(values):
    """A positive floor for log axes: a tenth of the smallest positive value (zeros are drawn there)."""
    pos = values[values > 0]
    return pos.min() / 10 if pos.size else 1e-12


def scores_figure(path, result, bins=50):
    """Per score: the histogram of the initial scores of every training point on log-spaced bins (the
    paper's Figures 1, 6, 7: most points score near zero, a few are influential / hard), and the initial vs
    the final score after augmenting every point on log-log axes (the paper's Figure 2, with Spearman's rank
    correlation). Zeros are drawn at a tenth of the smallest positive value."""
    plt = pyplot()
    scores = list(result.initial_scores)
    fig, axes = plt.subplots(2, len(scores), figsize=(5.4 * len(scores), 7.6), squeeze=False)
    colours = {"influence": "tab:blue", "loss": "tab:orange"}
    labels = {"influence": "LOO self-influence $g_i^T H^{-1} g_i$", "loss": "training loss $l(z_i)$"}
    for j, score in enumerate(scores):
        v0, v1 = _np(result.initial_scores[score]), _np(result.final_scores[score])
        f0, f1 = _log_floor(v0), _log_floor(v1)
        c0, c1 = np.maximum(v0, f0), np.maximum(v1, f1)
        ax = axes[0, j]
        edges = np.logspace(np.log10(c0.min()), np.log10(c0.max()) + 1e-9, bins + 1)
        ax.hist(c0, bins=edges, color=colours.get(score, "tab:gray"), alpha=0.85)
        ax.set_xscale("log")
        ax.set(xlabel=labels.get(score, score), ylabel="number of training points",
               title=f"{score} on the initial training set")
        for q, style in ((50, "--"), (99, ":")):
            ax.axvline(max(np.percentile(v0, q), f0), color="k", ls=style, lw=1, label=f"{q}th percentile")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax = axes[1, j]
        ax.scatter(c0, c1, s=6, alpha=0.5, color=colours.get(score, "tab:gray"))
        rho = spearmanr(v0, v1).statistic if len(v0) > 2 else float("nan")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel=f"initial {score}", ylabel=f"{score} after augmenting every point",
               title=f"initial vs final (Spearman {rho:.2f})")
        ax.grid(alpha=0.3)
    meta = result.meta
    fig.suptitle(f"{meta['dataset']} {' vs '.join(meta['classes'])}, n={meta['n_train']}, "
                 f"{meta['augmentation']}: scores of the regression on {meta['feature_model']} features", fontsize=10)
    return _save(fig, path)
