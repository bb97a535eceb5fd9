"""Networks of the learned transformation (seed appendix A) and LearnedAugment."""
import pytest
import torch

import fastaug
from fastaug.augment import Discriminator, Encoder, Generator, LearnedAugment
from fastaug.augment.learned import num_stages, stage_widths


@pytest.mark.parametrize("C,H,W,stages,code", [(1, 28, 28, 2, (64, 7, 7)), (3, 32, 32, 3, (128, 4, 4))])
def test_appendix_a_sizes(C, H, W, stages, code):
    assert num_stages(H, W) == stages
    E, G, D = Encoder(C, H, W), Generator(C, H, W), Discriminator(C, H, W)
    assert E.fc.in_features == code[0] * code[1] * code[2]  # 3136 (MNIST), 2048 (CIFAR-10)
    assert G.fc.out_features == code[0] * code[1] * code[2]
    assert D.fc.in_features == code[0] * code[1] * code[2]
    x = torch.rand(5, C, H, W)
    tau = E(x)
    assert tau.shape == (5, 128) and tau.abs().max() < 1
    assert G(tau).shape == (5, 18 if C == 3 else 8, H, W)
    assert D(x).shape == (5, 1)


def test_size_rule_for_other_sizes():
    assert [num_stages(s, s) for s in (28, 32, 64, 224)] == [2, 3, 4, 5]
    assert stage_widths(5) == [16, 32, 64, 128, 256, 256]
    for C, H, W in [(3, 45, 30), (1, 17, 64)]:
        aug = LearnedAugment(C, H, W)
        x = torch.rand(2, C, H, W)
        assert aug(x).shape == x.shape
        assert Discriminator(C, H, W)(x).shape == (2, 1)


def test_fresh_generator_is_near_identity():
    torch.manual_seed(0)
    aug = LearnedAugment(3, 32).eval()
    x = torch.rand(4, 3, 32, 32)
    out, params = aug(x, return_params=True)
    assert params.abs().max() < 0.05
    assert (out - x).abs().max() < 0.05
    aug.generator.reset_head(0.0)  # exactly zero last layer: exactly the identity
    assert torch.equal(aug(x), x)


def test_learned_augment_trains_in_a_step():
    torch.manual_seed(0)
    aug = LearnedAugment(1, 28, dropout=0.5).train()
    x = torch.rand(8, 1, 28, 28)
    opt = torch.optim.Adam(aug.parameters(), lr=1e-3)
    loss = (aug(x) - x.flip(-1)).square().mean()  # any differentiable objective
    loss.backward()
    for name, p in aug.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert aug.generator.head.weight.grad.abs().sum() > 0
    assert aug.encoder.fc.weight.grad.abs().sum() > 0
    opt.step()


def test_dropout_on_tau_and_given_tau():
    aug = LearnedAugment(3, 32, dropout=0.5)
    x = torch.rand(2, 3, 32, 32)
    tau = torch.rand(2, 128)
    aug.eval()
    a, pa = aug(x, tau=tau, return_params=True)
    b, pb = aug(x, tau=tau, return_params=True)
    assert torch.equal(pa, pb)
    assert torch.equal(pa, aug.generator(tau))
    with pytest.raises(ValueError, match="x must have shape"):
        aug(torch.rand(2, 1, 32, 32))


def test_learned_augment_uses_transform():
    aug = LearnedAugment(3, 32, mode="serial", smooth=2).eval()
    x = torch.rand(3, 3, 32, 32)
    out, params = aug(x, return_params=True)
    torch.testing.assert_close(out, fastaug.transform(x, params, smooth=2, mode="serial"))
