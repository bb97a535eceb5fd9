"""What every loadable learned augmentation shares: the call convention, the checks, the standard recipe
around the learned part, the sample -> params -> apply split, and writing itself as one artifact.

A learned augmentation (:mod:`fastaug.augment.learned_policies`, ``learned_sequences``,
``learned_transform``, ``learned_translation``) is an ``nn.Module`` that augments what the policy modules
augment (:mod:`fastaug.augment.samples`): an image (C, H, W), a batch (N, C, H, W) or (..., C, H, W),
uint8 or float in [0, 1], a plain tensor, a ``tv_tensors.Image`` or a PIL image, alone or inside a
torchvision-style sample (``m(img, label)``, ``m((img, label))``, dicts; the label passes through),
on whatever device the module was moved to. The output has the input's type, shape and dtype.

One call, for N images:

1. **sample** (:meth:`LearnedAugmentation.sample`): every random value, from the CPU ``generator=``
   (torch's global generator when None), in the order the training run draws them: the standard
   recipe's crop offsets and flip coins, the learned part's draws, the Cutout centres. Nothing here
   looks at the pixels, so the same seed gives the same :class:`AugmentationParams` on any device.
2. **apply** (:meth:`LearnedAugmentation.apply`): crop/flip, the learned part, Cutout -- the order of
   :meth:`fastaug.augment.StandardAugment.recipe`, which every ``fastaug train`` method trains with. A
   kind that learned without the standard recipe (subgroup translations), or a module loaded with
   ``standard=False``, applies the learned part alone.

An image given alone ((C, H, W) or a PIL image, e.g. inside a ``v2.Compose`` in DataLoader workers) is
drawn for as one image (:meth:`LearnedAugmentation.sample_learned_one`): a kind whose learned part covers
a share of each batch (TANDA's ``int(N * p)``, 0 for N = 1) applies it to that image.

``forward(..., params=p)`` replays given parameters and ``return_params=True`` returns them (on the
images' device), so two views, or an image and its mask, get the same augmentation.

The networks run frozen: under ``torch.no_grad()`` and in eval mode whatever ``.train()`` says
(BatchNorm uses its running statistics; nothing here trains). A module holds the networks it is given,
not copies, so a method can apply the networks it is training through it; a loaded module's
parameters do not require gradients. Kinds whose learned part is a network
on float images compute in the dtype of its weights (float32; float64 after ``.double()`` or
``.to(torch.float64)``) and give every input back in its own dtype (uint8 as ``round(255 x)``).

Mismatch is one sentence (a ValueError): channels other than the learned ones; an image size other than
the learned one where the kind cannot resize (``resizes = False``); a float batch outside [0, 1]; a
dtype other than uint8 or float; a batch on another device than the module's weights.
"""
import dataclasses
from typing import Any, Optional

import torch
from torch import nn

from ..artifacts import ArtifactError, save_artifact
from .params import _gen
from .samples import _is_pil, check_unit_range, cpu_half_as_float, frames_per_draw, join_sample, split_sample, to_batch
from .standard import StandardAugment, StandardParams

__all__ = ["LearnedAugmentation", "AugmentationParams", "AUGMENTATION_FILE", "KIND_PREFIX", "VALUE_RANGE",
           "OWNED_META"]

#: The file a run writes its learned augmentation to, in its run folder.
AUGMENTATION_FILE = "augmentation.pt"
#: Every learned augmentation's artifact kind is this prefix and the kind's name ("augmentation/tanda").
KIND_PREFIX = "augmentation/"
#: The values a learned augmentation takes (recorded in its meta).
VALUE_RANGE = "uint8 in [0, 255] or float in [0, 1]"
#: Meta keys the module writes itself (a caller's meta may not set them).
OWNED_META = ("channels", "image_size", "value_range", "standard", "options")


@dataclasses.dataclass
class AugmentationParams:
    """The random values of one call of a learned augmentation on N images.

    Attributes:
        standard: the standard recipe's draws (:class:`~fastaug.augment.StandardParams`), None when the
            module applies no standard recipe.
        learned: the learned part's draws, a dataclass of the kind (e.g. ``PolicyParams``); None for a
            kind that draws nothing (``fixed``).
    """

    standard: Optional[StandardParams]
    learned: Any

    def to(self, device):
        return AugmentationParams(None if self.standard is None else self.standard.to(device),
                                  None if self.learned is None else self.learned.to(device))

    def check(self, N):
        """Raise a ValueError unless these are draws for N images."""
        if self.standard is not None:
            self.standard.check(N)
        if self.learned is not None:
            self.learned.check(N)
        return self


def _standard_meta(standard):
    if standard is None:
        return None
    return {"padding": standard.padding, "flip": standard.flip, "cutout": standard.cutout_size}


def _standard_from(meta):
    return None if meta is None else StandardAugment(int(meta["padding"]), bool(meta["flip"]), int(meta["cutout"]))


class LearnedAugmentation(nn.Module):
    """Base of the loadable learned augmentations (module docstring). A kind sets ``name`` and implements
    :meth:`sample_learned`, :meth:`apply_learned`, :meth:`options`, :meth:`from_parts` (and, with
    networks, keeps them as submodules, so that ``state_dict()`` holds the weights).

    Args:
        channels: C of the images it was learned on (1 or 3).
        image_size: (H, W) of those images (an int for a square).
        standard: the :class:`~fastaug.augment.StandardAugment` the run trained with around the learned
            part, or None.
        provenance: JSON-able description carried into the artifact's meta (dataset, run options, quality).
    """

    #: the kind's name; its artifact kind is ``"augmentation/" + name``
    name = None
    #: the layout version of the kind's artifact
    version = 1
    #: the learned part works on float images only (networks)
    float_only = False
    #: the learned part works at any image size (False: the learned size only)
    resizes = True
    #: the learned part needs each image's class (``m(img, label)``)
    needs_labels = False

    def __init__(self, channels, image_size, standard=None, provenance=None):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"image_size must be a side or (H, W), got {image_size!r}")
        if standard is not None and not isinstance(standard, StandardAugment):
            raise TypeError(f"standard must be a fastaug.augment.StandardAugment or None, got {type(standard).__name__}")
        self.channels, self.image_size = int(channels), size
        self.standard = standard
        self.provenance = dict(provenance or {})

    @classmethod
    def kind(cls):
        return KIND_PREFIX + cls.name

    # ---- what a kind implements ----------------------------------------------------------------
    def sample_learned(self, N, H, W, generator):
        """The learned part's draws for N images of H x W (a dataclass with ``to`` and ``check``), or None."""
        return None

    def sample_learned_one(self, H, W, generator):
        """The learned part's draws for one image given alone ((C, H, W), not a batch): by default those
        of a batch of one; a kind whose learned part covers a share of each batch overrides it."""
        return self.sample_learned(1, H, W, generator)

    def apply_learned(self, x, params, labels):
        """The learned part on x (N, C, H, W) -> (augmented x, the params as used: a kind may complete them,
        e.g. with the codes it computed)."""
        return x, params

    def options(self):
        """The kind's JSON-able construction options (written to the artifact's meta)."""
        return {}

    @classmethod
    def from_parts(cls, channels, image_size, standard, provenance, options, state):
        """The module from its artifact's meta (options) and state (weights)."""
        raise NotImplementedError

    def describe(self):
        """Lines summarising what was learned (``fastaug show`` prints them)."""
        return []

    # ---- the call ------------------------------------------------------------------------------
    def _device(self):
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return None

    def compute_dtype(self):
        """The dtype a float-only kind's networks compute in: their weights' (float32 unless the module was
        moved with ``.to(dtype)`` / ``.double()``)."""
        for t in self.parameters():
            if t.is_floating_point():
                return t.dtype
        return torch.float32

    def check_batch(self, x):
        """Raise one sentence unless x (N, C, H, W) is what this augmentation was learned on."""
        who = type(self).__name__
        if not (x.dtype == torch.uint8 or x.is_floating_point()):
            raise ValueError(f"{who}(): images must be {VALUE_RANGE}, got dtype {x.dtype}")
        if x.shape[1] != self.channels:
            raise ValueError(f"{who}(): this augmentation was learned on {self.channels}-channel images, got "
                             f"{x.shape[1]}-channel images")
        H, W = self.image_size
        if not self.resizes and tuple(x.shape[2:]) != (H, W):
            raise ValueError(f"{who}(): this augmentation was learned on {H}x{W} images and cannot resize, got "
                             f"{x.shape[2]}x{x.shape[3]} images: resize them to {H}x{W} first")
        check_unit_range(x, who)
        dev = self._device()
        if dev is not None and x.device != dev:
            raise ValueError(f"{who}(): the images are on {x.device} but the augmentation is on {dev}; move it with "
                             f".to({str(x.device)!r}) first")

    def sample(self, x, generator=None, single=False):
        """Every random value of one call on x (N, C, H, W), in the training run's order (module docstring).

        ``single``: x (1, C, H, W) is one image given alone, not a batch (the learned part's draws are
        then :meth:`sample_learned_one`'s)."""
        g = _gen(generator)
        N, _, H, W = x.shape
        if single and N != 1:
            raise ValueError(f"single=True is for one image, got a batch of {N}")
        std = self.standard
        first = std.sample_crop_flip(N, g) if std is not None else None
        learned = self.sample_learned_one(H, W, g) if single else self.sample_learned(N, H, W, g)
        if std is None:
            return AugmentationParams(None, learned)
        first.centers = std.sample_cutout(N, H, W, g)
        return AugmentationParams(first, learned)

    @torch.no_grad()
    def apply(self, x, params, labels=None):
        """x (N, C, H, W) with the draws ``params`` -> (augmented x of x's dtype, the params as used)."""
        dtype = x.dtype
        if self.float_only:
            compute = self.compute_dtype()
            x = x.to(compute).div_(255.0) if dtype == torch.uint8 else x.to(compute)
        else:
            x = cpu_half_as_float(x)  # the policy ops take half floats on CUDA only; cast back below
        std = params.standard
        if self.standard is not None:
            x = self.standard.apply_crop_flip(x, std)
        x, learned = self.apply_learned(x, params.learned, labels)
        if self.standard is not None:
            x = self.standard.apply_cutout(x, std)
        if x.dtype != dtype:
            x = x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
        return x, AugmentationParams(std, learned)

    def forward(self, *inputs, generator=None, params=None, return_params=False, labels=None):
        """Augment the image of a sample (module docstring).

        Args:
            *inputs: an image or a sample containing one (and, for a kind that needs them, its label).
            generator: CPU ``torch.Generator`` of every draw (default: torch's global one).
            params: :class:`AugmentationParams` for the N images (as returned with ``return_params``):
                apply them instead of drawing new ones.
            return_params: also return the parameters used.
            labels: the images' classes ((N,), or an int: the class of every image) for a kind that needs
                them, when the sample does not carry them.

        Returns:
            The sample with its image augmented (same type and shape), and the
            :class:`AugmentationParams` (on the image's device) if ``return_params``.
        """
        who = type(self).__name__
        flat, spec, idx = split_sample(inputs, who)
        single = _is_pil(flat[idx]) or flat[idx].dim() == 3  # one image given alone, not a batch
        if frames_per_draw(flat[idx]) > 1:
            raise TypeError(f"{who}() does not augment a tv_tensors.Video: it would draw for each frame on its own "
                            f"(torchvision gives a video one draw for all its frames); pass its frames as a plain "
                            f"(T, C, H, W) tensor for a draw per frame")
        x, restore = to_batch(flat[idx])
        self.check_batch(x)
        N = x.shape[0]
        y = _labels(flat, idx, labels, N, who) if self.needs_labels else None
        if params is None:
            params = self.sample(x, generator, single=single)
        elif not isinstance(params, AugmentationParams):
            raise TypeError(f"params must be a fastaug.augment.AugmentationParams (as returned with "
                            f"return_params=True), got {type(params).__name__}")
        elif (params.standard is None) != (self.standard is None):
            has = "applies one" if self.standard is not None else "has none"
            raise ValueError(f"{who}(): these params were drawn {'without' if params.standard is None else 'with'} "
                             f"the standard recipe, but this augmentation {has}")
        params = params.check(N).to(x.device)
        out, used = self.apply(x, params, y)
        out = join_sample(flat, spec, idx, restore(out))
        return (out, used) if return_params else out

    def train(self, mode=True):
        """Sets ``self.training`` only: the learned networks stay in eval mode (module docstring)."""
        super().train(mode)
        for m in self.children():
            m.eval()
        return self

    # ---- the artifact --------------------------------------------------------------------------
    def save(self, path, meta=None):
        """Write this augmentation to ``path`` as one artifact (atomically, weights only); ``meta``: more
        JSON-able description (dataset, run, quality...), kept with the module's provenance. Returns ``path``."""
        meta = dict(meta or {})
        extra = self.extra_meta()  # once: the adversarial kind's frozen policy is a Monte Carlo estimate
        clash = sorted(set(meta) & set(OWNED_META + tuple(extra)))
        if clash:
            raise ValueError(f"meta may not set {', '.join(clash)}: the augmentation writes them itself")
        record = {**self.provenance, **meta, "channels": self.channels, "image_size": list(self.image_size),
                  "value_range": VALUE_RANGE, "standard": _standard_meta(self.standard), "options": self.options(),
                  **extra}
        return save_artifact(self.kind(), dict(self.state_dict()), path, meta=record, version=self.version)

    def extra_meta(self):
        """More meta the kind writes (e.g. the frozen policy), computed at save time."""
        return {}

    @classmethod
    def from_artifact(cls, art, standard=True):
        """The module of a loaded :class:`~fastaug.artifacts.Artifact` of this kind (``standard=False``:
        without the run's standard recipe). Damaged contents raise one sentence."""
        meta = art.meta
        try:
            owned = {k: meta[k] for k in ("channels", "image_size", "options")}
            std = _standard_from(meta.get("standard")) if standard else None
            provenance = {k: v for k, v in meta.items() if k not in OWNED_META + tuple(cls.derived_meta)}
            module = cls.from_parts(int(owned["channels"]), tuple(owned["image_size"]), std, provenance,
                                    dict(owned["options"]), art.state)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ArtifactError(f"{art.path} is a damaged {art.kind!r} artifact ({type(err).__name__}: "
                                f"{' '.join(str(err).split())[:200]})") from err
        return module.eval().requires_grad_(False)

    #: meta keys the kind derives at save time (not provenance: recomputed, not carried)
    derived_meta = ()

    def extra_repr(self):
        H, W = self.image_size
        std = "" if self.standard is None else f", standard=({self.standard.extra_repr()})"
        return f"channels={self.channels}, image_size={H}x{W}{std}"


def _labels(flat, idx, labels, N, who):
    """The (N,) int64 classes of the images: ``labels=`` if given, else the first int or integer tensor of
    the sample after the image (torchvision's ``(image, label)``)."""
    if labels is None:
        for i, leaf in enumerate(flat):
            if i != idx and (isinstance(leaf, int) and not isinstance(leaf, bool)
                             or isinstance(leaf, torch.Tensor) and not leaf.is_floating_point()
                             and leaf.dtype != torch.bool and leaf.numel() == N):
                labels = leaf
                break
        else:
            raise ValueError(f"{who}() translates each image within its class, so it needs the labels: call it on "
                             f"(image, label) or pass labels=")
    elif torch.as_tensor(labels).dim() == 0:  # labels= one class (an int): every image of the batch is of it
        labels = torch.as_tensor(labels).expand(N)
    y = torch.as_tensor(labels).reshape(-1).to(torch.int64)
    if y.numel() != N:
        raise ValueError(f"{who}(): labels must give one class per image ({N}), got {y.numel()}")
    return y
