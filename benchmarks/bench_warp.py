"""Flow warp family: fastaug.warp / affine_flow_warp vs grid_sample fed as a careful user feeds it.

Each op is timed forward (no grad), backward only and forward+backward (benchmarks/harness.py,
``compare_kernel``), against:

* warp: ``grid_sample`` with the normalised pixel-centre grid built once per size, then
  ``grid = base + flow.permute(0, 2, 3, 1) * scale`` per call (the main baseline); and, as a second
  row, the grid rebuilt from a meshgrid with four elementwise ops per call; then, where installed (the
  ``bench`` extra), OpenCV's ``cv2.remap`` (forward only: it has no gradient; CPU only) on the batch held
  as OpenCV holds images (N x H x W x C float32 arrays, built once), its absolute maps ``base + flow``
  made per call and one ``remap`` per image into a preallocated output, at the same thread count
  (``cv2.setNumThreads``); and kornia's ``remap`` (base grid from ``kornia.geometry.create_meshgrid``
  built once, ``align_corners=True``: its pixel coordinates are normalised by ``W - 1``);
* affine_flow_warp: the stock composition (replicate pad + ``avg_pool2d`` smoothing, eq. 20 on the
  normalised grid built once, ``grid_sample``) -- ``fastaug.reference.affine_flow_warp``, the tests'
  oracle;

and against a copy of as many bytes as the op reads and writes (forward: x, the maps and the output;
backward: grad_out, x, the maps, and every gradient it writes).

Sizes: N=1 1x8x8 (the per-call fixed cost), N=64 1x28x28 (examples/registration_mnist.py),
N=256 3x32x32, N=16 3x224x224; then N=8 64x56x56 (feature maps: warp inside a model) and N=1 3x1024x1024
(one large image, which the kernels split into blocks of rows). OpenCV's row only up to 4 channels
(OPENCV_MAX_CHANNELS). Targets on CPU (the main baseline): forward and forward+backward
>= 2x, backward <= 2.5x our forward, forward <= 4x the copy at 224x224; on CUDA forward <= 2x a
device copy of its bytes and forward+backward >= 3x grid_sample. The OpenCV and kornia rows carry the
mission's "ahead of" (speed-up >= 1); both compute fastaug.warp's output (tests/test_benchmarks.py).
"""
import numpy as np
import torch
import torch.nn.functional as F

import fastaug
from fastaug import reference

from .harness import KernelCall, compare_kernel, nbytes

PRECOMPUTED = "grid_sample, base grid built once"
MESHGRID = "grid_sample, grid from a meshgrid per call"
OPENCV = "OpenCV remap per image (NHWC arrays, maps base+flow per call)"
KORNIA = "kornia remap (base grid built once)"
COMPOSITION = "pad+avg_pool2d+eq.20 (grid built once)+grid_sample"

# The four, then feature maps (warp inside a model) and one large image (split into items).
CPU_SIZES = [(1, 1, 8, 8), (64, 1, 28, 28), (256, 3, 32, 32), (16, 3, 224, 224), (8, 64, 56, 56), (1, 3, 1024, 1024)]
# OpenCV's remap with float maps computes the warp to float rounding for 1 to 4 channels; for more it
# samples at coordinates rounded to 1/32 pixel (5.1: 0.014-0.018 off on images in [0, 1]): another job.
OPENCV_MAX_CHANNELS = 4
CUDA_SIZES = [(1, 1, 8, 8), (64, 1, 28, 28), (256, 3, 224, 224)]
QUICK_SIZES = [(1, 1, 8, 8), (2, 3, 16, 16)]


def pixel_grid(H, W, like):
    """((1, H, W, 2) grid of the pixel centres in grid_sample's [-1, 1] units, (2,) size of a pixel
    in those units (x, y)): what a careful user builds once per image size."""
    uy, ux = reference.normalised_grid(H, W, like)
    return torch.stack([ux, uy], -1)[None], torch.tensor([2 / W, 2 / H], dtype=like.dtype, device=like.device)


def stock_warp(x, flow, base, scale):
    """fastaug.warp's maths (zeros padding) with grid_sample and a precomputed base grid."""
    return F.grid_sample(x, base + flow.permute(0, 2, 3, 1) * scale, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def stock_warp_meshgrid(x, flow, ij):
    """The same with the grid rebuilt per call from a meshgrid of pixel indices ``ij``."""
    H, W = x.shape[-2:]
    gx = (2 * (ij[1] + flow[:, 0]) + 1) / W - 1
    gy = (2 * (ij[0] + flow[:, 1]) + 1) / H - 1
    return F.grid_sample(x, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def _opencv():
    try:
        import cv2
    except Exception:  # not installed (a benchmark extra)
        return None
    return cv2


def _kornia_remap():
    try:
        from kornia.geometry import create_meshgrid
        from kornia.geometry.transform import remap
    except Exception:  # not installed (a benchmark extra)
        return None
    return create_meshgrid, remap


def opencv_warp(cv2, images, flow, base_x, base_y, out):
    """fastaug.warp's forward (zeros padding) with OpenCV: ``images`` (N, H, W) or (N, H, W, C) float32
    arrays, ``flow`` (N, 2, H, W) float32 array, ``base_x`` / ``base_y`` (H, W) pixel indices built
    once, ``out`` shaped as ``images``: the absolute maps for the batch, then ``cv2.remap`` per image."""
    map_x, map_y = base_x + flow[:, 0], base_y + flow[:, 1]
    for i in range(len(images)):
        cv2.remap(images[i], map_x[i], map_y[i], cv2.INTER_LINEAR, dst=out[i], borderMode=cv2.BORDER_CONSTANT,
                  borderValue=0)
    return out


def kornia_warp(remap, x, flow, base):
    """fastaug.warp (zeros padding) with kornia: ``base`` (1, H, W, 2) pixel grid built once."""
    return remap(x, base[..., 0] + flow[:, 0], base[..., 1] + flow[:, 1], mode="bilinear", padding_mode="zeros",
                 align_corners=True)


def opencv_inputs(x, flow):
    """``x`` (N, C, H, W) and ``flow`` as OpenCV's user holds them: (N, H, W[, C]) and (N, 2, H, W) float32
    arrays, the (H, W) base maps and an output array."""
    N, C, H, W = x.shape
    images = np.ascontiguousarray(x.detach().permute(0, 2, 3, 1).numpy())
    images = images[..., 0].copy() if C == 1 else images
    base_y, base_x = np.mgrid[0:H, 0:W].astype(np.float32)
    return images, flow.detach().numpy().copy(), base_x, base_y, np.empty_like(images)


def targets(device, H):
    """(speed-up targets against the main baseline, targets of ours alone) of the issue's table."""
    if device == "cpu":
        own = dict({"bwd/fwd": 2.5}, **({"fwd/copy": 4} if H >= 224 else {}))
        return {"fwd speed-up": 2, "fwd+bwd speed-up": 2}, own
    return {"fwd+bwd speed-up": 3}, {"fwd/copy": 2}


def run(device, quick=False):
    sizes = QUICK_SIZES if quick else {"cpu": CPU_SIZES, "cuda": CUDA_SIZES}[device]
    t = 0.1 if quick else (1.0 if device == "cpu" else 0.5)
    rounds = 1 if quick else 3
    cv2 = _opencv() if device == "cpu" else None
    kornia = _kornia_remap()
    if cv2 is not None:
        cv2.setNumThreads(torch.get_num_threads())  # OpenCV's own pool, at the thread count of the row
    missing = [name for name, absent in (("opencv-python-headless", device == "cpu" and cv2 is None),
                                         ("kornia", kornia is None)) if absent]
    note = f"{' and '.join(missing)} not installed: skipped" if missing else ""
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for N, C, H, W in sizes:
        size = f"N={N} {C}x{H}x{W} float32"
        x = torch.rand(N, C, H, W, generator=gen).to(device).requires_grad_()
        flow = (torch.randn(N, 2, H, W, generator=gen) * 3).to(device).requires_grad_()
        s_w = (torch.randn(N, 4, H, W, generator=gen) * 0.1).to(device).requires_grad_()
        s_b = (torch.randn(N, 2, H, W, generator=gen) * 0.1).to(device).requires_grad_()
        grad = torch.randn(N, C, H, W, generator=gen).to(device)
        base, scale = pixel_grid(H, W, x)
        ij = torch.meshgrid(torch.arange(H, device=device, dtype=x.dtype),
                            torch.arange(W, device=device, dtype=x.dtype), indexing="ij")
        uy, ux = reference.normalised_grid(H, W, x)
        speed_up, own = targets(device, H)
        k_base = kornia[0](H, W, normalized_coordinates=False, device=x.device, dtype=x.dtype) if kornia else None
        cv_in = opencv_inputs(x, flow) if cv2 is not None and C <= OPENCV_MAX_CHANNELS else None

        # flow only: an image that does not require grad (a custom autograd Function learns which
        # inputs need a gradient from requires_grad, not from the inputs autograd.grad asks for)
        for img, leaves, label in ((x, (x, flow), "grads: x, flow"), (x.detach(), (flow,), "grad: flow")):
            grads_written = nbytes(*leaves)
            stocks = {PRECOMPUTED: KernelCall(lambda: stock_warp(img, flow, base, scale), leaves, grad),
                      MESHGRID: KernelCall(lambda: stock_warp_meshgrid(img, flow, ij), leaves, grad)}
            ahead = {PRECOMPUTED: speed_up}
            if kornia is not None:
                stocks[KORNIA] = KernelCall(lambda: kornia_warp(kornia[1], img, flow, k_base), leaves, grad)
                ahead[KORNIA] = {"fwd speed-up": 1, "fwd+bwd speed-up": 1}
            if cv_in is not None and len(leaves) == 2:  # forward only: once, with the first case
                stocks[OPENCV] = KernelCall(lambda: opencv_warp(cv2, *cv_in))
                ahead[OPENCV] = {"fwd speed-up": 1}
            rows += compare_kernel(
                "warp", f"warp ({label})", size, device,
                KernelCall(lambda: fastaug.warp(img, flow), leaves, grad), stocks,
                bytes_fwd=nbytes(x, flow, x), bytes_bwd=nbytes(grad, x, flow) + grads_written,
                targets=ahead, own_targets=own, min_run_time=t, rounds=rounds, note=note)
        leaves = (x, s_w, s_b)
        rows += compare_kernel(
            "warp", "affine_flow_warp (grads: x, s_w, s_b; smooth 4)", size, device,
            KernelCall(lambda: fastaug.affine_flow_warp(x, s_w, s_b, smooth=4), leaves, grad),
            {COMPOSITION: KernelCall(lambda: reference.affine_flow_warp(x, s_w, s_b, 4, grid=(uy, ux)), leaves,
                                     grad)},
            bytes_fwd=nbytes(x, s_w, s_b, x), bytes_bwd=nbytes(grad, *leaves) + nbytes(*leaves),
            targets={COMPOSITION: speed_up}, own_targets=own,
            min_run_time=t, rounds=rounds)
    return rows
