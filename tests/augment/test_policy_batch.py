"""M policies on an M·N batch in one apply_ops call: layout, sub-policy draws, the ops each row gets."""
import pytest
import torch

from fastaug.augment.op_table import OP_IDS
from fastaug.augment.params import Policy, sample_policy
from fastaug.augment.policy_batch import (action_frequencies, apply_policy_batch, policy_batch_params,
                                          policy_groups, random_policies, replicate)


def test_layout_is_policy_major():
    x = torch.arange(3 * 2).view(3, 2)
    xr = replicate(x, 4)
    assert xr.shape == (12, 2)
    for m in range(4):
        assert torch.equal(xr[m * 3:(m + 1) * 3], x)
    assert torch.equal(policy_groups(4, 3), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]))
    with pytest.raises(ValueError, match="M"):
        replicate(x, 0)


def test_each_row_gets_a_subpolicy_of_its_own_policy():
    g = torch.Generator().manual_seed(0)
    ops, levels = random_policies(6, 5, 2, generator=g)
    params, q = policy_batch_params(ops, levels, 50, 28, 28, generator=g)
    group = policy_groups(6, 50)
    assert params.op.shape == (300, 2) and params.magnitude.shape == (300, 2)
    torch.testing.assert_close(params.op, ops[group, q])
    torch.testing.assert_close(params.magnitude, levels[group, q].float() / 9)
    # every sub-policy index is used (uniform draw over Q)
    assert set(q.tolist()) == set(range(5))
    with pytest.raises(ValueError, match="levels"):
        policy_batch_params(ops, levels + 10, 50, 28, 28)


def test_one_policy_matches_the_policy_module_draws():
    """For M = 1 the draws equal sample_policy's (same order: sub-policy, then the extras)."""
    ops, levels = random_policies(1, 5, 2, generator=torch.Generator().manual_seed(1))
    ours, _ = policy_batch_params(ops, levels, 16, 28, 28, generator=torch.Generator().manual_seed(2))
    pol = Policy.from_tensors(ops[0], levels[0])
    # sample_policy draws keep-coins after the sub-policy (all kept here: no probabilities), so the
    # ops and magnitudes must agree
    ref = sample_policy(pol, 16, 28, 28, generator=torch.Generator().manual_seed(2))
    assert torch.equal(ours.op, ref.op) and torch.equal(ours.magnitude, ref.magnitude)


def test_apply_policy_batch_invert_vs_identity():
    """Policies 0, 2: Brightness at level 0 (identity); 1, 3: Invert. Each copy must be its policy's."""
    x = torch.randint(0, 256, (5, 1, 12, 12), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ops = torch.tensor([OP_IDS["Brightness"], OP_IDS["Invert"]] * 2).view(4, 1, 1).expand(4, 3, 1)
    levels = torch.zeros(4, 3, 1, dtype=torch.long)
    out = apply_policy_batch(replicate(x, 4), ops, levels, generator=torch.Generator().manual_seed(1), fill=0)
    for m in range(4):
        expected = 255 - x if m % 2 else x
        assert torch.equal(out[m * 5:(m + 1) * 5], expected), m


def test_action_frequencies():
    ops = torch.tensor([[[0, 3], [3, 15]]])
    levels = torch.tensor([[[9, 9], [0, 1]]])
    o, l = action_frequencies(ops, levels)
    assert o.tolist() == [1] + [0] * 2 + [2] + [0] * 11 + [1]
    assert l.tolist() == [1, 1] + [0] * 7 + [2]


def test_one_call_on_the_device_is_the_pillow_chain(device):
    """The batch on the device is, row by row and step by step, the Pillow oracle of the sub-policy the
    same seeded draws give (tests/oracles/pillow_policy.py)."""
    pytest.importorskip("PIL", reason="Pillow is the oracle of the policy ops")
    from oracles.pillow_policy import check_chain

    g = torch.Generator().manual_seed(0)
    ops, levels = random_policies(3, generator=g)
    x = torch.randint(0, 256, (6, 3, 16, 16), generator=g, dtype=torch.uint8)
    out = apply_policy_batch(replicate(x, 3).to(device), ops, levels, generator=torch.Generator().manual_seed(4))
    params, _ = policy_batch_params(ops, levels, 6, 16, 16, generator=torch.Generator().manual_seed(4))
    check_chain(replicate(x, 3), out, params, fill=128)
