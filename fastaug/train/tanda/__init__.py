"""The TANDA loop (``--augment tanda``): a sequence generator trained against a discriminator, then
used to augment the classifier's training (both phases in one command)."""
from .method import Tanda, transform_fraction

__all__ = ["Tanda", "transform_fraction"]
