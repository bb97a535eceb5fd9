"""The influence objective of stage 4: its gradient through ``fastaug.transform`` and the frozen
classifier against finite differences of an independently computed I_aug (float64), and its sign: a step
along it moves x~ where the validation loss, measured by refitting the last layer, falls."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastaug.influence import LastLayerInfluence
from fastaug.train.influence_loop.augmenter import Augmenter
from fastaug.train.influence_loop.objective import influence_objective, refit_last_layer


class TinyNet(nn.Module):
    """A small frozen classifier with BatchNorm (eval mode must be used) and a last layer ``fc``."""

    def __init__(self, classes=3, width=6):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.Tanh(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(4 * width, classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.fc(self.body(x))


def _problem(seed=0, n=24, n_val=30, classes=3, size=8):
    g = torch.Generator().manual_seed(seed)
    proto = torch.rand(classes, 1, size, size, generator=g, dtype=torch.float64)
    def draw(m):
        y = torch.arange(m) % classes
        x = 0.2 + 0.6 * (0.6 * proto[y] + 0.4 * torch.rand(m, 1, size, size, generator=g, dtype=torch.float64))
        return x, y
    x, y = draw(n)
    xv, yv = draw(n_val)
    torch.manual_seed(seed)
    net = TinyNet(classes).double()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    for _ in range(3):  # settle BatchNorm's running statistics, then freeze
        with torch.no_grad():
            net(x)
    net.train()  # left in training mode on purpose: the influence must switch it to eval itself
    for p in net.parameters():
        p.requires_grad_(False)
    inf = LastLayerInfluence(net, damping=0.05, progress=False).fit([(x, y)])
    inf.s_val([(xv, yv)])
    return net, inf, x, y, xv, yv


def _reference_i_aug(net, s, x, x_aug, y):
    """-s_val . (grad l(z~) - grad l(z)) per sample, with the per-sample gradients of the last layer from
    autograd (one sample at a time), the network in eval mode: no fastaug op involved."""
    net.eval()
    W, b = net.fc.weight, net.fc.bias
    out = []
    for i in range(x.shape[0]):
        grads = []
        for xi in (x[i:i + 1], x_aug[i:i + 1]):
            with torch.enable_grad():
                Wp, bp = W.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
                loss = F.cross_entropy(net.features(xi).detach() @ Wp.T + bp, y[i:i + 1])
                gW, gb = torch.autograd.grad(loss, (Wp, bp))
            grads.append(torch.cat([gW, gb[:, None]], 1))
        out.append(-(s * (grads[1] - grads[0])).sum())
    return torch.stack(out)


def test_gradient_through_transform_and_frozen_classifier_matches_finite_differences():
    net, inf, x, y, _, _ = _problem()
    torch.manual_seed(1)
    aug = Augmenter(1, 8, 8, tau_dim=6, dropout=0.5, appearance=True).double()
    aug.generator.reset_head(0.05)  # a transformation well away from the identity
    mask = aug.dropout_mask(x.shape[0], torch.Generator().manual_seed(2), dtype=torch.float64)
    # G and E's last layer: the path through fastaug.transform and the frozen classifier. (E's ReLU
    # convolutions are left out: a finite difference across a ReLU kink measures nothing.)
    params = list(aug.generator.parameters()) + list(aug.encoder.fc.parameters())

    def augmented():
        return aug.apply(x, aug.params(aug.encoder(x) * mask))

    with torch.no_grad():
        assert ((augmented() > 0) & (augmented() < 1)).all()  # clamp inactive: the objective is smooth here
    loss = influence_objective(inf, x, augmented(), y)
    grads = torch.autograd.grad(loss, params)
    assert net.training  # the mode is restored after the eval-mode forward passes
    # The fastaug objective equals the independent per-sample autograd computation.
    with torch.no_grad():
        ref = _reference_i_aug(net, inf.s_val_, x, augmented(), y)
    net.train()
    assert loss.item() == pytest.approx(ref.mean().item(), rel=1e-9, abs=1e-12)

    g = torch.Generator().manual_seed(3)
    direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    analytic = sum((gr * d).sum() for gr, d in zip(grads, direction)).item()

    def objective_at(t):
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(t * d)
            value = _reference_i_aug(net, inf.s_val_, x, augmented(), y).mean().item()
            for p, d in zip(params, direction):
                p.sub_(t * d)
        return value

    eps = 1e-6
    numeric = (objective_at(eps) - objective_at(-eps)) / (2 * eps)
    assert abs(analytic) > 1e-3
    assert analytic == pytest.approx(numeric, rel=1e-6)


def _val_loss_after_refit(net, inf, x_aug, y, xv, yv):
    """Validation loss with the last layer refitted (to convergence) on the features of x_aug."""
    net.eval()
    with torch.no_grad():
        h, hv = net.features(x_aug), net.features(xv)
    theta0 = torch.cat([net.fc.weight, net.fc.bias[:, None]], 1)
    theta = refit_last_layer(theta0, h, y, inf.damping, max_iter=500)
    with torch.enable_grad():  # the refit converged: the objective's gradient vanishes
        t = theta.clone().requires_grad_()
        obj = F.cross_entropy(h @ t[:, :-1].T + t[:, -1], y) + 0.5 * inf.damping * t.square().sum()
        (grad,) = torch.autograd.grad(obj, t)
    assert grad.norm() < 1e-6
    return F.cross_entropy(hv @ theta[:, :-1].T + theta[:, -1], yv).item()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_step_on_the_objective_lowers_the_measured_validation_loss(seed):
    net, inf, x, y, xv, yv = _problem(seed)
    g = torch.Generator().manual_seed(10 + seed)
    x_aug = (x + 0.05 * torch.randn(x.shape, generator=g, dtype=x.dtype)).requires_grad_()
    (grad,) = torch.autograd.grad(influence_objective(inf, x, x_aug, y), x_aug)
    step = 0.05 * grad / grad.norm() * x.shape[0] ** 0.5
    base = _val_loss_after_refit(net, inf, x_aug.detach(), y, xv, yv)
    down = _val_loss_after_refit(net, inf, (x_aug - step).detach(), y, xv, yv)
    up = _val_loss_after_refit(net, inf, (x_aug + step).detach(), y, xv, yv)
    assert down < base < up
    with torch.no_grad():  # and the objective itself predicts it
        assert influence_objective(inf, x, x_aug - step, y) < influence_objective(inf, x, x_aug, y)


def test_a_last_layer_without_bias_is_refitted_as_w_only_and_the_prediction_matches_the_refit():
    """A classifier whose ``fc`` has no bias: stage 4's evaluation refits W alone (the objective's
    gradient over W vanishes at the refit) and, for a small augmentation, the first-order prediction
    agrees with the refit change of the validation loss."""
    from fastaug.train.influence_loop.objective import last_layer_theta, predicted_vs_refit

    torch.manual_seed(0)
    net, inf, x, y, xv, yv = _problem()
    net.fc = nn.Linear(net.fc.in_features, net.fc.out_features, bias=False).double()
    with torch.no_grad():
        h = net.eval().features(x)
    # F's last layer at the damped optimum, where the influence function is taken: fitted by plain
    # gradient descent here, independently of refit_last_layer's L-BFGS.
    opt = torch.optim.SGD(net.fc.parameters(), lr=0.5)
    for _ in range(3000):
        opt.zero_grad()
        (F.cross_entropy(net.fc(h), y) + 0.025 * net.fc.weight.square().sum()).backward()
        opt.step()
    net.fc.requires_grad_(False)
    inf = LastLayerInfluence(net, damping=0.05, progress=False).fit([(x, y)])
    inf.s_val([(xv, yv)])
    theta = last_layer_theta(net.fc)
    assert theta.shape == (3, h.shape[1])

    refit = refit_last_layer(theta, h, y, inf.damping, max_iter=500)
    assert refit.shape == theta.shape
    torch.testing.assert_close(refit, theta, rtol=0, atol=1e-5)  # both found the same optimum
    with torch.enable_grad():
        t = refit.clone().requires_grad_()
        (grad,) = torch.autograd.grad(F.cross_entropy(h @ t.T, y) + 0.5 * inf.damping * t.square().sum(), t)
    assert grad.norm() < 1e-6

    g = torch.Generator().manual_seed(4)
    x_aug = x + 0.001 * torch.randn(x.shape, generator=g, dtype=x.dtype)  # small: a first-order prediction
    with torch.no_grad():
        h_aug, hv = net.features(x_aug), net.features(xv)
        out = predicted_vs_refit(inf, h_aug, net.fc(h_aug), hv, net.fc(hv), yv, theta)
    predicted = out["predicted_val_loss"] - out["val_loss"]
    measured = out["refit_val_loss"] - out["val_loss"]
    assert abs(predicted) > 1e-6
    assert measured == pytest.approx(predicted, rel=0.15)
    with pytest.raises(ValueError, match="not a last layer"):
        refit_last_layer(theta[:, :-2], h, y, inf.damping)
