"""Learned transformation family: fastaug.appearance / transform vs the stock composition.

Each op is timed forward (no grad), backward only and forward+backward (benchmarks/harness.py,
``compare_kernel``), with every input requiring grad, against:

* appearance: replicate pad + ``avg_pool2d`` smoothing of the colour maps + ``einsum`` colour filter;
* transform: replicate pad + ``avg_pool2d`` of all the maps, eq. 20 on the normalised grid built once,
  ``grid_sample``, ``einsum`` (``fastaug.reference``, the tests' oracle); and, for information, the
  two separate fastaug ops ``affine_flow_warp`` + ``appearance`` (parallel mode);

and against a copy of as many bytes as the op reads and writes. Sizes as bench_warp (grey images
at 1x8x8 and 1x28x28: 1 colour map and 8 transform maps).

Targets on CPU: appearance and transform forward+backward >= 4x the composition, appearance forward
>= 4x, every backward <= 2.5x our forward, forward <= 4x the copy at 224x224; on CUDA transform
forward+backward >= 4x and appearance >= 3x.
"""
import torch

import fastaug
from fastaug import reference
from fastaug.ops.transform import num_params

from .bench_warp import CPU_SIZES, CUDA_SIZES, QUICK_SIZES
from .harness import KernelCall, compare_kernel, nbytes

COMPOSITION_A = "pad+avg_pool2d+einsum"
COMPOSITION_T = "pad+avg_pool2d+eq.20 (grid built once)+grid_sample+einsum"
SPLIT = "affine_flow_warp + appearance (fastaug, two calls)"


def stock_transform(x, params, u, k=4, mode="parallel"):
    """reference.transform with the normalised grid u = (u_x, u_y) precomputed once per size, as a
    user would (other benchmarks call this too)."""
    return reference.transform(x, params, k, mode, grid=(u[1], u[0]))


def two_fastaug_ops(x, params):
    """Parallel mode from the separate kernels: affine_flow_warp(x) + (appearance(x) - x)."""
    C = x.shape[1]
    y = fastaug.affine_flow_warp(x, params[:, 0:4], params[:, 4:6], smooth=4)
    return y + fastaug.appearance(x, params[:, 6:6 + C * C], params[:, 6 + C * C:], smooth=4) - x


def _own_targets(device, H):
    """Targets of ours alone (CPU): every backward <= 2.5x its forward, forward <= 4x the copy at 224x224."""
    if device != "cpu":
        return {}
    return dict({"bwd/fwd": 2.5}, **({"fwd/copy": 4} if H >= 224 else {}))


def run(device, quick=False):
    sizes = QUICK_SIZES if quick else {"cpu": CPU_SIZES, "cuda": CUDA_SIZES}[device]
    t = 0.1 if quick else (1.0 if device == "cpu" else 0.5)
    rounds = 1 if quick else 3
    cpu = device == "cpu"
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for N, C, H, W in sizes:
        size = f"N={N} {C}x{H}x{W} float32"
        x = torch.rand(N, C, H, W, generator=gen).to(device).requires_grad_()
        uy, ux = reference.normalised_grid(H, W, x)
        params = (torch.randn(N, num_params(C), H, W, generator=gen) * 0.1).to(device).requires_grad_()
        c_w = (torch.randn(N, C * C, H, W, generator=gen) * 0.1).to(device).requires_grad_()
        c_b = (torch.randn(N, C, H, W, generator=gen) * 0.1).to(device).requires_grad_()
        grad = torch.randn(N, C, H, W, generator=gen).to(device)

        leaves = (x, c_w, c_b)
        tgt = {"fwd+bwd speed-up": 4, "fwd speed-up": 4} if cpu else {"fwd+bwd speed-up": 3}
        rows += compare_kernel(
            "transform", "appearance (grads: x, c_w, c_b; smooth 4)", size, device,
            KernelCall(lambda: fastaug.appearance(x, c_w, c_b, smooth=4), leaves, grad),
            {COMPOSITION_A: KernelCall(lambda: reference.appearance(x, c_w, c_b), leaves, grad)},
            bytes_fwd=nbytes(x, c_w, c_b, x), bytes_bwd=nbytes(grad, *leaves) + nbytes(*leaves),
            targets={COMPOSITION_A: tgt}, own_targets=_own_targets(device, H), min_run_time=t, rounds=rounds)
        leaves = (x, params)
        for mode in ("parallel", "serial"):
            stocks = {COMPOSITION_T: KernelCall(lambda: stock_transform(x, params, (ux, uy), mode=mode), leaves, grad)}
            if mode == "parallel":
                stocks[SPLIT] = KernelCall(lambda: two_fastaug_ops(x, params), leaves, grad)
            rows += compare_kernel(
                "transform", f"transform {mode} (grads: x, params; smooth 4)", size, device,
                KernelCall(lambda: fastaug.transform(x, params, smooth=4, mode=mode), leaves, grad), stocks,
                bytes_fwd=nbytes(x, params, x), bytes_bwd=nbytes(grad, *leaves) + nbytes(*leaves),
                targets={COMPOSITION_T: {"fwd+bwd speed-up": 4}}, own_targets=_own_targets(device, H),
                min_run_time=t, rounds=rounds)
    return rows
