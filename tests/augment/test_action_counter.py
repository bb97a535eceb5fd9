"""ActionCounter: the per-epoch op / magnitude frequencies of sampled policies, against a count by hand."""
import pytest
import torch

from fastaug.augment.policy_batch import ActionCounter


def test_frequencies_are_the_fractions_of_every_action_added_since_reset():
    c = ActionCounter(num_ops=4, num_bins=3)
    assert c.frequencies() == {}
    c.add(torch.tensor([[0, 1], [1, 3]]), torch.tensor([[2, 2], [0, 2]]))
    c.add(torch.tensor([1]), torch.tensor([1]))
    f = c.frequencies()
    # ops 0, 1, 1, 3, 1 -> counts [1, 3, 0, 1] of 5; levels 2, 2, 0, 2, 1 -> [1, 1, 3] of 5
    assert f["op_frequencies"] == pytest.approx([0.2, 0.6, 0.0, 0.2])
    assert f["magnitude_frequencies"] == pytest.approx([0.2, 0.2, 0.6])
    state = c.state_dict()
    c.reset()
    assert c.frequencies() == {}
    c.load_state_dict(state)
    assert c.frequencies() == f
    state["op_counts"][0] = 100  # the counter keeps its own copy
    assert c.frequencies() == f


def test_out_of_range_ids_are_not_silently_counted():
    c = ActionCounter(num_ops=4, num_bins=3)
    with pytest.raises(RuntimeError):
        c.add(torch.tensor([5]), torch.tensor([0]))
