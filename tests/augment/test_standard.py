"""Standard augmentation (crop with padding, flip, Cutout), batched, against per-image references."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastaug.augment.standard import StandardAugment, cutout, random_crop, random_hflip


def _images(n=9, c=3, h=11, w=8, dtype=torch.uint8):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, c, h, w), generator=g).to(dtype)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_crop_matches_pad_then_slice_per_image(dtype):
    x, p = _images(dtype=dtype), 3
    offsets = torch.randint(0, 2 * p + 1, (x.shape[0], 2), generator=torch.Generator().manual_seed(1))
    out = random_crop(x, p, offsets=offsets)
    padded = F.pad(x.float(), (p, p, p, p)).to(dtype)  # torchvision RandomCrop(padding=p): zeros
    for i, (dy, dx) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], padded[i, :, dy: dy + x.shape[2], dx: dx + x.shape[3]])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(random_crop(x, p, g1), random_crop(x, p, g2))  # seeded draws


def test_hflip_flips_exactly_the_masked_images():
    x = _images()
    mask = torch.tensor([True, False] * 4 + [True])
    out = random_hflip(x, mask=mask)
    for i in range(x.shape[0]):
        assert torch.equal(out[i], x[i].flip(-1) if mask[i] else x[i])
    frac = random_hflip(torch.arange(2.0).view(1, 1, 1, 2).expand(4000, 1, 1, 2),
                        torch.Generator().manual_seed(0))[:, 0, 0, 0].mean().item()
    assert 0.45 < frac < 0.55  # probability 1/2


def _cutout_devries(img, length, cy, cx):
    """DeVries & Taylor's reference (their numpy code): a clipped square of zeros."""
    h, w = img.shape[1:]
    mask = np.ones((h, w), np.float32)
    y1, y2 = np.clip(cy - length // 2, 0, h), np.clip(cy + length // 2, 0, h)
    x1, x2 = np.clip(cx - length // 2, 0, w), np.clip(cx + length // 2, 0, w)
    mask[y1:y2, x1:x2] = 0.0
    return img * mask


@pytest.mark.parametrize("length", [0, 1, 4, 7, 16])
def test_cutout_matches_the_authors_reference(length):
    x = _images(dtype=torch.float32)
    centers = torch.stack([torch.randint(0, 11, (9,)), torch.randint(0, 8, (9,))], 1)
    centers[0] = torch.tensor([0, 0])  # a corner: clipped square
    out = cutout(x, length, centers=centers)
    for i, (cy, cx) in enumerate(centers.tolist()):
        np.testing.assert_array_equal(out[i].numpy(), _cutout_devries(x[i].numpy(), length, cy, cx))


def test_module_is_crop_flip_then_cutout_from_one_generator():
    x = _images()
    m = StandardAugment(padding=2, flip=True, cutout=4)
    a = m(x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    b = m.cutout(m.crop_flip(x, g), g)
    assert torch.equal(a, b) and a.dtype == torch.uint8
    assert not torch.equal(a, m(x, torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="padding must be >= 0"):
        random_crop(x, -1)


@pytest.mark.parametrize("with_policy", [False, True])
def test_recipe_is_crop_flip_then_policy_then_cutout_then_float(with_policy):
    """The one training recipe, against its steps written out with the same draws from one generator."""
    x = _images(n=6, h=12, w=12)
    aug = StandardAugment(padding=2, flip=True, cutout=4)

    def policy(images, generator):  # a policy that draws too: its draws sit between flip and Cutout
        shift = torch.randint(0, 50, (images.shape[0], 1, 1, 1), generator=generator).to(images.dtype)
        return images.sub(shift).clamp(0) if images.dtype == torch.uint8 else images

    got = aug.recipe(x, torch.Generator().manual_seed(3), policy if with_policy else None)
    g = torch.Generator().manual_seed(3)
    offsets = torch.randint(0, 5, (6, 2), generator=g)
    flips = torch.rand(6, generator=g) < 0.5
    ref = random_hflip(random_crop(x, 2, offsets=offsets), mask=flips)
    if with_policy:
        ref = policy(ref, g)
    centers = torch.stack([torch.randint(0, 12, (6,), generator=g), torch.randint(0, 12, (6,), generator=g)], 1)
    ref = cutout(ref, 4, centers=centers).float() / 255
    assert got.dtype == torch.float32 and torch.equal(got, ref)


# ---- sample -> params -> apply (kornia's split) ----------------------------------------------------

@pytest.mark.parametrize("padding,flip,size", [(2, True, 4), (0, True, 4), (3, False, 0), (0, False, 0)])
def test_sample_then_apply_is_the_one_call_and_parts_that_are_off_draw_nothing(padding, flip, size):
    x = _images()
    m = StandardAugment(padding=padding, flip=flip, cutout=size)
    g = torch.Generator().manual_seed(3)
    p = m.sample(x, g)
    assert (p.offsets is None) == (padding == 0) and (p.flip is None) == (not flip) and (p.centers is None) == (size == 0)
    one, q = m(x, torch.Generator().manual_seed(3), return_params=True)
    assert torch.equal(m.apply(x, p), one)
    for a, b in ((p.offsets, q.offsets), (p.flip, q.flip), (p.centers, q.centers)):
        assert (a is None and b is None) or torch.equal(a, b)
    # the draws are exactly the documented ones, in order
    ref = torch.Generator().manual_seed(3)
    if padding:
        assert torch.equal(p.offsets, torch.randint(0, 2 * padding + 1, (9, 2), generator=ref))
    if flip:
        assert torch.equal(p.flip, torch.rand(9, generator=ref) < 0.5)
    if size:
        assert torch.equal(p.centers[:, 0], torch.randint(0, 11, (9,), generator=ref))
        assert torch.equal(p.centers[:, 1], torch.randint(0, 8, (9,), generator=ref))
    assert torch.equal(ref.get_state(), g.get_state())  # nothing else was drawn


@pytest.mark.parametrize("with_policy", [False, True])
def test_recipe_returns_and_replays_its_params(with_policy):
    x = _images(n=6, h=12, w=12)
    aug = StandardAugment(padding=2, flip=True, cutout=4)

    def policy(images, generator):
        return images.flip(2)

    pol = policy if with_policy else None
    out, p = aug.recipe(x, torch.Generator().manual_seed(3), pol, return_params=True)
    assert torch.equal(out, aug.recipe(x, torch.Generator().manual_seed(3), pol))  # same draws as before
    g = torch.Generator().manual_seed(99)
    state = g.get_state()
    assert torch.equal(aug.recipe(x, g, pol, params=p), out) and torch.equal(g.get_state(), state)  # no new draw
    # the params are the recipe's draws: crop offsets, flips, then (after the policy's) the Cutout centres
    ref = random_hflip(random_crop(x, 2, offsets=p.offsets), mask=p.flip)
    ref = cutout(ref if pol is None else pol(ref, None), 4, centers=p.centers).float() / 255
    assert torch.equal(out, ref)


def test_params_of_another_batch_or_a_missing_part_are_refused():
    from fastaug.augment.standard import StandardParams

    x, m = _images(), StandardAugment(padding=2, flip=True, cutout=4)
    p = m.sample(x, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"params.offsets must have shape \(4, 2\)"):
        m.apply(x[:4], p)
    with pytest.raises(ValueError, match="params.centers is None"):
        m.apply(x, StandardParams(p.offsets, p.flip, None))
    assert torch.equal(m.apply(x, p.to("cpu")), m.apply(x, p))
