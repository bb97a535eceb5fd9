"""Networks of the learned transformation (the paper's appendix A) and LearnedAugment."""
import pytest
import torch

from fastaug import reference
from fastaug.augment import Discriminator, Encoder, Generator, LearnedAugment
from fastaug.augment.learned import num_stages, stage_widths


@pytest.mark.parametrize("C,H,W,stages,code", [(1, 28, 28, 2, (64, 7, 7)), (3, 32, 32, 3, (128, 4, 4))])
def test_appendix_a_sizes(C, H, W, stages, code):
    torch.manual_seed(0)
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
    torch.manual_seed(0)
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


def test_learned_augment_trains():
    """Every parameter gets a finite gradient, an optimiser step moves E and G, and a few steps
    lower the objective (here: make the augmentation mirror the image)."""
    torch.manual_seed(0)
    aug = LearnedAugment(1, 28, dropout=0.5).train()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 28, 28, generator=g)
    opt = torch.optim.Adam(aug.parameters(), lr=1e-3)
    objective = lambda: (aug.eval()(x) - x.flip(-1)).square().mean()  # noqa: E731  (deterministic: no dropout)
    before = {n: p.detach().clone() for n, p in aug.named_parameters()}
    start = objective().item()
    for step in range(5):
        aug.train()
        opt.zero_grad()
        loss = (aug(x) - x.flip(-1)).square().mean()
        loss.backward()
        if step == 0:
            for name, p in aug.named_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert aug.generator.head.weight.grad.abs().sum() > 0
            assert aug.encoder.fc.weight.grad.abs().sum() > 0
        opt.step()
    moved = {n for n, p in aug.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert "generator.head.weight" in moved and "encoder.fc.weight" in moved
    assert len(moved) == len(before), sorted(set(before) - moved)
    assert objective().item() < start


def test_dropout_on_tau_in_training_mode():
    """Training mode drops entries of tau (scaling the others by 1/(1-p)) before G; eval mode does not."""
    torch.manual_seed(1)
    aug = LearnedAugment(3, 32, dropout=0.5)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    tau = torch.rand(2, 128, generator=torch.Generator().manual_seed(3)) + 0.5  # no zero entries
    aug.eval()
    a, pa = aug(x, tau=tau, return_params=True)
    b, pb = aug(x, tau=tau, return_params=True)
    assert torch.equal(pa, pb) and torch.equal(a, b)
    assert torch.equal(pa, aug.generator(tau))
    aug.train()
    torch.manual_seed(4)
    _, p1 = aug(x, tau=tau, return_params=True)
    torch.manual_seed(4)
    mask = torch.nn.functional.dropout(torch.ones_like(tau), 0.5, training=True)  # the same draw
    assert 0.3 < (mask == 0).float().mean() < 0.7
    torch.testing.assert_close(p1, aug.generator(tau * mask))
    _, p2 = aug(x, tau=tau, return_params=True)  # a new draw
    assert not torch.equal(p1, p2)
    # Without tau, E(x) is dropped the same way.
    torch.manual_seed(5)
    _, p3 = aug(x, return_params=True)
    torch.manual_seed(5)
    mask = torch.nn.functional.dropout(torch.ones(2, 128), 0.5, training=True)
    torch.testing.assert_close(p3, aug.generator(aug.encoder(x) * mask))
    with pytest.raises(ValueError, match="x must have shape"):
        aug(torch.rand(2, 1, 32, 32))


def test_learned_augment_is_the_reference_transformation_of_its_params():
    """The output is the paper's transformation (the readable reference) of G(E(x))."""
    torch.manual_seed(2)
    aug = LearnedAugment(3, 32, mode="serial", smooth=2, init_scale=0.05).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    out, params = aug(x, return_params=True)
    assert torch.equal(params, aug.generator(aug.encoder(x)))
    torch.testing.assert_close(out, reference.transform(x, params, smooth=2, mode="serial"), rtol=1e-5, atol=1e-5)
