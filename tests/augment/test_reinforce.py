"""The REINFORCE maths against direct computations."""
import numpy as np
import pytest
import torch

from fastaug.augment.reinforce import (LossWindow, adversarial_controller_loss, batch_baseline_advantages,
                                       discounted_returns, normalise_losses)


def test_window_mean_and_ema_match_direct_computation():
    steps = torch.rand(7, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = LossWindow(4, "mean")
    for s in steps:
        w.add(s)
    torch.testing.assert_close(w.value(), steps.mean(0))
    e = LossWindow(4, "ema", decay=0.8)
    for s in steps:
        e.add(s)
    # closed form of the EMA started at the first value: 0.8^6 x0 + sum_{i>=1} 0.2 * 0.8^(6-i) x_i
    n = len(steps)
    weights = np.array([0.8 ** (n - 1)] + [0.2 * 0.8 ** (n - 1 - i) for i in range(1, n)])
    torch.testing.assert_close(e.value(), torch.from_numpy(weights @ steps.numpy()))
    state = e.state_dict()
    e2 = LossWindow(4, "ema", decay=0.8)
    e2.load_state_dict(state)
    assert torch.equal(e2.value(), e.value()) and e2.steps == n
    e.reset()
    assert e.steps == 0 and torch.equal(e.value(), torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        w.add(torch.zeros(3))


def test_normalisation_and_controller_loss():
    L = torch.tensor([2.0, 2.5, 1.0, 3.5], dtype=torch.float64)
    a = L.numpy()
    expected = (a - a.mean()) / (a.std(ddof=1) + 1e-5)
    torch.testing.assert_close(normalise_losses(L), torch.from_numpy(expected))
    assert torch.equal(normalise_losses(torch.tensor([3.0])), torch.zeros(1))
    logp = torch.tensor([-1.0, -2.0, -3.0, -4.0], requires_grad=True)
    ent = torch.tensor([5.0, 6.0, 7.0, 8.0], requires_grad=True)
    loss = adversarial_controller_loss(torch.from_numpy(expected), logp, ent, 0.1)
    direct = -(expected * logp.detach().numpy()).mean() - 0.1 * 6.5
    assert loss.item() == pytest.approx(direct, rel=1e-6)
    loss.backward()  # d/dlogp = -L̂ / M: above-average losses get more probability
    torch.testing.assert_close(logp.grad, torch.from_numpy(-expected / 4).float())


def test_discounted_returns_and_baseline():
    r = torch.rand(5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = 0.5
    direct = torch.zeros_like(r)
    for b in range(5):
        for t in range(6):
            direct[b, t] = sum(g ** (s - t) * r[b, s] for s in range(t, 6))
    out = discounted_returns(r, g)
    torch.testing.assert_close(out, direct)
    adv = batch_baseline_advantages(out)
    torch.testing.assert_close(adv, direct - direct.mean(0))
    torch.testing.assert_close(adv.mean(0), torch.zeros(6, dtype=torch.float64))
