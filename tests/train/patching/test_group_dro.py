"""Class-conditional and plain group DRO against a hand computation of a few steps."""
import math

import pytest
import torch

from fastaug.train.group_dro import GroupDRO


def _hand(steps, counts, classes, eta, c):
    """Plain-Python group DRO: returns the loss of each step and the final log-weights."""
    q = [0.0] * len(counts)
    adj = [c / math.sqrt(n) for n in counts]
    out = []
    for losses, groups in steps:
        mean = []
        for g in range(len(counts)):
            mine = [l for l, h in zip(losses, groups) if h == g]
            mean.append(sum(mine) / len(mine) if mine else 0.0)
        q = [qg + eta * (lg + ag) for qg, lg, ag in zip(q, mean, adj)]
        total = 0.0
        for y in set(classes):
            members = [g for g in range(len(counts)) if classes[g] == y]
            z = sum(math.exp(q[g]) for g in members)
            share = len(members) / len(counts)
            total += sum(share * math.exp(q[g]) / z * mean[g] for g in members)
        out.append(total)
    return out, q


STEPS = [([1.0, 2.0, 0.5, 3.0, 0.2], [0, 1, 1, 2, 3]),
         ([0.4, 2.5, 2.5, 0.1], [0, 1, 3, 3]),  # group 2 absent: moves by its adjustment only
         ([0.3, 1.9, 0.6, 0.9, 0.7, 0.1], [0, 1, 2, 3, 3, 0])]


@pytest.mark.parametrize("classes", [[0, 0, 1, 1], [0, 0, 0, 0]], ids=["class-conditional", "plain"])
def test_matches_hand_computation(classes):
    counts, eta, c = [90, 10, 12, 88], 0.5, 1.0
    dro = GroupDRO(torch.tensor(counts), torch.tensor(classes), step_size=eta, adjustment=c)
    want, q = _hand(STEPS, counts, classes, eta, c)
    for (losses, groups), w in zip(STEPS, want):
        got = dro.loss(torch.tensor(losses, dtype=torch.float64), torch.tensor(groups))
        assert got.item() == pytest.approx(w, rel=1e-12)
    assert dro.q.tolist() == pytest.approx(q, rel=1e-12)
    assert dro.weights().sum().item() == pytest.approx(1.0)
    if classes[0] != classes[-1]:  # each class keeps half the weight
        assert dro.weights()[:2].sum().item() == pytest.approx(0.5)


def test_gradient_is_the_weighted_group_mean_and_state_round_trips():
    dro = GroupDRO([5, 5, 5], None, step_size=1.0)
    losses = torch.tensor([1.0, 4.0, 2.0, 0.5], requires_grad=True)  # group means 2.5, 2, 0.5
    loss = dro.loss(losses, torch.tensor([0, 0, 1, 2]))
    loss.backward()
    w = dro.weights().float()
    assert torch.allclose(losses.grad, torch.stack([w[0] / 2, w[0] / 2, w[1], w[2]]))
    assert w[0] > w[1] > w[2]  # the worst group gains weight
    other = GroupDRO([5, 5, 5], None, step_size=1.0)
    other.load_state_dict(dro.state_dict())
    batch = (torch.tensor([0.3, 0.2, 0.9]), torch.tensor([0, 1, 2]))
    assert dro.loss(*batch).item() == other.loss(*batch).item()
    with pytest.raises(ValueError, match="has 2 groups"):
        GroupDRO([1, 1]).load_state_dict(dro.state_dict())
