"""TANDA's phase 1: train the transformation-sequence generator against a discriminator.

The maths of one phase-1 step, as in HazyResearch/tanda (``tanda/tan.py``, ``tanda/generator``):

* the generator emits, per image, a sequence of T transformations (here: T (op, magnitude level)
  pairs of fastaug's 16 ops x 10 levels, drawn by the shared
  :class:`~fastaug.augment.controller.PolicyController` with Q=1, L=T);
* the discriminator D is trained on real images (label 1) against the fully transformed ones
  (label 0): ``0.5 * (BCE(D(x), 1) + BCE(D(x_T), 0))``, both halves in one forward pass (fastaug's D
  has BatchNorm; TANDA's TensorFlow D ran them separately);
* the generator's cost of each incremental image x_t (t = 0..T, x_0 = x) is
  ``-log sigmoid(D(x_t)) + mse_term / (dist(x, x_t) + eps)``: fool D, but stay away from the
  original (the inverse-distance term punishes near-identity sequences; ``dist`` is the mean square
  difference of D's penultimate features, TANDA's ``mse_layer=1`` for MNIST, or of the pixels);
* the reward of transformation t is the decrease of that cost, ``-(cost_t - cost_{t-1})``; returns
  are the future rewards discounted by gamma; the baseline is the batch mean of the returns at each
  step; the generator minimises ``sum(log p_t * (cost-to-go_t - baseline_t))`` with plain SGD.
  Transformation t is two actions (op, then level) here; both get transformation t's advantage.
"""
import torch
import torch.nn.functional as F

from ... import apply_ops
from ...augment.params import sample_extras
from ...augment.reinforce import batch_baseline_advantages, discounted_returns
from ...augment.sequences import apply_sequences  # the application lives below, shared with SequenceAugment

__all__ = ["incremental_transforms", "apply_sequences", "generator_costs", "generator_loss",
           "real_fake_logits", "discriminator_loss", "feature_distance"]


def incremental_transforms(x, ops, levels, num_bins, rng=None, fill=0):
    """Every prefix of each image's sequence: x (B, C, H, W), ops/levels (B, T) -> (T + 1, B, C, H, W).

    Entry 0 is x itself, entry t the image after the first t transformations (one batched
    :func:`apply_ops` call per step). Signs, SamplePairing partners and Cutout-op centres are drawn
    once, (B, T), from the CPU torch.Generator ``rng``.
    """
    B, T = ops.shape
    sign, partner, center = sample_extras(B, T, x.shape[2], x.shape[3], rng)
    dev = x.device
    mag = (levels.to(torch.float32) / (num_bins - 1)).to(dev)
    ops, sign, partner, center = ops.to(dev), sign.to(dev), partner.to(dev), center.to(dev)
    out = [x]
    for t in range(T):
        out.append(apply_ops(out[-1], ops[:, t:t + 1], mag[:, t:t + 1], sign[:, t:t + 1], partner[:, t:t + 1],
                             center=center[:, t:t + 1], fill=fill))
    return torch.stack(out)


def feature_distance(feats0, feats_t):
    """Mean square difference over the last dimension: (..., D) x (..., D) -> (...)."""
    return (feats_t - feats0).pow(2).mean(-1)


def generator_costs(d_logits, distances, mse_term, eps=1e-6):
    """Cost of each incremental image: -log sigmoid(logit) + mse_term / (distance + eps). Shapes (B, T+1)."""
    return F.softplus(-d_logits) + mse_term / (distances + eps)


def generator_loss(step_log_probs, costs, gamma):
    """TANDA's policy loss: step_log_probs (B, T) with gradients, costs (B, T + 1) constants.

    Incremental costs ``costs[:, 1:] - costs[:, :-1]`` are discounted into cost-to-go, the batch mean
    at each step is subtracted, and the loss is ``sum(log p * advantage)`` (a sum, as the original).
    """
    deltas = (costs[:, 1:] - costs[:, :-1]).detach()
    adv = batch_baseline_advantages(discounted_returns(deltas, gamma))
    return (step_log_probs * adv.to(step_log_probs.dtype)).sum()


def real_fake_logits(discriminator, real, fake):
    """D's "real" logits of real and fake float images, in ONE forward pass of their concatenation, so
    that BatchNorm normalises both with the same statistics (separate passes would hide any shift of
    the batch statistics, e.g. an inverted batch, from D). Returns ((B,), (B',))."""
    out = discriminator(torch.cat([real, fake]))
    logit = out[:, 1] - out[:, 0]  # (fake, real) outputs -> logit of "real"
    return logit[:real.shape[0]], logit[real.shape[0]:]


def discriminator_loss(real_logits, fake_logits):
    """0.5 * (BCE(real, 1) + BCE(fake, 0)), each the batch mean."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return 0.5 * (real + fake)
