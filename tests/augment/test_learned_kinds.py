"""Each loadable learned augmentation against the training code that applies the same learned part.

The references are the methods' own code paths, called as the methods call them (the influence loop's
``Augmenter.forward``, model patching's ``translate_all``, Adversarial AutoAugment's ``apply_policy_batch``
inside the standard recipe), or, where a method now applies its batches through the module itself
(TANDA's stage 2, the influence loop's stage 5), the code it applied them with before, written out here
(TANDA's sequences through stage 1's ``apply_sequences``; the retraining's crop/flip, pick coins,
``Augmenter.forward`` under the run's autocast, Cutout): the same generator state must give the same
images, bit for bit.
"""
import contextlib
import types

import pytest
import torch
from learned_kinds import KINDS, SIDE, args_for, build, image_of, images, labels, translation_generators

import fastaug.augment as A
from fastaug.augment.controller import PolicyController
from fastaug.augment.policy_batch import apply_policy_batch
from fastaug.models.cyclegan import CycleGAN


def g(seed=7):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_seeded_call_replay_and_params(kind, dtype):
    m, x = build(kind), images(kind, dtype=dtype)
    out, p = m(*args_for(kind, x), generator=g(), return_params=True)
    out = image_of(kind, out)
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out, image_of(kind, m(*args_for(kind, x), generator=g())))  # same seed, same images
    assert torch.equal(out, image_of(kind, m(*args_for(kind, x), params=p)))  # replayed params, same images
    assert not torch.equal(out, image_of(kind, m(*args_for(kind, x), generator=g(8))))  # another seed differs
    assert not torch.equal(out, x)  # it augments
    assert isinstance(p, A.AugmentationParams)
    if kind == "translation":
        assert p.standard is None
    else:
        assert p.standard.offsets.shape == (6, 2) and p.standard.centers.shape == (6, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_one_image_is_a_batch_of_one(kind):
    m, x = build(kind), images(kind, n=1)
    args = (x[0], 1) if kind == "translation" else (x[0],)
    out, p = m(*args, generator=g(), return_params=True)
    batch = m(*((x, torch.tensor([1])) if kind == "translation" else (x,)), params=p)
    assert torch.equal(image_of(kind, out), image_of(kind, batch)[0])
    if kind == "translation":
        assert out[1] == 1  # the label passes through


def test_adversarial_is_the_methods_policy_batch_with_one_image_per_policy():
    """Per image: a policy from the controller, one of its sub-policies, between crop/flip and Cutout --
    apply_policy_batch (what AdversarialAutoAugment.augment calls) with M = N policies of one image each."""
    m, x = build("adversarial"), images("adversarial")
    got = m(x, generator=g())

    def policy(xr, r):
        s = m.controller.sample(xr.shape[0], r)
        return apply_policy_batch(xr, s.ops, s.levels, m.controller.num_bins, r, fill=m.fill)

    ref = m.standard.recipe(x, g(), policy)
    assert torch.equal(got.float() / 255, ref)


def test_fixed_is_the_standard_recipe():
    m, x = build("fixed"), images("fixed")
    assert torch.equal(m(x, generator=g()), m.standard(x, g()))


def test_random_policies_are_uniform_over_ops_and_levels():
    m = build("random", standard=False)
    p = m(images("random", n=1).expand(4000, 3, SIDE, SIDE), generator=g(), return_params=True)[1].learned
    assert p.op.shape == (4000, 2) and p.op.min() >= 0 and p.op.max() < 16
    ops = torch.bincount(p.op.reshape(-1), minlength=16).double() / 8000
    levels = torch.bincount((p.magnitude.reshape(-1) * 9).round().long(), minlength=10).double() / 8000
    assert (ops - 1 / 16).abs().max() < 0.02 and (levels - 0.1).abs().max() < 0.02


def _tanda_sequences(net, fill, x, rng, p):
    """TANDA's stage-2 sequences as the method applied them before it called SequenceAugment: int(N p)
    images by a permutation, one generated sequence each, through stage 1's apply_sequences."""
    from fastaug.train.tanda.search import apply_sequences

    N = x.shape[0]
    n = int(N * p)
    if n == 0:
        return x
    idx = torch.randperm(N, generator=rng)[:n].to(x.device)
    with torch.no_grad():
        s = net.sample(n, rng)
    x = x.clone()
    x[idx] = apply_sequences(x[idx], s.ops[:, 0], s.levels[:, 0], net.num_bins, rng, fill)
    return x


@pytest.mark.parametrize("p", [0.5, 1.0, 0.1])
def test_tanda_is_the_methods_sequences(p):
    """SequenceAugment against TANDA's stage-2 sequences (written out above) inside the recipe."""
    m, x = build("tanda"), images("tanda", n=8)
    m.p = p
    ref = m.standard.recipe(x, g(), lambda xr, r: _tanda_sequences(m.generator_net, m.fill, xr, r, p))
    assert torch.equal(m(x, generator=g()).float() / 255, ref)
    n = m(x, generator=g(), return_params=True)[1].learned.index.numel()
    assert n == int(8 * p)


def test_tanda_gives_every_single_image_a_sequence_and_batches_the_share():
    """A saved run's p (0.1) is a share of each batch: int(1 * p) = 0, so per image (a v2.Compose in
    DataLoader workers, README step 3) the learned part used to never run. An image given alone gets a
    sequence (p = 1 on single images): TANDA's sequences with p = 1 on that image, inside the recipe."""
    import numpy as np
    from PIL import Image
    from torchvision.transforms import v2

    m, x = build("tanda"), images("tanda", n=8)
    m.p = 0.1
    for i in range(8):
        ref = m.standard.recipe(x[i:i + 1], g(i), lambda xr, r: _tanda_sequences(m.generator_net, m.fill, xr, r, 1.0))
        out, p = m(x[i], generator=g(i), return_params=True)
        assert out.shape == x[i].shape and torch.equal(out.float() / 255, ref[0])
        assert p.learned.index.tolist() == [0] and p.learned.ops.op.shape == (1, 3)
    # the learned part alone: per-image calls change the images, plain tensors and PIL images alike
    bare = A.SequenceAugment(m.generator_net, 3, SIDE, None, fill=m.fill, p=0.1)
    tensors = [bare(x[i], generator=g(i)) for i in range(8)]
    assert sum(not torch.equal(t, x[i]) for i, t in enumerate(tensors)) >= 6
    for i in range(8):  # a PIL image is an image given alone too: the same draws, the same pixels
        pil = bare(Image.fromarray(x[i].permute(1, 2, 0).numpy()), generator=g(i))
        assert torch.equal(torch.from_numpy(np.array(pil)).permute(2, 0, 1), tensors[i])
    pipeline = v2.Compose([v2.PILToTensor(), bare])
    torch.manual_seed(0)  # the pipeline draws from torch's global generator
    outs = [pipeline(Image.fromarray(x[i].permute(1, 2, 0).numpy())) for i in range(8)]
    assert sum(not torch.equal(o, x[i]) for i, o in enumerate(outs)) >= 6
    # batches keep the share, a batch of one included: int(N * p) images
    for N, share in ((8, 0.5), (8, 0.1), (1, 0.5), (20, 0.25)):
        bare.p = share
        batch = images("tanda", n=N)
        out, p = bare(batch, generator=g(), return_params=True)
        assert p.learned.index.numel() == int(N * share)
        changed = (out != batch).flatten(1).any(1)
        assert not changed[[i for i in range(N) if i not in p.learned.index.tolist()]].any()


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "fixed"])
def test_every_kind_augments_single_images(kind):
    """No learned part is a share of the batch that rounds to nothing on one image: per-image calls of
    each kind's learned part (no standard recipe) change images."""
    m, x = build(kind, standard=False), images(kind, n=8)
    changed = 0
    for i in range(8):
        args = (x[i], 1) if kind == "translation" else (x[i],)
        changed += not torch.equal(image_of(kind, m(*args, generator=g(i))), x[i])
    assert changed >= 4


def _learned_retrain(aug, standard, p, x, rng, autocast=contextlib.nullcontext):
    """The influence loop's stage 5 as it augmented a batch before it called TransformAugment: crop/flip on
    uint8, float, pick coins, Augmenter.forward (its dropout masks) under the run's autocast, Cutout."""
    x = standard.crop_flip(x, rng).float() / 255
    pick = (torch.rand(x.shape[0], generator=rng) < p).nonzero().squeeze(1)
    if pick.numel():
        with torch.no_grad(), autocast():
            learned = aug(x.index_select(0, pick), rng=rng)
        x = x.index_copy(0, pick, learned.to(x.dtype))
    return standard.cutout(x, rng)


def test_influence_is_the_retrainings_augmentation():
    """TransformAugment against stage 5's augmentation (written out above) on float images."""
    m, x = build("influence"), images("influence", n=8)
    ref = _learned_retrain(m.augmenter, m.standard, m.p, x, g())
    assert torch.equal(m(x.float() / 255, generator=g()), ref)
    # uint8 in, uint8 out: the float result rounded
    assert torch.equal(m(x, generator=g()), ref.mul(255).round().to(torch.uint8))


def test_the_retraining_under_autocast_is_the_module_under_autocast():
    """Stage 5 (LearnedRetrain.augment) calls the module under the run's autocast: bfloat16 E and G as
    before, bit for bit."""
    from fastaug.train.influence_loop.method import LearnedRetrain

    m, x = build("influence"), images("influence", n=8)
    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    ref = _learned_retrain(m.augmenter, m.standard, m.p, x, g(), bf16)
    stub = types.SimpleNamespace(transform=m, counts={"learned": 0, "images": 0})
    got = LearnedRetrain.augment(stub, x, labels(8), types.SimpleNamespace(rng=g(), autocast=bf16)).x
    assert torch.equal(got, ref)
    assert not torch.equal(got, m(x.float() / 255, generator=g()))  # autocast did change E and G's arithmetic
    assert stub.counts["images"] == 8 and 0 < stub.counts["learned"] < 8


def test_influence_without_recipe_is_augmenter_forward():
    """p = 1 and no standard recipe: Augmenter.forward(x, rng) after the pick coins (all images picked)."""
    m, x = build("influence", standard=False), images("influence", dtype=torch.float32)
    m.p = 1.0
    r = g()
    torch.rand(x.shape[0], generator=r)  # the pick coins
    assert torch.equal(m(x, generator=g()), m.augmenter(x, rng=r))


def test_influence_params_with_codes_replay_on_another_image():
    m, x = build("influence", standard=False), images("influence", dtype=torch.float32)
    m.p = 1.0
    _, p = m(x, generator=g(), return_params=True)
    other = images("influence", seed=1, dtype=torch.float32)
    maps = m.augmenter.params(p.learned.codes)
    assert torch.equal(m(other, params=p), m.augmenter.apply(other, maps))


class _Images:
    def __init__(self, x, y):
        self.images, self.labels = x, y

    def __len__(self):
        return self.images.shape[0]


@pytest.mark.parametrize("shared", [False, True])
def test_translation_is_stage_ones_translate_all(shared):
    """SubgroupTranslation into subgroup k against translate_all's [:, k] (stage 1's precomputation)."""
    from fastaug.train.patching.translation import translate_all

    gens = translation_generators(shared)
    translator = torch.nn.Module()
    translator.gans = torch.nn.ModuleDict()
    for key, (into0, into1) in gens.items():
        gan = CycleGAN(1, SIDE, "unet", 4, 4)
        gan.g_ba, gan.g_ab = into0, into1
        translator.gans[key] = gan
    m = A.SubgroupTranslation(gens, ["even", "odd"], [["clean", "zigzag"]] * 2, 1, SIDE, "unet", 4)
    x, y = images("translation", n=10), labels(10)
    ref = translate_all(translator, _Images(x, y))
    for k in (0, 1):
        assert torch.equal(m.translate(x, y, k), ref[:, k])
    into = torch.tensor([0, 1] * 5)
    mixed, p = m(x, y, params=m.params_into(into), return_params=True)
    assert torch.equal(mixed[0], ref[torch.arange(10), into]) and torch.equal(mixed[1], y)


def test_translation_draws_a_subgroup_per_image():
    m, x = build("translation"), images("translation", n=200)
    _, p = m(x, torch.zeros(200, dtype=torch.int64), generator=g(), return_params=True)
    assert 0.35 < p.learned.into.float().mean() < 0.65


def test_networks_stay_frozen_in_train_mode_and_carry_no_graph():
    m, x = build("translation"), images("translation", dtype=torch.float32)
    ref = m(*args_for("translation", x), generator=g())[0]
    m.train()
    assert m.training and not any(n.training for n in m.nets.modules())
    out = m(*args_for("translation", x), generator=g())[0]
    assert torch.equal(out, ref) and not out.requires_grad


def test_the_networks_given_are_held_not_copied_or_frozen():
    """A method can apply the controller it trains through the module: the module neither copies it nor
    switches its gradients off."""
    c = PolicyController(2, 2)
    m = A.ControllerAugment(c, 3, SIDE)
    assert m.controller is c and all(q.requires_grad for q in c.parameters())
    x = images("adversarial")
    before = m(x, generator=g())
    with torch.no_grad():
        c.op_head.bias[3] += 20.0  # the controller changes: the module follows
    after, p = m(x, generator=g(), return_params=True)
    assert not torch.equal(before, after) and bool((p.learned.op == 3).all())


def test_standard_false_applies_the_learned_part_alone():
    m, x = build("adversarial"), images("adversarial")
    bare = A.ControllerAugment(m.controller, 3, SIDE, None, fill=m.fill)
    out, p = bare(x, generator=g(), return_params=True)
    assert p.standard is None
    from fastaug import apply_ops

    assert torch.equal(out, apply_ops(x, fill=m.fill, **p.learned.kwargs()))


@pytest.mark.cuda
@pytest.mark.parametrize("kind", KINDS)
def test_on_cuda_matches_cpu(kind):
    m, x = build(kind), images(kind)
    cpu, p = m(*args_for(kind, x), generator=g(), return_params=True)
    gpu, pg = m.to("cuda")(*args_for(kind, x.cuda()), generator=g(), return_params=True)
    if kind in ("adversarial", "random", "tanda"):  # the same draws (taken on the CPU)
        ops = (lambda q: q.learned.op) if kind != "tanda" else (lambda q: q.learned.ops.op)
        assert torch.equal(ops(p), ops(pg).cpu())
    diff = (image_of(kind, cpu).float() - image_of(kind, gpu).cpu().float()).abs()
    assert diff.mean() < 0.05 and diff.max() <= (1 if kind in ("influence", "translation") else 0)


def test_controller_must_be_a_policy_controller():
    with pytest.raises(TypeError, match="PolicyController"):
        A.ControllerAugment(torch.nn.Linear(2, 2), 3, SIDE)
    with pytest.raises(TypeError, match="one sub-policy"):
        A.SequenceAugment(PolicyController(2, 3), 3, SIDE)
    with pytest.raises(ValueError, match="p must be in"):
        A.SequenceAugment(PolicyController(1, 3), 3, SIDE, p=2)


def test_translation_describe_summarises_stage_ones_grading():
    """``fastaug show`` prints one line per graded direction and each flag, not the raw record."""
    from fastaug.train.patching.grading import THRESHOLDS, quality_flags

    directions = [{"class": "even", "from": "clean", "to": "zigzag", "images": 201, "target": 0.557,
                   "class_kept": 0.786, "change": 0.097},
                  {"class": "odd", "from": "zigzag", "to": "clean", "images": 199, "target": 0.1,
                   "class_kept": 0.2, "change": 0.01}]
    quality = {"held_out": 400, "directions": directions}
    quality["flags"] = quality_flags(quality, THRESHOLDS)
    m = build("translation")
    m.provenance["quality"] = quality
    text = "\n".join(m.describe())
    assert "translation quality on 400 held-out images" in text
    assert "even: clean -> zigzag (201 images): target 55.7 %, class kept 78.6 %, change 0.097" in text
    assert "odd: zigzag -> clean (199 images): target 10.0 %, class kept 20.0 %, change 0.010" in text
    assert quality["flags"] and all(f"flagged: {f}" in text for f in quality["flags"])
    assert not any(f.startswith("even") for f in quality["flags"])  # the good direction is not flagged
    m.provenance.pop("quality")
    assert "translation quality: not recorded in this file" in "\n".join(m.describe())


@pytest.mark.parametrize("kind", KINDS)
def test_moved_to_float64_it_computes_in_float64_and_keeps_each_inputs_dtype(kind):
    """``aug.double()`` / ``aug.to(torch.float64)`` (as a float64 pipeline moves its modules) used to stop
    inside the controller's LSTM or the networks (input float32, weights float64). Reference: the float32
    module with the same seed -- the same draws, and images equal up to float32 rounding."""
    ref_m = build(kind)
    m = build(kind).double()
    x = images(kind, dtype=torch.float64)
    ref, p_ref = ref_m(*args_for(kind, x), generator=g(), return_params=True)
    out, p = m(*args_for(kind, x), generator=g(), return_params=True)
    out, ref = image_of(kind, out), image_of(kind, ref)
    assert out.dtype == torch.float64 and out.shape == x.shape
    if kind in ("adversarial", "tanda"):  # the controller's draws do not depend on its precision here
        ops = (lambda q: q.learned.op) if kind == "adversarial" else (lambda q: q.learned.ops.op)
        assert torch.equal(ops(p), ops(p_ref))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    x8 = images(kind)  # uint8 in, uint8 out, within one level of the float32 module's
    out8 = image_of(kind, m.to(torch.float64)(*args_for(kind, x8), generator=g()))
    ref8 = image_of(kind, ref_m(*args_for(kind, x8), generator=g()))
    assert out8.dtype == torch.uint8 and (out8.int() - ref8.int()).abs().max() <= 1


def test_translation_labels_given_as_one_int_are_the_class_of_every_image():
    """``labels=`` is documented as "(N,) or an int", and ``translate(x, labels, into)`` broadcasts an int
    ``into``; an int label for a batch was refused ("labels must give one class per image (6), got 1")."""
    m, x = build("translation"), images("translation")
    for y in (0, 1):
        ref = m.translate(x, torch.full((6,), y), 1)
        assert torch.equal(m.translate(x, y, 1), ref)
        assert torch.equal(m(x, labels=y, params=m.params_into(torch.ones(6, dtype=torch.int64))), ref)
    with pytest.raises(ValueError, match=r"labels must give one class per image \(6\), got 2"):
        m(x, labels=[0, 1])
