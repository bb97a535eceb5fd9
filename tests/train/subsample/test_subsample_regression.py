"""The subsampling loop's logistic regression: sklearn's C mapping, the objective's Hessian, and
self-influence against exact leave-one-out refits."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

from fastaug.influence import LastLayerHessian
from fastaug.experiments.subsample.regression import LogisticRegressionL2, RegressionHessian, l2_coefficient


def blobs(N, D, K, seed=0, sep=1.5):
    """Gaussian class blobs: overlapping enough that no class is separable (finite minimiser)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (N,), generator=g)
    means = sep * torch.randn(K, D, generator=g, dtype=torch.float64)
    return means[y] + torch.randn(N, D, generator=g, dtype=torch.float64), y


def objective(theta, h, y, w, lam, K):
    """The documented objective, written out independently for autograd."""
    z = h @ theta[:, :-1].T + theta[:, -1]
    data = (F.cross_entropy(z, y, reduction="none") * w).mean()
    return data + lam / 2 * (theta[:, :-1].square().sum() + theta[:, -1].sum().square() / K)


@pytest.mark.parametrize("K", [2, 3])
def test_minimiser_matches_sklearn_logistic_regression(K):
    h, y = blobs(300, 6, K, seed=K)
    w = torch.rand(300, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.25
    for weight in (None, w):
        ours = LogisticRegressionL2(10.0, K, tol=1e-11).fit(h, y, weight)
        sk = LogisticRegression(C=10.0, tol=1e-12, max_iter=100000).fit(
            h.numpy(), y.numpy(), sample_weight=None if weight is None else weight.numpy())
        W, b = ours.theta[:, :-1].numpy(), ours.theta[:, -1].numpy()
        if K == 2:  # sklearn's binary model: v = W_1 - W_0
            np.testing.assert_allclose(W[1] - W[0], sk.coef_[0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(b[1] - b[0], sk.intercept_[0], rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_allclose(W, sk.coef_, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(b - b.mean(), sk.intercept_ - sk.intercept_.mean(), rtol=1e-5, atol=1e-6)
        probs = torch.softmax(ours.logits(h), 1).numpy()
        np.testing.assert_allclose(probs, sk.predict_proba(h.numpy()), atol=1e-6)
        assert abs(b.sum()) < 1e-9  # the intercepts' sum is pinned at 0, as in sklearn's solution


def test_l2_coefficient_mapping_and_errors():
    assert l2_coefficient(10.0, 800, 2) == pytest.approx(2 / 8000)
    assert l2_coefficient(10.0, 800, 10) == pytest.approx(1 / 8000)
    with pytest.raises(ValueError, match="C must be"):
        l2_coefficient(0.0, 10, 2)
    with pytest.raises(ValueError, match="labels must be in"):
        LogisticRegressionL2(10.0, 2).fit(torch.zeros(3, 2, dtype=torch.float64), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("K", [2, 4])
def test_hessian_is_the_objectives_hessian(K):
    """dense() (the binary fast path for K = 2, the generic one otherwise), matvec and diagonal
    against autograd's Hessian of the written-out objective, weights and damping included."""
    h, y = blobs(60, 4, K, seed=3)
    g = torch.Generator().manual_seed(4)
    w = torch.rand(60, generator=g, dtype=torch.float64) + 0.5
    theta = 0.3 * torch.randn(K, 5, generator=g, dtype=torch.float64)
    lam = 0.05
    ref = torch.autograd.functional.hessian(lambda t: objective(t, h, y, w, lam, K), theta).reshape(K * 5, K * 5)
    p = torch.softmax(h @ theta[:, :-1].T + theta[:, -1], 1)
    H = RegressionHessian(h, p, weight=w, damping=lam)
    torch.testing.assert_close(H.dense(), ref, rtol=1e-10, atol=1e-12)
    v = torch.randn(3, K, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(H.matvec(v), (ref @ v.reshape(3, -1).T).T.reshape(3, K, 5), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(H.diagonal().reshape(-1), ref.diagonal(), rtol=1e-10, atol=1e-12)
    # It differs from fastaug.influence's all-parameter damping only on the intercepts.
    diff = LastLayerHessian(h, p, weight=w, damping=lam).dense() - H.dense()
    weights = torch.ones(K, 5, dtype=torch.bool)
    weights[:, -1] = False
    assert float(diff.reshape(K, 5, K, 5)[weights][:, weights].abs().max()) < 1e-12


def test_warm_start_reaches_the_same_minimiser_in_fewer_steps():
    h, y = blobs(400, 8, 2, seed=5)
    cold = LogisticRegressionL2(10.0, 2, tol=1e-11).fit(h, y)
    more = torch.cat([h, h[:50] + 0.1]), torch.cat([y, y[:50]])
    warm = LogisticRegressionL2(10.0, 2, tol=1e-11).fit(*more, init=cold.theta)
    fresh = LogisticRegressionL2(10.0, 2, tol=1e-11).fit(*more)
    torch.testing.assert_close(warm.theta, fresh.theta, rtol=1e-7, atol=1e-9)
    assert warm.iterations < fresh.iterations


@pytest.mark.parametrize("K", [2, 3])
def test_self_influence_predicts_exact_leave_one_out(K):
    """Remove each point, refit exactly, and compare the rise of its own loss with self-influence / N.

    Zero weight on row i with N unchanged is exactly sklearn's fit without row i at the same C (both
    objectives are proportional to sum_{j != i} l_j + ||W||^2 / (2C)). The influence function is the
    first-order (one Newton step from the full fit, full-data Hessian) prediction: it ranks the points
    as the refits do and it is slightly low, since removing z_i also removes its curvature."""
    h, y = blobs(150, 5, K, seed=10 + K, sep=0.8)
    N = h.shape[0]
    reg = LogisticRegressionL2(10.0, K, tol=1e-10).fit(h, y)
    predicted = (reg.self_influence() / N).numpy()
    before = reg.losses().numpy()
    actual = np.empty(N)
    for i in range(N):
        w = torch.ones(N, dtype=torch.float64)
        w[i] = 0
        loo = LogisticRegressionL2(10.0, K, tol=1e-10).fit(h, y, w, init=reg.theta)
        actual[i] = float(F.cross_entropy(loo.logits(h[i:i + 1]), y[i:i + 1])) - before[i]
    assert (actual > -1e-12).all()  # removing a point never lowers its own loss (up to rounding)
    assert spearmanr(predicted, actual).statistic >= 0.95
    seen = actual > 1e-9  # changes above float64 resolution of the losses
    rel = np.abs(predicted[seen] - actual[seen]) / actual[seen]
    assert seen.mean() > 0.9 and np.median(rel) < 0.1
    assert np.mean(predicted[seen] <= actual[seen] * 1.02) >= 0.95
    assert 0.6 < predicted.sum() / actual.sum() <= 1.0


def test_binary_self_influence_equals_the_closed_form_of_sklearns_model():
    """K = 2: the two-row softmax with lam = 2/(CN) has the self-influence of sklearn's binary model
    with lam_b = 1/(CN) and an unpenalised intercept, written in numpy."""
    h, y = blobs(200, 6, 2, seed=7)
    w = torch.rand(200, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 0.5
    reg = LogisticRegressionL2(10.0, 2, tol=1e-11).fit(h, y, w)
    X = np.hstack([h.numpy(), np.ones((200, 1))])
    v = (reg.theta[1] - reg.theta[0]).numpy()
    p = 1 / (1 + np.exp(-X @ v))
    N = 200
    H = (X * (w.numpy() * p * (1 - p))[:, None]).T @ X / N + np.diag([1 / (10.0 * N)] * 6 + [0.0])
    G = (p - y.numpy())[:, None] * X
    ref = np.einsum("nd,de,ne->n", G, np.linalg.inv(H), G)
    np.testing.assert_allclose(reg.self_influence().numpy(), ref, rtol=1e-7)
    np.testing.assert_allclose(reg.self_influence(50).numpy(), ref[:50], rtol=1e-7)
