"""Parameter sampling for the policy modules: per-image op ids, magnitudes, signs, partners, centres.

Everything is drawn on the CPU from a ``torch.Generator`` (the default CPU generator when None) in
a fixed order, then moved to the images' device, so the same seed gives the same parameters, and
the same output, on CPU and CUDA. The draws are independent of the images' values.
"""
import dataclasses
import operator

import torch

from .op_table import (IDENTITY, MAGNITUDE_FREE, NUM_OPS, OP_IDS, OP_NAMES, WIDE_OP_SPACE, bin_to_magnitude,
                       published_policy)

__all__ = ["SubPolicy", "Policy", "PolicyParams", "sample_policy", "sample_rand_augment",
           "sample_trivial_augment", "sample_extras"]


@dataclasses.dataclass(frozen=True)
class SubPolicy:
    """A chain of ops applied in order: op ids, magnitude levels and (optional) probabilities.

    ``levels[i]`` is a magnitude level in ``[0, num_bins)`` of the owning :class:`Policy`;
    ``probs[i]`` the probability that op i is applied (``None``: always, as in Adversarial
    AutoAugment, which removed the probabilities). Op ids and levels must be integers (Python, NumPy
    or one-element integer tensors); floats (3.0 included) and bools raise TypeError, as in
    :meth:`Policy.from_tensors` (they are not rounded or truncated).
    """
    ops: tuple
    levels: tuple
    probs: tuple = None

    def __post_init__(self):
        ops, levels = _integers(self.ops, "ops", "op ids"), _integers(self.levels, "levels", "magnitude levels")
        probs = tuple(1.0 for _ in ops) if self.probs is None else tuple(float(p) for p in self.probs)
        if not (len(ops) == len(levels) == len(probs)) or not ops:
            raise ValueError(f"ops, levels and probs must be non-empty and of one length, got {len(ops)}, "
                             f"{len(levels)}, {len(probs)}")
        if any(not IDENTITY <= o < NUM_OPS for o in ops):
            raise ValueError(f"op ids must be in [0, {NUM_OPS - 1}] (or -1), got {ops}")
        if any(not 0.0 <= p <= 1.0 for p in probs):
            raise ValueError(f"probs must be in [0, 1], got {probs}")
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "probs", probs)


def _integers(values, name, what):
    """``values`` as a tuple of Python ints; a float (3.0 included), complex or bool raises TypeError (as
    :meth:`Policy.from_tensors` refuses such tensors) instead of being truncated by ``int``."""
    out = []
    for v in values:
        is_bool = isinstance(v, bool) or (isinstance(v, torch.Tensor) and v.dtype == torch.bool)
        try:
            if is_bool:
                raise TypeError
            out.append(operator.index(v))
        except TypeError:
            raise TypeError(f"{name} must be integer {what}, got {v!r} ({type(v).__name__})") from None
    return tuple(out)


class Policy:
    """A list of sub-policies of one length L; each image gets one sub-policy, uniformly at random or,
    with ``weights``, with those probabilities.

    Build it from :class:`SubPolicy` objects, from a published AutoAugment policy
    (:meth:`published`), from a policy written in the published form (:meth:`from_published`, e.g. the
    frozen policy of a learned augmentation), or from the (Q, L) op-id and level tensors a controller
    emits (:meth:`from_tensors`).

    Args:
        subpolicies: :class:`SubPolicy` objects of one length.
        num_bins: magnitude levels (level l is magnitude l / (num_bins - 1)).
        weights: optional (Q,) non-negative numbers, the probability of choosing each sub-policy
            (normalised to sum 1); None (the published policies): uniform.
    """

    def __init__(self, subpolicies, num_bins=10, weights=None):
        subpolicies = tuple(subpolicies)
        if not subpolicies:
            raise ValueError("a policy needs at least one sub-policy")
        if len({len(s.ops) for s in subpolicies}) != 1:
            raise ValueError("all sub-policies of a policy must have the same length")
        if num_bins < 2:
            raise ValueError(f"num_bins must be at least 2, got {num_bins}")
        for s in subpolicies:
            if any(not 0 <= l < num_bins for l in s.levels):
                raise ValueError(f"magnitude levels must be in [0, {num_bins}), got {s.levels}")
        self.subpolicies, self.num_bins = subpolicies, int(num_bins)
        self.ops = torch.tensor([s.ops for s in subpolicies], dtype=torch.int64)
        self.levels = torch.tensor([s.levels for s in subpolicies], dtype=torch.int64)
        self.probs = torch.tensor([s.probs for s in subpolicies], dtype=torch.float64)
        self.weights = None if weights is None else _check_weights(weights, len(subpolicies))

    @classmethod
    def from_tensors(cls, ops, levels, probs=None, num_bins=10, weights=None):
        """From (Q, L) integer tensors of op ids and magnitude levels (e.g. a controller's actions);
        float, complex or bool tensors raise TypeError (they are not rounded or truncated)."""
        ops, levels = torch.as_tensor(ops).cpu(), torch.as_tensor(levels).cpu()
        for t, name, what in ((ops, "ops", "op ids"), (levels, "levels", "magnitude levels")):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"{name} must be an integer tensor of {what}, got {t.dtype}")
        if ops.dim() != 2 or ops.shape != levels.shape:
            raise ValueError(f"ops and levels must be (Q, L) tensors of one shape, got {tuple(ops.shape)} and "
                             f"{tuple(levels.shape)}")
        probs = None if probs is None else torch.as_tensor(probs).cpu().tolist()
        subs = [SubPolicy(o, l, None if probs is None else probs[q])
                for q, (o, l) in enumerate(zip(ops.tolist(), levels.tolist()))]
        return cls(subs, num_bins, weights)

    @classmethod
    def published(cls, name):
        """The published AutoAugment policy "imagenet", "cifar10" or "svhn" (10 magnitude levels)."""
        subs = [SubPolicy([OP_IDS[o] for o, _, _ in sp], [0 if l is None else l for _, _, l in sp],
                          [p for _, p, _ in sp]) for sp in published_policy(name)]
        return cls(subs, num_bins=10)

    @classmethod
    def from_published(cls, subpolicies, weights=None, num_bins=10):
        """From sub-policies in the published AutoAugment form: each a sequence of ``(op name,
        probability, magnitude level or None)``, e.g. ``[[("Rotate", 1.0, 7), ("Equalize", 1.0, None)], ...]``
        (op names of docs/design.md K3; None for the ops without a magnitude)."""
        subs = []
        for i, sp in enumerate(subpolicies):
            try:
                names, probs, levels = zip(*[(str(o), float(p), l) for o, p, l in sp])
            except (TypeError, ValueError):
                raise ValueError(f"sub-policy {i} must be a sequence of (op name, probability, level or None), "
                                 f"got {sp!r}") from None
            unknown = [n for n in names if n not in OP_IDS]
            if unknown:
                raise ValueError(f"sub-policy {i} names unknown ops {unknown}; the ops are {', '.join(OP_IDS)}")
            try:
                subs.append(SubPolicy([OP_IDS[n] for n in names], [0 if l is None else l for l in levels], probs))
            except TypeError as err:  # a level of 7.5 was truncated to 7
                raise TypeError(f"sub-policy {i}: {err}") from None
        return cls(subs, num_bins, weights)

    def to_published(self):
        """The sub-policies in the published AutoAugment form: a list of lists of ``[op name, probability,
        level or None]`` (None for the ops without a magnitude), JSON-able; see :meth:`from_published`."""
        return [[[OP_NAMES[o], p, None if OP_NAMES[o] in MAGNITUDE_FREE else l]
                 for o, p, l in zip(s.ops, s.probs, s.levels)] for s in self.subpolicies]

    def __len__(self):
        return len(self.subpolicies)

    def __repr__(self):
        weighted = "" if self.weights is None else ", weighted"
        return f"Policy({len(self)} sub-policies of length {self.ops.shape[1]}, num_bins={self.num_bins}{weighted})"


def _check_weights(weights, Q):
    w = torch.as_tensor(weights, dtype=torch.float64).detach().cpu().reshape(-1)
    if w.numel() != Q or not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not float(w.sum()) > 0:
        raise ValueError(f"weights must be {Q} finite non-negative numbers (one per sub-policy) with a positive sum, "
                         f"got {weights!r}")
    return w / w.sum()


@dataclasses.dataclass
class PolicyParams:
    """Per-image arguments of :func:`fastaug.apply_ops`, each with leading shape (N, L)."""
    op: torch.Tensor
    magnitude: torch.Tensor
    sign: torch.Tensor
    partner: torch.Tensor
    center: torch.Tensor

    def to(self, device):
        # Not dataclasses.astuple: it deep-copies every tensor before the move.
        return PolicyParams(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))

    def check(self, N):
        """Raise a ValueError unless these are parameters for N images (replaying them on a batch
        of another size would silently misalign them)."""
        for f in dataclasses.fields(self):
            t = getattr(self, f.name)
            if not isinstance(t, torch.Tensor) or t.dim() < 1 or t.shape[0] != N:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"params.{f.name} must have a leading dimension of {N} (one row per image), "
                                 f"got {got}")
        return self

    def kwargs(self):
        return dict(op=self.op, magnitude=self.magnitude, sign=self.sign, partner=self.partner, center=self.center)

    def repeat_frames(self, T):
        """The parameters of V videos (one row each) for their V * T frames, video after video: every frame
        gets its video's row, and a SamplePairing partner (video j) becomes frame t of video j."""
        if T == 1:
            return self
        rep = {f.name: getattr(self, f.name).repeat_interleave(T, 0) for f in dataclasses.fields(self)}
        t = torch.arange(rep["partner"].shape[0], device=self.partner.device) % T
        rep["partner"] = rep["partner"] * T + t.view(-1, *[1] * (self.partner.dim() - 1))
        return PolicyParams(**rep)


def _gen(generator):
    if generator is not None and generator.device.type != "cpu":
        raise ValueError("generator must be a CPU torch.Generator (parameters are drawn on the CPU so that "
                         f"CPU and CUDA runs agree), got one on {generator.device}")
    return generator


def sample_extras(N, L, H, W, generator=None):
    """Signs (+-1), SamplePairing partners and Cutout centres, each (N, L[, 2])."""
    g = _gen(generator)
    sign = torch.where(torch.rand(N, L, generator=g) < 0.5, -1.0, 1.0)
    partner = torch.randint(0, max(N, 1), (N, L), generator=g)
    center = torch.stack([torch.randint(0, max(H, 1), (N, L), generator=g),
                          torch.randint(0, max(W, 1), (N, L), generator=g)], dim=-1)
    return sign, partner, center


def sample_policy(policy, N, H, W, generator=None):
    """One sub-policy per image (uniformly, or by the policy's weights), each op kept with its
    probability (else identity, id -1)."""
    g = _gen(generator)
    Q, L = policy.ops.shape
    if policy.weights is None:
        q = torch.randint(0, Q, (N,), generator=g)
    else:  # N draws of the categorical (one uniform each, inverse CDF: the same on every platform)
        cdf = policy.weights.cumsum(0)
        u = torch.rand(N, generator=g, dtype=torch.float64) * cdf[-1]
        q = torch.searchsorted(cdf, u, right=True).clamp_(max=Q - 1)  # right: a zero weight is never chosen
    keep = torch.rand(N, L, generator=g, dtype=torch.float64) < policy.probs[q]
    op = torch.where(keep, policy.ops[q], torch.full_like(policy.ops[q], IDENTITY))
    magnitude = (policy.levels[q].to(torch.float32) / (policy.num_bins - 1))
    return PolicyParams(op, magnitude, *sample_extras(N, L, H, W, g))


def sample_rand_augment(N, H, W, num_ops=2, magnitude=9, num_bins=31, op_space=WIDE_OP_SPACE, generator=None):
    """RandAugment: ``num_ops`` ops per image uniformly from ``op_space``, one fixed magnitude."""
    g = _gen(generator)
    space = torch.tensor(op_space, dtype=torch.int64)
    op = space[torch.randint(0, len(space), (N, num_ops), generator=g)]
    mag = torch.full((N, num_ops), bin_to_magnitude(magnitude, num_bins), dtype=torch.float32)
    return PolicyParams(op, mag, *sample_extras(N, num_ops, H, W, g))


def sample_trivial_augment(N, H, W, num_bins=31, op_space=WIDE_OP_SPACE, generator=None):
    """TrivialAugment: one op per image uniformly from ``op_space``, a uniform magnitude level."""
    g = _gen(generator)
    space = torch.tensor(op_space, dtype=torch.int64)
    op = space[torch.randint(0, len(space), (N, 1), generator=g)]
    mag = torch.randint(0, num_bins, (N, 1), generator=g).to(torch.float32) / (num_bins - 1)
    return PolicyParams(op, mag, *sample_extras(N, 1, H, W, g))
