"""What ``fastaug patch`` stage 1 learned, as a loadable augmentation: the subgroup translations of each class.

Model patching's stage 1 trains CycleGANs between the two subgroups of each class (one per class, or one
shared by every class: :mod:`fastaug.train.patching.translation`). Of each CycleGAN, the generator into
subgroup 0 (``g_ba``) and the generator into subgroup 1 (``g_ab``) are kept here, in eval mode (BatchNorm's
running statistics), and applied to new images of their class: the version of an image of class y in
subgroup k is "the generator into k" of y's CycleGAN applied to it -- for an image of the other subgroup
that is its translation F(x), for one of subgroup k itself a near-copy G(x), as in stage 1's
``translate_all`` (the same computation, and for uint8 images the same rounding).

The class of each image is needed, so the module follows torchvision's sample convention: call it on
``(image, label)`` (a batch with its (N,) labels, or one image with its int label, e.g. inside a
``v2.Compose`` of a dataset returning ``(img, label)``), or pass ``labels=``. The label passes through.

Params (``return_params``): :class:`TranslationParams`, the target subgroup of each image. A call without
params draws it uniformly from the class's subgroups (an augmentation that shows each image in a random
subgroup of its class); to translate images of a known subgroup s into the other one (F), pass
``params=module.params_into(1 - s)`` or call :meth:`SubgroupTranslation.translate`.

The generators were trained at one image size (the U-Net cannot take another), so images must have it.
``meta["quality"]``, when stage 1 measured it, says how good the translations are (``fastaug show`` prints it).
"""
import dataclasses

import torch
from torch import nn

from .cyclegan_generators import build_generator
from .learned_module import AugmentationParams, LearnedAugmentation

__all__ = ["SubgroupTranslation", "TranslationParams"]


@dataclasses.dataclass
class TranslationParams:
    """into: (N,) int64, the subgroup (0 or 1 of the image's class) each image is translated into."""

    into: torch.Tensor

    def to(self, device):
        return TranslationParams(self.into.to(device))

    def check(self, N):
        t = self.into
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (N,) or (N and not 0 <= int(t.min()) <= int(t.max()) <= 1):
            raise ValueError(f"params.learned.into must be an (N,) = ({N},) tensor of subgroups 0 or 1")
        return self


class SubgroupTranslation(LearnedAugmentation):
    """The subgroup translations of each class (module docstring).

    Args:
        generators: ``{key: (into_0, into_1)}``, the two generators of each CycleGAN, ``key`` a class index as
            a string, or ``"shared"`` for one pair serving every class (stage 1's ``Translator.gans``:
            ``(gan.g_ba, gan.g_ab)``).
        classes: the class names; subgroups: per class, its two subgroup names.
        channels, image_size: the images'; generator, width: the generators' kind (``"unet"`` / ``"resnet"``)
            and first-level width, to rebuild them.
        provenance: see :class:`~fastaug.augment.learned_module.LearnedAugmentation` (``quality`` goes here).
    """

    name = "translation"
    float_only = True
    resizes = False
    needs_labels = True

    def __init__(self, generators, classes, subgroups, channels, image_size, generator="unet", width=16,
                 provenance=None):
        super().__init__(channels, image_size, None, provenance)
        self.classes = tuple(str(c) for c in classes)
        self.subgroups = tuple(tuple(str(s) for s in names) for names in subgroups)
        if len(self.subgroups) != len(self.classes) or any(len(s) != 2 for s in self.subgroups):
            raise ValueError("subgroups must name the two subgroups of each class")
        keys = set(generators)
        if keys != {"shared"} and keys != {str(y) for y in range(len(self.classes))}:
            raise ValueError(f"generators must be keyed 'shared', or by every class index 0..{len(self.classes) - 1}, "
                             f"got {sorted(keys)}")
        self.generator_kind, self.width = str(generator), int(width)
        self.nets = nn.ModuleDict({k: nn.ModuleList(list(pair)) for k, pair in generators.items()})
        if any(len(pair) != 2 for pair in self.nets.values()):
            raise ValueError("each entry of generators must be a pair (into subgroup 0, into subgroup 1)")
        self.shared = keys == {"shared"}
        self.nets.eval()  # BatchNorm from its running statistics, as stage 1 translates (the networks given)

    def params_into(self, into):
        """Params translating every image into subgroup ``into`` (an int, or (N,) per image)."""
        return AugmentationParams(None, TranslationParams(torch.as_tensor(into, dtype=torch.int64).reshape(-1)))

    def translate(self, x, labels, into):
        """x (N, C, H, W) of classes ``labels`` ((N,), or an int for all) -> their versions in subgroup(s)
        ``into`` (int or (N,))."""
        into = torch.as_tensor(into, dtype=torch.int64)
        into = into.expand(x.shape[0]) if into.dim() == 0 else into
        return self(x, labels=labels, params=self.params_into(into.clone()))

    def sample_learned(self, N, H, W, generator):
        return TranslationParams(torch.randint(0, 2, (N,), generator=generator))

    def apply_learned(self, x, params, labels):
        y = labels.to(x.device)
        if y.numel() and not 0 <= int(y.min()) <= int(y.max()) < len(self.classes):
            raise ValueError(f"labels must be classes in [0, {len(self.classes)}) ({', '.join(self.classes)}), got "
                             f"values in [{int(y.min())}, {int(y.max())}]")
        into = params.into.to(x.device)
        out = x.clone()
        for key, pair in self.nets.items():
            mine = torch.ones_like(y, dtype=torch.bool) if key == "shared" else y == int(key)
            for k, net in enumerate(pair):
                rows = (mine & (into == k)).nonzero().squeeze(1)
                if rows.numel():
                    out[rows] = net(x[rows])
        return out, params

    def options(self):
        return {"classes": list(self.classes), "subgroups": [list(s) for s in self.subgroups],
                "generator": self.generator_kind, "width": self.width, "shared": self.shared}

    @classmethod
    def from_parts(cls, channels, image_size, standard, provenance, options, state):
        H, W = image_size
        if H != W:
            raise ValueError(f"the translation generators take square images, the meta says {H}x{W}")
        keys = ["shared"] if options["shared"] else [str(y) for y in range(len(options["classes"]))]
        gens = {k: tuple(build_generator(options["generator"], channels, H, options["width"]) for _ in range(2))
                for k in keys}
        module = cls(gens, options["classes"], options["subgroups"], channels, H, options["generator"],
                     options["width"], provenance)
        module.load_state_dict(state)
        return module

    def describe(self):
        H, W = self.image_size
        lines = [f"subgroup translations ({'one CycleGAN for every class' if self.shared else 'a CycleGAN per class'}, "
                 f"{self.generator_kind} generators of width {self.width}, {self.channels}-channel {H}x{W} images):"]
        for c, (s0, s1) in zip(self.classes, self.subgroups):
            lines.append(f"  class {c}: {s0} <-> {s1}")
        quality = self.provenance.get("quality")
        if quality is None:
            lines.append("  translation quality: not recorded in this file")
        else:
            lines += _quality_lines(quality)
        return lines

    def extra_repr(self):
        return f"{super().extra_repr()}, classes={len(self.classes)}, shared={self.shared}"


def _quality_lines(quality):
    """``fastaug show``'s summary of stage 1's graded translations (fastaug.train.patching.grading): one line
    per direction, then its flags; a record of another layout is printed as it is."""
    directions = quality.get("directions") if isinstance(quality, dict) else None
    if not isinstance(directions, list):
        return ["  translation quality:"] + [f"    {k}: {v}" for k, v in
                                             (quality.items() if isinstance(quality, dict) else [("", quality)])]
    lines = [f"  translation quality on {quality.get('held_out', '?')} held-out images (target: share of F(x) "
             f"the subgroup judge puts in the target subgroup; class kept: share the class model keeps; "
             f"change: mean |F(x) - x|):"]
    for d in directions:
        try:
            lines.append(f"    {d['class']}: {d['from']} -> {d['to']} ({d['images']} images): target "
                         f"{100 * d['target']:.1f} %, class kept {100 * d['class_kept']:.1f} %, "
                         f"change {d['change']:.3f}")
        except (KeyError, TypeError, ValueError):
            lines.append(f"    {d}")
    flags = quality.get("flags") or []
    lines += [f"  flagged: {f}" for f in flags] if flags else ["  flagged: none"]
    return lines
