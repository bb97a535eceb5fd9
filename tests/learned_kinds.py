"""Small untrained learned augmentations of every kind, and inputs for them (test helpers).

Each kind is built from freshly initialised, seeded networks (the end-to-end "a run writes
augmentation.pt" tests come with the methods' wiring); BatchNorm layers get running statistics from a
few forward passes in train mode, so that eval mode is not the identity normalisation.
"""
import torch

import fastaug.augment as A
from fastaug.augment.controller import PolicyController
from fastaug.augment.cyclegan_generators import build_generator
from fastaug.augment.influence_augmenter import Augmenter

KINDS = ("adversarial", "random", "fixed", "tanda", "influence", "translation")
SIDE = 16


def images(kind, n=6, seed=0, dtype=torch.uint8):
    """(n, C, SIDE, SIDE) images for ``kind`` (uint8, or float in [0, 1])."""
    C = 1 if kind == "translation" else 3
    x = torch.randint(0, 256, (n, C, SIDE, SIDE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255


def labels(n=6):
    return torch.arange(n) % 2


def args_for(kind, x):
    """The positional arguments of a call: (x,) or, for translations, (x, labels)."""
    return (x, labels(x.shape[0])) if kind == "translation" else (x,)


def image_of(kind, out):
    """The image of a call's output (translations return (image, label))."""
    return out[0] if kind == "translation" else out


def warm_batchnorm(net, channels, side, seed=0):
    g = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(8, channels, side, side, generator=g))
    return net.eval()


def translation_generators(shared=False, channels=1, side=SIDE, width=4):
    keys = ["shared"] if shared else ["0", "1"]
    return {k: tuple(warm_batchnorm(build_generator("unet", channels, side, width), channels, side, seed=i)
                     for i in range(2)) for k in keys}


def build(kind, standard=True, seed=0):
    """A small untrained learned augmentation of ``kind``."""
    torch.manual_seed(seed)
    std = A.StandardAugment(padding=2, flip=True, cutout=4) if standard else None
    if kind == "adversarial":
        return A.ControllerAugment(PolicyController(3, 2), 3, SIDE, std, fill=128, provenance={"dataset": "toy"})
    if kind == "random":
        return A.RandomPolicyAugment(3, SIDE, std, fill=0, ops_per_subpolicy=2)
    if kind == "fixed":
        return A.FixedAugment(3, SIDE, std)
    if kind == "tanda":
        return A.SequenceAugment(PolicyController(1, 3), 3, SIDE, std, fill=0, p=0.5)
    if kind == "influence":
        aug = Augmenter(3, SIDE, SIDE, tau_dim=8, dropout=0.5)
        aug.generator.reset_head(0.05)  # a visible transformation (a fresh G is within 1e-3 of the identity)
        return A.TransformAugment(aug, std, p=0.7)
    if kind == "translation":
        return A.SubgroupTranslation(translation_generators(), ["even", "odd"], [["clean", "zigzag"]] * 2, 1, SIDE,
                                     "unet", 4, provenance={"dataset": "toy", "quality": {"target_share": 0.5}})
    raise ValueError(kind)
