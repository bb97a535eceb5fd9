"""What ``fastaug train --augment adversarial | random | fixed`` learned, as loadable augmentations.

* :class:`ControllerAugment` (``adversarial``): the final policy controller of Adversarial AutoAugment.
  Each image gets its own policy drawn from the controller (Q sub-policies of L (op, level) pairs), one
  of its Q sub-policies uniformly at random, and every op of it (the paper removed AutoAugment's op
  probabilities) -- per image what the method does per copy of its M·N batch
  (:func:`~fastaug.augment.policy_batch.policy_batch_params`, which this module calls with one image
  per policy). :meth:`ControllerAugment.frozen_policy` turns the distribution into a fixed,
  human-readable policy in the published AutoAugment form, which :class:`fastaug.augment.AutoAugment`
  takes (:meth:`ControllerAugment.frozen` builds it).
* :class:`RandomPolicyAugment` (``random``, the paper's ablation): uniformly random ops and levels per
  image (a uniformly random sub-policy of a uniformly random policy has this distribution).
* :class:`FixedAugment` (``fixed``): no policy, the standard recipe alone.

"Most probable sub-policies" (:meth:`ControllerAugment.frozen_policy`)
-----------------------------------------------------------------------
An image's sub-policy s has probability P(s) = (1/Q) sum_q P(sub-policy q of a controller policy is s).
The controller is autoregressive over the whole policy (2·Q·L actions), so only q = 0's marginal can be
enumerated exactly; the others depend on every earlier sub-policy. P(s) is therefore estimated by seeded
Monte Carlo: ``samples`` policies are drawn from the controller (a ``torch.Generator`` seeded with
``seed``: the same estimate every time), and P(s) is the share of their ``samples·Q`` sub-policies equal
to s (an unbiased estimate, standard error sqrt(P(1 - P) / (samples·Q)), reported). Sub-policies that
differ only in the level of an op without a magnitude (AutoContrast, Invert, Equalize) are the same
transformation and are counted as one (level None in the published form). The K most frequent are the
frozen policy (ties in the order of op ids and levels); their estimated probabilities become its
sub-policy weights (normalised over the K), every op kept with probability 1.
"""
import dataclasses

import torch

from ..ops.policy import apply_ops
from .controller import PolicyController
from .learned_module import LearnedAugmentation
from .op_table import AUTOAUGMENT_BINS, MAGNITUDE_FREE, NUM_OPS, OP_IDS, OP_NAMES
from .params import PolicyParams, sample_extras
from .policies import AutoAugment
from .policy_batch import action_frequencies, policy_batch_params

__all__ = ["ControllerAugment", "RandomPolicyAugment", "FixedAugment", "FrozenPolicy"]

_FREE_IDS = torch.tensor([OP_IDS[n] for n in MAGNITUDE_FREE])


@dataclasses.dataclass
class FrozenPolicy:
    """The K most probable sub-policies of a policy distribution (see the module docstring).

    Attributes:
        subpolicies: K sub-policies in the published AutoAugment form, ``[[op name, 1.0, level or None], ...]``.
        probabilities: (K,) their estimated probabilities P(s) (they sum to ``coverage``).
        stderr: (K,) standard errors of those estimates.
        coverage: the estimated probability that an image's sub-policy is one of the K.
        samples, seed: the Monte Carlo draw (policies drawn, generator seed).
        op_frequencies: (num_ops,) share of each op among all sampled actions (the op histogram).
        level_frequencies: (num_bins,) share of each magnitude level (the magnitude histogram).
    """

    subpolicies: list
    probabilities: list
    stderr: list
    coverage: float
    samples: int
    seed: int
    op_frequencies: list
    level_frequencies: list

    def as_dict(self):
        return dataclasses.asdict(self)


def _canonical(ops, levels):
    """(n, L) ops and levels with the level of every magnitude-free op set to -1 (one transformation)."""
    return torch.where(torch.isin(ops, _FREE_IDS), torch.full_like(levels, -1), levels)


def top_subpolicies(ops, levels, k, num_bins):
    """The k most frequent sub-policies among (n, L) ``ops``/``levels``: (published-form list, counts (k,))."""
    rows = torch.cat([ops, _canonical(ops, levels)], 1)
    uniq, counts = torch.unique(rows, dim=0, return_counts=True)  # rows sorted: ties keep op/level order
    order = torch.sort(counts, descending=True, stable=True).indices[:k]
    L = ops.shape[1]
    subs = [[[OP_NAMES[o], 1.0, None if l < 0 else l] for o, l in zip(r[:L].tolist(), r[L:].tolist())]
            for r in uniq[order]]
    return subs, counts[order]


def _summary_lines(fp, title):
    lines = [title, f"  top {len(fp.subpolicies)} sub-policies (probability ± standard error, estimated from "
             f"{fp.samples} policies drawn with seed {fp.seed}; together {fp.coverage:.1%}):"]
    for s, p, e in zip(fp.subpolicies, fp.probabilities, fp.stderr):
        ops = ", ".join(f"{o}" if l is None else f"{o} {l}" for o, _, l in s)
        lines.append(f"    {p:7.2%} ± {e:.2%}  {ops}")
    lines.append("  op histogram: " + ", ".join(f"{OP_NAMES[i]} {f:.1%}" for i, f in
                                                sorted(enumerate(fp.op_frequencies), key=lambda t: -t[1])))
    lines.append("  magnitude histogram (levels 0-%d): " % (len(fp.level_frequencies) - 1)
                 + " ".join(f"{f:.0%}" for f in fp.level_frequencies))
    return lines


class _PolicyKind(LearnedAugmentation):
    """Shared by the policy kinds: ops applied with ``fill`` by one :func:`apply_ops` call."""

    def __init__(self, channels, image_size, standard=None, fill=128, provenance=None):
        super().__init__(channels, image_size, standard, provenance)
        if isinstance(fill, bool) or not isinstance(fill, int) or not 0 <= fill <= 255:
            raise ValueError(f"fill must be an int in [0, 255], got {fill!r}")
        self.fill = fill

    def apply_learned(self, x, params, labels):
        if params.op.shape[0] == 0:
            return x, params
        return apply_ops(x, fill=self.fill, **params.to(x.device).kwargs()), params


class ControllerAugment(_PolicyKind):
    """Adversarial AutoAugment's controller as an augmentation (module docstring).

    Args:
        controller: a :class:`~fastaug.augment.controller.PolicyController` (its weights are this module's).
        channels, image_size, standard, provenance: see :class:`~fastaug.augment.learned_module.LearnedAugmentation`.
        fill: value (0-255 scale) of the pixels the geometric ops expose (the run's ``--fill``).

    Params (``return_params``): ``AugmentationParams(standard, PolicyParams)``, the PolicyParams (N, L) of
    each image's chosen sub-policy. Draws per call: crop offsets, flip coins, the N policies (the
    controller's 2·Q·L uniforms per image), the chosen sub-policies, signs, partners and Cutout-op
    centres, Cutout centres.
    """

    name = "adversarial"
    derived_meta = ("frozen_policy",)

    def __init__(self, controller, channels, image_size, standard=None, fill=128, provenance=None):
        super().__init__(channels, image_size, standard, fill, provenance)
        if not isinstance(controller, PolicyController):
            raise TypeError(f"controller must be a fastaug.augment.controller.PolicyController, got "
                            f"{type(controller).__name__}")
        self.controller = controller  # held, not copied: a method may apply the controller it trains

    def sample_learned(self, N, H, W, generator):
        if N == 0:
            return _empty(self.controller.ops_per_subpolicy)
        with torch.no_grad():
            s = self.controller.sample(N, generator)
        params, _ = policy_batch_params(s.ops, s.levels, 1, H, W, self.controller.num_bins, generator)
        return params

    @torch.no_grad()
    def frozen_policy(self, k=25, samples=8192, seed=0):
        """The ``k`` most probable sub-policies, estimated from ``samples`` seeded draws (module docstring)."""
        if k < 1 or samples < 1:
            raise ValueError(f"k and samples must be >= 1, got {k} and {samples}")
        c = self.controller
        s = c.sample(samples, torch.Generator().manual_seed(int(seed)))
        ops, levels = s.ops.cpu(), s.levels.cpu()
        L = c.ops_per_subpolicy
        subs, counts = top_subpolicies(ops.reshape(-1, L), levels.reshape(-1, L), k, c.num_bins)
        total = samples * c.num_subpolicies
        p = counts.double() / total
        op_f, level_f = action_frequencies(ops, levels, c.num_ops, c.num_bins)
        return FrozenPolicy(subs, p.tolist(), (p * (1 - p) / total).sqrt().tolist(), float(p.sum()), int(samples),
                            int(seed), (op_f / op_f.sum()).tolist(), (level_f / level_f.sum()).tolist())

    def frozen(self, k=25, samples=8192, seed=0):
        """:class:`fastaug.augment.AutoAugment` of :meth:`frozen_policy` (weighted sub-policies, this ``fill``)."""
        fp = self.frozen_policy(k, samples, seed)
        return AutoAugment(fp.subpolicies, fill=self.fill, weights=fp.probabilities)

    def options(self):
        c = self.controller
        return {"fill": self.fill, "num_subpolicies": c.num_subpolicies, "ops_per_subpolicy": c.ops_per_subpolicy,
                "num_ops": c.num_ops, "num_bins": c.num_bins, "hidden_size": c.lstm.hidden_size,
                "embedding_size": c.embedding.embedding_dim}

    def extra_meta(self):
        return {"frozen_policy": self.frozen_policy().as_dict()}

    @classmethod
    def from_parts(cls, channels, image_size, standard, provenance, options, state):
        o = dict(options)
        fill = int(o.pop("fill"))
        controller = PolicyController(**o)
        module = cls(controller, channels, image_size, standard, fill, provenance)
        module.load_state_dict(state)
        return module

    def describe(self):
        c = self.controller
        return _summary_lines(self.frozen_policy(k=10), f"Adversarial AutoAugment controller: {c.num_subpolicies} "
                              f"sub-policies of {c.ops_per_subpolicy} ops per drawn policy, {c.num_ops} ops x "
                              f"{c.num_bins} levels")


class RandomPolicyAugment(_PolicyKind):
    """``--augment random``: every image gets L uniformly random (op, level) pairs, every op applied.

    Args:
        ops_per_subpolicy: L; num_ops, num_bins: the op space and magnitude levels; the rest as
            :class:`ControllerAugment`.
    """

    name = "random"

    def __init__(self, channels, image_size, standard=None, fill=128, ops_per_subpolicy=2, num_ops=NUM_OPS,
                 num_bins=AUTOAUGMENT_BINS, provenance=None):
        super().__init__(channels, image_size, standard, fill, provenance)
        self.L, self.num_ops, self.num_bins = int(ops_per_subpolicy), int(num_ops), int(num_bins)

    def sample_learned(self, N, H, W, generator):
        ops = torch.randint(0, self.num_ops, (N, self.L), generator=generator)
        levels = torch.randint(0, self.num_bins, (N, self.L), generator=generator)
        return PolicyParams(ops, levels.to(torch.float32) / (self.num_bins - 1),
                            *sample_extras(N, self.L, H, W, generator))

    def options(self):
        return {"fill": self.fill, "ops_per_subpolicy": self.L, "num_ops": self.num_ops, "num_bins": self.num_bins}

    @classmethod
    def from_parts(cls, channels, image_size, standard, provenance, options, state):
        return cls(channels, image_size, standard, provenance=provenance, **options)

    def describe(self):
        return [f"random policies: {self.L} ops per image, uniform over {self.num_ops} ops x {self.num_bins} levels "
                f"(every sub-policy has probability {1 / (self.num_ops * self.num_bins) ** self.L:.2e})"]


class FixedAugment(LearnedAugmentation):
    """``--augment fixed``: no policy was learned; the standard recipe the run trained with, alone."""

    name = "fixed"

    @classmethod
    def from_parts(cls, channels, image_size, standard, provenance, options, state):
        return cls(channels, image_size, standard, provenance)

    def describe(self):
        what = "nothing (no standard recipe either)" if self.standard is None else \
            f"the standard recipe ({self.standard.extra_repr()})"
        return [f"fixed: no policy was learned; it applies {what}"]


def _empty(L):
    """PolicyParams for no image (nothing drawn)."""
    z = torch.zeros(0, L, dtype=torch.int64)
    return PolicyParams(z, z.float(), z.float(), z.clone(), torch.zeros(0, L, 2, dtype=torch.int64))
