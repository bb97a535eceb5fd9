"""Run fastaug's kernel microbenchmarks and print one ratio table.

    python -m benchmarks.run                      # every family, CPU (and CUDA when present)
    python -m benchmarks.run --only warp --device cpu --quick
    python -m benchmarks.run --json benchmarks/out/all.json

Every family module ``benchmarks/bench_<family>.py`` is discovered automatically.
"""
import argparse
import importlib
import pkgutil
import sys

import torch

from . import harness


def families():
    import benchmarks

    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(benchmarks.__path__)
                  if m.name.startswith("bench_"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated families (default: all of %s)" % families())
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                        help="'all' runs CPU, and CUDA when a GPU is present")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter timing, for smoke tests")
    parser.add_argument("--json", default="benchmarks/out/results.json", help="where to write the rows as JSON")
    args = parser.parse_args(argv)

    chosen = [f for f in args.only.split(",") if f] or families()
    unknown = sorted(set(chosen) - set(families()))
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {families()}")
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            parser.error("--device cuda but no GPU is visible")
        devices.remove("cuda")

    rows = []
    for family in chosen:
        module = importlib.import_module(f"benchmarks.bench_{family}")
        for device in devices:
            print(f"[bench] {family} on {device} ...", file=sys.stderr, flush=True)
            rows += module.run(device, args.quick)
    print(harness.format_table(rows))
    harness.write_json(rows, args.json)
    print(f"\nwrote {args.json}", file=sys.stderr)
    missed = [r for r in rows if r.status == "MISS"]
    if missed:
        print(f"{len(missed)} row(s) below target", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
