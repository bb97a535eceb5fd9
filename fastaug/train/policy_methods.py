"""Fixed augmentation methods, batched on the device: ``none``, ``standard``, ``autoaugment``,
``randaugment``, ``trivialaugment``.

Pipeline per batch: :meth:`~fastaug.augment.standard.StandardAugment.recipe` (the Adversarial
AutoAugment paper's order, section 4.2): random crop with padding and horizontal flip (where the
dataset allows it), then the policy (if any), then Cutout, then float. ``none`` trains on the images
as they are. Every draw comes from ``trainer.rng``.
"""
import dataclasses

from ..augment import AutoAugment, RandAugment, TrivialAugment
from .method import Method, TrainBatch, standard_augment
from .options import Options, at_least, option, within

__all__ = ["NoAugment", "StandardAugmentMethod", "AutoAugmentMethod", "RandAugmentMethod", "TrivialAugmentMethod",
           "AutoAugmentOptions", "RandAugmentOptions"]


@dataclasses.dataclass
class AutoAugmentOptions(Options):
    aa_policy: str = option("cifar10", "published AutoAugment policy", choices=("cifar10", "imagenet"))


@dataclasses.dataclass
class RandAugmentOptions(Options):
    ra_num_ops: int = option(2, "RandAugment N: ops per image", check=at_least(1))
    ra_magnitude: int = option(9, "RandAugment M: magnitude level of 31, as torchvision", check=within(0, 30))


class NoAugment(Method):
    """``--augment none``: the images as they are."""

    name = "none"


class StandardAugmentMethod(Method):
    """``--augment standard``: crop + flip + Cutout, plus ``policy`` in between when a subclass sets one."""

    name = "standard"

    def __init__(self, options, trainer):
        super().__init__(options, trainer)
        self.standard = standard_augment(trainer.args, trainer.info["hflip"])
        self.policy = self.make_policy(options, trainer.args.fill)

    def make_policy(self, options, fill):
        """The policy module between crop/flip and Cutout (None: none), from the method's options and
        the run's ``--fill``."""
        return None

    def augment(self, x, y, trainer):
        policy = None if self.policy is None else (lambda x, g: self.policy(x, generator=g))
        return TrainBatch(self.standard.recipe(x, trainer.rng, policy), y)


class AutoAugmentMethod(StandardAugmentMethod):
    """``--augment autoaugment``: a published AutoAugment policy, a random sub-policy per image."""

    name = "autoaugment"

    Options = AutoAugmentOptions

    def make_policy(self, options, fill):
        return AutoAugment(options.aa_policy, fill=fill)


class RandAugmentMethod(StandardAugmentMethod):
    """``--augment randaugment``: RandAugment(N = --ra-num-ops, M = --ra-magnitude of 31 levels)."""

    name = "randaugment"

    Options = RandAugmentOptions

    def make_policy(self, options, fill):
        return RandAugment(num_ops=options.ra_num_ops, magnitude=options.ra_magnitude, fill=fill)


class TrivialAugmentMethod(StandardAugmentMethod):
    """``--augment trivialaugment``: one op per image with a uniformly random magnitude (wide space)."""

    name = "trivialaugment"

    def make_policy(self, options, fill):
        return TrivialAugment(fill=fill)
