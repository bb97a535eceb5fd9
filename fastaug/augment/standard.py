"""The standard CIFAR augmentation, batched on the device: random crop with padding, horizontal flip, Cutout.

As in the Adversarial AutoAugment paper's standard augmentation (section 4.2): pad by ``padding`` pixels with
zeros and crop back to the original size at a random offset (torchvision's ``RandomCrop(size,
padding)``), flip horizontally with probability 1/2, and Cutout (DeVries & Taylor 2017): zero a
``size`` x ``size`` square centred on a uniformly random pixel, clipped at the borders, exactly as
the authors' code (rows ``[cy - size//2, cy + size//2)``).

Every random draw comes from a CPU ``torch.Generator`` (as the policy modules do), then the work
runs where the images are, for the whole batch at once: no per-image Python.

Sample, then apply (kornia's split): :meth:`StandardAugment.sample` draws a batch's random values into
a :class:`StandardParams` (crop offsets, flip coins, Cutout centres: loggable, replayable, like the
policy modules' :class:`~fastaug.augment.params.PolicyParams`) and :meth:`StandardAugment.apply`
applies them; ``forward`` and ``recipe`` are the two in one call, and take ``params=`` /
``return_params=True`` to replay or return what they drew.
"""
import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .samples import frames_per_draw, join_sample, split_sample, to_batch

__all__ = ["random_crop", "random_hflip", "cutout", "to_float", "StandardAugment", "StandardParams"]


def to_float(x):
    """uint8 images -> float32 in [0, 1]; float images pass through."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def _check(x):
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be an (N, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")


def random_crop(x, padding, generator=None, offsets=None):
    """Zero-pad by ``padding`` and crop each image back to (H, W) at its own random offset.

    Args:
        x: (N, C, H, W) images, any dtype.
        padding: pixels added on every side (0: identity).
        offsets: optional (N, 2) int64 (dy, dx) in [0, 2 * padding]; drawn from ``generator`` if None.
    Returns: (N, C, H, W), same dtype and device.
    """
    _check(x)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    N, C, H, W = x.shape
    if padding == 0 or N == 0:
        return x
    if offsets is None:
        offsets = torch.randint(0, 2 * padding + 1, (N, 2), generator=generator)
    offsets = offsets.to(x.device)
    Wp = W + 2 * padding
    rows = offsets[:, :1] + torch.arange(H, device=x.device)  # (N, H) rows of the padded image
    cols = offsets[:, 1:] + torch.arange(W, device=x.device)  # (N, W)
    flat = (rows[:, :, None] * Wp + cols[:, None, :]).view(N, 1, H * W).expand(N, C, H * W)
    padded = F.pad(x, (padding,) * 4)
    return padded.flatten(2).gather(2, flat).view(N, C, H, W)


def random_hflip(x, generator=None, p=0.5, mask=None):
    """Flip each image horizontally with probability ``p`` (or where ``mask`` (N,) bool is True)."""
    _check(x)
    if mask is None:
        mask = torch.rand(x.shape[0], generator=generator) < p
    return torch.where(mask.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)


def cutout(x, size, generator=None, centers=None, fill=0):
    """Cutout: set a square around a random centre of each image to ``fill``.

    With ``half = size // 2``, rows ``[cy - half, cy + half)`` and columns ``[cx - half, cx + half)``
    of the image at centre (cy, cx), clipped at the border: a square of side ``2 * (size // 2)`` (``size``
    for an even size, ``size - 1`` for an odd one), smaller where it overhangs the border. This is the
    convention of DeVries & Taylor's reference code (``y1 = clip(y - length // 2)``,
    ``y2 = clip(y + length // 2)``), kept so that ``--cutout 16`` means what it means there.

    Args:
        x: (N, C, H, W) images, any dtype.
        size: the Cutout ``length`` (>= 0; 0 and 1 cut nothing).
        centers: optional (N, 2) int64 (row, col); drawn uniformly over the image if None.
        fill: the value of the cut pixels.

    Returns: (N, C, H, W), the dtype of ``x``.
    """
    _check(x)
    if size < 0:
        raise ValueError(f"cutout size must be >= 0, got {size}")
    N, _, H, W = x.shape
    if size == 0 or N == 0:
        return x
    if centers is None:
        centers = torch.stack([torch.randint(0, H, (N,), generator=generator),
                               torch.randint(0, W, (N,), generator=generator)], 1)
    c = centers.to(x.device)
    r = torch.arange(H, device=x.device)
    s = torch.arange(W, device=x.device)
    half = size // 2
    in_r = (r >= (c[:, :1] - half)) & (r < (c[:, :1] + half))  # (N, H); clipping is implicit
    in_c = (s >= (c[:, 1:] - half)) & (s < (c[:, 1:] + half))  # (N, W)
    mask = (in_r[:, :, None] & in_c[:, None, :]).unsqueeze(1)
    return x.masked_fill(mask, fill)


@dataclasses.dataclass
class StandardParams:
    """The random values of one :class:`StandardAugment` call on N images; a part that is off (or a
    batch of no image) drew nothing and holds None.

    Attributes:
        offsets: (N, 2) int64 crop offsets (dy, dx) in [0, 2 * padding] into the padded image.
        flip: (N,) bool, True where the image is flipped horizontally.
        centers: (N, 2) int64 Cutout centres (row, col).
    """

    offsets: Optional[torch.Tensor] = None
    flip: Optional[torch.Tensor] = None
    centers: Optional[torch.Tensor] = None

    def to(self, device):
        return StandardParams(*(None if t is None else t.to(device) for t in (self.offsets, self.flip, self.centers)))

    def check(self, N):
        """Raise a ValueError unless every draw held has one row per image of an N-image batch."""
        for name, shape in (("offsets", (N, 2)), ("flip", (N,)), ("centers", (N, 2))):
            t = getattr(self, name)
            if t is not None and (not isinstance(t, torch.Tensor) or tuple(t.shape) != shape):
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"params.{name} must have shape {shape} (one row per image), got {got}")
        return self


class StandardAugment(nn.Module):
    """Random crop (zero padding) + horizontal flip (optional) + Cutout (optional), per image, batched.

    Args:
        padding: crop padding in pixels (4 on CIFAR).
        flip: flip horizontally with probability 1/2 (off for digits).
        cutout: Cutout ``length`` (16 on CIFAR; 0 disables): a square of side ``2 * (cutout // 2)``
            clipped at the border, as in DeVries & Taylor's code (see :func:`cutout`).

    ``forward(x, generator=None, params=None, return_params=False)``: x (N, C, H, W) any dtype -> same
    shape and dtype (and the :class:`StandardParams` used). Draw order per call: crop offsets, flip
    coins, Cutout centres (a part that is off draws nothing). Like the policy modules it also takes a
    (C, H, W) image, (..., C, H, W), a ``tv_tensors.Image`` or PIL image, and whole samples
    (``m(img, label)``), so it drops into a ``torchvision.transforms.v2`` pipeline (a ``tv_tensors.Video``
    gets one draw for all its frames, as in torchvision); the other methods take (N, C, H, W) batches.
    """

    def __init__(self, padding=4, flip=True, cutout=16):
        super().__init__()
        self.padding, self.flip, self.cutout_size = int(padding), bool(flip), int(cutout)

    # ---- sample ------------------------------------------------------------------------------------
    def sample_crop_flip(self, N, generator=None):
        """The crop offsets, then the flip coins, of N images (a :class:`StandardParams` without centres)."""
        offsets = None
        if self.padding > 0 and N > 0:  # random_crop draws nothing otherwise
            offsets = torch.randint(0, 2 * self.padding + 1, (N, 2), generator=generator)
        flip = torch.rand(N, generator=generator) < 0.5 if self.flip else None
        return StandardParams(offsets, flip)

    def sample_cutout(self, N, H, W, generator=None):
        """(N, 2) int64 Cutout centres, uniform over an H x W image (None when Cutout is off)."""
        if self.cutout_size <= 0 or N == 0:
            return None
        return torch.stack([torch.randint(0, H, (N,), generator=generator),
                            torch.randint(0, W, (N,), generator=generator)], 1)

    def sample(self, x, generator=None):
        """Every random value of one call on x (N, C, H, W), in the call's order: a :class:`StandardParams`."""
        _check(x)
        N, _, H, W = x.shape
        p = self.sample_crop_flip(N, generator)
        p.centers = self.sample_cutout(N, H, W, generator)
        return p

    # ---- apply -------------------------------------------------------------------------------------
    def _need(self, params, name, on):
        t = getattr(params, name)
        if on and t is None:
            raise ValueError(f"params.{name} is None, but this StandardAugment ({self.extra_repr()}) needs it")
        return t

    def apply_crop_flip(self, x, params):
        """Crop, then flip, x (N, C, H, W) with the given draws."""
        _check(x)
        N = x.shape[0]
        params.check(N)
        x = random_crop(x, self.padding, offsets=self._need(params, "offsets", self.padding > 0 and N > 0))
        return random_hflip(x, mask=self._need(params, "flip", True)) if self.flip else x

    def apply_cutout(self, x, params):
        """Cutout of x (N, C, H, W) at the given centres."""
        _check(x)
        N = x.shape[0]
        params.check(N)
        return cutout(x, self.cutout_size, centers=self._need(params, "centers", self.cutout_size > 0 and N > 0))

    def apply(self, x, params):
        """Crop, flip, then Cutout x (N, C, H, W) with the draws of ``params`` (same shape and dtype)."""
        return self.apply_cutout(self.apply_crop_flip(x, params), params)

    # ---- sample and apply in one call --------------------------------------------------------------
    def crop_flip(self, x, generator=None):
        _check(x)
        return self.apply_crop_flip(x, self.sample_crop_flip(x.shape[0], generator))

    def cutout(self, x, generator=None):
        _check(x)
        N, _, H, W = x.shape
        return self.apply_cutout(x, StandardParams(centers=self.sample_cutout(N, H, W, generator)))

    def forward(self, *inputs, generator=None, params=None, return_params=False):
        """Crop, flip and Cutout the image of a sample, as the policy modules take one (``samples.py``): an
        image (C, H, W), a batch (N, C, H, W) or (..., C, H, W), a tensor, ``tv_tensors.Image`` or PIL
        image, alone or in a sample whose other parts (a label) pass through; boxes and masks are refused.
        The output has the input's type and shape. ``m(x, generator)`` (positional) is ``m(x,
        generator=generator)``."""
        if len(inputs) >= 2 and isinstance(inputs[1], torch.Generator):  # forward(x, generator, params, return_params)
            x, generator, *rest = inputs
            params, return_params = (rest + [params, return_params][len(rest):])[:2]
            inputs = (x,)
        T = 1
        if len(inputs) == 1 and type(inputs[0]) is torch.Tensor and inputs[0].dim() == 4:  # a plain batch
            x, restore, rebuild = inputs[0], None, None
        else:
            flat, spec, idx = split_sample(inputs, type(self).__name__)
            T = frames_per_draw(flat[idx])  # a tv_tensors.Video's frames share its draw
            x, restore = to_batch(flat[idx])
            rebuild = lambda image: join_sample(flat, spec, idx, restore(image))  # noqa: E731
        if params is None:
            params = self.sample(x[::T], generator)
            if T > 1:
                params = StandardParams(*(None if t is None else t.repeat_interleave(T, 0)
                                          for t in (params.offsets, params.flip, params.centers)))
        out = self.apply(x, params)
        out = out if rebuild is None else rebuild(out)
        return (out, params) if return_params else out

    def recipe(self, x, generator=None, policy=None, params=None, return_params=False):
        """The training recipe every method uses: crop/flip -> ``policy`` -> Cutout -> float in [0, 1].

        Args:
            x: (N, C, H, W) images (uint8, or float in [0, 1]) on the training device.
            generator: the CPU generator every draw comes from (order: crop offsets, flip coins,
                the policy's draws, Cutout centres).
            policy: optional callable ``(x, generator) -> images`` (uint8 or float, same shape): the
                method's policy or learned transformation, applied between crop/flip and Cutout.
            params: a :class:`StandardParams` to replay instead of drawing crop, flip and Cutout (the
                policy, if any, still draws its own values from ``generator``).
            return_params: also return the :class:`StandardParams` used.
        Returns: (N, C, H, W) float32 in [0, 1] (float inputs keep their dtype), and the params if asked.
        """
        _check(x)
        N, _, H, W = x.shape
        if params is None:
            params = self.sample_crop_flip(N, generator)
            x = self.apply_crop_flip(x, params)
            if policy is not None:
                x = policy(x, generator)
            params.centers = self.sample_cutout(N, H, W, generator)
        else:
            x = self.apply_crop_flip(x, params)
            if policy is not None:
                x = policy(x, generator)
        out = to_float(self.apply_cutout(x, params))
        return (out, params) if return_params else out

    def extra_repr(self):
        return f"padding={self.padding}, flip={self.flip}, cutout={self.cutout_size}"
