"""The image-to-image generators of model patching's CycleGANs (Zhu et al. 2017): one subgroup's image
in, its version in the other subgroup out. They live here, below the training code, because a learned
subgroup translation is an augmentation a user loads and applies (:class:`~fastaug.augment.SubgroupTranslation`);
the discriminator, the losses and the replay pool, which only training needs, stay in
:mod:`fastaug.models.cyclegan`.

Images go in and come out as float in [0, 1] (as everywhere in fastaug); inside, generators work in
[-1, 1] and end with tanh, as the CycleGAN code. Sizes follow the image side so that the 28-px digits
train in minutes on a CPU:

* :class:`UNetGenerator`: pix2pix's U-Net. The side is padded to a power of two P (28 -> 32) and
  halved log2(P) times down to 1x1 with 4x4 stride-2 convolutions (width ``width * 2^i``, at most
  ``8 * width``; BatchNorm + LeakyReLU 0.2, none on the first and the innermost), then mirrored with
  transposed convolutions (BatchNorm + ReLU) and skip connections, and cropped back. The authors'
  MNIST generator is this with width 32; the default here is 16 (a quarter of the MACs). It works on
  images of the side it was built for only.
* :class:`ResNetGenerator`: CycleGAN's ResNet generator (c7s1-w, two stride-2 downsamplings, residual
  blocks, two upsamplings, c7s1 tanh; instance norm): 6 blocks up to 128 px, 9 above, as Zhu et al.
  The side must be divisible by 4.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNetGenerator", "ResNetGenerator", "build_generator", "norm_layer", "GENERATORS"]

GENERATORS = ("unet", "resnet")


def norm_layer(kind, channels):
    """BatchNorm2d (``"batch"``) or InstanceNorm2d without affine parameters (``"instance"``), CycleGAN's two."""
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.InstanceNorm2d(channels, affine=False)


class UNetGenerator(nn.Module):
    """U-Net generator: (N, C, H, W) in [0, 1] -> (N, C, H, W) in [0, 1].

    Args:
        channels: image channels C.
        image_size: side H = W (padded to the next power of two inside).
        width: channels of the first level (doubled per level, capped at 8 * width).
        norm: "batch" (pix2pix, the authors' MNIST model) or "instance".
    """

    def __init__(self, channels, image_size, width=16, norm="batch"):
        super().__init__()
        self.side = int(image_size)
        self.padded = 1 << max(2, math.ceil(math.log2(self.side)))
        levels = int(math.log2(self.padded))
        widths = [min(width * 2 ** i, 8 * width) for i in range(levels)]
        self.down = nn.ModuleList()
        c_in = channels
        for i, w in enumerate(widths):
            layers = [nn.Conv2d(c_in, w, 4, 2, 1, bias=i == 0 or i == levels - 1)]
            if 0 < i < levels - 1:
                layers.append(norm_layer(norm, w))
            self.down.append(nn.Sequential(*layers))
            c_in = w
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            c_in = widths[i] if i == levels - 1 else 2 * widths[i]
            c_out = channels if i == 0 else widths[i - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=i == 0)]
            if i > 0:
                layers.append(norm_layer(norm, c_out))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x):
        pad = self.padded - self.side
        h = x * 2 - 1
        if pad:
            h = F.pad(h, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2), mode="replicate")
        skips = []
        for i, layer in enumerate(self.down):
            h = layer(h if i == 0 else F.leaky_relu(h, 0.2))
            skips.append(h)
        skips.pop()
        for layer in self.up:
            h = layer(h)
            if skips:
                h = torch.cat([h, skips.pop()], 1)
        h = torch.tanh(h)
        if pad:
            h = h[..., pad // 2: pad // 2 + self.side, pad // 2: pad // 2 + self.side]
        return (h + 1) / 2


class _ResBlock(nn.Module):
    def __init__(self, c, norm):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm_layer(norm, c), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm_layer(norm, c))

    def forward(self, x):
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """CycleGAN's ResNet generator: (N, C, H, W) in [0, 1] -> same, H and W divisible by 4.

    Args:
        channels: image channels; image_size: side (sets the block count: 6 up to 128 px, else 9);
        width: channels of the first convolution (Zhu et al.: 64); blocks: override the count.
    """

    def __init__(self, channels, image_size, width=16, norm="instance", blocks=None):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"the ResNet generator needs an image side divisible by 4, got {image_size}; "
                             f"use --generator unet")
        blocks = (6 if image_size <= 128 else 9) if blocks is None else int(blocks)
        w = width
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, w, 7), norm_layer(norm, w), nn.ReLU(True),
                  nn.Conv2d(w, 2 * w, 3, 2, 1), norm_layer(norm, 2 * w), nn.ReLU(True),
                  nn.Conv2d(2 * w, 4 * w, 3, 2, 1), norm_layer(norm, 4 * w), nn.ReLU(True)]
        layers += [_ResBlock(4 * w, norm) for _ in range(blocks)]
        layers += [nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, output_padding=1), norm_layer(norm, 2 * w), nn.ReLU(True),
                   nn.ConvTranspose2d(2 * w, w, 3, 2, 1, output_padding=1), norm_layer(norm, w), nn.ReLU(True),
                   nn.ReflectionPad2d(3), nn.Conv2d(w, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return (self.net(x * 2 - 1) + 1) / 2


def build_generator(kind, channels, image_size, width=16):
    """A generator ``kind`` ("unet" or "resnet") for ``channels``-channel images of side ``image_size``."""
    if kind == "unet":
        return UNetGenerator(channels, image_size, width)
    if kind == "resnet":
        return ResNetGenerator(channels, image_size, width)
    raise ValueError(f"unknown generator {kind!r}; choose one of {', '.join(GENERATORS)}")
