"""CycleGAN pieces: cycle and identity losses on a tiny case, GAN losses, the replay pool."""
import pytest
import torch
from torch import nn

from fastaug.models.cyclegan import CycleGAN, ImagePool, PatchDiscriminator, UNetGenerator, gan_loss


class _Shift(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.d = d

    def forward(self, x):
        return x + self.d


def test_cycle_and_identity_losses_on_known_generators():
    cg = CycleGAN(1, 8, generator="unet", width=4, disc_width=4)
    cg.g_ab, cg.g_ba = _Shift(0.1), _Shift(-0.05)  # A -> B adds 0.1, B -> A takes 0.05
    a, b = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8)
    out = cg.generator_losses(a, b)
    # cycle: |a + 0.1 - 0.05 - a| = 0.05 both ways, times 10; identity: |b + 0.1 - b| + |a - 0.05 - a|, times 0.5
    assert out["cycle"].item() == pytest.approx(10 * (0.05 + 0.05), abs=1e-5)
    assert out["identity"].item() == pytest.approx(0.5 * (0.1 + 0.05), abs=1e-5)
    assert torch.allclose(out["fake_b"], a + 0.1) and torch.allclose(out["fake_a"], b - 0.05)
    d_b = cg.d_b(a + 0.1)
    d_a = cg.d_a(b - 0.05)
    want_gan = nn.functional.softplus(-d_b).mean() + nn.functional.softplus(-d_a).mean()  # -log sigmoid
    assert out["gan"].item() == pytest.approx(want_gan.item(), rel=1e-5)
    assert out["total"].item() == pytest.approx((out["gan"] + out["cycle"] + out["identity"]).item(), rel=1e-6)


def test_gan_losses():
    logits = torch.tensor([[-1.0, 0.5], [2.0, 0.0]])
    assert gan_loss(logits, True, "lsgan").item() == pytest.approx(((logits - 1) ** 2).mean().item())
    assert gan_loss(logits, False, "lsgan").item() == pytest.approx((logits ** 2).mean().item())
    p = torch.sigmoid(logits)
    assert gan_loss(logits, True, "bce").item() == pytest.approx(-p.log().mean().item(), rel=1e-6)
    assert gan_loss(logits, False, "bce").item() == pytest.approx(-(1 - p).log().mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        gan_loss(logits, True, "wgan")


@pytest.mark.parametrize("side", [28, 32, 20])
def test_networks_keep_the_image_size(side):
    g, d = UNetGenerator(3, side, width=4), PatchDiscriminator(3, side, width=4)
    x = torch.rand(2, 3, side, side)
    y = g(x).detach()
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    assert d(x).shape[:2] == (2, 1) and d(x).shape[-1] >= 2


def test_pool_fills_then_swaps_half():
    pool = ImagePool(50, torch.Generator().manual_seed(0))
    first = torch.arange(50.0).view(50, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: everything passes through and is stored
    new = torch.arange(100.0, 300.0).view(200, 1, 1, 1)
    out = pool.query(new)
    swapped = out.flatten() != new.flatten()
    assert 70 < int(swapped.sum()) < 130  # each image swapped with probability 1/2
    assert torch.equal(out[~swapped], new[~swapped])
    # a swapped-out image was in the pool: one of the first 50, or a new image stored earlier in this batch
    for got, mine in zip(out.flatten()[swapped].tolist(), new.flatten()[swapped].tolist()):
        assert got < 50 or 100 <= got < mine
    # nothing is lost or duplicated: pool + handed-out = the first 50 + the swapped-in new images
    stored = pool.images.flatten().tolist()
    assert sorted(stored + out.flatten()[swapped].tolist()) == sorted(list(range(50)) +
                                                                      new.flatten()[swapped].tolist())
    # the same generator seed replays the same swaps; a restored state continues identically
    again = ImagePool(50, torch.Generator().manual_seed(0))
    again.query(first)
    assert torch.equal(again.query(new), out)
    state, gstate = pool.state_dict(), pool.rng.get_state()
    nxt = pool.query(new)
    restored = ImagePool(50, torch.Generator())
    restored.load_state_dict(state)
    restored.rng.set_state(gstate)
    assert torch.equal(restored.query(new), nxt)
