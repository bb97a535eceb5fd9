"""The paper's augmentation sets, batched through fastaug.warp, against torch and Pillow references."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fastaug.data import mnist5k
from fastaug.ops.warp import warp
from fastaug.experiments.subsample import build_augmentation
from fastaug.experiments.subsample.augmentations import augment_all, crop_flows, rotate_flows


@pytest.fixture(scope="module")
def digits():
    return mnist5k("test").images[:24]  # real MNIST digits, (24, 1, 28, 28) uint8


def test_sets_follow_the_paper_appendix_b():
    assert build_augmentation("translate", "mnist5k").params == ((2, 0), (-2, 0), (0, 2), (0, -2))
    assert build_augmentation("translate_diag", "mnist5k").params == ((2, 2), (-2, 2), (2, -2), (-2, -2))
    angles = build_augmentation("rotate", "mnist5k").params
    np.testing.assert_allclose(angles, [a for a in np.linspace(-30, 30, 15) if a != 0])
    assert build_augmentation("crop", "mnist5k").params == (1, 2, 3, 4, 5, 6)
    cifar = [build_augmentation(a, "cifar10", 32).params for a in ("translate", "rotate", "crop")]
    assert cifar == [((3, 0), (-3, 0), (0, 3), (0, -3)), (-5.0, -2.5, 2.5, 5.0), (2,)]
    with pytest.raises(ValueError, match="choose one of translate, translate_diag, rotate, crop"):
        build_augmentation("shear")


@pytest.mark.parametrize("name", ["translate", "translate_diag"])
def test_translate_is_exact(digits, name):
    """Edge-padded integer shifts: F.pad(replicate) and slicing, bit for bit."""
    aug = build_augmentation(name, "mnist5k")
    out = aug.apply(digits)
    assert out.shape == (24, 4, 1, 28, 28) and out.dtype == torch.uint8
    pad = F.pad(digits.float(), (2, 2, 2, 2), mode="replicate").to(torch.uint8)
    for k, (tx, ty) in enumerate(aug.params):
        assert torch.equal(out[:, k], pad[:, :, 2 - ty:30 - ty, 2 - tx:30 - tx])


def test_rotate_matches_grid_sample_and_pillow(digits):
    aug = build_augmentation("rotate", "mnist5k")
    x = digits.double()
    flows = rotate_flows(aug.params, 28, 28, dtype=torch.float64)
    out = aug.apply(digits)
    for k, angle in enumerate(aug.params):
        a = math.radians(angle)
        theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=torch.float64)
        grid = F.affine_grid(theta.expand(24, 2, 3), (24, 1, 28, 28), align_corners=False)
        ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        ours = warp(x, flows[k].expand(24, 2, 28, 28).contiguous(), padding_mode="border")
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-9)
        # Pillow's bilinear rotation of the uint8 digits (its sampling truncates; MNIST borders are 0,
        # so its zero fill equals our edge padding): within one grey level everywhere.
        pil = np.stack([np.asarray(Image.fromarray(im[0].numpy()).rotate(angle, resample=Image.BILINEAR))
                        for im in digits])
        diff = np.abs(out[:, k, 0].numpy().astype(int) - pil.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.6


def test_crop_zooms_back_like_interpolate_and_pillow(digits):
    aug = build_augmentation("crop", "mnist5k")
    x = digits.double()
    flows = crop_flows(aug.params, 28, 28, dtype=torch.float64)
    out = aug.apply(digits)
    for k, c in enumerate(aug.params):
        ref = F.interpolate(x[:, :, c:28 - c, c:28 - c], size=(28, 28), mode="bilinear", align_corners=False)
        ours = warp(x, flows[k].expand(24, 2, 28, 28).contiguous(), padding_mode="border")
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-9)
        pil = np.stack([np.asarray(Image.fromarray(im[0].numpy()).crop((c, c, 28 - c, 28 - c))
                                   .resize((28, 28), Image.BILINEAR)) for im in digits])
        assert np.abs(out[:, k, 0].numpy().astype(int) - pil.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="does not fit"):
        crop_flows([14], 28, 28)


def test_rgb_batches_and_chunking_agree():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (5, 3, 32, 32), generator=g, dtype=torch.uint8)
    aug = build_augmentation("rotate", "cifar10", 32)
    whole = aug.apply(x)
    chunked = augment_all(x, aug.flows(32, 32), chunk_size=3)  # one source image per call
    assert whole.shape == (5, 4, 3, 32, 32) and torch.equal(whole, chunked)
    # Each image is transformed on its own: image 2's outputs do not depend on the others.
    assert torch.equal(aug.apply(x[2:3])[0], whole[2])
    with pytest.raises(TypeError, match="uint8"):
        aug.apply(x.float())
