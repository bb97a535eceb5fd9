"""Run fastaug's kernel microbenchmarks and print the ratio tables.

    python -m benchmarks.run                      # every family, CPU at 1 and all threads (and CUDA when present)
    python -m benchmarks.run --only warp --device cpu --threads 1 --quick
    python -m benchmarks.run --json benchmarks/out/all.json

Every family module ``benchmarks/bench_<family>.py`` is discovered automatically. The kernel families
(warp, transform, policy) print forward / backward-only / forward+backward times, speed-ups, the
backward over the forward and the times over a same-traffic memory copy (benchmarks/harness.py);
the other families print one speed-up per row.

On glibc the run first has the allocator keep freed memory (``harness.keep_freed_memory``), with
PyTorch's transparent huge pages on (``benchmarks/__init__.py``), so that no row pays the kernel's
zeroing of fresh pages for a large output; ``--system-malloc`` keeps glibc's defaults and
``THP_MEM_ALLOC_ENABLE=0`` the 4 KiB pages (the header line says what ran).
"""
import argparse
import importlib
import os
import pkgutil
import sys

import torch

from . import harness


def families():
    import benchmarks

    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(benchmarks.__path__)
                  if m.name.startswith("bench_"))


def thread_counts(text):
    """'1,2' -> [1, 2] (sorted, without repeats); each a positive int."""
    try:
        counts = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive thread counts, got {text!r}")
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="comma-separated families (default: all of %s)" % families())
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                        help="'all' runs CPU, and CUDA when a GPU is present")
    parser.add_argument("--threads", type=thread_counts, default=thread_counts(f"1,{os.cpu_count() or 1}"),
                        help="comma-separated torch thread counts the CPU rows run at (default: 1 and every core)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter timing, for smoke tests")
    parser.add_argument("--json", default="benchmarks/out/results.json", help="where to write the rows as JSON")
    parser.add_argument("--system-malloc", action="store_true",
                        help="keep glibc's default allocator settings: large outputs then page-fault afresh on "
                             "every call (see harness.keep_freed_memory; THP_MEM_ALLOC_ENABLE=0 turns off the "
                             "huge pages)")
    args = parser.parse_args(argv)

    if args.only is not None and not args.only.strip(" ,"):  # e.g. --only "$FAMILY" with an empty variable
        parser.error(f"--only names no family; choose from {families()} (or leave --only out for all)")
    chosen = families() if args.only is None else [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = sorted(set(chosen) - set(families()))
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {families()}")
    try:
        harness.check_json_path(args.json)  # before the timing, not after it
    except ValueError as err:
        parser.error(str(err))
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            parser.error("--device cuda but no GPU is visible")
        devices.remove("cuda")

    if not args.system_malloc:
        harness.keep_freed_memory()
    allocator = harness.allocator_description()
    print(f"[bench] allocator: {allocator}", file=sys.stderr, flush=True)
    rows = []
    before = torch.get_num_threads()
    try:
        for family in chosen:
            module = importlib.import_module(f"benchmarks.bench_{family}")
            for device in devices:
                for threads in (args.threads if device == "cpu" else [before]):
                    torch.set_num_threads(threads)
                    print(f"[bench] {family} on {device} ({threads} threads) ...", file=sys.stderr, flush=True)
                    rows += module.run(device, args.quick)
    finally:
        torch.set_num_threads(before)
    kernel = [r for r in rows if isinstance(r, harness.KernelRow)]
    plain = [r for r in rows if isinstance(r, harness.Row)]
    print(f"allocator: {allocator}\n")
    print("\n\n".join(table for table in (harness.format_kernel_table(kernel) if kernel else "",
                                          harness.format_table(plain) if plain else "") if table))
    harness.write_json(rows, args.json, threads=args.threads if "cpu" in devices else None)
    print(f"\nwrote {args.json}", file=sys.stderr)
    missed = [r for r in rows if r.status == "MISS"]
    if missed:
        print(f"{len(missed)} row(s) below target", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
