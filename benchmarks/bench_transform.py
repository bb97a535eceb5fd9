"""Learned transformation family: fastaug.appearance / transform vs the stock composition.

Baselines (what a user writes today, in the same run):
* appearance: replicate pad + ``avg_pool2d`` smoothing of the 12 colour maps + ``einsum`` colour filter;
* transform: replicate pad + ``avg_pool2d`` of all 18 maps, eq. 20 flow, ``grid_sample``, ``einsum``;
  and, for information, the two separate fastaug ops ``affine_flow_warp`` + ``appearance``.

Targets: CPU, transform fwd+bwd >= 4x and appearance >= 4x the composition; CUDA,
transform fwd+bwd >= 4x with less peak memory, appearance >= 3x.
"""
import torch

import fastaug
from fastaug import reference

from .harness import compare, fwd_bwd


# The stock compositions are fastaug.reference's readable references (the tests' oracle as well).
stock_appearance = reference.appearance


def stock_transform(x, params, u, k=4, mode="parallel"):
    """reference.transform with the normalised grid u = (u_x, u_y) precomputed once per size, as a
    user would (other benchmarks call this too)."""
    return reference.transform(x, params, k, mode, grid=(u[1], u[0]))


def two_fastaug_ops(x, params):
    """Parallel mode from the separate kernels: affine_flow_warp(x) + (appearance(x) - x)."""
    y = fastaug.affine_flow_warp(x, params[:, 0:4], params[:, 4:6], smooth=4)
    return y + fastaug.appearance(x, params[:, 6:15], params[:, 15:18], smooth=4) - x


def run(device, quick=False):
    sizes = {"cpu": [(128, 3, 32, 32), (32, 3, 224, 224)], "cuda": [(256, 3, 224, 224)]}[device]
    if quick:
        sizes = [(8, 3, 32, 32)]
    t = 0.1 if quick else (1.0 if device == "cpu" else 0.5)
    cpu = device == "cpu"
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for N, C, H, W in sizes:
        size = f"N={N} {C}x{H}x{W} float32"
        x = torch.rand(N, C, H, W, generator=gen).to(device)
        uy, ux = reference.normalised_grid(H, W, x)
        params = (torch.randn(N, 18, H, W, generator=gen) * 0.1).to(device).requires_grad_()
        c_w = (torch.randn(N, 9, H, W, generator=gen) * 0.1).to(device).requires_grad_()
        c_b = (torch.randn(N, 3, H, W, generator=gen) * 0.1).to(device).requires_grad_()
        grad = torch.randn(N, C, H, W, generator=gen).to(device)

        ours_a = lambda: fastaug.appearance(x, c_w, c_b, smooth=4)  # noqa: E731
        stock_a = lambda: stock_appearance(x, c_w, c_b)  # noqa: E731
        ours_t = lambda: fastaug.transform(x, params, smooth=4, mode="parallel")  # noqa: E731
        stock_t = lambda: stock_transform(x, params, (ux, uy), mode="parallel")  # noqa: E731
        ours_s = lambda: fastaug.transform(x, params, smooth=4, mode="serial")  # noqa: E731
        stock_s = lambda: stock_transform(x, params, (ux, uy), mode="serial")  # noqa: E731
        split = lambda: two_fastaug_ops(x, params)  # noqa: E731
        comp_t = "pad+avg_pool2d+flow+grid_sample+einsum"
        comp_a = "pad+avg_pool2d+einsum"
        with torch.no_grad():
            rows += compare("transform", "appearance fwd", size, device, ours_a, {comp_a: stock_a},
                            4 if cpu else 3, t)
            rows += compare("transform", "transform parallel fwd", size, device, ours_t,
                            {comp_t: stock_t, "affine_flow_warp + appearance": split}, None, t)
        rows += compare("transform", "appearance fwd+bwd (param grads)", size, device, fwd_bwd(ours_a, grad),
                        {comp_a: fwd_bwd(stock_a, grad)}, 4 if cpu else 3, t)
        rows += compare("transform", "transform parallel fwd+bwd (param grads)", size, device,
                        fwd_bwd(ours_t, grad),
                        {comp_t: fwd_bwd(stock_t, grad),
                         "affine_flow_warp + appearance": fwd_bwd(split, grad)},
                        {comp_t: 4}, t)
        rows += compare("transform", "transform serial fwd+bwd (param grads)", size, device, fwd_bwd(ours_s, grad),
                        {comp_t: fwd_bwd(stock_s, grad)}, 4, t)
    return rows
