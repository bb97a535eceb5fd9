"""``fastaug ops-grid``: a PNG grid of the 16 policy ops (rows) at several magnitudes (columns) on a
real photo (scikit-image's astronaut), drawn by :func:`fastaug.viz.policy_ops_grid`."""
__all__ = ["HELP", "add_arguments", "run"]

HELP = "PNG grid of the 16 policy ops at several magnitudes on a real photo"


def add_arguments(p):
    p.add_argument("--out", default="ops.png", help="output PNG path (default: ops.png)")
    p.add_argument("--magnitudes", default="0,0.5,1", help="comma-separated magnitudes in [0, 1]")
    p.add_argument("--size", type=int, default=160, help="photo side in pixels")
    p.add_argument("--sign", type=float, default=1.0, choices=[-1.0, 1.0], help="sign of the signed ops")
    p.add_argument("--fill", type=int, default=128, help="fill value in [0, 255]")


#: The largest photo side (the figure holds every op at every magnitude: 48 panels at the defaults).
MAX_SIZE = 1024


def run(args):
    from ..viz import policy_ops_grid

    try:
        mags = tuple(float(m) for m in args.magnitudes.split(","))
    except ValueError:
        raise ValueError(f"--magnitudes must be comma-separated numbers in [0, 1], got {args.magnitudes!r}") from None
    if not all(0 <= m <= 1 for m in mags):
        raise ValueError(f"--magnitudes must lie in [0, 1], got {args.magnitudes!r}")
    if not 8 <= args.size <= MAX_SIZE or not 0 <= args.fill <= 255:  # 48 panels of size^2: 100000 px exhausts memory
        raise ValueError(f"--size must be in [8, {MAX_SIZE}] and --fill in [0, 255], got {args.size} and {args.fill}")
    path = policy_ops_grid(args.out, size=args.size, magnitudes=mags, sign=args.sign, fill=args.fill)
    print(f"wrote {path}")
    return 0
