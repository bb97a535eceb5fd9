"""What ``fastaug train --augment influence`` learned, as a loadable augmentation: the loop's augmenter.

:class:`TransformAugment` holds the trained :class:`~fastaug.augment.influence_augmenter.Augmenter` (E and
G) and applies what the loop's stage 5 applies -- stage 5 augments its batches through this module
(``LearnedRetrain.augment`` in :mod:`fastaug.train.influence_loop.method`, under the run's autocast), and
a run leaves it in ``augmentation.pt``: each image independently,
with probability ``p`` (the run's ``--learned-prob``), becomes ``clamp(transform(x, G(E(x) * mask)), 0, 1)``
with its own dropout mask on the code tau (the diversity of the paper's Figure 3), spatial and
appearance parts through :func:`fastaug.transform`.

G outputs parameter maps of the size it was trained at, so images must have that size (one sentence
otherwise); the networks run in their weights' dtype, float32 unless moved (uint8 images come back as uint8).

Params (``return_params``): :class:`TransformParams` -- which images were picked, their dropout masks
and the codes ``E(x) * mask`` computed from them. Replaying params with codes skips E, so the same
transformation applies to another image (a mask, a second view) exactly.
"""
import dataclasses
from typing import Optional

import torch

from .influence_augmenter import Augmenter
from .learned_module import LearnedAugmentation

__all__ = ["TransformAugment", "TransformParams"]


@dataclasses.dataclass
class TransformParams:
    """The draws of the learned transformation for an N-image batch.

    Attributes:
        index: (n,) int64 the images that are transformed (each picked with probability p).
        mask: (n, tau_dim) float32 their inverted-dropout masks on tau (None without dropout).
        codes: (n, tau_dim) the codes ``E(x) * mask`` G maps to the transformation (filled by the
            call; given, they are used as they are and E is skipped).
    """

    index: torch.Tensor
    mask: Optional[torch.Tensor] = None
    codes: Optional[torch.Tensor] = None

    def to(self, device):
        return TransformParams(self.index.to(device), *(None if t is None else t.to(device)
                                                        for t in (self.mask, self.codes)))

    def check(self, N):
        idx = self.index
        if not isinstance(idx, torch.Tensor) or idx.dim() != 1 or (idx.numel() and not 0 <= int(idx.min())
                                                                    <= int(idx.max()) < N):
            raise ValueError(f"params.learned.index must be a 1-d tensor of image indices in [0, {N})")
        n = idx.numel()
        for name in ("mask", "codes"):
            t = getattr(self, name)
            if t is not None and (t.dim() != 2 or t.shape[0] != n):
                raise ValueError(f"params.learned.{name} must have one row per picked image ({n}), got "
                                 f"{tuple(t.shape)}")
        return self


class TransformAugment(LearnedAugmentation):
    """The influence loop's trained augmenter as an augmentation (module docstring).

    Args:
        augmenter: the trained :class:`~fastaug.augment.influence_augmenter.Augmenter`.
        standard, provenance: see :class:`~fastaug.augment.learned_module.LearnedAugmentation`.
        p: probability that an image is transformed (the run's ``--learned-prob``; 1 by default).
    """

    name = "influence"
    float_only = True
    resizes = False

    def __init__(self, augmenter, standard=None, p=1.0, provenance=None):
        if not isinstance(augmenter, Augmenter):
            raise TypeError(f"augmenter must be a fastaug.augment.influence_augmenter.Augmenter, got "
                            f"{type(augmenter).__name__}")
        super().__init__(augmenter.channels, (augmenter.height, augmenter.width), standard, provenance)
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.augmenter = augmenter  # held, not copied (it has no layer that differs in eval mode)
        self.p = float(p)

    def sample_learned(self, N, H, W, generator):
        index = (torch.rand(N, generator=generator) < self.p).nonzero().squeeze(1)
        mask = None
        if index.numel() and self.augmenter.dropout > 0:  # drawn on the CPU, as Augmenter.codes draws it
            mask = self.augmenter.dropout_mask(index.numel(), generator)
        return TransformParams(index, mask)

    def apply_learned(self, x, params, labels):
        if params.index.numel() == 0:
            return x, params
        aug, idx = self.augmenter, params.index.to(x.device)
        xs = x.index_select(0, idx)
        codes = params.codes
        if codes is None:
            codes = aug.encoder(xs)
            if params.mask is not None:
                codes = codes * params.mask.to(codes.device, codes.dtype)
        out = aug.apply(xs, aug.params(codes.to(xs.dtype)))
        return x.index_copy(0, idx, out.to(x.dtype)), TransformParams(params.index, params.mask, codes)

    def options(self):
        return {"p": self.p, "augmenter": self.augmenter.config()}

    @classmethod
    def from_parts(cls, channels, image_size, standard, provenance, options, state):
        aug = Augmenter(**options["augmenter"])
        module = cls(aug, standard, float(options["p"]), provenance)
        if (module.channels, module.image_size) != (channels, tuple(image_size)):
            raise ValueError(f"the augmenter's config ({module.channels} channels, {module.image_size}) differs from "
                             f"the meta's ({channels} channels, {tuple(image_size)})")
        module.load_state_dict(state)
        return module

    @classmethod
    def from_augmenter_file(cls, art):
        """The module of an ``augmenter.pt`` the influence loop wrote (an ``"influence-augmenter"`` artifact):
        the augmenter alone, every image transformed (p = 1), no standard recipe."""
        aug = Augmenter(**art.meta["config"])
        aug.encoder.load_state_dict(art.state["encoder"])
        aug.generator.load_state_dict(art.state["generator"])
        return cls(aug, provenance={k: v for k, v in art.meta.items() if k != "config"}).eval().requires_grad_(False)

    def describe(self):
        a = self.augmenter
        return [f"influence-loop augmenter: learned spatial{' + appearance' if a.appearance else ''} transformation "
                f"of {a.channels}-channel {a.height}x{a.width} images (code size {a.tau_dim}, dropout {a.dropout:g}, "
                f"smoothing {a.smooth}, {a.mode} mode), applied to each image with probability {self.p:g}"]

    def extra_repr(self):
        return f"{super().extra_repr()}, p={self.p:g}"
