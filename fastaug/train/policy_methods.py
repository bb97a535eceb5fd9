"""Fixed augmentation methods, batched on the device: ``none``, ``standard``, ``autoaugment``,
``randaugment``, ``trivialaugment``.

Pipeline per batch (the AdvAA seed's order, section 4.2): random crop with padding and horizontal
flip (where the dataset allows it), then the policy (if any), then Cutout. ``none`` trains on the
images as they are. Every draw comes from ``trainer.generator``.
"""
from ..augment import AutoAugment, RandAugment, TrivialAugment
from .method import Method, TrainBatch, standard_pipeline

__all__ = ["NoAugment", "StandardAugmentMethod", "AutoAugmentMethod", "RandAugmentMethod", "TrivialAugmentMethod"]


class NoAugment(Method):
    """``--augment none``: the images as they are."""

    name = "none"


class StandardAugmentMethod(Method):
    """``--augment standard``: crop + flip + Cutout, plus ``policy`` in between when a subclass sets one."""

    name = "standard"

    def __init__(self, args, trainer):
        super().__init__(args, trainer)
        self.standard = standard_pipeline(args, trainer)
        self.policy = self.make_policy(args)

    def make_policy(self, args):
        return None

    def augment(self, x, y, trainer):
        policy = None if self.policy is None else (lambda x, g: self.policy(x, generator=g))
        return TrainBatch(self.standard.recipe(x, trainer.generator, policy), y)


class AutoAugmentMethod(StandardAugmentMethod):
    """``--augment autoaugment``: a published AutoAugment policy, a random sub-policy per image."""

    name = "autoaugment"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--aa-policy", default="cifar10", choices=("cifar10", "imagenet"),
                            help="published AutoAugment policy (default: cifar10)")

    def make_policy(self, args):
        return AutoAugment(args.aa_policy, fill=args.fill)


class RandAugmentMethod(StandardAugmentMethod):
    """``--augment randaugment``: RandAugment(N = --ra-num-ops, M = --ra-magnitude of 31 levels)."""

    name = "randaugment"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--ra-num-ops", type=int, default=2, help="RandAugment N: ops per image (2)")
        parser.add_argument("--ra-magnitude", type=int, default=9,
                            help="RandAugment M: magnitude level of 31, as torchvision (9)")

    def make_policy(self, args):
        return RandAugment(num_ops=args.ra_num_ops, magnitude=args.ra_magnitude, fill=args.fill)


class TrivialAugmentMethod(StandardAugmentMethod):
    """``--augment trivialaugment``: one op per image with a uniformly random magnitude (wide space)."""

    name = "trivialaugment"

    def make_policy(self, args):
        return TrivialAugment(fill=args.fill)
