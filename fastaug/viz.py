"""Figures (PNG) of what fastaug's kernels do. Each function is self-contained and writes one file."""
import os


def policy_ops_grid(path, image=None, size=160, magnitudes=(0.0, 0.5, 1.0), sign=1.0, fill=128):
    """Write a PNG grid of the 16 policy ops (rows) at the given magnitudes (columns) on a photo.

    Args:
        path: output PNG file.
        image: (H, W, 3) uint8 array; default: scikit-image's astronaut photo. SamplePairing mixes in
            scikit-image's cat photo (chelsea).
        size: the photo is resized to ``size`` x ``size``.
        magnitudes: one column per magnitude in [0, 1].
        sign: +1 or -1 for the signed ops.
        fill: fill value of the geometric ops and Cutout.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from PIL import Image

    from .ops.policy import OP_NAMES, apply_ops

    def load(a):
        return torch.from_numpy(np.array(Image.fromarray(a).convert("RGB").resize((size, size), Image.BILINEAR)))

    if image is None:
        from skimage import data

        image = data.astronaut()
    from skimage import data as _data

    photo, other = load(np.asarray(image)), load(_data.chelsea())
    n_ops, n_mag = len(OP_NAMES), len(magnitudes)
    x = torch.stack([photo] * (n_ops * n_mag) + [other]).permute(0, 3, 1, 2).contiguous()
    N = x.shape[0]
    op = torch.tensor([o for o in range(n_ops) for _ in magnitudes] + [-1])
    mag = torch.tensor([float(m) for _ in range(n_ops) for m in magnitudes] + [0.0])
    out = apply_ops(x, op, mag, torch.full((N,), float(sign)), torch.full((N,), N - 1), fill=fill)
    out = out.permute(0, 2, 3, 1).numpy()

    fig, axes = plt.subplots(n_ops, n_mag, figsize=(1.6 * n_mag + 1.2, 1.6 * n_ops), squeeze=False)
    for o in range(n_ops):
        for j, m in enumerate(magnitudes):
            ax = axes[o][j]
            ax.imshow(out[o * n_mag + j])
            ax.set_xticks([])
            ax.set_yticks([])
            if o == 0:
                ax.set_title(f"m = {m:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{o} {OP_NAMES[o]}", fontsize=8)
    fig.suptitle(f"fastaug.apply_ops (sign {sign:+g}, fill {fill})", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / n_ops))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
