"""The standard CIFAR augmentation, batched on the device: random crop with padding, horizontal flip, Cutout.

As in the Adversarial AutoAugment paper's standard augmentation (section 4.2): pad by ``padding`` pixels with
zeros and crop back to the original size at a random offset (torchvision's ``RandomCrop(size,
padding)``), flip horizontally with probability 1/2, and Cutout (DeVries & Taylor 2017): zero a
``size`` x ``size`` square centred on a uniformly random pixel, clipped at the borders, exactly as
the authors' code (rows ``[cy - size//2, cy + size//2)``).

Every random draw comes from a CPU ``torch.Generator`` (as the policy modules do), then the work
runs where the images are, for the whole batch at once: no per-image Python.
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["random_crop", "random_hflip", "cutout", "to_float", "StandardAugment"]


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
    """Cutout: set a ``size`` x ``size`` square around a random centre of each image to ``fill``.

    ``centers``: optional (N, 2) int64 (row, col); drawn uniformly over the image if None.
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


class StandardAugment(nn.Module):
    """Random crop (zero padding) + horizontal flip (optional) + Cutout (optional), per image, batched.

    Args:
        padding: crop padding in pixels (4 on CIFAR).
        flip: flip horizontally with probability 1/2 (off for digits).
        cutout: Cutout square side (16 on CIFAR; 0 disables).
    ``forward(x, generator=None)``: x (N, C, H, W) any dtype -> same shape and dtype.
    Draw order per call: crop offsets, flip coins, Cutout centres.
    """

    def __init__(self, padding=4, flip=True, cutout=16):
        super().__init__()
        self.padding, self.flip, self.cutout_size = int(padding), bool(flip), int(cutout)

    def crop_flip(self, x, generator=None):
        x = random_crop(x, self.padding, generator)
        return random_hflip(x, generator) if self.flip else x

    def cutout(self, x, generator=None):
        return cutout(x, self.cutout_size, generator)

    def forward(self, x, generator=None):
        return self.cutout(self.crop_flip(x, generator), generator)

    def recipe(self, x, generator=None, policy=None):
        """The training recipe every method uses: crop/flip -> ``policy`` -> Cutout -> float in [0, 1].

        Args:
            x: (N, C, H, W) images (uint8, or float in [0, 1]) on the training device.
            generator: the CPU generator every draw comes from (order: crop offsets, flip coins,
                the policy's draws, Cutout centres).
            policy: optional callable ``(x, generator) -> images`` (uint8 or float, same shape): the
                method's policy or learned transformation, applied between crop/flip and Cutout.
        Returns: (N, C, H, W) float32 in [0, 1] (float inputs keep their dtype).
        """
        x = self.crop_flip(x, generator)
        if policy is not None:
            x = policy(x, generator)
        return to_float(self.cutout(x, generator))

    def extra_repr(self):
        return f"padding={self.padding}, flip={self.flip}, cutout={self.cutout_size}"
