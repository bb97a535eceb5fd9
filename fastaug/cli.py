"""fastaug's command line: ``python -m fastaug.cli <command> ...`` (one subcommand per task)."""
import argparse
import sys


def _ops_grid(args):
    from .viz import policy_ops_grid

    mags = tuple(float(m) for m in args.magnitudes.split(","))
    path = policy_ops_grid(args.out, size=args.size, magnitudes=mags, sign=args.sign, fill=args.fill)
    print(f"wrote {path}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fastaug.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ops-grid", help="PNG grid of the 16 policy ops at several magnitudes on a real photo")
    p.add_argument("--out", default="ops.png", help="output PNG path (default: ops.png)")
    p.add_argument("--magnitudes", default="0,0.5,1", help="comma-separated magnitudes in [0, 1]")
    p.add_argument("--size", type=int, default=160, help="photo side in pixels")
    p.add_argument("--sign", type=float, default=1.0, choices=[-1.0, 1.0], help="sign of the signed ops")
    p.add_argument("--fill", type=int, default=128, help="fill value in [0, 255]")
    p.set_defaults(func=_ops_grid)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
