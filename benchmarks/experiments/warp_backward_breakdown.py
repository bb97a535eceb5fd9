"""Where the flow warp's backward spends its time: the op alone (no Python, no autograd), forward,
backward for the flow only and backward for both x and the flow, for three kinds of flow, next to
grid_sample's own kernels called the same way.

    python -m benchmarks.experiments.warp_backward_breakdown [--threads 1] [--sizes 16x3x224x224 ...]

Flows: ``zero`` (every sample on its pixel: the image gradient's scatter takes its vector path),
``smooth`` (3 px of random displacement on a 16x coarser grid, bilinearly upsampled: a registration
field), ``iid`` (3 px of independent noise per pixel: the kernel benchmark's flow, the worst case for
the scatter). The gap "x grad" = backward(both) - backward(flow only) is the scatter of the gradient
for x; dividing it by the number of additions (N*C*H*W*4) gives its cost per addition.
``fastaug.warp_backward`` and ``aten::grid_sampler_2d_backward`` are called below the Autograd key with
``torch.utils.benchmark`` (harness.time_ms): the kernels' times, without the call overhead of the
public functions (``benchmarks.run`` times those).
"""
import argparse

import torch
import torch.nn.functional as F

import fastaug  # noqa: F401  (registers torch.ops.fastaug)
from benchmarks.bench_warp import pixel_grid
from benchmarks.harness import time_ms

FLOWS = ("zero", "smooth", "iid")


def make_flow(kind, N, H, W, gen):
    """(N, 2, H, W) float32 flow of the given kind, in pixels."""
    if kind == "zero":
        return torch.zeros(N, 2, H, W)
    if kind == "smooth":
        coarse = torch.randn(N, 2, max(H // 16, 2), max(W // 16, 2), generator=gen) * 3
        return F.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False).contiguous()
    return torch.randn(N, 2, H, W, generator=gen) * 3


def row(size, kind, min_run_time):
    N, C, H, W = size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(N, C, H, W, generator=gen)
    flow = make_flow(kind, N, H, W, gen)
    grad = torch.randn(N, C, H, W, generator=gen)
    base, scale = pixel_grid(H, W, flow)  # grid_sample's grid for the same flow, as bench_warp builds it
    grid = (base + flow.permute(0, 2, 3, 1) * scale).contiguous()
    ops, aten = torch.ops.fastaug, torch.ops.aten
    with torch._C._AutoDispatchBelowAutograd(), torch.no_grad():
        t = {
            "fwd": time_ms(lambda: ops.warp(x, flow, 0, False), min_run_time),
            "bwd flow": time_ms(lambda: ops.warp_backward(grad, x, flow, 0, False, False), min_run_time),
            "bwd both": time_ms(lambda: ops.warp_backward(grad, x, flow, 0, False, True), min_run_time),
            "gs fwd": time_ms(lambda: aten.grid_sampler_2d(x, grid, 0, 0, False), min_run_time),
            "gs bwd flow": time_ms(lambda: aten.grid_sampler_2d_backward(grad, x, grid, 0, 0, False, [False, True]),
                                   min_run_time),
            "gs bwd both": time_ms(lambda: aten.grid_sampler_2d_backward(grad, x, grid, 0, 0, False, [True, True]),
                                   min_run_time),
        }
    adds = N * C * H * W * 4
    return (f"| {N}x{C}x{H}x{W} | {kind} | {t['fwd']:.3f} | {t['bwd flow']:.3f} | {t['bwd both']:.3f} | "
            f"{t['bwd both'] / t['fwd']:.2f} | {1e6 * (t['bwd both'] - t['bwd flow']) / adds:.2f} | "
            f"{t['gs fwd']:.3f} | {t['gs bwd flow']:.3f} | {t['gs bwd both']:.3f} | "
            f"{1e6 * (t['gs bwd both'] - t['gs bwd flow']) / adds:.2f} |")


def parse_size(text):
    try:
        N, C, H, W = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is NxCxHxW, e.g. 16x3x224x224, not {text!r}") from None
    return N, C, H, W


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sizes", type=parse_size, nargs="+",
                   default=[(1, 3, 224, 224), (16, 3, 224, 224), (256, 3, 32, 32), (64, 1, 28, 28)])
    p.add_argument("--flows", nargs="+", choices=FLOWS, default=list(FLOWS))
    p.add_argument("--min-run-time", type=float, default=0.5, help="seconds per timing (torch.utils.benchmark)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"CPU, {a.threads} thread(s), float32, ms (median of torch.utils.benchmark's blocked_autorange); "
          f"fastaug {fastaug.build_info().get('cpu_capability', '?')} copy")
    print("| size | flow | fwd | bwd flow | bwd both | both/fwd | x grad ns/add | grid_sample fwd | "
          "gs bwd flow | gs bwd both | gs x grad ns/add |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in a.sizes:
        for kind in a.flows:
            print(row(size, kind, a.min_run_time), flush=True)


if __name__ == "__main__":
    main()
