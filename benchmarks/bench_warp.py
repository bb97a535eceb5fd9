"""Flow warp family: fastaug.warp / affine_flow_warp vs flow arithmetic + avg_pool2d + grid_sample.

Targets: CPU, affine_flow_warp fwd+bwd >= 4x the composition and warp >= 1.3x
flow-to-grid + grid_sample; CUDA, affine_flow_warp fwd+bwd >= 3x with no more peak memory, and its
forward within 2x of a device copy of its inputs (speed-up >= 0.5 against that copy).
"""
import torch
import torch.nn.functional as F

import fastaug
from fastaug import reference

from .harness import compare, fwd_bwd


def stock_warp(x, flow, base):
    """What a user writes today: pixel flow -> normalised grid -> grid_sample."""
    H, W = x.shape[-2:]
    gx = (2 * (base[1] + flow[:, 0]) + 1) / W - 1
    gy = (2 * (base[0] + flow[:, 1]) + 1) / H - 1
    return F.grid_sample(x, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


# The composition (replicate pad + avg_pool2d smoothing, eq. 20 flow, grid_sample) is fastaug.reference's
# readable reference, the tests' oracle as well.
stock_affine_flow_warp = reference.affine_flow_warp


def run(device, quick=False):
    sizes = {"cpu": [(128, 3, 32, 32), (32, 3, 224, 224)], "cuda": [(256, 3, 224, 224)]}[device]
    if quick:
        sizes = [(8, 3, 32, 32)]
    t = 0.1 if quick else (1.0 if device == "cpu" else 0.5)
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for N, C, H, W in sizes:
        size = f"N={N} {C}x{H}x{W} float32"
        x = torch.rand(N, C, H, W, generator=gen).to(device)
        flow = (torch.randn(N, 2, H, W, generator=gen) * 3).to(device).requires_grad_()
        s_w = (torch.randn(N, 4, H, W, generator=gen) * 0.1).to(device).requires_grad_()
        s_b = (torch.randn(N, 2, H, W, generator=gen) * 0.1).to(device).requires_grad_()
        grad = torch.randn(N, C, H, W, generator=gen).to(device)
        base = torch.meshgrid(torch.arange(H, device=device, dtype=x.dtype),
                              torch.arange(W, device=device, dtype=x.dtype), indexing="ij")

        ours_w = lambda: fastaug.warp(x, flow)  # noqa: E731
        stock_w = lambda: stock_warp(x, flow, base)  # noqa: E731
        ours_a = lambda: fastaug.affine_flow_warp(x, s_w, s_b, smooth=4)  # noqa: E731
        stock_a = lambda: stock_affine_flow_warp(x, s_w, s_b, smooth=4)  # noqa: E731
        cpu = device == "cpu"
        with torch.no_grad():
            rows += compare("warp", "warp fwd", size, device, ours_w, {"flow->grid + grid_sample": stock_w},
                            1.3 if cpu else None, t)
            inputs = torch.cat([x, s_w.detach(), s_b.detach()], 1)
            copy_dst = torch.empty_like(inputs)
            baselines = {"pad+avg_pool2d+flow+grid_sample": stock_a}
            targets = {}
            if not cpu:
                baselines["device copy of inputs"] = lambda: copy_dst.copy_(inputs)
                targets = {"device copy of inputs": 0.5}
            rows += compare("warp", "affine_flow_warp fwd", size, device, ours_a, baselines, targets, t)
        rows += compare("warp", "warp fwd+bwd (flow grad)", size, device, fwd_bwd(ours_w, grad),
                        {"flow->grid + grid_sample": fwd_bwd(stock_w, grad)}, 1.3 if cpu else None, t)
        rows += compare("warp", "affine_flow_warp fwd+bwd (param grads)", size, device, fwd_bwd(ours_a, grad),
                        {"pad+avg_pool2d+flow+grid_sample": fwd_bwd(stock_a, grad)}, 4 if cpu else 3, t)
    return rows
