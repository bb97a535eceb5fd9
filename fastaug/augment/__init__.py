"""nn.Module transforms and policies built on :mod:`fastaug.ops`.

* policies (``params.py`` parameter sampling, ``policies.py`` modules, ``op_table.py`` the op space):
  AutoAugment, RandAugment, TrivialAugment and controller-emitted policies, per image.
* ``standard.py``: the standard crop / flip / Cutout recipe (:class:`StandardAugment`, :class:`StandardParams`).
* ``learned.py``: the learned transformation networks (encoder E, generator G, discriminator D)
  and :class:`LearnedAugment`.
* learned augmentations that leave their run (``learned_*.py``, ``saved.py``): :func:`load` returns what a
  run learned (``augmentation.pt``) as a module -- :class:`ControllerAugment` (Adversarial AutoAugment),
  :class:`RandomPolicyAugment`, :class:`FixedAugment`, :class:`SequenceAugment` (TANDA),
  :class:`TransformAugment` (the influence loop), :class:`SubgroupTranslation` (model patching) -- and
  each writes itself back with ``save`` / :func:`save_augmentation`.
"""
from .learned import Discriminator, Encoder, Generator, LearnedAugment
from .learned_module import AUGMENTATION_FILE, AugmentationParams, LearnedAugmentation
from .learned_policies import ControllerAugment, FixedAugment, FrozenPolicy, RandomPolicyAugment
from .learned_sequences import SequenceAugment, SequenceParams
from .learned_transform import TransformAugment, TransformParams
from .learned_translation import SubgroupTranslation, TranslationParams
from .params import Policy, PolicyParams, SubPolicy
from .policies import AutoAugment, PolicyAugment, RandAugment, TrivialAugment
from .saved import load, save_augmentation
from .standard import StandardAugment, StandardParams

__all__ = ["Policy", "PolicyParams", "SubPolicy", "AutoAugment", "PolicyAugment", "RandAugment", "TrivialAugment",
           "Encoder", "Generator", "Discriminator", "LearnedAugment", "StandardAugment", "StandardParams",
           "load", "save_augmentation", "AUGMENTATION_FILE", "LearnedAugmentation", "AugmentationParams",
           "ControllerAugment", "RandomPolicyAugment", "FixedAugment", "FrozenPolicy", "SequenceAugment",
           "SequenceParams", "TransformAugment", "TransformParams", "SubgroupTranslation", "TranslationParams"]
