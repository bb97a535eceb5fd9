"""M policies applied to M copies of a batch with ONE :func:`fastaug.apply_ops` call.

Adversarial AutoAugment (eq. 4) trains on an M·N batch: every image of the N-image batch is
augmented under each of the M policies, and each copy draws one random sub-policy of its policy.
Layout (policy-major): the copy of image n made by policy m sits at row ``m * N + n``, so
``x.repeat(M, 1, 1, 1)`` builds the input, ``y.repeat(M)`` the labels, and
``group = arange(M).repeat_interleave(N)`` tags which policy made each row.

Every random draw (sub-policy choice, then signs, SamplePairing partners and Cutout-op centres,
in that order) comes from a CPU ``torch.Generator``, as :mod:`fastaug.augment.params` does.
"""
import torch

from .. import apply_ops
from .op_table import AUTOAUGMENT_BINS, NUM_OPS
from .params import PolicyParams, sample_extras

__all__ = ["replicate", "policy_groups", "policy_batch_params", "apply_policy_batch", "random_policies",
           "action_frequencies", "ActionCounter"]


def replicate(x, M):
    """(N, ...) -> (M·N, ...) in the policy-major layout (copy m of item n at row m·N + n)."""
    if int(M) != M or M < 1:
        raise ValueError(f"M (instances) must be a positive integer, got {M}")
    return x.repeat(int(M), *([1] * (x.dim() - 1)))


def policy_groups(M, N, device=None):
    """(M·N,) int64 policy index of each row of the policy-major layout."""
    return torch.arange(M, device=device).repeat_interleave(N)


def _check_policies(ops, levels, num_ops, num_bins):
    if ops.dim() != 3 or ops.shape != levels.shape:
        raise ValueError(f"ops and levels must be (M, Q, L) tensors of one shape, got {tuple(ops.shape)} and "
                         f"{tuple(levels.shape)}")
    if ops.numel() and (ops.min() < 0 or ops.max() >= num_ops):
        raise ValueError(f"ops must be op ids in [0, {num_ops}), got values in [{ops.min()}, {ops.max()}]")
    if levels.numel() and (levels.min() < 0 or levels.max() >= num_bins):
        raise ValueError(f"levels must be in [0, {num_bins}), got values in [{levels.min()}, {levels.max()}]")


def policy_batch_params(ops, levels, N, H, W, num_bins=AUTOAUGMENT_BINS, generator=None):
    """Per-image :func:`apply_ops` arguments for the M·N batch of M policies.

    Args:
        ops, levels: (M, Q, L) int64 op ids and magnitude levels of the M policies.
        N: images per copy (the batch size); H, W: image size (for the Cutout-op centres).
        num_bins: magnitude levels; level l is magnitude l / (num_bins - 1).
        generator: CPU generator of every draw.
    Returns: (:class:`PolicyParams` with (M·N, L) tensors on the CPU, ``subpolicy`` (M·N,) the chosen q).
    """
    ops, levels = torch.as_tensor(ops).cpu().long(), torch.as_tensor(levels).cpu().long()
    _check_policies(ops, levels, NUM_OPS, num_bins)
    M, Q, L = ops.shape
    rows = policy_groups(M, N)
    q = torch.randint(0, Q, (M * N,), generator=generator)
    op = ops[rows, q]
    magnitude = levels[rows, q].to(torch.float32) / (num_bins - 1)
    return PolicyParams(op, magnitude, *sample_extras(M * N, L, H, W, generator)), q


def apply_policy_batch(x, ops, levels, num_bins=AUTOAUGMENT_BINS, generator=None, fill=128):
    """Augment an M·N batch ``x`` (policy-major, e.g. from :func:`replicate`) with the M policies.

    x: (M·N, C, H, W) uint8 or float in [0, 1]; ``fill``: value of pixels the geometric ops expose
    (0-255 scale). Returns the augmented batch (same shape and dtype).
    """
    M = torch.as_tensor(ops).shape[0]
    if x.shape[0] % M:
        raise ValueError(f"x has {x.shape[0]} rows, not a multiple of the {M} policies")
    params, _ = policy_batch_params(ops, levels, x.shape[0] // M, x.shape[2], x.shape[3], num_bins, generator)
    return apply_ops(x, **params.to(x.device).kwargs(), fill=fill)


def random_policies(M, Q=5, L=2, num_ops=NUM_OPS, num_bins=AUTOAUGMENT_BINS, generator=None):
    """M uniformly random policies (the paper's "Random" ablation): (ops, levels), each (M, Q, L) int64."""
    ops = torch.randint(0, num_ops, (M, Q, L), generator=generator)
    levels = torch.randint(0, num_bins, (M, Q, L), generator=generator)
    return ops, levels


def action_frequencies(ops, levels, num_ops=NUM_OPS, num_bins=AUTOAUGMENT_BINS):
    """Counts of each op id (num_ops,) and each magnitude level (num_bins,) in the given policies (float64)."""
    ops, levels = torch.as_tensor(ops).reshape(-1).cpu(), torch.as_tensor(levels).reshape(-1).cpu()
    return (torch.bincount(ops, minlength=num_ops).double(), torch.bincount(levels, minlength=num_bins).double())


class ActionCounter:
    """Running counts of the ops and magnitude levels a method sampled, for the per-epoch
    ``op_frequencies`` / ``magnitude_frequencies`` metrics (the AdvAA paper's Figure 6).

    ``add(ops, levels)`` takes integer tensors of any shape (op ids in [0, num_ops), levels in
    [0, num_bins)); :meth:`frequencies` returns the fractions since the last :meth:`reset` as a
    JSON-able dict ({} when nothing was counted). State (two float64 count vectors) goes into a
    checkpoint through :meth:`state_dict`.
    """

    def __init__(self, num_ops=NUM_OPS, num_bins=AUTOAUGMENT_BINS):
        self.num_ops, self.num_bins = int(num_ops), int(num_bins)
        self.reset()

    def reset(self):
        self.op_counts = torch.zeros(self.num_ops, dtype=torch.float64)
        self.level_counts = torch.zeros(self.num_bins, dtype=torch.float64)

    def add(self, ops, levels):
        op_counts, level_counts = action_frequencies(ops, levels, self.num_ops, self.num_bins)
        self.op_counts += op_counts
        self.level_counts += level_counts

    def frequencies(self):
        """``{"op_frequencies": [num_ops floats], "magnitude_frequencies": [num_bins floats]}``, each
        summing to 1; ``{}`` when no action was counted."""
        if self.op_counts.sum() == 0:
            return {}
        return {"op_frequencies": (self.op_counts / self.op_counts.sum()).tolist(),
                "magnitude_frequencies": (self.level_counts / self.level_counts.sum()).tolist()}

    def state_dict(self):
        return {"op_counts": self.op_counts.clone(), "level_counts": self.level_counts.clone()}

    def load_state_dict(self, state):
        self.op_counts, self.level_counts = state["op_counts"].clone(), state["level_counts"].clone()
