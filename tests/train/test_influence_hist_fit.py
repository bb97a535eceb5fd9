"""The influence-histogram figure's fit, on the loop primitive, reaches the optimum of its objective:
the gradient of the L2-regularised cross-entropy vanishes (an independent check: autograd at the fit)."""
import types

import torch
import torch.nn.functional as F

from fastaug.experiments.influence_hist import fit_logistic_regression, run


def test_fit_is_a_stationary_point_of_the_regularised_loss():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 6, generator=g, dtype=torch.float64)
    y = (X[:, :3].argmax(1)).long()
    model = fit_logistic_regression(X, y, 3, damping=1e-2, max_iter=200)
    W = torch.cat([model.weight, model.bias[:, None]], 1).detach().requires_grad_(True)
    W0 = torch.zeros_like(W, requires_grad=True)
    (grad0,) = torch.autograd.grad(F.cross_entropy(X @ W0[:, :-1].T + W0[:, -1], y), W0)
    loss = F.cross_entropy(X @ W[:, :-1].T + W[:, -1], y) + 0.5e-2 * W.square().sum()
    (grad,) = torch.autograd.grad(loss, W)
    assert grad.abs().max() < 1e-4 * grad0.abs().max()  # L-BFGS stops at its tolerance_change
    assert (model(X).argmax(1) == y).double().mean() > 0.9


def test_run_writes_the_figure(tmp_path):
    path = run(types.SimpleNamespace(out=str(tmp_path / "h.png"), damping=1e-2, pool=4, max_iter=20))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
