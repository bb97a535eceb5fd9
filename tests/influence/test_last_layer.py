"""LastLayerInfluence on a small model: scores vs direct autograd, influence_aug gradients through the
frozen model, save/load, errors."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from fastaug.influence import LastLayerInfluence


def setup_model(seed=0, N=50, C=3):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, C)).double()
    x = torch.randn(N, 6, dtype=torch.float64)
    y = torch.randint(0, C, (N,))
    xv = torch.randn(20, 6, dtype=torch.float64)
    yv = torch.randint(0, C, (20,))
    return model, x, y, xv, yv


def direct(model, x, y, xv, yv, damping):
    """Influence quantities by autograd on the last layer's parameters, one sample at a time."""
    last = model[2]
    params = [last.weight, last.bias]

    def flat(grads):  # [dW (C, D), db (C,)] -> row-major [W b] (C*(D+1),)
        return torch.cat([grads[0], grads[1].reshape(-1, 1)], 1).reshape(-1)

    def flat_grad(loss, create_graph=False):
        return flat(torch.autograd.grad(loss, params, create_graph=create_graph))

    # Hessian of the mean training loss w.r.t. [W b] by double backward, one row at a time
    g = flat_grad(F.cross_entropy(model(x), y), create_graph=True)
    H = torch.stack([flat(torch.autograd.grad(gi, params, retain_graph=True)) for gi in g])
    H = H + damping * torch.eye(H.shape[0], dtype=H.dtype)
    gval = flat_grad(F.cross_entropy(model(xv), yv)).detach()
    per = torch.stack([flat_grad(F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])).detach() for i in range(len(x))])
    Hinv = torch.linalg.inv(H.detach())
    return -(per @ Hinv @ gval), torch.einsum("ip,pq,iq->i", per, Hinv, per), Hinv @ gval


@pytest.mark.parametrize("method", ["exact", "cg"])
def test_scores_match_autograd(method):
    model, x, y, xv, yv = setup_model()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    inf = LastLayerInfluence(model, damping=0.05, progress=False).fit(loader)
    s = inf.s_val(DataLoader(TensorDataset(xv, yv), batch_size=7), method=method)
    up_ref, self_ref, s_ref = direct(model, x, y, xv, yv, 0.05)
    torch.testing.assert_close(s.reshape(-1), s_ref, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(inf.influence_up_loss(), up_ref, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(inf.influence_up_loss(loader), up_ref, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(inf.self_influence(method=method, **({"tol": 1e-12} if method == "cg" else {})),
                               self_ref, rtol=1e-8, atol=1e-10)
    assert inf.solve_info.converged
    torch.testing.assert_close(inf.losses(), F.cross_entropy(model(x), y, reduction="none").detach())


def test_influence_aug_gradient_through_frozen_model():
    model, x, y, xv, yv = setup_model()
    inf = LastLayerInfluence(model, last_layer="2", damping=0.05, progress=False)
    inf.fit(DataLoader(TensorDataset(x, y), batch_size=50))
    s = inf.s_val(DataLoader(TensorDataset(xv, yv), batch_size=20))
    for p in model.parameters():
        p.requires_grad_(False)
    x_aug = (x[:8] + 0.3 * torch.randn(8, 6, dtype=torch.float64)).requires_grad_()
    out = inf.influence_aug(x[:8], x_aug, y[:8])
    (g,) = torch.autograd.grad(out.sum(), x_aug)

    # reference: the explicit formula I_aug = -s^T (g(z~) - g(z)) through the model, by autograd
    xr = x_aug.detach().clone().requires_grad_()
    feats = model[1](model[0](xr))
    delta = torch.softmax(model[2](feats), 1) - F.one_hot(y[:8], 3).double()
    score_aug = (delta * (feats @ s[:, :-1].T + s[:, -1])).sum(1)
    with torch.no_grad():
        f0 = model[1](model[0](x[:8]))
        d0 = torch.softmax(model[2](f0), 1) - F.one_hot(y[:8], 3).double()
        score0 = (d0 * (f0 @ s[:, :-1].T + s[:, -1])).sum(1)
    ref = -(score_aug - score0)
    torch.testing.assert_close(out, ref.detach(), rtol=0, atol=1e-12)
    (g_ref,) = torch.autograd.grad(ref.sum(), xr)
    torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-12)


def test_hvp_solve_and_save_load(tmp_path):
    model, x, y, xv, yv = setup_model()
    inf = LastLayerInfluence(model, damping=0.05, progress=False).fit(DataLoader(TensorDataset(x, y), batch_size=9))
    inf.s_val(DataLoader(TensorDataset(xv, yv), batch_size=20))
    V = torch.randn(4, 3, 6, dtype=torch.float64)
    torch.testing.assert_close(inf.solve(inf.hvp(V), "exact"), V, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(inf.solve(inf.hvp(V), "lissa", tol=1e-9), V, rtol=1e-6, atol=1e-6)
    path = tmp_path / "inf.pt"
    inf.save(path)
    back = LastLayerInfluence.load(path, model, progress=False)
    torch.testing.assert_close(back.influence_up_loss(), inf.influence_up_loss())
    torch.testing.assert_close(back.self_influence(), inf.self_influence())
    torch.testing.assert_close(back.hvp(V), inf.hvp(V))


def test_errors():
    model, x, y, xv, yv = setup_model()
    with pytest.raises(ValueError, match="damping"):
        LastLayerInfluence(model, damping=-1)
    with pytest.raises(ValueError, match="method must be one of"):
        LastLayerInfluence(model, method="newton")
    with pytest.raises(ValueError, match="no submodule named"):
        LastLayerInfluence(model, last_layer="head")
    with pytest.raises(TypeError, match="must be an nn.Linear"):
        LastLayerInfluence(model, last_layer="1")
    with pytest.raises(ValueError, match="no nn.Linear"):
        LastLayerInfluence(nn.Sequential(nn.Tanh()))
    inf = LastLayerInfluence(model, progress=False)
    with pytest.raises(RuntimeError, match="fit"):
        inf.hvp(torch.zeros(3, 6, dtype=torch.float64))
    inf.fit(DataLoader(TensorDataset(x, y), batch_size=50))
    with pytest.raises(RuntimeError, match="s_val"):
        inf.influence_up_loss()
    with pytest.raises(ValueError, match="method must be one of"):
        inf.solve(torch.zeros(3, 6, dtype=torch.float64), "newton")
    with pytest.raises(ValueError, match="class labels"):
        LastLayerInfluence.from_features(x, model(x).detach(), y + 5)
    bad = x.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        LastLayerInfluence.from_features(bad, model(x).detach(), y)


def direct_weight_only(model, x, y, xv, yv, damping):
    """Exact reference for a last layer without a bias: the autograd Hessian of the mean training
    loss plus damping/2 ||W||^2 over W alone (C*D parameters), per-sample gradients in W."""
    last = model[-1]
    feats = model[:-1](x).detach()
    feats_v = model[:-1](xv).detach()
    W = last.weight.detach().clone()
    C, D = W.shape

    def loss(w, h, t):
        return F.cross_entropy(h @ w.T, t)

    H = torch.autograd.functional.hessian(lambda w: loss(w, feats, y), W).reshape(C * D, C * D)
    H = H + damping * torch.eye(C * D, dtype=H.dtype)
    grad = lambda h, t: torch.autograd.functional.jacobian(lambda w: loss(w, h, t), W).reshape(-1)  # noqa: E731
    per = torch.stack([grad(feats[i:i + 1], y[i:i + 1]) for i in range(len(x))])
    s_ref = torch.linalg.solve(H, grad(feats_v, yv))
    return H, -(per @ s_ref), torch.einsum("ip,ip->i", per, torch.linalg.solve(H, per.T).T), s_ref


@pytest.mark.parametrize("method", ["exact", "cg"])
def test_bias_free_last_layer_matches_weight_only_hessian(method, tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3, bias=False)).double()
    x, y = torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 3, (40,))
    xv, yv = torch.randn(15, 5, dtype=torch.float64), torch.randint(0, 3, (15,))
    inf = LastLayerInfluence(model, damping=0.1, progress=False).fit([(x, y)])
    H, up_ref, self_ref, s_ref = direct_weight_only(model, x, y, xv, yv, 0.1)
    assert not inf.bias and inf.num_params == 12 and inf.hessian.shape == (3, 4)
    torch.testing.assert_close(inf.hessian.dense(), H, rtol=0, atol=1e-12)
    torch.testing.assert_close(inf.hessian.diagonal().reshape(-1), H.diagonal(), rtol=0, atol=1e-12)
    V = torch.randn(2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(inf.hvp(V).flatten(1), V.flatten(1) @ H, rtol=0, atol=1e-12)
    assert torch.linalg.eigvalsh(H).max() <= inf.hessian.lambda_max_bound()
    kw = {"tol": 1e-12} if method == "cg" else {}
    s = inf.s_val([(xv, yv)], method=method, **kw)
    assert s.shape == (3, 4)
    torch.testing.assert_close(s.reshape(-1), s_ref, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(inf.influence_up_loss(), up_ref, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(inf.self_influence(method=method, **kw), self_ref, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(inf.self_influence(method="lissa", tol=1e-12, max_iter=100000), self_ref,
                               rtol=1e-6, atol=1e-8)

    # I_aug = -s^T (grad_W l(z~) - grad_W l(z)), through the frozen model, with its gradient
    for p in model.parameters():
        p.requires_grad_(False)
    x_aug = (x[:6] + 0.3 * torch.randn(6, 5, dtype=torch.float64)).requires_grad_()
    out = inf.influence_aug(x[:6], x_aug, y[:6])
    (g,) = torch.autograd.grad(out.sum(), x_aug)
    xr = x_aug.detach().clone().requires_grad_()
    S = s.reshape(3, 4)

    def score(xx):
        feats = model[:-1](xx)
        delta = torch.softmax(feats @ model[-1].weight.T, 1) - F.one_hot(y[:6], 3).double()
        return (delta * (feats @ S.T)).sum(1)

    ref = -(score(xr) - score(x[:6]).detach())
    torch.testing.assert_close(out, ref.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(g, torch.autograd.grad(ref.sum(), xr)[0], rtol=0, atol=1e-12)

    path = inf.save(tmp_path / "inf.pt")
    back = LastLayerInfluence.load(path, model, progress=False)
    assert not back.bias and back.num_params == 12
    torch.testing.assert_close(back.self_influence(), self_ref, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="without a bias"):
        LastLayerInfluence.load(path, setup_model()[0], progress=False)
    with pytest.raises(ValueError, match="contradicts the last layer"):
        LastLayerInfluence(model, bias=True)
    feats = model[:-1](x)
    via_features = LastLayerInfluence.from_features(feats, model(x), y, damping=0.1, bias=False, progress=False)
    torch.testing.assert_close(via_features.self_influence(), self_ref, rtol=1e-8, atol=1e-10)
