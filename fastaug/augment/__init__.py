"""nn.Module transforms and policies built on :mod:`fastaug.ops`."""
from .params import Policy, PolicyParams, SubPolicy
from .policies import AutoAugment, PolicyAugment, RandAugment, TrivialAugment

__all__ = ["Policy", "PolicyParams", "SubPolicy", "AutoAugment", "PolicyAugment", "RandAugment", "TrivialAugment"]
