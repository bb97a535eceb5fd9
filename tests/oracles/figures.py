"""Test helper: capture the matplotlib figures a command saves, to check what they show."""


def capture_figures(monkeypatch):
    """Make every ``Figure.savefig`` also record the figure (and still write the file).

    Returns the list the figures are appended to, in order.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    saved = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def axes_images(fig):
    """The array drawn in each image axes of fig, row-major, as numpy arrays."""
    import numpy as np

    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]
