"""The influence loop's learned augmentation, :class:`~fastaug.augment.influence_augmenter.Augmenter`
(E and G with seeded dropout on tau, ``augmenter.pt``), and its helpers.

They live in :mod:`fastaug.augment.influence_augmenter`, below the training code, because the trained
augmenter is an augmentation users load and apply; the loop's modules import them from here.
"""
from ...augment.influence_augmenter import AUGMENTER_FILE, AUGMENTER_KIND, Augmenter, displacement, random_codes

__all__ = ["Augmenter", "displacement", "random_codes", "AUGMENTER_KIND", "AUGMENTER_FILE"]
