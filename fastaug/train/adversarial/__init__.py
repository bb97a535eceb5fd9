"""The Adversarial AutoAugment loop (``--augment adversarial``, ``fixed``, ``random``) and its Figure 6."""
from .figure import policy_figure
from .method import MODES, AdversarialAutoAugment, per_group_means

__all__ = ["AdversarialAutoAugment", "MODES", "per_group_means", "policy_figure"]
