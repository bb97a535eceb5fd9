"""Policy modules: AutoAugment, RandAugment, TrivialAugment and a generic per-image :class:`PolicyAugment`.

Each samples its per-image parameters (:mod:`fastaug.augment.params`) from a ``generator=`` and
applies them with one :func:`fastaug.apply_ops` call on the whole batch. Inputs: (N, C, H, W)
uint8 or float images in [0, 1], C = 1 or 3, on CPU or CUDA.
"""
import torch
from torch import nn

from ..ops.policy import apply_ops
from . import params as P
from .op_table import WIDE_OP_SPACE

__all__ = ["PolicyAugment", "AutoAugment", "RandAugment", "TrivialAugment"]


class _Base(nn.Module):
    def __init__(self, fill=128):
        super().__init__()
        if isinstance(fill, bool) or not isinstance(fill, int) or not 0 <= fill <= 255:
            raise ValueError(f"fill must be an int in [0, 255], got {fill!r}")
        self.fill = fill

    def sample(self, x, generator=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x, generator=None, return_params=False):
        """Augment the batch ``x``; with ``return_params`` also return the :class:`PolicyParams` used."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"x must be an (N, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
        prm = self.sample(x, generator).to(x.device)
        out = apply_ops(x, fill=self.fill, **prm.kwargs())
        return (out, prm) if return_params else out


class PolicyAugment(_Base):
    """Apply a :class:`~fastaug.augment.params.Policy`: one random sub-policy per image.

    This is the type a controller (Adversarial AutoAugment) fills: ``Policy.from_tensors(ops, levels)``.
    """

    def __init__(self, policy, fill=128):
        super().__init__(fill)
        if not isinstance(policy, P.Policy):
            raise TypeError(f"policy must be a fastaug.augment.Policy, got {type(policy).__name__}")
        self.policy = policy

    def sample(self, x, generator=None):
        N, _, H, W = x.shape
        return P.sample_policy(self.policy, N, H, W, generator)

    def extra_repr(self):
        return f"{self.policy!r}, fill={self.fill}"


class AutoAugment(PolicyAugment):
    """The published AutoAugment policies ("imagenet" or "cifar10"), a random sub-policy per image."""

    def __init__(self, policy="imagenet", fill=128):
        super().__init__(P.Policy.published(policy), fill)
        self.policy_name = policy


class RandAugment(_Base):
    """RandAugment(N, M): ``num_ops`` ops per image, uniformly from the 14-op space, magnitude level M."""

    def __init__(self, num_ops=2, magnitude=9, num_magnitude_bins=31, fill=128, op_space=WIDE_OP_SPACE):
        super().__init__(fill)
        if num_ops < 1:
            raise ValueError(f"num_ops must be >= 1, got {num_ops}")
        if not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"magnitude must be a level in [0, {num_magnitude_bins}), got {magnitude}")
        self.num_ops, self.magnitude, self.num_bins, self.op_space = num_ops, magnitude, num_magnitude_bins, op_space

    def sample(self, x, generator=None):
        N, _, H, W = x.shape
        return P.sample_rand_augment(N, H, W, self.num_ops, self.magnitude, self.num_bins, self.op_space, generator)


class TrivialAugment(_Base):
    """TrivialAugment (wide): one op per image from the 14-op space, uniform magnitude level."""

    def __init__(self, num_magnitude_bins=31, fill=128, op_space=WIDE_OP_SPACE):
        super().__init__(fill)
        self.num_bins, self.op_space = num_magnitude_bins, op_space

    def sample(self, x, generator=None):
        N, _, H, W = x.shape
        return P.sample_trivial_augment(N, H, W, self.num_bins, self.op_space, generator)
