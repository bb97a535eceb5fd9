"""Policy modules: AutoAugment, RandAugment, TrivialAugment and a generic per-image :class:`PolicyAugment`.

Each samples its per-image parameters (:mod:`fastaug.augment.params`) from a ``generator=`` and
applies them with one :func:`fastaug.apply_ops` call on the whole batch. They drop into
``torchvision.transforms.v2`` pipelines:

* input: an image (C, H, W), a batch (N, C, H, W) or (..., C, H, W), C = 1 or 3, uint8 or float in
  [0, 1], a plain tensor, a ``tv_tensors.Image`` or a PIL image ("L"/"RGB"), on CPU or CUDA; or a
  whole sample (``m(img, label)``, ``m((img, label))``, dicts), where the label passes through
  (:mod:`fastaug.augment.samples`). The output has the input's type and shape.
* every image gets its own draw (a (C, H, W) image is a batch of one);
* ``forward(..., params=p)`` replays given parameters and ``return_params=True`` returns them, so
  two views (or an image and its mask) get the same augmentation;
* ``generator`` is keyword-only (``v2.RandomChoice`` and ``v2.Compose`` pass labels positionally).

Differences from torchvision, on purpose:

* ``fill`` defaults to 128 (the grey of the AutoAugment papers); torchvision's default is 0
  (``fill=None``). Pass ``fill=0`` (or ``None``) for torchvision's behaviour.
* ``TrivialAugment`` samples torchvision's 14-op space with the AutoAugment magnitude ranges of
  docs/design.md K3 (shear <= 0.3, rotate <= 30 degrees, translate <= 150/331 of the side, enhance
  factor 1 +- 0.9), **not** the wider ranges of torchvision's ``TrivialAugmentWide`` (0.99, 135
  degrees, 32 px, 0.99, posterize down to 2 bits).
* Float images outside [0, 1] (already normalised) raise a ValueError instead of being clamped.
* Geometric ops always use nearest sampling (torchvision's default ``interpolation``).
* Each image gets its own draw; torchvision's modules draw once per call, so a batch shares one op.

The ops follow Pillow (the AutoAugment papers' code; docs/policy_ops.md), where torchvision's
functionals differ on uint8 images:

* Solarize inverts x >= 256·(1 - m) (the papers' ``ImageOps.solarize(img, 256 - 256 m)``); torchvision
  uses 255·(1 - m), so at level 0 it turns white (255) pixels black where fastaug changes nothing, and at
  other levels it also inverts the pixels in [255·(1 - m), 256·(1 - m)).
* TranslateX/Y shift by the exact (150/331)·side·m pixels (torchvision truncates to an int), and a
  positive sign moves the content left/up (torchvision: right/down); signs are drawn 50/50, so the
  distribution over directions is the same.
* Rotate reproduces ``Image.rotate``'s nearest sampling: about 0.1 % of pixels (ties at the
  rotation's rounding) take a neighbouring pixel where torchvision's rotate takes the other one.
* Brightness, Color, Contrast, Sharpness round to nearest (torchvision and Pillow truncate), and
  Contrast blends with Pillow's rounded grey mean: up to 2 levels from torchvision, 1 from Pillow.
  AutoContrast is Pillow's (up to 1 level from torchvision's float rescaling).
* Float images use the nearest 8-bit level for Posterize and the Solarize comparison (torchvision:
  floor(x·2^bits)/2^bits and x >= 1 - m on the float value).
"""
import numbers

import torch
from torch import nn

from ..ops.policy import apply_ops
from . import params as P
from .op_table import WIDE_OP_SPACE
from .samples import check_unit_range, cpu_half_as_float, frames_per_draw, join_sample, split_sample, to_batch

__all__ = ["PolicyAugment", "AutoAugment", "RandAugment", "TrivialAugment"]


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_fill(fill):
    """One int in [0, 255]. torchvision's other spellings of one value are taken too: None (0), a list or
    tuple of one value or of equal values per channel, and v2's dict by input type (the value for images:
    ``{tv_tensors.Image: v}`` or ``{"others": v}``). The ops fill every channel with one value, so
    different values per channel are refused."""
    given = fill
    if isinstance(fill, dict):
        values = [v for k, v in fill.items() if getattr(k, "__name__", k) in ("Image", "others")]
        fill = values[0] if values else None
    if isinstance(fill, (list, tuple)) and len(fill) > 0:
        if any(v != fill[0] for v in fill):
            raise ValueError(f"fill must be one value for every channel (the ops fill every channel with it), got "
                             f"{given!r}")
        fill = fill[0]
    if fill is None:  # torchvision's meaning of None
        return 0
    if not _is_int(fill) or not 0 <= fill <= 255:
        raise ValueError(f"fill must be an int in [0, 255] (or None for torchvision's 0), got {given!r}")
    return int(fill)


def _check_interpolation(interpolation):
    # Accept torchvision's InterpolationMode.NEAREST (its value is "nearest") without importing torchvision.
    name = getattr(interpolation, "value", interpolation)
    if name not in (None, "nearest"):
        raise ValueError(f"the geometric ops sample with nearest neighbour only (Pillow's AutoAugment "
                         f"semantics), got interpolation={interpolation!r}")


class _PolicyModule(nn.Module):
    """Shared forward of the policy modules; subclasses implement :meth:`sample`.

    Constructor arguments follow torchvision's order (``interpolation`` before ``fill``), except
    :class:`PolicyAugment`, which has no torchvision counterpart.
    """

    def __init__(self, fill=128, interpolation=None):
        super().__init__()
        self.fill = _check_fill(fill)
        _check_interpolation(interpolation)

    def sample(self, x, generator=None):  # pragma: no cover - abstract
        """Parameters for the images of x, (..., C, H, W): a :class:`PolicyParams` with N = x[..., 0, 0, 0].numel()."""
        raise NotImplementedError

    def forward(self, *inputs, generator=None, params=None, return_params=False):
        """Augment the image of a sample.

        Args:
            *inputs: an image (C, H, W) / (N, C, H, W) / (..., C, H, W), or a sample containing one
                (see the module docstring).
            generator: CPU ``torch.Generator`` for the draw (default: torch's global one).
            params: a :class:`PolicyParams` for the N images (as returned with ``return_params``):
                apply it instead of drawing new parameters.
            return_params: also return the parameters used.

        Returns:
            The sample with its image augmented (same type and shape), and the
            :class:`PolicyParams` (leading dimension N, on the image's device) if ``return_params``.
        """
        who = type(self).__name__
        flat, spec, idx = split_sample(inputs, who)
        T = frames_per_draw(flat[idx])  # a video's frames share its draw
        x, restore = to_batch(flat[idx])
        check_unit_range(x, who)
        N = x.shape[0]
        prm = self.sample(x[::T], generator).repeat_frames(T) if params is None else _as_params(params).check(N)
        prm = prm.to(x.device)
        out = apply_ops(cpu_half_as_float(x), fill=self.fill, **prm.kwargs()).to(x.dtype)
        out = join_sample(flat, spec, idx, restore(out))
        return (out, prm) if return_params else out

    def extra_repr(self):
        return f"fill={self.fill}"


def _as_params(params):
    if not isinstance(params, P.PolicyParams):
        raise TypeError(f"params must be a fastaug.augment.PolicyParams (as returned with return_params=True), "
                        f"got {type(params).__name__}")
    return params


def _shape(x):
    """(N, H, W) of an (..., C, H, W) tensor, N the number of images."""
    if x.dim() < 3:
        raise ValueError(f"images must have shape (..., C, H, W), got {tuple(x.shape)}")
    return x[..., 0, 0, 0].numel(), x.shape[-2], x.shape[-1]


# Buffer names of a PolicyAugment's policy in its state_dict.
_POLICY_BUFFERS = ("policy_ops", "policy_levels", "policy_probs")


class PolicyAugment(_PolicyModule):
    """Apply a :class:`~fastaug.augment.params.Policy`: one random sub-policy per image.

    This is the type a controller (Adversarial AutoAugment) fills: ``Policy.from_tensors(ops, levels)``.
    The policy lives in buffers, so it is part of ``state_dict()``: ``policy_ops`` and
    ``policy_levels`` (Q, L) int64, ``policy_probs`` (Q, L) float64, ``policy_num_bins`` (0-d
    int64) and, for a weighted policy only, ``policy_weights`` (Q,) float64 (a uniform policy has no
    such entry, so its state_dict is what it always was). ``load_state_dict`` accepts a policy with
    another number of sub-policies Q or length L (the buffers take the saved shapes), with or without
    weights, and refuses an invalid one with a clear error. Assigning ``m.policy = other_policy``
    replaces it too.
    """

    def __init__(self, policy, fill=128, interpolation=None):
        super().__init__(fill, interpolation)
        self._cache = None
        for name in _POLICY_BUFFERS + ("policy_num_bins", "policy_weights"):
            self.register_buffer(name, None)
        self.policy = policy

    @property
    def policy(self):
        """The current :class:`Policy` (CPU tensors), rebuilt from the buffers when they change."""
        bufs = [getattr(self, n) for n in _POLICY_BUFFERS + ("policy_num_bins", "policy_weights")]
        # _version counts in-place writes (load_state_dict copies in place): a cheap change detector
        # that avoids a device-to-host copy per call when the buffers live on a GPU.
        key = tuple(None if t is None else (t.data_ptr(), t._version, t.device) for t in bufs)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, _policy_from(*bufs))
        return self._cache[1]

    @policy.setter
    def policy(self, policy):
        if not isinstance(policy, P.Policy):
            raise TypeError(f"policy must be a fastaug.augment.Policy, got {type(policy).__name__}")
        old = getattr(self, "policy_ops", None)
        device = old.device if old is not None else torch.device("cpu")
        self.policy_ops = policy.ops.clone().to(device)
        self.policy_levels = policy.levels.clone().to(device)
        self.policy_probs = policy.probs.clone().to(device)
        self.policy_num_bins = torch.tensor(policy.num_bins, dtype=torch.int64, device=device)
        self.policy_weights = None if policy.weights is None else policy.weights.clone().to(device)

    def sample(self, x, generator=None):
        N, H, W = _shape(x)
        return P.sample_policy(self.policy, N, H, W, generator)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        saved = [state_dict.get(prefix + n) for n in _POLICY_BUFFERS + ("policy_num_bins",)]
        weights = state_dict.get(prefix + "policy_weights")
        if all(isinstance(t, torch.Tensor) for t in saved):
            try:  # validate before anything is copied: an invalid policy must not half-load
                _policy_from(*saved, weights)
            except (ValueError, TypeError) as e:
                error_msgs.append(f"{prefix or 'PolicyAugment '}policy in the state_dict is invalid: {e}")
                return
            # Another number of sub-policies (or ops per sub-policy): take the saved shapes.
            for name, t in zip(_POLICY_BUFFERS, saved):
                cur = getattr(self, name)
                if cur.shape != t.shape:
                    self._buffers[name] = torch.empty(t.shape, dtype=cur.dtype, device=cur.device)
            # Weighted or uniform as saved: a weights buffer exists (and is copied into) only if one was saved.
            device = self.policy_ops.device
            self._buffers["policy_weights"] = (None if not isinstance(weights, torch.Tensor) else
                                               torch.empty(weights.shape, dtype=torch.float64, device=device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self):
        return f"{self.policy!r}, fill={self.fill}"


def _policy_from(ops, levels, probs, num_bins, weights=None):
    """A validated :class:`Policy` from the policy tensors (any device; ``weights`` None: uniform)."""
    if num_bins.numel() != 1:
        raise ValueError(f"policy_num_bins must hold one number, got shape {tuple(num_bins.shape)}")
    if not (ops.dim() == 2 and ops.shape == levels.shape == probs.shape):
        raise ValueError(f"policy_ops, policy_levels and policy_probs must be (Q, L) tensors of one shape, got "
                         f"{tuple(ops.shape)}, {tuple(levels.shape)} and {tuple(probs.shape)}")
    return P.Policy.from_tensors(ops.detach().cpu(), levels.detach().cpu(), probs.detach().cpu(),
                                 num_bins=int(num_bins), weights=None if weights is None else weights.detach().cpu())


class AutoAugment(PolicyAugment):
    """AutoAugment: a random sub-policy per image of a published policy ("imagenet", "cifar10" or "svhn") or of
    one written in the same form (a learned augmentation's frozen policy).

    Args:
        policy: ``"imagenet"``, ``"cifar10"``, ``"svhn"``, torchvision's ``AutoAugmentPolicy.IMAGENET`` / ``CIFAR10`` / ``SVHN``,
            a :class:`~fastaug.augment.Policy`, or sub-policies in the published form: a sequence of
            sequences of ``(op name, probability, magnitude level of 10 or None)``, e.g. the
            ``subpolicies`` of :meth:`fastaug.augment.ControllerAugment.frozen_policy`.
        interpolation, fill: as torchvision's (see the module docstring).
        weights: with published-form sub-policies, the probability of choosing each (normalised; None:
            uniform, as the published policies).
    """

    def __init__(self, policy="imagenet", interpolation=None, fill=128, weights=None):
        name = getattr(policy, "value", policy)
        if isinstance(name, str):
            if weights is not None:
                raise ValueError(f"weights go with a policy given as sub-policies, not with the published {name!r}")
            built = P.Policy.published(name)
        elif isinstance(policy, P.Policy):
            if weights is not None:
                raise ValueError("weights go with a policy given as sub-policies; a Policy carries its own weights")
            built, name = policy, "custom"
        else:
            built, name = P.Policy.from_published(policy, weights), "custom"
        super().__init__(built, fill, interpolation)
        self.policy_name = name


def _check_num_bins(num_magnitude_bins):
    """The number of magnitude levels: an integer >= 2 (level l is magnitude l / (bins - 1)). torchvision
    accepts 1 and then divides 0 by 0 for Posterize (an invalid bit count); 0 cannot draw a level."""
    if isinstance(num_magnitude_bins, bool) or not isinstance(num_magnitude_bins, numbers.Integral) \
            or num_magnitude_bins < 2:
        raise ValueError(f"num_magnitude_bins must be an integer >= 2 (level l is magnitude "
                         f"l / (num_magnitude_bins - 1)), got {num_magnitude_bins!r}")
    return int(num_magnitude_bins)


class RandAugment(_PolicyModule):
    """RandAugment(N, M): ``num_ops`` ops per image, uniformly from the 14-op space, magnitude level M."""

    def __init__(self, num_ops=2, magnitude=9, num_magnitude_bins=31, interpolation=None, fill=128,
                 op_space=WIDE_OP_SPACE):
        super().__init__(fill, interpolation)
        # Integers only, as torchvision (which refuses a float num_ops and cannot index a float level):
        # 2.0 crashed in torch.randint at the first call, a level of 9.5 or True was used as a magnitude.
        if not _is_int(num_ops) or num_ops < 1:
            raise ValueError(f"num_ops must be an integer >= 1, got {num_ops!r}")
        num_magnitude_bins = _check_num_bins(num_magnitude_bins)
        if not _is_int(magnitude) or not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"magnitude must be an integer level in [0, {num_magnitude_bins}), got {magnitude!r}")
        num_ops, magnitude = int(num_ops), int(magnitude)
        self.num_ops, self.magnitude, self.num_bins, self.op_space = num_ops, magnitude, num_magnitude_bins, op_space

    def sample(self, x, generator=None):
        N, H, W = _shape(x)
        return P.sample_rand_augment(N, H, W, self.num_ops, self.magnitude, self.num_bins, self.op_space, generator)

    def extra_repr(self):
        return f"num_ops={self.num_ops}, magnitude={self.magnitude}, num_magnitude_bins={self.num_bins}, fill={self.fill}"


class TrivialAugment(_PolicyModule):
    """TrivialAugment: one op per image from torchvision's 14-op space, uniform magnitude level.

    Magnitude ranges are those of AutoAugment (docs/design.md K3), not the wider ones of
    torchvision's ``TrivialAugmentWide`` (see the module docstring).
    """

    def __init__(self, num_magnitude_bins=31, interpolation=None, fill=128, op_space=WIDE_OP_SPACE):
        super().__init__(fill, interpolation)
        self.num_bins, self.op_space = _check_num_bins(num_magnitude_bins), op_space

    def sample(self, x, generator=None):
        N, H, W = _shape(x)
        return P.sample_trivial_augment(N, H, W, self.num_bins, self.op_space, generator)

    def extra_repr(self):
        return f"num_magnitude_bins={self.num_bins}, fill={self.fill}"
