"""Stage 2 of the influence loop: with a fixed target augmentation, the GAN moves G's outputs toward it; the losses."""
import json

import pytest
import torch
import torch.nn.functional as F

from fastaug.data import ImageData, mnist5k
from fastaug.models import build_model
from fastaug.train.influence_loop.augmenter import Augmenter, displacement, random_codes
from fastaug.train.influence_loop.gan import Critics, gradient_penalty, identity_penalty, ragan_losses, train_gan
from fastaug.train.influence_loop.options import InfluenceOptions

SIDE, SHIFT = 16, 2


def _digits(n=256):
    """Real MNIST-5k digits resized to 16x16 (a GAN step costs a third of 28x28's)."""
    tr = mnist5k("train").subset(torch.arange(n))
    x = F.interpolate(tr.images.float(), size=(SIDE, SIDE), mode="bilinear", antialias=True)
    return ImageData(x.round().clamp(0, 255).to(torch.uint8), tr.labels, tr.classes, "mnist16", False, tr.mean, tr.std)


def shift_right(x, rng=None):
    """The fixed target: every digit moved right by SHIFT pixels (zero fill)."""
    return F.pad(x, (SHIFT, 0, 0, 0))[..., :, :SIDE]


@pytest.mark.slow
@pytest.mark.parametrize("gan", ["ragan", "wgan-gp"])
def test_gan_moves_g_toward_a_fixed_target_augmentation(gan, tmp_path):
    data = _digits()
    torch.manual_seed(0)
    clf = build_model("allconv", 10, 1, mean=data.mean, std=data.std).eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    torch.manual_seed(1)
    aug = Augmenter(1, SIDE, SIDE, appearance=False)
    options = InfluenceOptions(gan=gan, gan_iters=40 if gan == "ragan" else 12, gan_batch_size=32,
                               gan_critic_steps=None, gan_lr=5e-4, gan_gp_weight=10.0, gan_feature_weight=1.0,
                               identity_weight=0.0, identity_eps=1e-2, stage_log_every=4,
                               stage_checkpoint_every=1000).validate()
    x = data.images[:64].float() / 255
    g = torch.Generator().manual_seed(1)
    codes = random_codes(64, aug.tau_dim, g) * aug.dropout_mask(64, g)

    def distance():
        """Mean squared distance of G's outputs to the target, and G's mean x displacement in pixels."""
        with torch.no_grad():
            out, params = aug(x, codes=codes, return_params=True)
            return (out - shift_right(x)).square().mean().item(), displacement(params, SIDE, SIDE)[:, 0].mean().item()

    before, dx_before = distance()
    critics = Critics(clf, 1, SIDE, SIDE, options, 0, "cpu")
    metrics, seconds = train_gan(str(tmp_path), clf, aug, critics, data, shift_right, options, 0, "cpu",
                                 progress=False)
    after, dx_after = distance()
    assert after < 0.4 * before
    # Content moves right by sampling to the left: the displacement heads for -SHIFT pixels.
    assert abs(dx_before) < 0.05 and dx_after < -0.5
    with open(tmp_path / "metrics.jsonl") as f:
        hist = [json.loads(line) for line in f]
    assert [h["iteration"] for h in hist] == list(range(4, options.gan_iters + 1, 4))
    assert {"d_image", "d_feature", "g_image", "g_feature", "identity", "mse_to_standard"} <= set(hist[-1])
    assert hist[-1]["mse_to_standard"] < hist[0]["mse_to_standard"]
    assert seconds > 0 and metrics["mse_to_standard"] == hist[-1]["mse_to_standard"]


def test_ragan_losses_match_their_definition():
    g = torch.Generator().manual_seed(0)
    r, f = torch.randn(7, 1, generator=g), torch.randn(7, 1, generator=g)
    d, gl = ragan_losses(r, f)
    sig = torch.sigmoid
    d_ref = -(torch.log(sig(r - f.mean())).mean() + torch.log(1 - sig(f - r.mean())).mean())
    g_ref = -(torch.log(sig(f - r.mean())).mean() + torch.log(1 - sig(r - f.mean())).mean())
    assert d.item() == pytest.approx(d_ref.item(), rel=1e-6) and gl.item() == pytest.approx(g_ref.item(), rel=1e-6)


def test_gradient_penalty_of_a_linear_critic_is_its_norm_minus_one():
    lin = torch.nn.Linear(5, 1)
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    expected = (lin.weight.norm() - 1) ** 2  # the gradient of a linear critic is its weight everywhere
    assert gradient_penalty(lin, real, fake, g).item() == pytest.approx(expected.item(), rel=1e-6)


def test_identity_penalty_is_largest_at_the_identity():
    x = torch.rand(4, 1, 8, 8)
    zero = torch.zeros(4, 8, 8, 8)
    eps = 1e-2
    assert identity_penalty(x, x, zero, eps).item() == pytest.approx(2 / eps)
    moved = zero.clone()
    moved[:, 4] = 0.25  # s_b is in normalised units: 0.25 * W / 2 = 1 pixel
    shifted = torch.roll(x, 1, dims=3)
    assert identity_penalty(x, shifted, moved, eps).item() < 2 / eps
