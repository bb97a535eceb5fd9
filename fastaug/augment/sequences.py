"""Applying op sequences (TANDA's transformation sequences): each image gets its own chain of T ops.

A sequence is T (op id, magnitude level) pairs; the whole chain runs in one :func:`fastaug.apply_ops`
call (the kernel applies an image's ops in order). TANDA's generator emits the sequences
(:class:`~fastaug.augment.controller.PolicyController` with one sub-policy of T ops); training
(:mod:`fastaug.train.tanda`) and the loadable augmentation (:class:`~fastaug.augment.SequenceAugment`)
both apply them through :func:`sequence_params` and :func:`apply_sequences` here.
"""
import torch

from ..ops.policy import apply_ops
from .params import PolicyParams, sample_extras

__all__ = ["sequence_params", "apply_sequences"]


def sequence_params(ops, levels, num_bins, H, W, rng=None):
    """The :class:`PolicyParams` of B sequences: ops/levels (B, T) -> magnitudes ``level / (num_bins - 1)``
    and, drawn from the CPU torch.Generator ``rng``, signs, SamplePairing partners and Cutout-op
    centres (each (B, T), for H x W images), on the CPU."""
    B, T = ops.shape
    sign, partner, center = sample_extras(B, T, H, W, rng)
    mag = levels.cpu().to(torch.float32) / (num_bins - 1)
    return PolicyParams(ops.cpu(), mag, sign, partner, center)


def apply_sequences(x, ops, levels, num_bins, rng=None, fill=0):
    """The final image of each sequence in one chained :func:`apply_ops` call: x (B, C, H, W), ops (B, T)."""
    params = sequence_params(ops, levels, num_bins, x.shape[2], x.shape[3], rng).to(x.device)
    return apply_ops(x, fill=fill, **params.kwargs())
