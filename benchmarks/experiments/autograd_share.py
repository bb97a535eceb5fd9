"""How much of each image op's backward/forward ratio is the kernels, and how much autograd's call.

    python -m benchmarks.experiments.autograd_share [--size 64x1x28x28] [--threads 1] [--rounds 5]

The kernel benchmark's "bwd/fwd" column divides the backward through autograd (``torch.autograd.grad``
of the output, one graph kept with ``retain_graph``, the way a training step pays it) by the forward
through the public function under ``torch.no_grad()``. At small sizes the backward's side carries a
fixed cost of its own: the autograd engine's run (graph task, node call, output checks, the grads'
return to Python), about 25 µs on this VM whatever the op (the N=1 8x8 rows). That share is not all fixed: the
same kernel runs slower right after the engine has run than called directly in a loop (paired, warp's backward:
25 µs at 1x8x8, 62 at 64x1x28x28, 377 at 256x3x32x32; benchmarks/RESULTS.md, session 19). This experiment times,
in interleaved rounds (minimum over rounds), for warp, affine_flow_warp, appearance and transform
(parallel), all gradients asked:

* the forward and the backward op alone, called from C++ below the Autograd key
  (``fastaug._C._eager_<op>`` / ``_eager_<op>_backward``): the kernels with their checks and allocations;
* the public forward without grad, and the backward through ``torch.autograd.grad`` as the benchmark runs it;
* the same for ``x * 2``, a stock op whose backward is one multiplication: what autograd's run of a
  backward costs any op at that size;

and prints both ratios, so that a missed "bwd/fwd <= 2.5" row says whether the kernels or the call
miss it.
"""
import argparse

import torch

import fastaug
from benchmarks.harness import time_ms
from benchmarks.experiments.call_overhead import parse_size


def cases(size, gen):
    N, C, H, W = size
    x = torch.rand(N, C, H, W, generator=gen)
    gr = torch.randn(N, C, H, W, generator=gen)
    flow = torch.randn(N, 2, H, W, generator=gen)
    sw, sb = torch.randn(N, 4, H, W, generator=gen) * 0.1, torch.randn(N, 2, H, W, generator=gen) * 0.1
    cw, cb = torch.randn(N, C * C, H, W, generator=gen) * 0.1, torch.randn(N, C, H, W, generator=gen) * 0.1
    P = torch.randn(N, 6 + C * C + C, H, W, generator=gen) * 0.1
    E = fastaug._C
    return {
        "warp": ((x, flow), lambda a, b: fastaug.warp(a, b),
                 lambda: E._eager_warp(x, flow, 0, False), lambda: E._eager_warp_backward(gr, x, flow, 0, False, True)),
        "affine_flow_warp": ((x, sw, sb), lambda a, b, c: fastaug.affine_flow_warp(a, b, c, smooth=4),
                             lambda: E._eager_affine_flow_warp(x, sw, sb, 4, 0),
                             lambda: E._eager_affine_flow_warp_backward(gr, x, sw, sb, 4, 0, True)),
        "appearance": ((x, cw, cb), lambda a, b, c: fastaug.appearance(a, b, c, smooth=4),
                       lambda: E._eager_appearance(x, cw, cb, 4),
                       lambda: E._eager_appearance_backward(gr, x, cw, cb, 4, True)),
        "transform parallel": ((x, P), lambda a, b: fastaug.transform(a, b, smooth=4),
                               lambda: E._eager_transform(x, P, 4, 0, 0),
                               lambda: E._eager_transform_backward(gr, x, P, 4, 0, 0, True)),
        # the reference: one stock multiplication, whose backward is one multiplication too (MulBackward's
        # grad * 2), so its "autograd bwd - kernel bwd" is what autograd's run costs any op at this size
        "x * 2 (stock)": ((x,), lambda a: a * 2, lambda: x * 2, lambda: (gr * 2,)),
    }, gr


def measure(size, rounds=5, min_run_time=0.2):
    """{op: {kind: µs}}, the minimum over ``rounds`` interleaved rounds, kinds "kernel fwd", "kernel bwd",
    "public fwd" and "autograd bwd"."""
    ops, gr = cases(size, torch.Generator().manual_seed(0))
    fns = {}
    for name, (inputs, public, fwd, bwd) in ops.items():
        leaves = tuple(t.clone().requires_grad_() for t in inputs)
        out = public(*leaves)

        def public_fwd(public=public, inputs=inputs):
            with torch.no_grad():
                return public(*inputs)
        fns[name] = {"kernel fwd": fwd, "kernel bwd": bwd, "public fwd": public_fwd,
                     "autograd bwd": lambda out=out, leaves=leaves: torch.autograd.grad(out, leaves, gr, retain_graph=True)}
    times = {n: {k: [] for k in kinds} for n, kinds in fns.items()}
    for _ in range(rounds):
        for n, kinds in fns.items():
            for k, fn in kinds.items():
                times[n][k].append(1e3 * time_ms(fn, min_run_time))
    return {n: {k: min(v) for k, v in kinds.items()} for n, kinds in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=parse_size, default=(64, 1, 28, 28))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-run-time", type=float, default=0.2, help="seconds per timing")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t = measure(a.size, a.rounds, a.min_run_time)
    print(f"CPU, {a.threads} thread(s), float32, {'x'.join(map(str, a.size))}, all gradients, µs (minimum of "
          f"{a.rounds} interleaved rounds); fastaug {fastaug.build_info().get('cpu_capability', '?')} copy")
    print("| op | kernel fwd | kernel bwd | kernels' bwd/fwd | public fwd | autograd bwd | bwd/fwd as benchmarked "
          "| autograd's share of the backward |")
    print("|---|---|---|---|---|---|---|---|")
    for n, r in t.items():
        kf, kb, pf, ab = (r[k] for k in ("kernel fwd", "kernel bwd", "public fwd", "autograd bwd"))
        print(f"| {n} | {kf:.1f} | {kb:.1f} | {kb / kf:.2f} | {pf:.1f} | {ab:.1f} | {ab / pf:.2f} | {ab - kb:.1f} |")


if __name__ == "__main__":
    main()
