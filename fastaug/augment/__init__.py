"""nn.Module transforms and policies built on :mod:`fastaug.ops`.

* policies (``params.py`` parameter sampling, ``policies.py`` modules, ``op_table.py`` the op space):
  AutoAugment, RandAugment, TrivialAugment and controller-emitted policies, per image.
* ``learned.py``: the learned transformation networks (encoder E, generator G, discriminator D)
  and :class:`LearnedAugment`.
"""
from .learned import Discriminator, Encoder, Generator, LearnedAugment
from .params import Policy, PolicyParams, SubPolicy
from .policies import AutoAugment, PolicyAugment, RandAugment, TrivialAugment

__all__ = ["Policy", "PolicyParams", "SubPolicy", "AutoAugment", "PolicyAugment", "RandAugment", "TrivialAugment",
           "Encoder", "Generator", "Discriminator", "LearnedAugment"]
