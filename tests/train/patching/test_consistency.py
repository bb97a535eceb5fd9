"""The subgroup consistency loss against a direct formula (entropies, float64, by hand)."""
import math

import torch

from fastaug.train.losses import consistency_loss


def _direct(lx, lf, lg):
    """1/2 KL(p_x || m) + 1/2 JS(p_F, p_G) for one image, with JS = H(m) - (H(p_F) + H(p_G)) / 2."""
    soft = lambda v: [math.exp(a) / sum(math.exp(b) for b in v) for a in v]  # noqa: E731
    px, pf, pg = soft(lx), soft(lf), soft(lg)
    m = [(a + b) / 2 for a, b in zip(pf, pg)]
    kl = sum(a * math.log(a / b) for a, b in zip(px, m))
    entropy = lambda p: -sum(a * math.log(a) for a in p)  # noqa: E731
    js = entropy(m) - (entropy(pf) + entropy(pg)) / 2
    return 0.5 * kl + 0.5 * js


def test_against_direct_formula():
    g = torch.Generator().manual_seed(0)
    lx, lf, lg = (torch.randn(6, 4, generator=g, dtype=torch.float64) * 2 for _ in range(3))
    got = consistency_loss(lx, torch.stack([lf, lg]))
    want = [_direct(lx[i].tolist(), lf[i].tolist(), lg[i].tolist()) for i in range(6)]
    assert torch.allclose(got.double(), torch.tensor(want, dtype=torch.float64), rtol=1e-5, atol=1e-7)
    assert bool((got > 0).all())


def test_zero_when_predictions_agree_and_gradients_reach_all_three():
    lx = torch.randn(5, 3)
    assert torch.allclose(consistency_loss(lx, [lx + 2.0, lx - 1.0]), torch.zeros(5), atol=1e-6)  # same softmax
    lx, lf, lg = (torch.randn(5, 3, requires_grad=True) for _ in range(3))
    consistency_loss(lx, [lf, lg]).sum().backward()
    assert all(t.grad.abs().sum() > 0 for t in (lx, lf, lg))  # no stop-gradient, as the authors' code


def test_only_js_when_x_matches_the_mean():
    # p_x = m: the KL term vanishes and the loss is half the Jensen-Shannon divergence of F and G
    pf, pg = torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([[0.1, 0.3, 0.6]])
    m = (pf + pg) / 2
    h = lambda p: -(p * p.log()).sum(-1)  # noqa: E731
    want = 0.5 * (h(m) - (h(pf) + h(pg)) / 2)
    assert torch.allclose(consistency_loss(m.log(), [pf.log(), pg.log()]), want, atol=1e-6)
