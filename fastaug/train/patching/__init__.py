"""Model patching (Goel et al., "Model Patching: Closing the Subgroup Performance Gap with Data
Augmentation", ICLR 2021: CAMEL; the blog's CLAMP) as a pipeline on the training layer.

* :mod:`.config`: ``TranslationConfig`` (stage 1) and ``PatchConfig`` (the whole comparison);
* :mod:`.translation`: stage 1's CycleGANs between the subgroups of each class, the translations of
  every training image, ``translations.png``; :mod:`.grading`: how good they are on held-out images
  (a subgroup judge and a class model), and the flags;
* :mod:`.methods`: the six stage-2 methods (erm, balanced, gdro, augment, gdro-augment, camel);
  :mod:`.sampling`: group-balanced batches; :mod:`.evaluation`: per-subgroup accuracy (test and
  validation); :mod:`.selection`: the epoch selected on the validation split;
* :mod:`.stages`: both stages as pipeline stages (stage 1 on the loop primitive, stage 2 on the engine);
* :mod:`.experiment`: :func:`run_patching`, what ``fastaug patch`` runs; :mod:`.report`: Table 1,
  ``patching.png``, the saliency figure.

The reusable pieces live lower: :mod:`fastaug.train.group_dro`, :mod:`fastaug.train.losses`,
:mod:`fastaug.models.cyclegan`, :mod:`fastaug.data.subgroups`.
"""
from .config import PatchConfig, TranslationConfig
from .experiment import run_patching
from .methods import PATCH_METHODS

__all__ = ["PatchConfig", "TranslationConfig", "PATCH_METHODS", "run_patching"]
