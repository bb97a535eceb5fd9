"""PolicyController: shapes, seeded sampling, log-probabilities against an independent LSTMCell
re-implementation, sampling frequencies, and REINFORCE moving the policy to a rewarded op."""
import pytest
import torch
import torch.nn.functional as F

from fastaug.augment.controller import PolicyController
from fastaug.augment.reinforce import adversarial_controller_loss, normalise_losses


def _controller(seed=0, **kw):
    torch.manual_seed(seed)
    return PolicyController(**kw)


def test_shapes_ranges_and_seeded_draws():
    c = _controller()
    s = c.sample(8, torch.Generator().manual_seed(3))
    assert s.ops.shape == s.levels.shape == (8, 5, 2) and s.ops.dtype == torch.int64
    assert s.log_prob.shape == s.entropy.shape == (8,) and s.step_log_probs.shape == (8, 5, 2, 2)
    assert s.op_probs.shape == (8, 5, 2, 16) and s.level_probs.shape == (8, 5, 2, 10)
    assert 0 <= s.ops.min() and s.ops.max() < 16 and 0 <= s.levels.min() and s.levels.max() < 10
    assert s.log_prob.requires_grad and s.entropy.requires_grad
    again = c.sample(8, torch.Generator().manual_seed(3))
    other = c.sample(8, torch.Generator().manual_seed(4))
    assert torch.equal(s.ops, again.ops) and torch.equal(s.levels, again.levels)
    assert not (torch.equal(s.ops, other.ops) and torch.equal(s.levels, other.levels))
    pol = s.policies()
    assert len(pol) == 8 and torch.equal(pol[2].ops, s.ops[2]) and torch.equal(pol[2].levels, s.levels[2])


def _reference_log_prob(c, ops, levels):
    """Independent forward: an nn.LSTMCell with the LSTM's weights, actions fed by hand."""
    cell = torch.nn.LSTMCell(c.lstm.input_size, c.lstm.hidden_size)
    cell.weight_ih.data, cell.weight_hh.data = c.lstm.weight_ih_l0.data, c.lstm.weight_hh_l0.data
    cell.bias_ih.data, cell.bias_hh.data = c.lstm.bias_ih_l0.data, c.lstm.bias_hh_l0.data
    M = ops.shape[0]
    h = cx = torch.zeros(M, c.lstm.hidden_size)
    inp = torch.zeros(M, c.lstm.input_size)
    total, entropy = torch.zeros(M), torch.zeros(M)
    for q in range(ops.shape[1]):
        for l in range(ops.shape[2]):
            for kind in ("op", "level"):
                h, cx = cell(inp, (h, cx))
                head = c.op_head if kind == "op" else c.level_head
                logp = F.log_softmax(head(h), -1)
                a = ops[:, q, l] if kind == "op" else levels[:, q, l]
                total += logp[torch.arange(M), a]
                entropy += -(logp.exp() * logp).sum(-1)
                inp = c.embedding.weight[a if kind == "op" else a + c.num_ops]
    return total, entropy


def test_log_prob_and_entropy_match_an_independent_computation():
    c = _controller(1)
    with torch.no_grad():  # make the distributions far from uniform so a wrong index shows
        c.op_head.weight.mul_(30)
        c.level_head.weight.mul_(30)
    s = c.sample(6, torch.Generator().manual_seed(0))
    ref, ent = _reference_log_prob(c, s.ops, s.levels)
    torch.testing.assert_close(s.log_prob, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s.entropy, ent, rtol=1e-5, atol=1e-5)
    # per-step probabilities: the chosen actions' probabilities multiply to the policy's
    chosen = s.op_probs.gather(-1, s.ops[..., None]).log().sum((1, 2, 3)) + \
        s.level_probs.gather(-1, s.levels[..., None]).log().sum((1, 2, 3))
    torch.testing.assert_close(chosen, s.log_prob.detach(), rtol=1e-5, atol=1e-5)
    # teacher-forced evaluation of the same actions gives the same log-probabilities
    e = c.evaluate(s.ops, s.levels)
    torch.testing.assert_close(e.log_prob, s.log_prob)


def test_sampling_frequencies_follow_the_softmax():
    c = _controller(2, num_subpolicies=1, ops_per_subpolicy=1)
    with torch.no_grad():
        c.op_head.bias.copy_(torch.linspace(-2, 2, 16))
    s = c.sample(20000, torch.Generator().manual_seed(0))
    freq = torch.bincount(s.ops[:, 0, 0], minlength=16).double() / 20000
    expected = s.op_probs[0, 0, 0].double()  # the first step's distribution is the same for every row
    assert (freq - expected).abs().max() < 0.012


def test_reinforce_moves_the_sampled_ops_to_the_rewarded_op():
    c = _controller(3, num_subpolicies=1, ops_per_subpolicy=1)
    opt = torch.optim.Adam(c.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    target = 11
    before = c.sample(2000, torch.Generator().manual_seed(9)).ops.eq(target).double().mean()
    for _ in range(300):
        s = c.sample(8, g)
        reward = s.ops[:, 0, 0].eq(target).double()  # "loss" the adversary maximises
        loss = adversarial_controller_loss(normalise_losses(reward), s.log_prob, s.entropy, 1e-5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = c.sample(2000, torch.Generator().manual_seed(9)).ops.eq(target).double().mean()
    assert before < 0.15 and after > 0.8


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_bins"):
        PolicyController(num_bins=1)
    c = PolicyController()
    with pytest.raises(ValueError, match="M"):
        c.sample(0)
    with pytest.raises(ValueError, match="shape"):
        c.evaluate(torch.zeros(2, 4, 2, dtype=torch.long), torch.zeros(2, 4, 2, dtype=torch.long))


def _reference_sample(c, M, generator):
    """Independent sampler of the controller's documented draws: M x steps uniforms (float64) from the
    CPU generator, each step's action the inverse CDF of the softmax of an nn.LSTMCell step."""
    cell = torch.nn.LSTMCell(c.lstm.input_size, c.lstm.hidden_size)
    cell.weight_ih.data, cell.weight_hh.data = c.lstm.weight_ih_l0.data, c.lstm.weight_hh_l0.data
    cell.bias_ih.data, cell.bias_hh.data = c.lstm.bias_ih_l0.data, c.lstm.bias_hh_l0.data
    Q, L = c.num_subpolicies, c.ops_per_subpolicy
    u = torch.rand(M, 2 * Q * L, generator=generator, dtype=torch.float64)
    h = cx = torch.zeros(M, c.lstm.hidden_size)
    inp = torch.zeros(M, c.lstm.input_size)
    actions = []
    with torch.no_grad():
        for step in range(2 * Q * L):
            h, cx = cell(inp, (h, cx))
            is_op = step % 2 == 0
            probs = torch.softmax((c.op_head if is_op else c.level_head)(h), -1).double()
            cdf = probs.cumsum(-1)
            a = (cdf < u[:, step:step + 1]).sum(1).clamp(max=probs.shape[1] - 1)
            actions.append(a)
            inp = c.embedding.weight[a if is_op else a + c.num_ops]
    a = torch.stack(actions, 1).view(M, Q, L, 2)
    return a[..., 0], a[..., 1]


def test_draws_on_the_device_match_an_independent_sampler(device):
    """The same seeded CPU generator gives, on any device, the policies an independent sampler draws
    (so a run's policies do not depend on the device)."""
    c = _controller(4)
    ref_ops, ref_levels = _reference_sample(c, 16, torch.Generator().manual_seed(5))
    s = c.to(device).sample(16, torch.Generator().manual_seed(5))
    assert torch.equal(s.ops.cpu(), ref_ops) and torch.equal(s.levels.cpu(), ref_levels)
    assert len(set(map(tuple, ref_ops.reshape(16, -1).tolist()))) > 1  # not one repeated policy
