"""How much of each image op's backward/forward ratio is the kernels, and how much autograd's call.

    python -m benchmarks.experiments.autograd_share [--size 64x1x28x28] [--threads 1] [--rounds 5]
    python -m benchmarks.experiments.autograd_share --paired 21 [--size 256x3x32x32] [--only warp]

The kernel benchmark's "bwd/fwd" column divides the backward through autograd (``torch.autograd.grad``
of the output, one graph kept with ``retain_graph``, the way a training step pays it) by the forward
through the public function under ``torch.no_grad()``. At small sizes the backward's side carries a
fixed cost of its own: the autograd engine's run (graph task, node call, output checks, the grads'
return to Python), about 25 µs on this VM whatever the op (the N=1 8x8 rows). That share is not all fixed: the
same kernel runs slower right after the engine has run than called directly in a loop, which gets its gradients at
the same addresses every call (``--paired``, warp's backward: 22 µs at 1x8x8, 46 at 64x1x28x28, 343 at
256x3x32x32; benchmarks/RESULTS.md, session 19). This experiment times,
in interleaved rounds (minimum over rounds), for warp, affine_flow_warp, appearance and transform
(parallel), all gradients asked:

* the forward and the backward op alone, called from C++ below the Autograd key
  (``fastaug._C._eager_<op>`` / ``_eager_<op>_backward``): the kernels with their checks and allocations;
* the public forward without grad, and the backward through ``torch.autograd.grad`` as the benchmark runs it;
* the same for ``x * 2``, a stock op whose backward is one multiplication: what autograd's run of a
  backward costs any op at that size;

and prints both ratios, so that a missed "bwd/fwd <= 2.5" row says whether the kernels or the call
miss it.

``--paired ROUNDS`` measures the share in pairs instead, for a VM whose speed moves between timings: each
round times the backward op called directly, then through ``torch.autograd.grad``, then directly again
(share = the autograd call minus the mean of the two), and two controls: the direct call followed each
time by a tiny ``torch.autograd.grad`` (of ``x * 2`` on 8x8) or by a Python spin of the same length, less
that call or spin alone. When the first control costs the kernel what autograd does and the second does not,
the share is the kernel running slower after the engine has run, not work the engine adds. It prints the
medians over the rounds (and their range) and the page faults per call of each loop.
"""
import argparse
import gc
import resource
import statistics
import time

import torch
from tqdm import tqdm

import fastaug
from benchmarks.harness import time_ms
from benchmarks.experiments.call_overhead import parse_size


OPS = ("warp", "affine_flow_warp", "appearance", "transform parallel", "x * 2 (stock)")  # cases()'s keys


def check_ops(only):
    """Raise ValueError naming the entries of ``only`` that are not in OPS."""
    unknown = set(only or ()) - set(OPS)
    if unknown:
        raise ValueError(f"unknown ops {sorted(unknown)}; choose from {sorted(OPS)}")


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


def _autograd_backward(inputs, public, gr):
    """The backward as the benchmark times it: ``torch.autograd.grad`` of one graph of ``public`` over fresh
    leaves holding ``inputs``, kept with ``retain_graph``."""
    leaves = tuple(t.clone().requires_grad_() for t in inputs)
    out = public(*leaves)
    return lambda: torch.autograd.grad(out, leaves, gr, retain_graph=True)


def measure(size, rounds=5, min_run_time=0.2):
    """{op: {kind: µs}}, the minimum over ``rounds`` interleaved rounds, kinds "kernel fwd", "kernel bwd",
    "public fwd" and "autograd bwd"."""
    ops, gr = cases(size, torch.Generator().manual_seed(0))
    fns = {}
    for name, (inputs, public, fwd, bwd) in ops.items():
        def public_fwd(public=public, inputs=inputs):
            with torch.no_grad():
                return public(*inputs)
        fns[name] = {"kernel fwd": fwd, "kernel bwd": bwd, "public fwd": public_fwd,
                     "autograd bwd": _autograd_backward(inputs, public, gr)}
    times = {n: {k: [] for k in kinds} for n, kinds in fns.items()}
    for _ in range(rounds):
        for n, kinds in fns.items():
            for k, fn in kinds.items():
                times[n][k].append(1e3 * time_ms(fn, min_run_time))
    return {n: {k: min(v) for k, v in kinds.items()} for n, kinds in times.items()}


def _loop_us(fn, calls):
    """Mean µs per call of ``fn`` over ``calls`` calls, and the minor page faults per call (gc off, as timeit)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        us = (time.perf_counter() - t0) / calls * 1e6
        return us, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / calls
    finally:
        if enabled:
            gc.enable()


def paired(size, rounds=21, per_timing=0.05, only=None):
    """The backward's share of autograd measured in pairs (see the module's docstring).

    Returns {op: {"kernel", "autograd", "share", "after engine", "after spin": [µs per round],
    "faults": {loop: faults per call over the rounds}}}."""
    check_ops(only)
    ops, gr = cases(size, torch.Generator().manual_seed(0))
    tiny_x = torch.rand(8, 8, requires_grad=True)
    tiny_out, tiny_grad = tiny_x * 2, torch.ones(8, 8)

    def tiny():
        torch.autograd.grad(tiny_out, (tiny_x,), tiny_grad, retain_graph=True)

    tiny_us = min(_loop_us(tiny, 200)[0] for _ in range(3))

    def spin():  # the tiny call's length of Python, touching no tensor memory
        end = time.perf_counter() + tiny_us * 1e-6
        while time.perf_counter() < end:
            pass

    out = {}
    names = [n for n in ops if not only or n in only]
    bar = tqdm(total=len(names) * rounds, desc="paired rounds", leave=False)
    for name in names:
        inputs, public, _fwd, bwd = ops[name]
        loops = {"kernel": bwd,
                 "autograd": _autograd_backward(inputs, public, gr),
                 "kernel + tiny": lambda bwd=bwd: (bwd(), tiny()),
                 "tiny": tiny,
                 "kernel + spin": lambda bwd=bwd: (bwd(), spin()),
                 "spin": spin}
        for fn in loops.values():  # warm-up: the heap and caches as they settle
            _loop_us(fn, 3)
        once = _loop_us(loops["autograd"], 3)[0]
        calls = max(3, int(per_timing * 1e6 / max(once, 1.0)))
        r = {k: [] for k in ("kernel", "autograd", "share", "after engine", "after spin")}
        faults = {k: [] for k in loops}
        for _ in range(rounds):
            t = {}
            # the kernel timed on both sides of the autograd call: the pair's reference is their mean
            for timing in ("kernel", "autograd", "kernel 2", "tiny", "kernel + tiny", "spin", "kernel + spin"):
                loop = timing.replace(" 2", "")
                t[timing], f = _loop_us(loops[loop], calls)
                faults[loop].append(f)
            direct = (t["kernel"] + t["kernel 2"]) / 2
            r["kernel"].append(direct)
            r["autograd"].append(t["autograd"])
            r["share"].append(t["autograd"] - direct)
            r["after engine"].append(t["kernel + tiny"] - t["tiny"] - direct)
            r["after spin"].append(t["kernel + spin"] - t["spin"] - direct)
            bar.update()
        out[name] = {**r, "faults": {k: statistics.fmean(v) for k, v in faults.items()}}
    bar.close()
    return out


def print_paired(size, threads, rounds, res):
    print(f"CPU, {threads} thread(s), float32, {'x'.join(map(str, size))}, all gradients, µs; medians of {rounds} "
          f"paired rounds (range); fastaug {fastaug.build_info().get('cpu_capability', '?')} copy")
    print("| op | backward op, direct | through autograd | autograd's share | a direct call's slowdown after a tiny "
          "autograd call | after a Python spin as long | page faults a call: direct / autograd / after tiny |")
    print("|---|---|---|---|---|---|---|")

    def cell(v):
        return f"{statistics.median(v):.1f} ({min(v):.1f} to {max(v):.1f})"
    for n, r in res.items():
        f = r["faults"]
        print(f"| {n} | {statistics.median(r['kernel']):.1f} | {statistics.median(r['autograd']):.1f} | "
              f"{cell(r['share'])} | {cell(r['after engine'])} | {cell(r['after spin'])} | "
              f"{f['kernel']:.2f} / {f['autograd']:.2f} / {f['kernel + tiny']:.2f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=parse_size, default=(64, 1, 28, 28))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-run-time", type=float, default=0.2, help="seconds per timing")
    p.add_argument("--paired", type=int, metavar="ROUNDS",
                   help="measure the share in pairs over ROUNDS rounds, each loop timed for a quarter of --min-run-time")
    p.add_argument("--only", nargs="+", metavar="OP", help="ops for --paired (default: all, x * 2 included)")
    a = p.parse_args(argv)
    if a.paired is not None and a.paired < 1:
        p.error("--paired needs at least one round")
    if a.only and not a.paired:
        p.error("--only goes with --paired")
    try:
        check_ops(a.only)
    except ValueError as e:
        p.error(f"--only: {e}")
    torch.set_num_threads(a.threads)
    if a.paired:
        print_paired(a.size, a.threads, a.paired, paired(a.size, a.paired, a.min_run_time / 4, a.only))
        return
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
