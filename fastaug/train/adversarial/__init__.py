"""The Adversarial AutoAugment loop (``--augment adversarial``) and its ablations (``fixed``, ``random``),
three small classes on one shared part, and its Figure 6."""
from .figure import policy_figure
from .method import MODES, AdversarialAutoAugment, FixedInstances, RandomPolicies, per_group_means

__all__ = ["AdversarialAutoAugment", "RandomPolicies", "FixedInstances", "MODES", "per_group_means", "policy_figure"]
