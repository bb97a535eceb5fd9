"""Figures (PNG) of what fastaug's kernels do. Each function is self-contained and writes one file."""
import os


def influence_histograms(path, self_influence, losses, title=None, bins=60):
    """Write a PNG like seed 002's Figure 1: histograms of self-influence and of training loss.

    Left: the leave-one-out self-influence ``g_i^T H^-1 g_i`` of every training point (seed 002's
    |I_LOO|; removing z_i raises its own loss by about that / N). Right: the training loss of every
    point. Counts are on a log scale, as most of the mass sits near zero (the points one can skip
    augmenting) with a long tail of influential / hard points; the median and the 99th percentile
    are marked.

    Args:
        path: output PNG file.
        self_influence: (N,) tensor or array.
        losses: (N,) tensor or array.
        title: optional figure title.
        bins: histogram bins.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    def as_np(a):
        a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        return a.astype(np.float64).reshape(-1)

    panels = [(as_np(self_influence), "self-influence $g_i^T H^{-1} g_i$", "tab:blue"),
              (as_np(losses), "training loss $l(z_i)$", "tab:orange")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (values, label, colour) in zip(axes, panels):
        finite = values[np.isfinite(values)]
        ax.hist(finite, bins=bins, color=colour, alpha=0.85)
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("number of training points")
        if finite.size:
            for q, style in ((50, "--"), (99, ":")):
                v = np.percentile(finite, q)
                ax.axvline(v, color="k", linestyle=style, linewidth=1, label=f"{q}th percentile = {v:.3g}")
            ax.legend(fontsize=8)
        ax.set_title(f"{label} (N = {finite.size})", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
