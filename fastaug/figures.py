"""The one place fastaug draws figures from: matplotlib's headless backend chosen once, the atomic
PNG writer, and the image and flow helpers the figure functions share.

* :func:`pyplot`: ``matplotlib.pyplot`` on the Agg backend (no display needed; set once, here);
* :func:`save_figure`: write a Figure as PNG atomically (a temporary file renamed over the target),
  so a run killed while drawing never leaves a truncated PNG; every figure of the package goes
  through it;
* :func:`image_array`: a (C, H, W) tensor in [0, 1] -> what ``imshow`` takes;
* :func:`flow_rgb`: a displacement field (2, H, W) -> an HSV colour wheel picture (hue = direction,
  value = length);
* :func:`epoch_series`: draw a per-epoch series as a line, or as markers when there is one epoch,
  so a figure says something for any run length.
"""
import os

__all__ = ["pyplot", "save_figure", "image_array", "flow_rgb", "epoch_series"]


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend (figures are files, never windows)."""
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi=100):
    """Write a matplotlib Figure to ``path`` (PNG) atomically: a temporary file renamed over the target;
    creates the folder, closes the figure, returns ``path``."""
    plt = pyplot()
    path = os.fspath(path)
    if os.path.isdir(path):  # os.replace would fail after drawing, naming the temporary file, and leave it
        plt.close(fig)
        raise IsADirectoryError(f"{path} is a folder: give the path of the PNG file to write (e.g. "
                                f"{os.path.join(path, 'figure.png')})")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def image_array(t):
    """(C, H, W) tensor in [0, 1] -> (H, W, C) array, or (H, W) for one channel, clipped to [0, 1]."""
    a = t.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


def flow_rgb(fx, fy, max_length=None):
    """A displacement field as colours: (H, W) x- and y-components -> ((H, W, 3) RGB array in [0, 1],
    the length that maps to full brightness). Hue is the direction, brightness the length."""
    import numpy as np
    import torch
    from matplotlib.colors import hsv_to_rgb

    length = torch.sqrt(fx ** 2 + fy ** 2)
    top = float(length.max().clamp_min(1e-6)) if max_length is None else float(max_length)
    hue = ((torch.atan2(fy, fx) / (2 * np.pi)) % 1.0).cpu().numpy()
    value = (length / top).clamp(0, 1).cpu().numpy()
    return hsv_to_rgb(np.stack([hue, np.ones_like(hue), value], -1)), top


def epoch_series(ax, epochs, values, style="-", **kw):
    """Plot ``values`` over ``epochs`` on ``ax``; with one epoch a line would be invisible, so draw a marker."""
    kw.setdefault("marker", "o")
    kw.setdefault("ms", 3 if len(epochs) > 1 else 7)
    return ax.plot(epochs, values, style, **kw)
