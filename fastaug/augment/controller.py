"""The policy controller of Adversarial AutoAugment (and TANDA's sequence generator): a one-layer LSTM.

The controller emits a policy as a sequence of discrete actions (the Adversarial AutoAugment paper, section 3.3 and
Figure 3): Q sub-policies x L ops x (op type over ``num_ops``, then magnitude level over
``num_bins``), 2·Q·L actions in all (20 with the paper's Q=5, L=2). Each step's softmax picks an
action, and the embedding of that action is the next step's input. Sizes follow the paper (4.1):
hidden 100, embedding 32.

Conventions where the paper is silent (they follow the unofficial PyTorch reproduction
SeongwoongCho/adversarial-autoaugment-pytorch, the design the benchmarks compare against):

* the op and magnitude actions share one embedding table (``num_ops + num_bins`` rows, magnitudes
  after the ops); two linear heads map the hidden state to op logits and magnitude logits;
* the first step's input and the LSTM's initial state are zeros; parameters are initialised
  uniformly in [-0.1, 0.1] and the heads' biases at 0 (a near-uniform first policy);
* unlike that reproduction, which restarts the LSTM for every sub-policy, the Q sub-policies form
  one sequence of 2·Q·L steps (the issue's reading of "each action's embedding fed to the next step").

Sampling draws every uniform number from a CPU ``torch.Generator`` first (``(M, 2·Q·L)`` at once)
and picks each action by inverse CDF on the controller's device, so the same seed gives the same
policies on CPU and CUDA. :meth:`PolicyController.evaluate` re-runs the LSTM on given actions
(teacher forcing) to get their log-probabilities with gradients, e.g. for a REINFORCE update made
after a resume, when the graph of the original sample is gone.
"""
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .op_table import AUTOAUGMENT_BINS, NUM_OPS
from .params import Policy

__all__ = ["PolicySample", "PolicyController"]


@dataclasses.dataclass
class PolicySample:
    """M policies emitted by a :class:`PolicyController`.

    Attributes:
        ops: (M, Q, L) int64 op ids in [0, num_ops).
        levels: (M, Q, L) int64 magnitude levels in [0, num_bins).
        log_prob: (M,) log-probability of each whole policy (sum over its 2·Q·L actions); carries
            gradients to the controller.
        entropy: (M,) sum of the 2·Q·L step entropies; carries gradients.
        step_log_probs: (M, Q, L, 2) log-probability of each op action ([..., 0]) and magnitude
            action ([..., 1]); carries gradients (TANDA credits rewards per transformation).
        op_probs: (M, Q, L, num_ops) detached softmax of each op step (for figures).
        level_probs: (M, Q, L, num_bins) detached softmax of each magnitude step.
    """

    ops: torch.Tensor
    levels: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor
    step_log_probs: torch.Tensor
    op_probs: torch.Tensor
    level_probs: torch.Tensor

    def policies(self, num_bins=AUTOAUGMENT_BINS):
        """The M policies as :class:`fastaug.augment.Policy` objects (no op probabilities, as in AdvAA)."""
        return [Policy.from_tensors(o, l, num_bins=num_bins) for o, l in zip(self.ops, self.levels)]


class PolicyController(nn.Module):
    """One-layer LSTM emitting ``M`` policies of ``num_subpolicies`` x ``ops_per_subpolicy`` (op, level) pairs.

    Args:
        num_subpolicies: Q (5 in the paper).
        ops_per_subpolicy: L (2 in the paper).
        num_ops: op types to choose from (the 16 ops of :data:`fastaug.augment.op_table.SEARCH_SPACE`).
        num_bins: magnitude levels (10).
        hidden_size, embedding_size: LSTM sizes (100 and 32 in the paper).
    """

    def __init__(self, num_subpolicies=5, ops_per_subpolicy=2, num_ops=NUM_OPS, num_bins=AUTOAUGMENT_BINS,
                 hidden_size=100, embedding_size=32, init_range=0.1):
        super().__init__()
        for name, v, low in (("num_subpolicies", num_subpolicies, 1), ("ops_per_subpolicy", ops_per_subpolicy, 1),
                             ("num_ops", num_ops, 1), ("num_bins", num_bins, 2), ("hidden_size", hidden_size, 1),
                             ("embedding_size", embedding_size, 1)):
            if int(v) != v or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v}")
        self.num_subpolicies, self.ops_per_subpolicy = int(num_subpolicies), int(ops_per_subpolicy)
        self.num_ops, self.num_bins = int(num_ops), int(num_bins)
        self.embedding = nn.Embedding(self.num_ops + self.num_bins, embedding_size)
        self.lstm = nn.LSTM(embedding_size, hidden_size, num_layers=1, batch_first=True)
        self.op_head = nn.Linear(hidden_size, self.num_ops)
        self.level_head = nn.Linear(hidden_size, self.num_bins)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-init_range, init_range)
            self.op_head.bias.zero_()
            self.level_head.bias.zero_()

    @property
    def num_steps(self):
        """Actions per policy: 2·Q·L."""
        return 2 * self.num_subpolicies * self.ops_per_subpolicy

    def _device(self):
        return self.op_head.weight.device

    def _run(self, M, generator=None, ops=None, levels=None):
        """Run the 2·Q·L steps for M sequences, sampling actions (ops is None) or replaying given ones."""
        Q, L = self.num_subpolicies, self.ops_per_subpolicy
        dev = self._device()
        replay = ops is not None
        if replay:
            acts = torch.stack([ops.reshape(M, Q * L), levels.reshape(M, Q * L)], 2).reshape(M, 2 * Q * L).to(dev)
        else:
            if generator is not None and generator.device.type != "cpu":
                raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
            u = torch.rand(M, self.num_steps, generator=generator, dtype=torch.float64).t().contiguous().to(dev)
        inp = torch.zeros(M, 1, self.embedding.embedding_dim, device=dev, dtype=self.embedding.weight.dtype)
        state = None
        chosen, logps, ents, op_probs, level_probs = [], [], [], [], []
        for s in range(self.num_steps):
            out, state = self.lstm(inp, state)
            is_op = s % 2 == 0
            logits = (self.op_head if is_op else self.level_head)(out[:, 0])
            logp = F.log_softmax(logits, dim=-1)
            probs = logp.exp()
            if replay:
                a = acts[:, s]
            else:
                cdf = probs.detach().double().cumsum(-1)
                a = torch.searchsorted(cdf, u[s].unsqueeze(1)).squeeze(1).clamp_(max=logits.shape[1] - 1)
            chosen.append(a)
            logps.append(logp.gather(1, a[:, None])[:, 0])
            ents.append(-(probs * logp).sum(-1))
            (op_probs if is_op else level_probs).append(probs.detach())
            inp = self.embedding(a if is_op else a + self.num_ops).unsqueeze(1)
        a = torch.stack(chosen, 1).view(M, Q, L, 2)
        step_logp = torch.stack(logps, 1).view(M, Q, L, 2)
        return PolicySample(ops=a[..., 0].contiguous(), levels=a[..., 1].contiguous(),
                            log_prob=step_logp.sum((1, 2, 3)), entropy=torch.stack(ents, 1).sum(1),
                            step_log_probs=step_logp, op_probs=torch.stack(op_probs, 1).view(M, Q, L, -1),
                            level_probs=torch.stack(level_probs, 1).view(M, Q, L, -1))

    def sample(self, M, generator=None):
        """Draw M policies; returns a :class:`PolicySample` whose log_prob/entropy carry gradients."""
        if int(M) != M or M < 1:
            raise ValueError(f"M (the number of policies) must be a positive integer, got {M}")
        return self._run(int(M), generator=generator)

    def evaluate(self, ops, levels):
        """Log-probabilities and entropies of given policies ``ops``/``levels`` (M, Q, L), with gradients."""
        ops, levels = torch.as_tensor(ops), torch.as_tensor(levels)
        shape = (self.num_subpolicies, self.ops_per_subpolicy)
        if ops.dim() != 3 or tuple(ops.shape[1:]) != shape or ops.shape != levels.shape:
            raise ValueError(f"ops and levels must both have shape (M, {shape[0]}, {shape[1]}), got "
                             f"{tuple(ops.shape)} and {tuple(levels.shape)}")
        if ops.min() < 0 or ops.max() >= self.num_ops or levels.min() < 0 or levels.max() >= self.num_bins:
            raise ValueError(f"ops must be in [0, {self.num_ops}) and levels in [0, {self.num_bins})")
        return self._run(ops.shape[0], ops=ops.long(), levels=levels.long())

    def forward(self, M, generator=None):
        return self.sample(M, generator)

    def extra_repr(self):
        return (f"Q={self.num_subpolicies}, L={self.ops_per_subpolicy}, num_ops={self.num_ops}, "
                f"num_bins={self.num_bins}")
