"""Policy modules: what they sample, that their output is Pillow's, inputs of every shape and type,
parameter replay, and their policy in the state_dict.

The reference for an output is Pillow (tests/oracles/pillow_policy.py) applied to the parameters the
module reports; the sampling is checked against the published policies and the modules' definitions.
"""
import numpy as np
import pytest
import torch

import fastaug  # noqa: F401
from fastaug.augment import AutoAugment, Policy, PolicyAugment, PolicyParams, RandAugment, SubPolicy, TrivialAugment
from fastaug.augment.op_table import CIFAR10_POLICY, IMAGENET_POLICY, OP_IDS, WIDE_OP_SPACE

pytest.importorskip("PIL", reason="Pillow is the oracle of the policy ops (pip install pillow)")
from oracles.pillow_policy import check_chain  # noqa: E402

MODULES = {
    "autoaugment-imagenet": lambda: AutoAugment("imagenet"),
    "autoaugment-cifar10": lambda: AutoAugment("cifar10"),
    "randaugment": lambda: RandAugment(num_ops=2, magnitude=9),
    "trivialaugment": lambda: TrivialAugment(),
    "policy": lambda: PolicyAugment(Policy.from_tensors(torch.tensor([[0, 14], [15, 7], [4, 10]]),
                                                        torch.tensor([[3, 9], [5, 0], [9, 2]]))),
}


def _images(N=12, dtype=torch.uint8, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (N, C, 20, 18), generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255


@pytest.mark.parametrize("name", MODULES)
def test_same_seed_same_output(name, device):
    x = _images().to(device)
    m = MODULES[name]()
    a = m(x, generator=torch.Generator().manual_seed(1))
    b = m(x, generator=torch.Generator().manual_seed(1))
    c = m(x, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("C", [3, 1], ids=["rgb", "grey"])
@pytest.mark.parametrize("name", MODULES)
def test_output_is_pillows(name, C):
    """Every image's output is its sampled chain, each step equal to Pillow's (blends within 1)."""
    x = _images(16, C=C, seed=C)
    m = MODULES[name]()
    out, prm = m(x, generator=torch.Generator().manual_seed(3), return_params=True)
    check_chain(x, out, prm, fill=m.fill)


def test_ops_differ_per_image():
    prm = TrivialAugment().sample(_images(64), torch.Generator().manual_seed(0))
    assert len(set(prm.op[:, 0].tolist())) > 5
    assert set(prm.op.flatten().tolist()) <= set(WIDE_OP_SPACE)
    assert len(set(prm.magnitude[:, 0].tolist())) > 5  # a magnitude level per image


def test_autoaugment_uses_published_subpolicies_with_their_probabilities():
    N = 4000
    prm = AutoAugment("imagenet").sample(_images(1).expand(N, -1, -1, -1), torch.Generator().manual_seed(0))
    table = [((OP_IDS[a], pa, la), (OP_IDS[b], pb, lb)) for (a, pa, la), (b, pb, lb) in IMAGENET_POLICY]
    # Each image's (op, magnitude) pair must fit some published sub-policy (an op may be skipped: -1).
    kept = torch.zeros(2)
    for (o1, o2), (m1, m2) in zip(prm.op.tolist(), prm.magnitude.tolist()):
        fits = [s for s in table if all(o in (-1, s[i][0]) and (o == -1 or s[i][2] is None or
                                                               abs(mm - s[i][2] / 9) < 1e-6)
                                        for i, (o, mm) in enumerate(((o1, m1), (o2, m2))))]
        assert fits, f"({o1}, {o2}) at ({m1}, {m2}) is in no published sub-policy"
        kept += torch.tensor([o1 != -1, o2 != -1], dtype=torch.float)
    # Expected share of kept ops: the mean published probability of each position.
    expect = torch.tensor([sum(s[i][1] for s in table) / len(table) for i in range(2)])
    assert torch.allclose(kept / N, expect, atol=0.03), (kept / N, expect)
    assert len(CIFAR10_POLICY) == len(IMAGENET_POLICY) == 25


def test_rand_augment_magnitude():
    prm = RandAugment(num_ops=3, magnitude=15, num_magnitude_bins=31).sample(_images(8), None)
    assert prm.op.shape == (8, 3)
    assert torch.allclose(prm.magnitude, torch.full((8, 3), 0.5))


@pytest.mark.parametrize("bins", [1, 0, -3, 2.5, True, "31"])
def test_num_magnitude_bins_is_checked_at_construction(bins):
    # 1 used to construct and fail at the first call with NaN magnitudes, 0 inside torch's random_
    rule = r"^num_magnitude_bins must be an integer >= 2 .*, got " + repr(bins) + "$"
    with pytest.raises(ValueError, match=rule):
        TrivialAugment(num_magnitude_bins=bins)
    with pytest.raises(ValueError, match=rule):
        RandAugment(magnitude=0, num_magnitude_bins=bins)


def test_two_magnitude_bins_are_the_ends_of_the_range():
    # torchvision's linspace(0, max, 2): level 0 is magnitude 0, level 1 the maximum
    prm = TrivialAugment(num_magnitude_bins=2).sample(_images(400), torch.Generator().manual_seed(0))
    assert set(prm.magnitude.flatten().tolist()) == {0.0, 1.0}
    prm = RandAugment(num_ops=2, magnitude=1, num_magnitude_bins=2).sample(_images(4), torch.Generator().manual_seed(0))
    assert torch.equal(prm.magnitude, torch.ones(4, 2))
    x = _images(4)
    assert TrivialAugment(num_magnitude_bins=2)(x, generator=torch.Generator().manual_seed(1)).shape == x.shape


def test_policy_validation():
    with pytest.raises(ValueError, match="op ids"):
        SubPolicy((16, 0), (1, 1))
    with pytest.raises(ValueError, match="levels"):
        Policy([SubPolicy((1, 0), (1, 10))], num_bins=10)
    with pytest.raises(ValueError, match="same length"):
        Policy([SubPolicy((1, 0), (1, 1)), SubPolicy((1,), (1,))])
    with pytest.raises(ValueError, match="policy"):
        AutoAugment("svhn-typo")
    with pytest.raises(ValueError, match="fill"):
        RandAugment(fill=256)
    with pytest.raises(ValueError, match="nearest"):
        RandAugment(interpolation="bilinear")


# ---- shapes and types --------------------------------------------------------------------------------

@pytest.mark.parametrize("lead", [(), (5,), (2, 3)], ids=["CHW", "NCHW", "ABCHW"])
def test_leading_dimensions(lead):
    """(C, H, W), (N, C, H, W) and (A, B, C, H, W) in, same shape out; one draw per image, in the
    order of the flattened leading dimensions."""
    x = _images(6, seed=4)
    N = int(torch.tensor(lead).prod()) if lead else 1
    xs = x[:N].reshape(lead + x.shape[1:])
    m = RandAugment()
    out, prm = m(xs, generator=torch.Generator().manual_seed(5), return_params=True)
    assert out.shape == xs.shape and out.dtype == xs.dtype
    assert prm.op.shape[0] == N
    flat = m(x[:N], generator=torch.Generator().manual_seed(5))
    assert torch.equal(out.reshape(flat.shape), flat)
    check_chain(x[:N], flat, prm)


def test_float_images():
    x8 = _images(8, seed=6)
    xf = x8.float() / 255
    m = TrivialAugment()
    out, prm = m(xf, generator=torch.Generator().manual_seed(7), return_params=True)
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1
    # The float path follows the uint8 maths without rounding: within one level of the uint8 result.
    out8 = m(x8, params=prm)
    assert (out * 255 - out8.float()).abs().max() <= 1.0 + 1e-3


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_float_images_outside_unit_range_are_refused(bad):
    x = _images(2, dtype=torch.float32)
    x[1, 0, 3, 4] = bad
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RandAugment()(x)


def test_bad_inputs():
    m = RandAugment()
    with pytest.raises(ValueError, match="C, H, W"):
        m(torch.zeros(5, 5, dtype=torch.uint8))
    with pytest.raises(TypeError, match="no image"):
        m(3, "label")
    with pytest.raises(ValueError, match="channels"):
        m(torch.zeros(2, 4, 8, 8, dtype=torch.uint8))


# ---- parameter replay --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODULES)
def test_replayed_params_give_the_same_augmentation(name):
    x = _images(8, seed=8)
    m = MODULES[name]()
    out, prm = m(x, generator=torch.Generator().manual_seed(9), return_params=True)
    assert torch.equal(m(x.clone(), params=prm), out)  # a second view of the same images
    other = _images(8, seed=10)  # another image (e.g. a mask) gets the same ops, magnitudes, centres
    check_chain(other, m(other, params=prm), prm, fill=m.fill)


def test_replay_checks_the_batch_size():
    m = TrivialAugment()
    _, prm = m(_images(4), return_params=True)
    with pytest.raises(ValueError, match="leading dimension of 5"):
        m(_images(5), params=prm)
    with pytest.raises(TypeError, match="PolicyParams"):
        m(_images(4), params={"op": prm.op})


def test_generator_is_keyword_only():
    """v2.Compose / v2.RandomChoice pass (image, label): the label passes through, it is not the generator."""
    x = _images(3)
    img, label = RandAugment()(x, torch.tensor(7))
    assert img.shape == x.shape and int(label) == 7
    a = RandAugment()(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, RandAugment()(x, generator=torch.Generator().manual_seed(1)))


# ---- the policy in the state_dict --------------------------------------------------------------------

def _policy(seed, Q, L=2):
    g = torch.Generator().manual_seed(seed)
    return Policy.from_tensors(torch.randint(0, 16, (Q, L), generator=g), torch.randint(0, 10, (Q, L), generator=g),
                               torch.rand(Q, L, generator=g, dtype=torch.float64))


def test_state_dict_holds_the_policy():
    m = PolicyAugment(_policy(0, 5))
    sd = m.state_dict()
    assert set(sd) == {"policy_ops", "policy_levels", "policy_probs", "policy_num_bins"}
    assert torch.equal(sd["policy_ops"], _policy(0, 5).ops) and torch.equal(sd["policy_probs"], _policy(0, 5).probs)
    x = _images(32, seed=11)
    ref = m(x, generator=torch.Generator().manual_seed(12))
    other = PolicyAugment(_policy(1, 5))
    assert not torch.equal(other(x, generator=torch.Generator().manual_seed(12)), ref)
    other.load_state_dict(sd)
    assert torch.equal(other(x, generator=torch.Generator().manual_seed(12)), ref)


@pytest.mark.parametrize("Q, L", [(25, 2), (3, 1), (5, 3)])
def test_state_dict_with_another_number_of_subpolicies(Q, L):
    saved = PolicyAugment(_policy(2, Q, L))
    m = AutoAugment("cifar10")  # 25 sub-policies of 2 ops
    m.load_state_dict(saved.state_dict())
    assert m.policy_ops.shape == (Q, L) and len(m.policy) == Q
    x = _images(16, seed=13)
    g = lambda: torch.Generator().manual_seed(14)  # noqa: E731
    assert torch.equal(m(x, generator=g()), saved(x, generator=g()))


def test_invalid_policy_state_dict_is_refused_and_not_loaded():
    m = PolicyAugment(_policy(3, 4))
    before = m.state_dict()
    bad = PolicyAugment(_policy(4, 4)).state_dict()
    bad["policy_ops"][0, 0] = 16
    with pytest.raises(RuntimeError, match="op ids"):
        m.load_state_dict(bad)
    mismatched = dict(before, policy_levels=torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="one shape"):
        m.load_state_dict(mismatched)
    assert all(torch.equal(m.state_dict()[k], before[k]) for k in before)


def test_policy_assignment_and_in_place_edit():
    m = PolicyAugment(_policy(5, 4))
    m.policy = _policy(6, 7)
    assert len(m.policy) == 7 and torch.equal(m.policy_ops, _policy(6, 7).ops)
    x = _images(16)
    assert not torch.equal(m(x, generator=torch.Generator().manual_seed(0)), x)  # the policy is now cached
    with torch.no_grad():  # in place, as load_state_dict does: the cached policy must follow
        m.policy_ops.fill_(OP_IDS["Invert"])
        m.policy_probs.fill_(1.0)
    assert torch.equal(m(x, generator=torch.Generator().manual_seed(0)), x)  # Invert twice


@pytest.mark.cuda
@pytest.mark.parametrize("name", MODULES)
def test_cpu_and_cuda_agree(name):
    x = _images()
    m = MODULES[name]()
    a = m(x, generator=torch.Generator().manual_seed(4))
    b = m.cuda()(x.cuda(), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b.cpu())


@pytest.mark.cuda
def test_state_dict_on_cuda():
    m = PolicyAugment(_policy(7, 5)).cuda()
    sd = m.state_dict()
    assert sd["policy_ops"].is_cuda
    cpu = PolicyAugment(_policy(8, 9))
    cpu.load_state_dict(sd)
    assert torch.equal(cpu.policy_ops, m.policy_ops.cpu())


# ---- weighted sub-policies and policies in the published form --------------------------------------

def test_weights_choose_subpolicies_with_their_probabilities_and_uniform_is_unchanged():
    from fastaug.augment.params import sample_policy

    pol = _policy(9, 4)
    N = 20000
    # uniform (no weights): exactly the draws it always made, one randint per image first
    p = sample_policy(pol, N, 8, 8, torch.Generator().manual_seed(0))
    q = torch.randint(0, 4, (N,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(p.magnitude, pol.levels[q].float() / 9)
    w = torch.tensor([0.5, 0.0, 0.3, 0.2])
    weighted = Policy.from_tensors(pol.ops, pol.levels, pol.probs, weights=w * 7)  # normalised
    assert torch.allclose(weighted.weights, w.double())
    p = sample_policy(weighted, N, 8, 8, torch.Generator().manual_seed(0))
    # which sub-policy each image got: its levels identify it (distinct rows of the test policy)
    rows = {tuple(r): i for i, r in enumerate(pol.levels.tolist())}
    assert len(rows) == 4
    chosen = torch.tensor([rows[tuple(r)] for r in (p.magnitude * 9).round().long().tolist()])
    freq = torch.bincount(chosen, minlength=4).double() / N
    assert freq[1] == 0 and (freq - w.double()).abs().max() < 0.015


@pytest.mark.parametrize("bad", [[1, 2], [-1, 1, 1, 1], [0, 0, 0, 0], [float("nan"), 1, 1, 1]])
def test_bad_weights_are_refused(bad):
    with pytest.raises(ValueError, match="weights must be 4 finite non-negative numbers"):
        Policy.from_tensors(torch.zeros(4, 2, dtype=torch.int64), torch.zeros(4, 2, dtype=torch.int64), weights=bad)


@pytest.mark.parametrize("which", ["ops", "levels"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_from_tensors_refuses_non_integer_dtypes(which, dtype):
    # 0.7 and 14.9 were silently truncated to op 0 and level 14 (of 15 bins)
    good = {"ops": torch.tensor([[0, 14]]), "levels": torch.tensor([[3, 14]])}
    bad = dict(good, **{which: good[which].to(torch.float64).add(0.9 if dtype != torch.bool else 0).to(dtype)})
    what = "op ids" if which == "ops" else "magnitude levels"
    with pytest.raises(TypeError, match=f"^{which} must be an integer tensor of {what}, got {dtype}$"):
        Policy.from_tensors(bad["ops"], bad["levels"], num_bins=15)
    with pytest.raises(TypeError, match=f"{which} must be an integer tensor"):  # a float list too
        Policy.from_tensors(bad["ops"].tolist(), bad["levels"].tolist(), num_bins=15)
    # integer dtypes (int64, int32, uint8) and integer lists are taken as they are
    for t in (torch.int64, torch.int32, torch.uint8):
        pol = Policy.from_tensors(good["ops"].to(t), good["levels"].to(t), num_bins=15)
        assert pol.ops.tolist() == [[0, 14]] and pol.levels.tolist() == [[3, 14]]
    assert Policy.from_tensors([[0, 14]], [[3, 14]], num_bins=15).levels.tolist() == [[3, 14]]


@pytest.mark.parametrize("which", ["ops", "levels"])
@pytest.mark.parametrize("bad", [0.7, 3.0, np.float64(3.0), torch.tensor(3.0), True, torch.tensor(True)])
def test_subpolicy_refuses_non_integer_ids_and_levels(which, bad):
    # as from_tensors: 0.7 was silently truncated to op 0 (level 0); 3.0 is refused as a float list is there
    good = {"ops": (0, 14), "levels": (3, 9)}
    what = "op ids" if which == "ops" else "magnitude levels"
    with pytest.raises(TypeError, match=f"^{which} must be integer {what}, got "):
        SubPolicy(**dict(good, **{which: (bad, good[which][1])}))
    # integers of any kind are taken as they are: Python, NumPy, integer tensors (and their elements)
    for ops, levels in (((0, 14), (3, 9)), ((np.int64(0), np.int32(14)), (np.uint8(3), 9)),
                        (torch.tensor([0, 14]), torch.tensor([3, 9], dtype=torch.uint8))):
        sp = SubPolicy(ops, levels)
        assert sp.ops == (0, 14) and sp.levels == (3, 9) and all(type(v) is int for v in sp.ops + sp.levels)
    if which == "levels" and not isinstance(bad, (bool, torch.Tensor)):  # the published form: 7.5 was level 7
        with pytest.raises(TypeError, match="^sub-policy 1: levels must be integer magnitude levels"):
            AutoAugment([[("Rotate", 1.0, 7)], [("Rotate", 1.0, bad)]])


def test_autoaugment_takes_a_policy_in_the_published_form():
    subs = [[("Rotate", 1.0, 7), ("Equalize", 0.5, None)], [("Invert", 1.0, None), ("Color", 0.2, 3)]]
    aa = AutoAugment(subs, weights=[3, 1], fill=0)
    assert aa.policy_name == "custom" and torch.allclose(aa.policy.weights, torch.tensor([0.75, 0.25]).double())
    assert aa.policy.to_published() == [[["Rotate", 1.0, 7], ["Equalize", 0.5, None]],
                                        [["Invert", 1.0, None], ["Color", 0.2, 3]]]
    # the published policies in their own form give the same module as their name
    named = AutoAugment("cifar10")
    as_form = AutoAugment([list(sp) for sp in CIFAR10_POLICY])
    x = _images(16)
    assert torch.equal(named(x, generator=torch.Generator().manual_seed(1)),
                       as_form(x, generator=torch.Generator().manual_seed(1)))
    assert AutoAugment(Policy.published("imagenet")).policy_name == "custom"
    with pytest.raises(ValueError, match="unknown ops"):
        AutoAugment([[("Blur", 1.0, 3)]])
    with pytest.raises(ValueError, match=r"sequence of \(op name, probability, level or None\)"):
        AutoAugment([["Rotate"]])
    with pytest.raises(ValueError, match="weights go with a policy given as sub-policies"):
        AutoAugment("imagenet", weights=[1])


def test_weights_live_in_the_state_dict_only_when_there_are_some():
    weighted = AutoAugment([[("Rotate", 1.0, 7)], [("Invert", 1.0, None)], [("Color", 1.0, 2)]], weights=[1, 2, 3])
    sd = weighted.state_dict()
    assert torch.allclose(sd["policy_weights"], torch.tensor([1, 2, 3]).double() / 6)
    uniform = PolicyAugment(_policy(0, 5))
    assert "policy_weights" not in uniform.state_dict()
    x = _images(64, seed=3)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    ref = weighted(x, generator=g())
    uniform.load_state_dict(sd)  # a uniform module takes a weighted policy ...
    assert torch.equal(uniform(x, generator=g()), ref) and uniform.policy.weights is not None
    # ... and a weighted module a uniform one
    weighted.load_state_dict(PolicyAugment(_policy(0, 5)).state_dict())
    assert weighted.policy.weights is None and "policy_weights" not in weighted.state_dict()
