"""The training run's own figure, ``curves.png`` (loss and accuracy over epochs), written through
:func:`fastaug.figures.save_figure` as every figure of the package."""
from ..figures import epoch_series, pyplot, save_figure

__all__ = ["training_curves", "curves_figure"]


def curves_figure(history, title=None):
    """A matplotlib Figure with two panels from metrics.jsonl records: train/test loss, train/test accuracy."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("train", "-"), ("test", "--")):
        epoch_series(ax_l, epochs, [r[f"{split}_loss"] for r in history], style, label=split)
        epoch_series(ax_a, epochs, [r[f"{split}_acc"] for r in history], style, label=split)
    ax_l.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_a.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_l, ax_a):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(history, path, title=None):
    """Write :func:`curves_figure` to ``path`` (PNG, atomically)."""
    return save_figure(curves_figure(history, title), path)
