"""Figures of the influence loop: the paper's Figure 4 (interpolated tau on real training images), the
CVPR Figure 3 (diverse learned augmentations from dropout on tau) and the 2-D toy's Figure 3.

Every function writes one PNG through :func:`fastaug.figures.save_figure` (atomically) and returns its
path; images and flows are drawn with the shared helpers of :mod:`fastaug.figures`.
"""
import torch

from ...figures import flow_rgb, image_array, pyplot, save_figure

__all__ = ["tau_interpolation_grid", "dropout_samples_grid", "toy2d_figure", "gan_samples_grid"]


def _save(fig, path):
    return save_figure(fig, path, dpi=110)


def _image(t):
    """(C, H, W) in [0, 1], any float dtype -> what imshow wants."""
    return image_array(t.float())


def _off(ax):
    ax.set_xticks([])
    ax.set_yticks([])


@torch.no_grad()
def tau_interpolation_grid(path, augmenter, images, rng, steps=10, title=None):
    """The paper's Figure 4: ``steps`` codes interpolated linearly between two dropout draws of E(x),
    applied to the same training image x; one block of rows per image: (i) the image, (ii) the spatial
    model's output (the flow, hue = direction, brightness = length), (iii) the spatially transformed
    image, (iv) the appearance model's output (the colour change around mid-grey) and (v) the final
    transformed image; rows (iv) and (v) only when the augmenter has an appearance part.

    Args:
        augmenter: a :class:`~fastaug.train.influence_loop.augmenter.Augmenter`.
        images: (K, C, H, W) float training images in [0, 1].
        rng: the CPU torch.Generator of the two dropout masks per image.
    """
    plt = pyplot()
    K = images.shape[0]
    w = torch.linspace(0, 1, steps, dtype=images.dtype, device=images.device)[:, None]
    blocks = []
    for k in range(K):
        x = images[k:k + 1]
        tau = augmenter.encoder(x)
        ends = tau * augmenter.dropout_mask(2, rng, tau.device, tau.dtype)
        codes = (1 - w) * ends[0] + w * ends[1]
        xs = x.expand(steps, *x.shape[1:]).contiguous()
        blocks.append((x[0], augmenter.parts(xs, codes)))
    # Without the appearance part the spatially transformed image is the final one: one row for both.
    rows = (["image", "flow", "spatially transformed", "colour change", "final"] if augmenter.appearance
            else ["image", "flow", "transformed (spatial only)"])
    n_rows = len(rows) * K
    fig, axes = plt.subplots(n_rows, steps, figsize=(1.15 * steps + 1.3, 1.2 * n_rows + 0.5), squeeze=False)
    for k, (x, parts) in enumerate(blocks):
        fx, fy = parts["flow"][:, 0].cpu(), parts["flow"][:, 1].cpu()
        max_mag = float(torch.sqrt(fx ** 2 + fy ** 2).max().clamp_min(1e-6))
        gain = 0.5 / max(float(parts["colour_change"].abs().max()), 1e-6)
        for s in range(steps):
            panels = [_image(x), flow_rgb(fx[s], fy[s], max_mag)[0], _image(parts["spatial"][s])]
            if augmenter.appearance:
                panels += [_image(0.5 + gain * parts["colour_change"][s]), _image(parts["final"][s])]
            for r, panel in enumerate(panels):
                ax = axes[k * len(rows) + r][s]
                ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
                _off(ax)
                if k == 0 and r == 0:
                    ax.set_title(f"t = {s / max(steps - 1, 1):.2f}", fontsize=8)
                if s == 0:
                    label = rows[r] + (f"\n(max {max_mag:.1f} px)" if rows[r] == "flow" else "")
                    ax.set_ylabel(label, fontsize=7)
    fig.suptitle(title or "learned transformation along tau = (1 - t) tau_a + t tau_b (two dropout draws of E(x))",
                 fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


@torch.no_grad()
def dropout_samples_grid(path, augmenter, images, rng, samples=8, title=None):
    """CVPR Figure 3: every row one training image, then ``samples`` learned augmentations of it, each
    with its own dropout mask on tau (the diversity stage 5 trains on)."""
    plt = pyplot()
    K = images.shape[0]
    xs = images.repeat_interleave(samples, 0)
    out = augmenter(xs, rng=rng).view(K, samples, *images.shape[1:])
    fig, axes = plt.subplots(K, samples + 1, figsize=(1.1 * (samples + 1) + 0.3, 1.15 * K + 0.5), squeeze=False)
    for k in range(K):
        for s in range(samples + 1):
            panel = _image(images[k] if s == 0 else out[k, s - 1])
            ax = axes[k][s]
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            _off(ax)
            if k == 0:
                ax.set_title("input" if s == 0 else f"dropout {s}", fontsize=8)
    fig.suptitle(title or "learned augmentations G(x, dropout(E(x))), one dropout mask per column", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


@torch.no_grad()
def gan_samples_grid(path, real, fake, title=None):
    """Stage 2 at a glance: a row of standard-augmented images (what G learns to mimic) over a row of
    G's outputs for the same inputs. ``real``, ``fake``: (K, C, H, W) in [0, 1]."""
    plt = pyplot()
    K = real.shape[0]
    fig, axes = plt.subplots(2, K, figsize=(1.1 * K + 1.2, 2.6), squeeze=False)
    for r, (row, name) in enumerate(((real, "standard"), (fake, "G"))):
        for k in range(K):
            panel = _image(row[k])
            axes[r][k].imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1,
                              interpolation="nearest")
            _off(axes[r][k])
        axes[r][0].set_ylabel(name, fontsize=8)
    fig.suptitle(title or "stage 2: standard augmentation (top) and G's transformations (bottom)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


@torch.no_grad()
def toy2d_figure(path, arrays, summary, resolution=200):
    """The paper's Figure 3, one row of four panels: (i) training points with the predictive probability
    of F trained on them, (ii) validation points with that F, (iii) the augmented points (arrows from
    the originals) with F retrained on training + augmented points, (iv) validation points with the
    retrained F. Red = class 0, blue = class 1; the contour is P(class 1)."""
    plt = pyplot()
    x, y, xv, yv, xa = (arrays[k] for k in ("x", "y", "xv", "yv", "x_aug"))
    pts = torch.cat([x, xv, xa])
    lo, hi = pts.min(0).values - 0.4, pts.max(0).values + 0.4
    gx, gy = torch.meshgrid(torch.linspace(float(lo[0]), float(hi[0]), resolution, dtype=x.dtype),
                            torch.linspace(float(lo[1]), float(hi[1]), resolution, dtype=x.dtype), indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)

    def prob(model):
        return torch.softmax(model(grid), 1)[:, 1].reshape(resolution, resolution).numpy()

    colours = ["tab:red", "tab:blue"]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.4), layout="constrained")
    panels = [("training points, F", arrays["before"], x, y, None),
              (f"validation points, F (loss {summary['val_loss_before']:.3f})", arrays["before"], xv, yv, None),
              ("augmented points, F retrained", arrays["after"], xa, y, x),
              (f"validation points, F retrained (loss {summary['val_loss_after']:.3f})", arrays["after"], xv, yv, None)]
    for ax, (name, model, p, lab, origin) in zip(axes, panels):
        cs = ax.contourf(gx.numpy(), gy.numpy(), prob(model), levels=20, cmap="RdBu", vmin=0, vmax=1, alpha=0.55)
        ax.contour(gx.numpy(), gy.numpy(), prob(model), levels=[0.5], colors="k", linewidths=1)
        if origin is not None:
            d = p - origin
            moved = d.norm(dim=1) > 1e-3
            ax.scatter(origin[:, 0], origin[:, 1], c=[colours[int(c)] for c in lab], s=8, alpha=0.25)
            ax.quiver(origin[moved, 0], origin[moved, 1], d[moved, 0], d[moved, 1], angles="xy", scale_units="xy",
                      scale=1, width=0.004, color="k")
        ax.scatter(p[:, 0], p[:, 1], c=[colours[int(c)] for c in lab], s=10, edgecolors="k", linewidths=0.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(float(lo[0]), float(hi[0]))
        ax.set_ylim(float(lo[1]), float(hi[1]))
        ax.set_aspect("equal")
    fig.colorbar(cs, ax=axes, shrink=0.85, label="P(class 1 = blue)")
    dx, dy = summary["mean_translation"]
    sx, sy = summary["val_shift"]
    fig.suptitle(f"2-D toy, validation set shifted by ({sx:g}, {sy:g}): mean learned translation "
                 f"({dx:+.3f}, {dy:+.3f})", fontsize=10)
    return _save(fig, path)
