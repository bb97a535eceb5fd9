"""The training run's own figure, ``curves.png`` (loss and accuracy over epochs), and the one way every
training loop writes a figure: :func:`save_figure` (atomic, so a run killed while drawing never
leaves a truncated PNG)."""
import os

__all__ = ["training_curves", "curves_figure", "save_figure"]


def save_figure(fig, path, dpi=100):
    """Write a matplotlib Figure to ``path`` (PNG) atomically: a temporary file renamed over the target;
    creates the folder, closes the figure, returns ``path``."""
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def curves_figure(history, title=None):
    """A matplotlib Figure with two panels from metrics.jsonl records: train/test loss, train/test accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("train", "-"), ("test", "--")):
        ax_l.plot(epochs, [r[f"{split}_loss"] for r in history], style, marker="o", ms=3, label=split)
        ax_a.plot(epochs, [r[f"{split}_acc"] for r in history], style, marker="o", ms=3, label=split)
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
