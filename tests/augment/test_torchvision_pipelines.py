"""The policy modules inside real torchvision v2 pipelines, over a dataset of real photos.

Photos: scikit-image's astronaut, chelsea and coffee and scikit-learn's china and flower, resized to
48x40 (and their mirror images), labels 0..9. Every augmented image is checked against Pillow
(tests/oracles/pillow_policy.py) for the parameters the module drew, also inside DataLoader workers.
"""
import numpy as np
import pytest
import torch

import fastaug  # noqa: F401
from fastaug.augment import AutoAugment, PolicyParams, RandAugment, StandardAugment, TrivialAugment

pytest.importorskip("PIL", reason="Pillow is the oracle of the policy ops (pip install pillow)")
v2 = pytest.importorskip("torchvision.transforms.v2", reason="these tests exercise torchvision pipelines")
tv_tensors = pytest.importorskip("torchvision.tv_tensors", reason="these tests exercise torchvision pipelines")
skdata = pytest.importorskip("skimage.data", reason="the test photos come from scikit-image")
sk_datasets = pytest.importorskip("sklearn.datasets", reason="the test photos come from scikit-learn")
from PIL import Image  # noqa: E402
from oracles.pillow_policy import check_chain  # noqa: E402


def _photos():
    arrays = [skdata.astronaut(), skdata.chelsea(), skdata.coffee()] + list(sk_datasets.load_sample_images().images)
    ims = [Image.fromarray(a).resize((40, 48), Image.BILINEAR) for a in arrays]
    return ims + [im.transpose(Image.FLIP_LEFT_RIGHT) for im in ims]


PHOTOS = _photos()
FIELDS = ("op", "magnitude", "sign", "partner", "center")


def _tensor(im):
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


class Recording(RandAugment):
    """RandAugment that remembers the parameters of its last call (test instrumentation)."""

    def forward(self, *inputs, **kwargs):
        out, self.last = super().forward(*inputs, return_params=True, **kwargs)
        return out


class Photos(torch.utils.data.Dataset):
    """A torchvision-style dataset: ``transforms(image, label)`` on PIL photos. With ``with_params``
    each item also carries the parameters its Recording module drew (so that they survive worker processes)."""

    def __init__(self, transforms, with_params=False):
        self.transforms, self.with_params = transforms, with_params

    def __len__(self):
        return len(PHOTOS)

    def __getitem__(self, i):
        img, label = self.transforms(PHOTOS[i], i)
        if not self.with_params:
            return img, label
        prm = self.transforms.transforms[-1].last
        return img, label, {f: getattr(prm, f) for f in FIELDS}


def _params(batch, n):
    return PolicyParams(*(batch[f][n] for f in FIELDS))


def test_compose_per_sample_through_a_dataloader():
    m = Recording(num_ops=2, magnitude=12)
    pipe = v2.Compose([v2.PILToTensor(), m])
    loader = torch.utils.data.DataLoader(Photos(pipe, with_params=True), batch_size=4)
    seen = []
    for imgs, labels, prm in loader:
        assert imgs.dtype == torch.uint8 and imgs.shape[1:] == (3, 48, 40)
        for n in range(imgs.shape[0]):
            label = int(labels[n])
            check_chain(_tensor(PHOTOS[label])[None], imgs[n][None], _params(prm, n))
            seen.append(label)
    assert seen == list(range(len(PHOTOS)))  # labels passed through, in order


def test_dataloader_workers_and_tv_tensors():
    pipe = v2.Compose([v2.ToImage(), Recording(num_ops=3, magnitude=20)])
    img, label = pipe(PHOTOS[0], 0)
    assert isinstance(img, tv_tensors.Image) and img.shape == (3, 48, 40) and label == 0

    def run(seed):
        loader = torch.utils.data.DataLoader(Photos(pipe, with_params=True), batch_size=5, num_workers=2,
                                             generator=torch.Generator().manual_seed(seed))
        return list(loader)

    first, again, other = run(0), run(0), run(1)
    for imgs, labels, prm in first:
        for n in range(imgs.shape[0]):
            check_chain(_tensor(PHOTOS[int(labels[n])])[None], imgs[n][None], _params(prm, n))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again))  # workers seeded from the loader
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))


@pytest.mark.parametrize("make", [lambda: AutoAugment(v2.AutoAugmentPolicy.IMAGENET), TrivialAugment,
                                  lambda: RandAugment(fill=None)], ids=["autoaugment", "trivial", "rand-fill0"])
def test_on_device_per_batch(make, device):
    x = tv_tensors.Image(torch.stack([_tensor(im) for im in PHOTOS])).to(device)
    m = make()
    out, prm = m(x, generator=torch.Generator().manual_seed(2), return_params=True)
    assert isinstance(out, tv_tensors.Image) and out.device == x.device and out.shape == x.shape
    check_chain(x.as_subclass(torch.Tensor), out.as_subclass(torch.Tensor), prm, fill=m.fill)


def test_replay_on_two_views():
    x = torch.stack([_tensor(im) for im in PHOTOS[:4]])
    m = AutoAugment("cifar10")
    view1, prm = m(tv_tensors.Image(x), generator=torch.Generator().manual_seed(3), return_params=True)
    view2 = m(x.clone(), params=prm)
    assert torch.equal(view1.as_subclass(torch.Tensor), view2)


def test_pil_in_pil_out():
    im = PHOTOS[1]
    m = TrivialAugment()
    out = m(im, generator=torch.Generator().manual_seed(4))
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == im.size
    ref = m(_tensor(im), generator=torch.Generator().manual_seed(4))
    assert torch.equal(_tensor(out), ref)
    grey = im.convert("L")
    out_grey = m(grey, generator=torch.Generator().manual_seed(4))
    assert out_grey.mode == "L"


def test_random_choice_passes_labels_through():
    pick = v2.RandomChoice([RandAugment(), TrivialAugment()])
    img, label = v2.Compose([v2.PILToTensor(), pick])(PHOTOS[2], 2)
    assert img.shape == (3, 48, 40) and label == 2


def test_normalised_images_are_refused():
    pipe = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]), RandAugment()])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pipe(PHOTOS[0])
    scaled = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), RandAugment()])(PHOTOS[0])
    assert scaled.dtype == torch.float32 and 0 <= scaled.min() and scaled.max() <= 1


def test_masks_and_boxes_are_refused():
    img = tv_tensors.Image(_tensor(PHOTOS[0]))
    mask = tv_tensors.Mask(torch.zeros(48, 40, dtype=torch.uint8))
    with pytest.raises(TypeError, match="Mask"):
        RandAugment()(img, mask)


def test_standard_augment_takes_single_images_and_samples_in_a_pipeline():
    """From a user trial: StandardAugment in a v2.Compose (per image, in the dataset) raised 'x must be an
    (N, C, H, W) tensor'; torchvision's RandomCrop / RandomHorizontalFlip take (C, H, W) images."""
    m = StandardAugment(padding=2, flip=True, cutout=4)
    img = _tensor(PHOTOS[0])
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    one, p = m(img, generator=g(), return_params=True)
    assert one.shape == img.shape and torch.equal(one, m(img[None], generator=g())[0])
    assert torch.equal(m(img, params=p), one)
    assert torch.equal(m(img[None], g()), m(img[None], generator=g()))  # the positional generator still works
    out, label = m(tv_tensors.Image(img), 7)
    assert isinstance(out, tv_tensors.Image) and label == 7
    pipe = v2.Compose([v2.PILToTensor(), m, v2.ToDtype(torch.float32, scale=True)])
    x, label = pipe(PHOTOS[1], 1)
    assert x.dtype == torch.float32 and x.shape == img.shape and label == 1
    assert m(PHOTOS[1]).size == PHOTOS[1].size
    with pytest.raises(TypeError, match="Inputs of type Mask are not supported by StandardAugment"):
        m(tv_tensors.Image(img), tv_tensors.Mask(torch.zeros(img.shape[1:])))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_float_images_on_the_cpu(dtype):
    """From a user trial: float16 / bfloat16 images on the CPU (torchvision's AutoAugment takes them) were
    refused with 'x: torch.bfloat16 is supported on CUDA only'. They are augmented as float32 and come
    back in their dtype, with the float32 images' result rounded."""
    import learned_kinds

    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)).to(dtype)
    for m in (RandAugment(), AutoAugment(), learned_kinds.build("adversarial")):
        got = m(x, generator=torch.Generator().manual_seed(1))
        want = m(x.float(), generator=torch.Generator().manual_seed(1)).to(dtype)
        assert got.dtype == dtype and torch.equal(got, want)
    leaf = x.clone().requires_grad_()
    TrivialAugment()(leaf).float().sum().backward()
    assert leaf.grad.dtype == dtype


def test_a_video_gets_one_draw_for_all_its_frames():
    """From a user trial: a tv_tensors.Video's frames each got their own op (the clip flickered between
    rotations and colour changes); torchvision gives a video one draw for all its frames."""
    import learned_kinds
    from fastaug.augment.op_table import OP_IDS

    frame = _tensor(PHOTOS[0])
    clips = tv_tensors.Video(torch.stack([frame, _tensor(PHOTOS[1])])[:, None].expand(2, 5, *frame.shape).clone())
    for m in (RandAugment(num_ops=3, magnitude=20), TrivialAugment(), StandardAugment(padding=4, cutout=16)):
        torch.manual_seed(0)
        out = m(clips)
        assert isinstance(out, tv_tensors.Video) and out.shape == clips.shape
        assert all(torch.equal(out[v, 0], out[v, t]) for v in range(2) for t in range(5))
        outs = [m(clips[0]) for _ in range(8)]
        assert any(not torch.equal(outs[0][0], o[0]) for o in outs)  # still random from call to call
    out, p = RandAugment()(clips, generator=torch.Generator().manual_seed(0), return_params=True)
    assert p.op.shape[0] == 10 and torch.equal(RandAugment()(clips, params=p), out)
    # SamplePairing's partner (video j) is frame t of video j for frame t
    pairing = PolicyParams(torch.full((2, 1), OP_IDS["SamplePairing"]), torch.ones(2, 1), torch.ones(2, 1),
                           torch.tensor([[1], [0]]), torch.zeros(2, 1, 2, dtype=torch.int64)).repeat_frames(3)
    assert pairing.partner.flatten().tolist() == [3, 4, 5, 0, 1, 2]
    with pytest.raises(TypeError, match="does not augment a tv_tensors.Video"):
        learned_kinds.build("adversarial")(tv_tensors.Video(torch.zeros(2, 3, 16, 16, dtype=torch.uint8)))


def test_torchvisions_spellings_of_one_fill_value():
    """From a user trial: fill=[128], fill=(0, 0, 0) or v2's {tv_tensors.Image: 0} (one value as torchvision
    writes it) were refused; a different value per channel (timm's mean fill) is refused in one sentence."""
    x = torch.randint(0, 256, (4, 3, 12, 12), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    for spelled, value in (([128], 128), ((0, 0, 0), 0), ({tv_tensors.Image: 7, "others": 0}, 7),
                           ({"others": 9}, 9), (np.int64(200), 200), (None, 0)):
        m = RandAugment(fill=spelled)
        assert m.fill == value
        assert torch.equal(m(x, generator=torch.Generator().manual_seed(1)),
                           RandAugment(fill=value)(x, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="fill must be one value for every channel"):
        AutoAugment(fill=(124, 116, 104))
    for bad in (300, -1, True, 0.5, "grey", [1.5]):
        with pytest.raises(ValueError, match=r"fill must be an int in \[0, 255\]"):
            TrivialAugment(fill=bad)
