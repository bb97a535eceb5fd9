"""Shared benchmark harness: time ours vs the stock composition in the same run, print ratio tables.

Each ``benchmarks/bench_<family>.py`` exposes ``run(device: str, quick: bool) -> list`` of rows.
``python -m benchmarks.run`` discovers and runs them all, at each thread count asked for. Two kinds
of row:

* :class:`Row` (built by :func:`compare`): one callable of ours against named baselines, a speed-up;
  the training-step families use it.
* :class:`KernelRow` (built by :func:`compare_kernel`): one op timed forward (no grad), backward only
  and forward+backward, against a stock composition timed the same way, and against a memory copy
  that moves as many bytes as the op reads and writes (the roofline column: ``ours / copy``).

Timing uses ``torch.utils.benchmark`` (which synchronises CUDA); peak memory is measured on CUDA.
"""
import ctypes
import ctypes.util
import dataclasses
import json
import os
import platform
import typing

import torch
import torch.utils.benchmark as tbench

from . import MMAP_THRESHOLD, TRIM_THRESHOLD


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


# glibc's mallopt parameters (malloc.h).
_M_MXFAST, _M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = 1, -1, -3
SYSTEM_MALLOC = "system malloc"
ALLOCATOR = SYSTEM_MALLOC  # what the timings ran on; set by keep_freed_memory()


def huge_pages():
    """Whether PyTorch's CPU allocator asks for transparent huge pages (THP_MEM_ALLOC_ENABLE, read by c10 when
    torch loads; ``benchmarks/__init__.py`` sets it for ``python -m benchmarks.run``)."""
    return platform.system() == "Linux" and os.environ.get("THP_MEM_ALLOC_ENABLE", "0") not in ("", "0")


def keep_freed_memory():
    """Have glibc keep freed memory for reuse, so that no timing includes the kernel zeroing fresh pages.

    By default glibc serves an allocation above its mmap threshold (at most 32 MiB) with new pages from
    the kernel and returns them on free: every call of an op whose output or gradient is that large
    (16x18x224x224 float32 transform parameters: 58 MB) then pays one page fault per 4 KiB, on this
    project's VM about 2.7 us each, 35 ms per call, however fast the kernel. The copy a row is divided
    by writes into a buffer allocated once, so those faults would be counted against the op alone; and
    whether a smaller buffer is mapped afresh depends on what was freed before (glibc's threshold moves),
    so rows swung by 2x between runs. This sets M_MMAP_THRESHOLD to 1 GiB and M_TRIM_THRESHOLD to
    2 GiB - 1, what ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do from the environment and
    what PyTorch's CPU tuning guide gets from jemalloc / tcmalloc. It also turns glibc's fastbins off
    (M_MXFAST 0): a small chunk freed into a fastbin (or the tcache) stays marked in use, so one that
    lies just past a large freed block keeps that block from merging with the heap's top, the next
    large request does not fit the block and the heap grows by the whole size instead (measured: in
    3 of 6 fresh processes a 64 MiB tensor faulted afresh for 8 rounds; with fastbins off, 0-1 faults
    a round from round 2 or 3 in 30 of 30, and from round 2-11 under pytest, where the tcache, which
    only an environment variable turns off, still delays it). It applies to ours and every baseline
    alike. Returns a description of the allocator for the tables' header (the unchanged one when this
    is not glibc)."""
    global ALLOCATOR
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return ALLOCATOR
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            and libc.mallopt(_M_MXFAST, 0) == 1):
        ALLOCATOR = "glibc, freed memory kept (mmap threshold 1 GiB, no fastbins)"
    return ALLOCATOR


def allocator_description():
    """The allocator the timings ran on, for the tables' header and the JSON."""
    return ALLOCATOR + (", transparent huge pages for tensors of 2 MiB and more" if huge_pages() else "")


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


def copy_fn(traffic_bytes, device):
    """A callable copying ``traffic_bytes / 2`` bytes into a second buffer: it reads and writes
    ``traffic_bytes`` in all, the memory traffic of an op that reads and writes that many bytes."""
    n = max(1, int(traffic_bytes) // 2)
    src = torch.ones(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


def nbytes(*tensors):
    """Bytes held by the tensors (their elements times element size)."""
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclasses.dataclass
class KernelCall:
    """How to time one op: ``fn()`` runs it on tensors built once; ``leaves`` are the inputs that
    require grad (none: forward only) and ``grad`` is the output gradient."""
    fn: typing.Callable
    leaves: tuple = ()
    grad: torch.Tensor = None

    def forward(self):
        """The forward without autograd (what inference or augmentation runs)."""
        def run():
            with torch.no_grad():
                return self.fn()
        return run

    def backward(self):
        """The backward alone: autograd.grad through one graph built once (kept with retain_graph)."""
        out = self.fn()
        return lambda: torch.autograd.grad(out, self.leaves, self.grad, retain_graph=True)

    def forward_backward(self):
        return lambda: torch.autograd.grad(self.fn(), self.leaves, self.grad)


# Metrics of a KernelRow that a target may name, and whether the target is a floor or a ceiling.
KERNEL_METRICS = {"fwd speed-up": ">=", "bwd speed-up": ">=", "fwd+bwd speed-up": ">=", "bwd/fwd": "<=",
                  "fwd/copy": "<=", "bwd/copy": "<="}
_KINDS = ("fwd", "bwd", "fwd+bwd")


@dataclasses.dataclass
class KernelRow:
    family: str
    case: str            # e.g. "warp (grads: x, flow)"
    size: str
    device: str
    baseline: str        # the stock composition's name ("" when there is none)
    ours: dict           # kind ("fwd", "bwd", "fwd+bwd") -> ms, None where not timed
    stock: dict          # the same for the baseline
    copy: dict           # "fwd" / "bwd" -> ms of a copy moving the op's bytes
    bytes: dict          # "fwd" / "bwd" -> bytes read + written by the op
    targets: dict = dataclasses.field(default_factory=dict)  # metric (KERNEL_METRICS) -> bound
    note: str = ""
    peak_mb: dict = dataclasses.field(default_factory=dict)  # CUDA: "ours" / "stock" -> MiB of fwd+bwd

    def metrics(self):
        """Every metric of KERNEL_METRICS that this row's timings define."""
        out = {}
        for kind in _KINDS:
            if self.ours.get(kind) and self.stock.get(kind):
                out[f"{kind} speed-up"] = self.stock[kind] / self.ours[kind]
        if self.ours.get("bwd") and self.ours.get("fwd"):
            out["bwd/fwd"] = self.ours["bwd"] / self.ours["fwd"]
        for kind in ("fwd", "bwd"):
            if self.ours.get(kind) and self.copy.get(kind):
                out[f"{kind}/copy"] = self.ours[kind] / self.copy[kind]
        return out

    def verdicts(self):
        """metric -> "PASS" / "MISS" for every target whose metric is defined."""
        m = self.metrics()
        return {k: ("PASS" if (m[k] >= v if KERNEL_METRICS[k] == ">=" else m[k] <= v) else "MISS")
                for k, v in self.targets.items() if k in m}

    @property
    def status(self):
        v = set(self.verdicts().values())
        return "MISS" if "MISS" in v else ("PASS" if v else "")


def compare_kernel(family, case, size, device, ours, stocks, bytes_fwd, bytes_bwd=None, targets=None,
                   own_targets=None, min_run_time=0.5, rounds=3, note=""):
    """Time ``ours`` (a :class:`KernelCall`) and each ``stocks[name]`` (a KernelCall) forward, backward
    only and forward+backward (the last two when the call has leaves), and a copy of ``bytes_fwd``
    (``bytes_bwd``) bytes of traffic, in interleaved rounds as :func:`compare` does. Returns one
    :class:`KernelRow` per baseline (one row without a baseline when ``stocks`` is empty).

    ``targets``: baseline name -> {metric: bound} for the speed-ups; ``own_targets``: {metric: bound}
    of ours alone (``bwd/fwd``, ``fwd/copy``, ``bwd/copy``), marked on the first row."""
    calls = {"__ours__": ours, **stocks}
    fns = {}
    for name, call in calls.items():
        fns[(name, "fwd")] = call.forward()
        if call.leaves:
            fns[(name, "bwd")] = call.backward()
            fns[(name, "fwd+bwd")] = call.forward_backward()
    fns[("__copy__", "fwd")] = copy_fn(bytes_fwd, device)
    if bytes_bwd and ours.leaves:
        fns[("__copy__", "bwd")] = copy_fn(bytes_bwd, device)
    per_round = min_run_time / rounds
    times = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            times[key].append(time_ms(fn, per_round))
    med = {key: sorted(ts)[len(ts) // 2] for key, ts in times.items()}

    def kinds(name):
        return {kind: med.get((name, kind)) for kind in _KINDS}

    copy = {kind: med.get(("__copy__", kind)) for kind in ("fwd", "bwd")}
    nb = {"fwd": bytes_fwd, "bwd": bytes_bwd if ours.leaves else None}

    def peak(name):
        key = (name, "fwd+bwd") if (name, "fwd+bwd") in fns else (name, "fwd")
        return peak_mb(fns[key], device)

    rows = []
    ours_peak = peak("__ours__")
    for i, name in enumerate(list(stocks) or [""]):
        t = dict((targets or {}).get(name, {}), **((own_targets or {}) if i == 0 else {}))
        stock = kinds(name) if name else {}
        mem = {} if ours_peak is None else {"ours": ours_peak, "stock": peak(name) if name else None}
        rows.append(KernelRow(family, case, size, device_name(device), name, kinds("__ours__"), stock, copy, nb,
                              t, note, mem))
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


def _ms(v):
    return "" if v is None else f"{v:.3f}"


def _x(v):
    return "" if v is None else f"{v:.2f}×"


def format_kernel_table(rows):
    """Markdown table of KernelRows: ours and stock forward / backward-only / forward+backward, the
    speed-ups, our backward over our forward, our times over a copy of the same bytes, the targets."""
    head = ("| family | case | size | device | ours fwd / bwd / f+b ms | baseline | baseline fwd / bwd / f+b ms | "
            "speed-up fwd / bwd / f+b | bwd/fwd | ×copy fwd / bwd | targets | peak MiB ours / baseline |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        m = r.metrics()
        verdicts = r.verdicts()
        mem = " / ".join("" if v is None else f"{v:.0f}" for v in r.peak_mb.values())
        tgt = ", ".join(f"{k} {KERNEL_METRICS[k].replace('>=', '≥').replace('<=', '≤')}{v:g} {verdicts[k]}"
                        for k, v in r.targets.items() if k in verdicts)
        lines.append(
            f"| {r.family} | {r.case} | {r.size} | {r.device} | "
            f"{' / '.join(_ms(r.ours.get(k)) for k in _KINDS).rstrip(' /')} | {r.baseline} | "
            f"{' / '.join(_ms(r.stock.get(k)) for k in _KINDS).rstrip(' /')} | "
            f"{' / '.join(_x(m.get(f'{k} speed-up')) for k in _KINDS).rstrip(' /')} | {_x(m.get('bwd/fwd'))} | "
            f"{' / '.join(_x(m.get(f'{k}/copy')) for k in ('fwd', 'bwd')).rstrip(' /')} | {tgt} | {mem} |")
    notes = list(dict.fromkeys(f"- {r.case} ({r.size}): {r.note}" for r in rows if r.note))
    return "\n".join(lines + ([""] + notes if notes else []))


def check_json_path(path):
    """Refuse, before any timing, a JSON path that cannot be written (a folder, or under a file); creates
    its missing parent folders. Raises ValueError with one sentence."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise ValueError(f"--json {path} is a folder; give a file name, e.g. {os.path.join(path, 'results.json')}")
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--json {path}: cannot create its folder {parent} ({err.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise ValueError(f"--json {path}: its folder {parent} is not writable")


def write_json(rows, path, threads=None):
    """Write Rows and KernelRows (with their derived speed-ups, metrics and verdicts) as JSON. ``threads``:
    the CPU thread counts the rows ran at (default: torch's current count)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    threads = [torch.get_num_threads()] if threads is None else list(threads)
    meta = {"torch": torch.__version__, "threads": threads, "allocator": allocator_description(),
            "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    plain = [r for r in rows if isinstance(r, Row)]
    kernel = [r for r in rows if isinstance(r, KernelRow)]
    data = {"meta": meta, "rows": [dict(dataclasses.asdict(r), speedup=r.speedup, status=r.status) for r in plain],
            "kernel_rows": [dict(dataclasses.asdict(r), metrics=r.metrics(), verdicts=r.verdicts(), status=r.status)
                            for r in kernel]}
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
