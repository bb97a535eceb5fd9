"""The policy modules against torchvision 0.2x's v2 AutoAugment / RandAugment / TrivialAugmentWide as the
independent reference: the published policies, the op spaces and magnitudes, and the per-op outputs
where fastaug documents that it agrees with torchvision (and, where it documents a difference, that
the difference is the documented one)."""
import pytest
import torch

import fastaug
from fastaug.augment import AutoAugment, RandAugment
from fastaug.augment.op_table import MAGNITUDE_FREE, OP_IDS, SIGNED, WIDE_OP_SPACE, published_policy

v2 = pytest.importorskip("torchvision.transforms.v2", reason="torchvision is the reference of these tests")
from torchvision.transforms import InterpolationMode  # noqa: E402


@pytest.mark.parametrize("name", ["imagenet", "cifar10", "svhn"])
def test_published_policies_equal_torchvision(name):
    tv = v2.AutoAugment(v2.AutoAugmentPolicy(name))._policies
    assert [tuple(sp) for sp in published_policy(name)] == [tuple(sp) for sp in tv]
    # torchvision's enum is accepted as well as the name, and the module uses that table
    for policy in (name, v2.AutoAugmentPolicy(name)):
        m = AutoAugment(policy)
        ops = [[OP_IDS[o] for o, _, _ in sp] for sp in tv]
        assert m.policy.ops.tolist() == ops
        assert m.policy.probs.tolist() == [[p for _, p, _ in sp] for sp in tv]


def test_op_space_and_magnitudes_equal_torchvision():
    H, W, bins = 24, 40, 31
    space = v2.RandAugment(num_magnitude_bins=bins)._AUGMENTATION_SPACE
    assert list(space) == ["Identity"] + [fastaug.augment.op_table.OP_NAMES[o] for o in WIDE_OP_SPACE[1:]]
    value = {"ShearX": 0.3, "ShearY": 0.3, "TranslateX": 150 / 331 * W, "TranslateY": 150 / 331 * H, "Rotate": 30.0,
             "Brightness": 0.9, "Color": 0.9, "Contrast": 0.9, "Sharpness": 0.9}
    m = torch.arange(bins, dtype=torch.float64) / (bins - 1)
    for name, (fn, signed) in space.items():
        mags = fn(bins, H, W)
        if name == "Identity" or name in MAGNITUDE_FREE:
            assert mags is None and not signed
            continue
        assert signed == (name in SIGNED), name
        if name == "Posterize":
            expect = 8 - torch.round(4 * m)
        elif name == "Solarize":
            expect = 1 - m  # torchvision's threshold fraction (fastaug: 256·(1 - m) on uint8, documented)
        else:
            expect = value[name] * m
        torch.testing.assert_close(mags.double(), expect, atol=1e-5, rtol=0, msg=name)


def _tv(x, name, magnitude, fill):
    return v2.RandAugment()._apply_image_or_video_transform(x, name, magnitude, InterpolationMode.NEAREST,
                                                           v2._utils._setup_fill_arg(fill))


def _fa(x, name, m, s, fill):
    return fastaug.apply_ops(x[None], torch.tensor([OP_IDS[name]]), torch.tensor([m]), torch.tensor([float(s)]),
                             fill=fill)[0]


@pytest.mark.parametrize("channels", [1, 3])
def test_exact_ops_equal_torchvision(channels):
    x = torch.randint(0, 256, (channels, 23, 34), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for m in (1 / 9, 0.5, 1.0):
        for s in (1, -1):
            for name, mag in (("ShearX", 0.3 * s * m), ("ShearY", 0.3 * s * m), ("Invert", 0.0), ("Equalize", 0.0),
                              ("Posterize", float(8 - round(4 * m)))):
                assert torch.equal(_fa(x, name, m, s, 128), _tv(x, name, mag, 128)), (name, m, s)
        for name, side in (("TranslateX", 34), ("TranslateY", 23)):
            px = 7  # a whole number of pixels (torchvision truncates); fastaug's positive sign moves left/up
            mm = px / (150 / 331 * side)
            assert torch.equal(_fa(x, name, mm, 1, 0), _tv(x, name, -float(px), 0)), name


def test_solarize_threshold_is_the_documented_256_not_torchvisions_255():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    # level 0: fastaug (and Pillow's solarize(img, 256)) is the identity; torchvision inverts the 255s
    assert torch.equal(_fa(x, "Solarize", 0.0, 1, 128), x)
    tv = _tv(x, "Solarize", 1.0, 128)
    assert int((tv != x).sum()) == 1 and int(tv[0, 15, 15]) == 0


@pytest.mark.parametrize("kwargs", [dict(num_ops=2.0), dict(num_ops=2.5), dict(num_ops=True), dict(magnitude=9.5),
                                    dict(magnitude=True), dict(magnitude=9.0)])
def test_rand_augment_takes_integer_counts_and_levels_like_torchvision(kwargs):
    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    if "num_ops" in kwargs and kwargs["num_ops"] is not True:  # torchvision refuses these in its constructor
        with pytest.raises(ValueError):
            v2.RandAugment(**kwargs)
    with pytest.raises(ValueError, match="integer"):
        RandAugment(**kwargs)(x)


def test_rand_augment_numpy_integers_are_levels():
    np = pytest.importorskip("numpy")
    m = RandAugment(num_ops=np.int64(3), magnitude=np.int64(15))
    prm = m.sample(torch.zeros(4, 3, 8, 8), torch.Generator().manual_seed(0))
    assert prm.op.shape == (4, 3) and torch.allclose(prm.magnitude, torch.full((4, 3), 0.5))
