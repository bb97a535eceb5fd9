"""Shared benchmark harness: time ours vs the stock composition in the same run, print a ratio table.

Each ``benchmarks/bench_<family>.py`` exposes ``run(device: str, quick: bool) -> list[Row]`` and
builds its rows with :func:`compare`. ``python -m benchmarks.run`` discovers and runs them all.
Timing uses ``torch.utils.benchmark`` (which synchronises CUDA); peak memory is measured on CUDA.
"""
import dataclasses
import json
import os
import platform

import torch
import torch.utils.benchmark as tbench


@dataclasses.dataclass
class Row:
    family: str          # kernel family, e.g. "warp"
    case: str            # what is timed, e.g. "affine_flow_warp fwd+bwd"
    size: str            # e.g. "N=128 3x32x32 float32"
    device: str          # e.g. "cpu (2 threads)" or the GPU name
    ours_ms: float
    baseline: str        # name of the stock composition
    baseline_ms: float
    target: float = None  # required speed-up (baseline / ours), None if none is named
    ours_peak_mb: float = None
    baseline_peak_mb: float = None
    note: str = ""

    @property
    def speedup(self):
        return self.baseline_ms / self.ours_ms if self.ours_ms > 0 else float("inf")

    @property
    def status(self):
        if self.target is None:
            return ""
        return "PASS" if self.speedup >= self.target else "MISS"


def device_name(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"


def time_ms(fn, min_run_time=0.5):
    """Median wall time of ``fn()`` in milliseconds (torch.utils.benchmark, CUDA-synchronised)."""
    fn()  # warm-up (and lazy initialisation)
    # torch.utils.benchmark.Timer runs with ONE thread unless told otherwise; time with the threads a
    # user has (and that device_name() reports). Tables in RESULTS.md before 2026-11-26 ran at 1 thread.
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def peak_mb(fn, device):
    """Peak CUDA memory (MiB) allocated while ``fn()`` runs, above what was allocated before; None on CPU."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def compare(family, case, size, device, ours, baselines, target=None, min_run_time=0.5, note="", rounds=3):
    """Time ``ours`` against each ``baselines[name]`` callable; return one Row per baseline.

    Ours and the baselines are timed in interleaved rounds (ours, baseline 1, baseline 2, ...,
    repeated ``rounds`` times) and each keeps its median over the rounds, so a machine whose speed
    drifts during the run (shared VMs) does not favour whichever side ran first. ``target`` (a
    speed-up, or a dict baseline name -> speed-up) marks the rows the issue sets a target for.
    """
    fns = {"__ours__": ours, **baselines}
    per_round = min_run_time / rounds
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(time_ms(fn, per_round))
    med = {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}
    ours_peak = peak_mb(ours, device)
    rows = []
    for name, fn in baselines.items():
        t = target.get(name) if isinstance(target, dict) else target
        rows.append(Row(family, case, size, device_name(device), med["__ours__"], name, med[name], t,
                        ours_peak, peak_mb(fn, device), note))
    return rows


def fwd_bwd(fn, grad):
    """A callable running ``fn()`` forward and backpropagating ``grad``: the fwd+bwd timing unit."""
    def step():
        fn().backward(grad)
    return step


def format_table(rows):
    """Markdown table of rows: times, speed-up, target and peak memory."""
    head = ("| family | case | size | device | ours ms | baseline | baseline ms | speed-up | target | "
            "peak MiB ours / baseline |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        mem = "" if r.ours_peak_mb is None else f"{r.ours_peak_mb:.0f} / {r.baseline_peak_mb:.0f}"
        tgt = "" if r.target is None else f"≥{r.target:g}× {r.status}"
        lines.append(f"| {r.family} | {r.case} | {r.size} | {r.device} | {r.ours_ms:.3f} | {r.baseline} | "
                     f"{r.baseline_ms:.3f} | {r.speedup:.2f}× | {tgt} | {mem} |")
    notes = list(dict.fromkeys(f"- {r.case} ({r.size}): {r.note}" for r in rows if r.note))
    return "\n".join(lines + ([""] + notes if notes else []))


def write_json(rows, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    data = {"meta": meta, "rows": [dict(dataclasses.asdict(r), speedup=r.speedup, status=r.status) for r in rows]}
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
