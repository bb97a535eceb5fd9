"""CycleGAN pieces for learned subgroup translation (Zhu et al. 2017, as model patching's stage 1 uses them).

The generators (:class:`UNetGenerator`, :class:`ResNetGenerator`, :func:`build_generator`) live in
:mod:`fastaug.augment.cyclegan_generators`, below the training code, because a trained translation is an
augmentation users load and apply; they are re-exported here. This module adds what training needs:

* :class:`PatchDiscriminator`: PatchGAN (4x4 convolutions, LeakyReLU 0.2, BatchNorm after the first)
  with ``clamp(round(log2 side) - 3, 1, 3)`` stride-2 layers: the 70x70 PatchGAN (3) at 256 px, 2 at
  28-32 px (a 22-px receptive field on a 28-px digit). Outputs a map of logits.
* :func:`gan_loss` (LSGAN or BCE), :class:`ImagePool` (the 50-image replay pool) and
  :class:`CycleGAN` (two generators, two discriminators and their losses: GAN + cycle 10 L1 +
  identity 0.5 L1).

Images go in and come out as float in [0, 1]; inside, the networks work in [-1, 1].
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..augment.cyclegan_generators import GENERATORS, ResNetGenerator, UNetGenerator, build_generator
from ..augment.cyclegan_generators import norm_layer as _norm

__all__ = ["UNetGenerator", "ResNetGenerator", "PatchDiscriminator", "gan_loss", "ImagePool", "CycleGAN",
           "build_generator", "GENERATORS"]


class PatchDiscriminator(nn.Module):
    """PatchGAN: (N, C, H, W) in [0, 1] -> (N, 1, h, w) logits, one per overlapping patch."""

    def __init__(self, channels, image_size, width=16, norm="batch", layers=None):
        super().__init__()
        n = max(1, min(3, round(math.log2(image_size)) - 3)) if layers is None else int(layers)
        seq = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = width
        for i in range(1, n):
            seq += [nn.Conv2d(c, min(2 * c, 8 * width), 4, 2, 1, bias=False), _norm(norm, min(2 * c, 8 * width)),
                    nn.LeakyReLU(0.2, True)]
            c = min(2 * c, 8 * width)
        seq += [nn.Conv2d(c, min(2 * c, 8 * width), 4, 1, 1, bias=False), _norm(norm, min(2 * c, 8 * width)),
                nn.LeakyReLU(0.2, True), nn.Conv2d(min(2 * c, 8 * width), 1, 4, 1, 1)]
        self.net = nn.Sequential(*seq)

    def forward(self, x):
        return self.net(x * 2 - 1)


def gan_loss(logits, real, mode="bce"):
    """Mean GAN loss of discriminator ``logits`` against the target real (1) or fake (0).

    ``"lsgan"``: mean squared error to the target (Mao et al., CycleGAN's default); ``"bce"``: binary
    cross-entropy with logits (the model-patching code's choice).
    """
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    if mode == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    raise ValueError(f"unknown GAN loss {mode!r}; choose 'lsgan' or 'bce'")


class ImagePool:
    """CycleGAN's replay pool of generated images (Shrivastava et al.): the discriminator sees a mix of
    the newest fakes and older ones, which damps oscillation.

    ``query(images)``: while the pool holds fewer than ``size`` images, each new image is stored and
    returned; after that, each image is, with probability 1/2, returned as is, or swapped with a
    uniformly chosen stored image (which is returned, the new one stored). Every draw comes from
    ``rng`` (a CPU torch.Generator; not "generator", the name of the networks here). State
    (``state_dict``): the stored images and the count.
    """

    def __init__(self, size=50, rng=None):
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = int(size)
        self.rng = rng if rng is not None else torch.Generator().manual_seed(0)
        self.images = None  # (size, C, H, W) once the first image arrives
        self.count = 0

    @torch.no_grad()
    def query(self, images):
        """(B, C, H, W) new fakes -> (B, C, H, W) images for the discriminator (detached)."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.images is None:
            self.images = torch.zeros((self.size,) + tuple(images.shape[1:]), dtype=images.dtype, device=images.device)
        out = images.clone()
        for i in range(images.shape[0]):
            if self.count < self.size:
                self.images[self.count] = images[i]
                self.count += 1
            elif torch.rand((), generator=self.rng).item() < 0.5:
                j = int(torch.randint(self.size, (), generator=self.rng))
                out[i] = self.images[j]
                self.images[j] = images[i]
        return out

    def state_dict(self):
        return {"count": self.count, "images": None if self.images is None else self.images.cpu().clone()}

    def load_state_dict(self, state, device="cpu"):
        self.count = int(state["count"])
        self.images = None if state["images"] is None else state["images"].to(device)


class CycleGAN(nn.Module):
    """Two generators between domains A and B (``g_ab``: A -> B, ``g_ba``: B -> A), two PatchGANs, the losses.

    Args:
        channels, image_size: the images'.
        generator: "unet" or "resnet"; width / disc_width: first-level channels.
        gan_mode: "bce" or "lsgan".
        cycle_weight: lambda of the cycle losses ||g_ba(g_ab(a)) - a||_1 (+ the B way), Zhu et al.'s 10.
        identity_weight: weight of the identity losses ||g_ab(b) - b||_1 (+ the A way): 0.5 as the
            model-patching notes give it (Zhu et al.'s code multiplies its 0.5 by the cycle weight).
    """

    def __init__(self, channels, image_size, generator="unet", width=16, disc_width=16, gan_mode="bce",
                 cycle_weight=10.0, identity_weight=0.5):
        super().__init__()
        self.g_ab = build_generator(generator, channels, image_size, width)
        self.g_ba = build_generator(generator, channels, image_size, width)
        self.d_a = PatchDiscriminator(channels, image_size, disc_width)
        self.d_b = PatchDiscriminator(channels, image_size, disc_width)
        self.gan_mode, self.cycle_weight, self.identity_weight = gan_mode, float(cycle_weight), float(identity_weight)

    def generator_parameters(self):
        return list(self.g_ab.parameters()) + list(self.g_ba.parameters())

    def discriminator_parameters(self):
        return list(self.d_a.parameters()) + list(self.d_b.parameters())

    def generator_losses(self, a, b):
        """Losses of the generators on a batch of A images ``a`` and B images ``b`` (both in [0, 1]).

        Returns:
            dict with ``gan`` (fooling both discriminators), ``cycle`` (cycle_weight * the two L1
            reconstruction errors), ``identity`` (identity_weight * the two L1 identity errors),
            ``total``, and the fakes ``fake_b`` = g_ab(a), ``fake_a`` = g_ba(b) (for the discriminators).
        """
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        gan = gan_loss(self.d_b(fake_b), True, self.gan_mode) + gan_loss(self.d_a(fake_a), True, self.gan_mode)
        cycle = self.cycle_weight * (F.l1_loss(self.g_ba(fake_b), a) + F.l1_loss(self.g_ab(fake_a), b))
        identity = a.new_zeros(())
        if self.identity_weight:
            identity = self.identity_weight * (F.l1_loss(self.g_ab(b), b) + F.l1_loss(self.g_ba(a), a))
        return {"gan": gan, "cycle": cycle, "identity": identity, "total": gan + cycle + identity,
                "fake_a": fake_a, "fake_b": fake_b}

    def discriminator_loss(self, a, b, fake_a, fake_b):
        """0.5 (real + fake) GAN loss of each discriminator, summed; fakes are detached (from the pools)."""
        m = self.gan_mode
        loss_a = 0.5 * (gan_loss(self.d_a(a), True, m) + gan_loss(self.d_a(fake_a.detach()), False, m))
        loss_b = 0.5 * (gan_loss(self.d_b(b), True, m) + gan_loss(self.d_b(fake_b.detach()), False, m))
        return loss_a + loss_b
