"""Policy modules: per-image sampling, determinism under a generator, CPU/CUDA agreement."""
import pytest
import torch

import fastaug
from fastaug.augment import AutoAugment, Policy, PolicyAugment, RandAugment, SubPolicy, TrivialAugment
from fastaug.augment.op_table import CIFAR10_POLICY, IMAGENET_POLICY, OP_IDS, WIDE_OP_SPACE

MODULES = [
    lambda: AutoAugment("imagenet"),
    lambda: AutoAugment("cifar10"),
    lambda: RandAugment(num_ops=2, magnitude=9),
    lambda: TrivialAugment(),
    lambda: PolicyAugment(Policy.from_tensors(torch.tensor([[0, 14], [15, 7], [4, 10]]),
                                              torch.tensor([[3, 9], [5, 0], [9, 2]]))),
]


def _images(N=12, dtype=torch.uint8):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (N, 3, 20, 18), generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255


@pytest.mark.parametrize("make", MODULES)
def test_same_seed_same_output(make, device):
    x = _images().to(device)
    m = make()
    a = m(x, generator=torch.Generator().manual_seed(1))
    b = m(x, generator=torch.Generator().manual_seed(1))
    c = m(x, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("make", MODULES)
def test_output_is_apply_ops_of_returned_params(make):
    x = _images(dtype=torch.float32)
    out, prm = make()(x, generator=torch.Generator().manual_seed(3), return_params=True)
    assert torch.equal(out, fastaug.apply_ops(x, **prm.kwargs()))
    assert prm.op.shape[0] == x.shape[0]


def test_ops_differ_per_image():
    prm = TrivialAugment().sample(_images(64), torch.Generator().manual_seed(0))
    assert len(set(prm.op[:, 0].tolist())) > 5
    assert set(prm.op.flatten().tolist()) <= set(WIDE_OP_SPACE)


def test_autoaugment_uses_published_subpolicies():
    x = _images(200)
    prm = AutoAugment("imagenet").sample(x, torch.Generator().manual_seed(0))
    allowed = {(OP_IDS[a], OP_IDS[b]) for (a, _, _), (b, _, _) in IMAGENET_POLICY}
    for o1, o2 in prm.op.tolist():
        assert o1 == -1 or o2 == -1 or (o1, o2) in allowed
    assert (prm.op == -1).any()  # probabilities < 1 skip some ops
    assert len(CIFAR10_POLICY) == len(IMAGENET_POLICY) == 25


def test_rand_augment_magnitude():
    prm = RandAugment(num_ops=3, magnitude=15, num_magnitude_bins=31).sample(_images(8), None)
    assert prm.op.shape == (8, 3)
    assert torch.allclose(prm.magnitude, torch.full((8, 3), 0.5))


def test_policy_validation():
    with pytest.raises(ValueError, match="op ids"):
        SubPolicy((16, 0), (1, 1))
    with pytest.raises(ValueError, match="levels"):
        Policy([SubPolicy((1, 0), (1, 10))], num_bins=10)
    with pytest.raises(ValueError, match="same length"):
        Policy([SubPolicy((1, 0), (1, 1)), SubPolicy((1,), (1,))])
    with pytest.raises(ValueError, match="policy"):
        AutoAugment("svhn-typo")


@pytest.mark.cuda
@pytest.mark.parametrize("make", MODULES)
def test_cpu_and_cuda_agree(make):
    x = _images()
    m = make()
    a = m(x, generator=torch.Generator().manual_seed(4))
    b = m(x.cuda(), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b.cpu())
