"""Is the registration step with ``fastaug.nn.Warp`` faster than with grid_sample? A paired test.

    python -m benchmarks.experiments.registration_paired [--rounds 40] [--batch 64] [--threads 1]

The benchmark row (``benchmarks/bench_registration.py``) times each backend's step in 5 interleaved
rounds and compares medians. The warp is about 1 % of the step (the U-Net is the rest), and this
VM's step times move by about 2 % between rounds, so 5 rounds cannot tell the two backends apart.
This experiment asks the question with enough rounds to answer it:

* the two steps (the example's model, loss and Adam; identical weights and batch; only the warp
  differs) are timed in ``--rounds`` rounds, each round in ABBA order (fastaug, grid_sample,
  grid_sample, fastaug, every timing ``torch.utils.benchmark``'s median over ``--per-timing``
  seconds), so that a drift in the machine's speed within a round cancels;
* each round gives one paired ratio, grid_sample's step time over fastaug's (> 1: fastaug faster);
* it prints the median of those ratios, a 95 % bootstrap interval of that median
  (``scipy.stats.bootstrap``), and the one-sided Wilcoxon signed-rank p-value of "fastaug's step is
  faster" (``scipy.stats.wilcoxon``);
* and, timed the same way, the warp's forward+backward alone at the step's shape for both backends
  (the gradient for the flow only, as in the step): the saving the step should show (their difference
  over the step's time).

Wanted: the interval's lower end above 1 (the issue's target "the step faster than with grid_sample,
measured interleaved").
"""
import argparse
import statistics

import torch
from tqdm import tqdm

from benchmarks import bench_registration as reg
from benchmarks.harness import time_ms


def _warp_alone(backend_module, moving, flow, gen):
    """forward+backward of the warp alone as the step runs it: the gradient for the flow only (the
    moving digit is an input of the step, not a parameter)."""
    flow = flow.detach().requires_grad_()
    grad = torch.randn(moving.shape, generator=gen)
    return lambda: torch.autograd.grad(backend_module(moving, flow), (flow,), grad)


def measure(rounds, batch, width, per_timing, seed=0):
    """{"step": (ratios, {backend: ms}), "warp": (ratios, {backend: ms})}: per round, the paired ratio
    grid_sample / fastaug and each backend's time (the mean of its two ABBA timings), in lists."""
    example = reg._example()
    g = torch.Generator().manual_seed(seed)
    moving, fixed = (torch.rand(batch, 1, 28, 28, generator=g) for _ in range(2))
    flow = 0.5 * torch.randn(batch, 2, 28, 28, generator=g)
    steps = {name: reg._step(example, name, moving, fixed, width) for name in ("fastaug", "grid_sample")}
    warps = {name: _warp_alone(example.Registration(name, width).warp, moving, flow, g)
             for name in ("fastaug", "grid_sample")}
    out = {"step": ([], {"fastaug": [], "grid_sample": []}), "warp": ([], {"fastaug": [], "grid_sample": []})}
    bar = tqdm(range(rounds), desc="ABBA rounds")
    for _ in bar:
        for kind, fns in (("step", steps), ("warp", warps)):
            t = {"fastaug": 0.0, "grid_sample": 0.0}
            for name in ("fastaug", "grid_sample", "grid_sample", "fastaug"):
                t[name] += time_ms(fns[name], per_timing) / 2
            ratios, per_backend = out[kind]
            ratios.append(t["grid_sample"] / t["fastaug"])
            for name in t:
                per_backend[name].append(t[name])
        bar.set_postfix(step=f"{out['step'][0][-1]:.4f}", warp=f"{out['warp'][0][-1]:.3f}")
    return out


def summarise(ratios, seed=0):
    """(median, (low, high) 95 % bootstrap interval of the median, one-sided Wilcoxon p of ratio > 1)."""
    import numpy as np
    from scipy import stats

    r = np.asarray(ratios)
    ci = stats.bootstrap((r,), np.median, confidence_level=0.95, n_resamples=10000,
                         random_state=np.random.default_rng(seed)).confidence_interval
    p = stats.wilcoxon(r - 1.0, alternative="greater").pvalue
    return float(np.median(r)), (float(ci.low), float(ci.high)), float(p)


def _rounds(text):
    """--rounds: at least 2, the fewest a bootstrap interval and a signed-rank test take (before any timing)."""
    n = int(text)
    if n < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 rounds (about 100 separate a 0.5 % gain here), got {n}")
    return n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=_rounds, default=40)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=16, help="U-Net width (the benchmark's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--per-timing", type=float, default=0.3, help="seconds per timing (torch.utils.benchmark)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = measure(a.rounds, a.batch, a.width, a.per_timing)
    print(f"\nCPU, {a.threads} thread(s), N={a.batch} 1x28x28, U-Net width {a.width}, {a.rounds} ABBA rounds")
    print("| what | fastaug ms (median) | grid_sample ms (median) | ratio gs/fastaug: median | 95 % interval "
          "| Wilcoxon p (fastaug faster) |")
    print("|---|---|---|---|---|---|")
    for kind, label in (("step", "registration step"), ("warp", "warp fwd+bwd alone")):
        ratios, ms = out[kind]
        med, (lo, hi), pval = summarise(ratios)
        fa, gs = (statistics.median_high(ms[n]) for n in ("fastaug", "grid_sample"))
        print(f"| {label} | {fa:.3f} | {gs:.3f} | {med:.4f} | {lo:.4f}-{hi:.4f} | {pval:.2g} |")
    step_fa = statistics.median_high(out["step"][1]["fastaug"])
    warp_ms = out["warp"][1]
    saved = statistics.median_high(warp_ms["grid_sample"]) - statistics.median_high(warp_ms["fastaug"])
    print(f"\nexpected from the warp alone: {saved:.3f} ms saved a step, a ratio of {1 + saved / step_fa:.4f}")


if __name__ == "__main__":
    main()
