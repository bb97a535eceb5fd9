"""What one call of a tiny warp costs, piece by piece: where the time of ``fastaug.warp`` on a 1x1x8x8
image goes, next to what a careful user's ``grid_sample`` call costs.

    python -m benchmarks.experiments.call_overhead [--threads 1] [--size 1x1x8x8]

Rows, each timed alone with ``torch.utils.benchmark`` (harness.time_ms), no gradient asked:

* ``fastaug.warp(x, flow)``: the public call (its eager path, fastaug/ops/_eager.py), under
  ``torch.no_grad()`` and, as a second row, with grad mode on and no input requiring grad (an
  augmentation inside a training step);
* ``_eager.plain(x, flow)``: the Python check that picks that path;
* ``_warp.call``: what the public function calls, ``fastaug._C._eager_warp_call`` (csrc/eager.cpp): the
  test of whether a graph is needed and the op below the Autograd key, from C++;
* ``fastaug._C._eager_warp``: the op alone, the registered op through the dispatcher below the
  Autograd key from C++: the C++ checks, the output's allocation and the kernel;
* the registered op called below the Autograd key from Python (``OpOverload.__call__``: the boxed
  call, each argument parsed against the schema), what the eager path called before csrc/eager.cpp;
* the registered op through every dispatch key (the path ``torch.ops.fastaug.warp`` takes: the Python
  autograd kernel that torch.library.register_autograd installs, which then re-dispatches);
* ``torch.empty_like(x)`` and ``x.clone()``: one allocation, one allocation and a copy, from Python;
* grid_sample with the base grid built once (``base + flow.permute(0, 2, 3, 1) * scale``, then
  ``F.grid_sample``): the benchmark's stock row, and ``F.grid_sample`` on a ready grid alone.

At this size no kernel does real work (a copy of the bytes takes well under a microsecond), so every
row is call cost. The issue-22 target "forward >= 2x grid_sample at N=1 8x8" asks for a whole public
call in half the stock row's time.

A second table times forward+backward as the kernel benchmark does (``torch.autograd.grad`` of the
output with x and the flow requiring grad) for fastaug.warp (whose graph node is built in C++,
csrc/eager_graph.h), the same formula through Python's ``autograd.Function`` (``_warp.function``, the
node the eager path built before), the stock row, and ``x * 2``: one multiplication, the cheapest graph
autograd can build and run, i.e. what any op's forward+backward costs at this size before its own
kernels run.
"""
import argparse

import torch
import torch.nn.functional as F

import fastaug
from benchmarks.bench_warp import pixel_grid, stock_warp
from benchmarks.experiments.warp_backward_breakdown import parse_size
from benchmarks.harness import time_ms
from fastaug.ops import _eager
from fastaug.ops.warp import _warp


def rows(size, min_run_time):
    """[(name, microseconds)] for one image size."""
    N, C, H, W = size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(N, C, H, W, generator=gen)
    flow = torch.randn(N, 2, H, W, generator=gen)
    base, scale = pixel_grid(H, W, flow)
    grid = base + flow.permute(0, 2, 3, 1) * scale
    op = torch.ops.fastaug.warp.default

    def below_autograd():
        with torch._C._AutoDispatchBelowAutograd():
            return op(x, flow, 0, False)

    cases = [
        ("fastaug.warp(x, flow)", lambda: fastaug.warp(x, flow)),
        ("_eager.plain(x, flow) (the path check)", lambda: _eager.plain(x, flow)),
        ("_warp.call (the graph test and the op below Autograd, from C++)", lambda: _warp.call(x, flow, 0, False)),
        ("fastaug._C._eager_warp (the op below Autograd, from C++)",
         lambda: fastaug._C._eager_warp(x, flow, 0, False)),
        ("torch.ops.fastaug.warp below the Autograd key, from Python", below_autograd),
        ("torch.ops.fastaug.warp, every dispatch key", lambda: op(x, flow, 0, False)),
        ("torch.empty_like(x)", lambda: torch.empty_like(x)),
        ("x.clone()", lambda: x.clone()),
        ("grid_sample, base grid built once (the benchmark's stock row)", lambda: stock_warp(x, flow, base, scale)),
        ("F.grid_sample on a ready grid", lambda: F.grid_sample(x, grid, align_corners=False)),
    ]
    with torch.no_grad():
        out = [(name, 1e3 * time_ms(fn, min_run_time)) for name, fn in cases]
    out.insert(1, ("fastaug.warp(x, flow), grad mode on", 1e3 * time_ms(lambda: fastaug.warp(x, flow), min_run_time)))
    return out


def autograd_rows(size, min_run_time):
    """[(name, microseconds)]: forward+backward (torch.autograd.grad, x and flow requiring grad)."""
    N, C, H, W = size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(N, C, H, W, generator=gen).requires_grad_()
    flow = torch.randn(N, 2, H, W, generator=gen).requires_grad_()
    grad = torch.randn(N, C, H, W, generator=gen)
    base, scale = pixel_grid(H, W, flow)
    cases = [
        ("fastaug.warp(x, flow)", lambda: torch.autograd.grad(fastaug.warp(x, flow), (x, flow), grad)),
        ("the same formula through Python's autograd.Function",
         lambda: torch.autograd.grad(_warp.function.apply(x, flow, 0, False), (x, flow), grad)),
        ("grid_sample, base grid built once",
         lambda: torch.autograd.grad(stock_warp(x, flow, base, scale), (x, flow), grad)),
        ("x * 2 (one multiplication)", lambda: torch.autograd.grad(x * 2, (x,), grad)),
    ]
    return [(name, 1e3 * time_ms(fn, min_run_time)) for name, fn in cases]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=parse_size, default=(1, 1, 8, 8))
    p.add_argument("--min-run-time", type=float, default=1.0, help="seconds per timing (torch.utils.benchmark)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"CPU, {a.threads} thread(s), float32, {'x'.join(map(str, a.size))}, no grad; µs, median of "
          f"torch.utils.benchmark's blocked_autorange; fastaug {fastaug.build_info().get('cpu_capability', '?')} copy")
    print("| call | µs |")
    print("|---|---|")
    for name, us in rows(a.size, a.min_run_time):
        print(f"| {name} | {us:.2f} |", flush=True)
    print("\n| forward+backward (torch.autograd.grad) | µs |")
    print("|---|---|")
    for name, us in autograd_rows(a.size, a.min_run_time):
        print(f"| {name} | {us:.2f} |", flush=True)


if __name__ == "__main__":
    main()
