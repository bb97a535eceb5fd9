"""``policy.png``: the Adversarial AutoAugment paper's Figure 6 -- the op and magnitude distributions
of the sampled policies over the epochs, as stacked areas (percent), from the ``op_frequencies`` and
``magnitude_frequencies`` of metrics.jsonl. The paper averages over five epochs; short runs here
plot every epoch (``smooth`` epochs per point when asked). A run of one epoch has no area to stack:
it gets one bar per op and per magnitude level instead."""
import numpy as np

from ...figures import pyplot, save_figure

__all__ = ["policy_figure"]


def _smooth(freqs, k):
    if k <= 1:
        return freqs
    out = np.empty_like(freqs)
    for i in range(len(freqs)):  # trailing mean over the last k epochs
        out[i] = freqs[max(0, i - k + 1):i + 1].mean(0)
    return out


def policy_figure(history, path, op_names, title=None, smooth=1):
    """Two panels (a) operations, (b) magnitude levels: stacked areas over the epochs, y = percent of
    sampled actions; bars of the one epoch when the history has a single one."""
    plt = pyplot()
    rows = [r for r in history if "op_frequencies" in r]
    if not rows:
        raise ValueError("no epoch in the history records op_frequencies")
    epochs = np.array([r["epoch"] for r in rows])
    ops = _smooth(np.array([r["op_frequencies"] for r in rows], dtype=float), smooth) * 100
    mags = _smooth(np.array([r["magnitude_frequencies"] for r in rows], dtype=float), smooth) * 100
    fig, (ax_o, ax_m) = plt.subplots(1, 2, figsize=(13, 4.6))
    op_colors = plt.get_cmap("tab20")(np.linspace(0, 1, 20))[:len(op_names)]
    mag_colors = plt.get_cmap("viridis")(np.linspace(0, 1, mags.shape[1]))
    level_names = [str(i) for i in range(mags.shape[1])]
    if len(epochs) == 1:
        ax_o.bar(np.arange(len(op_names)), ops[0], color=op_colors, tick_label=op_names)
        ax_o.tick_params(axis="x", labelrotation=90, labelsize=7)
        ax_m.bar(np.arange(len(level_names)), mags[0], color=mag_colors, tick_label=level_names)
        for ax, name, xlabel in ((ax_o, "(a) operations", "operation"), (ax_m, "(b) magnitudes (0 = weakest)",
                                                                          "magnitude level")):
            ax.set(xlabel=xlabel, ylabel="% of sampled actions", title=f"{name}, epoch {epochs[0]}")
    else:
        ax_o.stackplot(epochs, ops.T, labels=op_names, colors=op_colors)
        ax_m.stackplot(epochs, mags.T, labels=level_names, colors=mag_colors)
        for ax, name in ((ax_o, "(a) operations"), (ax_m, "(b) magnitudes (0 = weakest)")):
            ax.set(xlabel="epoch", ylabel="% of sampled actions", title=name, ylim=(0, 100),
                   xlim=(epochs[0], epochs[-1]))
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
