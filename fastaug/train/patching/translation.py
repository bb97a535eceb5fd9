"""Stage 1 of model patching: CycleGANs between the subgroups of each class, and every training image translated.

A :class:`Translator` holds one :class:`~fastaug.models.cyclegan.CycleGAN` per class (``per-class``)
or one for every class (``shared``: domain A = subgroup 0 of every class, B = subgroup 1; the paper's
MNIST choice). Generator ``g_ab`` translates into subgroup 1, ``g_ba`` into subgroup 0, so the version
of an image x in subgroup k is "the generator into k" applied to x, whatever x's own subgroup:
for x in subgroup 0, ``g_ab(x)`` is F(x) (the other subgroup) and ``g_ba(x)`` is G(x) (its own, a
near-copy through the identity loss), and the other way round for x in subgroup 1.

One step (:func:`translation_step`) trains every CycleGAN of the translator once: generators (GAN +
cycle + identity losses), then discriminators on fakes from the replay pools. The images of step s are
drawn from a torch.Generator seeded by (seed, s), so a resumed stage needs no sampler state.
:func:`translate_all` precomputes, index-aligned with the training set, every image's version in each
subgroup of its class (``(N, 2, C, H, W)`` uint8), what stage 2 trains on, handed on as a
``patching-translations`` artifact (:func:`save_translations`, :func:`load_translations`).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ...artifacts import load_artifact, save_artifact
from ...augment.standard import random_crop
from ...figures import pyplot
from ...models.cyclegan import CycleGAN, ImagePool
from ..loop import optimizer_step
from ..rng import derive_seed
from .grading import crop_padding
from .sampling import group_balanced_batches

__all__ = ["Translator", "build_translation_parts", "translation_step", "translate_all", "translations_figure",
           "save_translations", "load_translations", "KIND", "augment_batch", "GAN_AUGMENTATIONS", "GAN_BALANCES"]

#: The artifact kind of stage 1's translations.
KIND = "patching-translations"
GAN_AUGMENTATIONS = ("none", "pad-crop", "rotate-pad-crop")
GAN_BALANCES = ("class", "none")


class Translator(nn.Module):
    """The CycleGANs of stage 1 for a GroupedImageData with two subgroups per class.

    Args:
        cfg: a resolved :class:`~fastaug.train.patching.config.TranslationConfig`.
        data: the training GroupedImageData (classes, subgroups, channels, image size).
    """

    def __init__(self, cfg, data):
        super().__init__()
        bad = [f"{c} ({len(s)})" for c, s in zip(data.classes, data.subgroups) if len(s) != 2]
        if bad:
            raise ValueError(f"stage 1 learns CycleGAN translations between exactly two subgroups per class; "
                             f"these classes have another number: {', '.join(bad)}")
        self.shared = cfg.translation == "shared"
        keys = ["shared"] if self.shared else [str(y) for y in range(data.num_classes)]
        self.gans = nn.ModuleDict({k: CycleGAN(data.channels, data.image_size[0], cfg.generator, cfg.gan_width,
                                               cfg.gan_width, cfg.gan_loss, cfg.cycle_weight, cfg.identity_weight)
                                   for k in keys})

    def domains(self, data, key):
        """(indices of domain A, indices of domain B) of the CycleGAN ``key``: subgroup 0 and 1 images."""
        mine = torch.ones(len(data), dtype=torch.bool) if key == "shared" else data.labels.cpu() == int(key)
        sub = data.subgroup.cpu()
        return (mine & (sub == 0)).nonzero().squeeze(1), (mine & (sub == 1)).nonzero().squeeze(1)


def build_translation_parts(cfg, data, device):
    """The translator and, per CycleGAN, its two Adam optimisers and two replay pools.

    Returns ``(translator, optimizers, pools)``: ``optimizers`` = {"<key>/g": Adam, "<key>/d": Adam},
    ``pools`` = {"<key>/a": ImagePool, "<key>/b": ImagePool} (their random streams seeded from
    ``cfg.gan_seed``; save ``pool.rng`` with the pool's state). Adam betas (0.5, 0.999),
    constant learning rates (CycleGAN's and the authors' choice).
    """
    torch.manual_seed(derive_seed(cfg.gan_seed, "translator-init"))
    translator = Translator(cfg, data).to(device)
    opts, pools = {}, {}
    for key, gan in translator.gans.items():
        opts[f"{key}/g"] = torch.optim.Adam(gan.generator_parameters(), lr=cfg.gan_lr, betas=(0.5, 0.999))
        opts[f"{key}/d"] = torch.optim.Adam(gan.discriminator_parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999))
        for side in ("a", "b"):
            rng = torch.Generator().manual_seed(derive_seed(cfg.gan_seed, "pool", key, side))
            pools[f"{key}/{side}"] = ImagePool(cfg.pool_size, rng)
    return translator, opts, pools


def _step_batch(members, n, rng, images, labels, balance):
    """``n`` images of a domain (dataset indices ``members``), drawn with replacement; with ``balance``
    == "class", the same number from each class present (the remainder to random classes)."""
    if balance == "class":
        classes = labels[members]
        seed = int(torch.randint(2 ** 31, (), generator=rng))  # group_balanced_batches scales it by ~2^20
        idx = members[group_balanced_batches(classes, int(classes.max()) + 1, n, 0, seed, steps=1)[0]]
    else:
        idx = members[torch.randint(members.numel(), (n,), generator=rng)]
    return images.index_select(0, idx.to(images.device)).float().div_(255.0)


def augment_batch(x, kind, rng):
    """Stage 1's training augmentation of a float batch (N, C, H, W) in [0, 1], drawn from ``rng``.

    ``"none"``; ``"pad-crop"``: zero-pad by :func:`~.grading.crop_padding` (4 px at 28 px) and crop
    back at a random offset (the authors' ``pad:crop``); ``"rotate-pad-crop"``: first a rotation by a
    uniform angle in [-45, 45] degrees about the centre (bilinear, zeros outside; the authors' ``rotr``).
    """
    if kind == "none":
        return x
    if kind == "rotate-pad-crop":
        angle = (torch.rand(x.shape[0], generator=rng) * 2 - 1) * (math.pi / 4)
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(angle)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    elif kind != "pad-crop":
        raise ValueError(f"unknown stage-1 augmentation {kind!r}; choose from {', '.join(GAN_AUGMENTATIONS)}")
    return random_crop(x, crop_padding(x.shape[-1]), generator=rng)


def translation_step(translator, optimizers, pools, data, step, cfg):
    """One training step of every CycleGAN of ``translator`` on images of ``data`` (on the device).

    Returns a dict of float losses summed over the CycleGANs: ``gan``, ``cycle``, ``identity``
    (the generators') and ``disc``.
    """
    translator.train()
    rng = torch.Generator().manual_seed(derive_seed(cfg.gan_seed, "batch", step))
    out = {"gan": 0.0, "cycle": 0.0, "identity": 0.0, "disc": 0.0}
    labels = data.labels.cpu()  # the class-balanced draw indexes it with CPU indices
    for key, gan in translator.gans.items():
        dom_a, dom_b = translator.domains(data, key)
        if dom_a.numel() == 0 or dom_b.numel() == 0:
            raise ValueError(f"a subgroup of {'the data' if key == 'shared' else data.classes[int(key)]} has no "
                             f"training image; stage 1 needs images in both subgroups")
        a = augment_batch(_step_batch(dom_a, cfg.gan_batch_size, rng, data.images, labels, cfg.gan_balance),
                          cfg.gan_augment, rng)
        b = augment_batch(_step_batch(dom_b, cfg.gan_batch_size, rng, data.images, labels, cfg.gan_balance),
                          cfg.gan_augment, rng)
        losses = gan.generator_losses(a, b)
        optimizer_step(losses["total"], optimizers[f"{key}/g"])
        fake_a = pools[f"{key}/a"].query(losses["fake_a"])
        fake_b = pools[f"{key}/b"].query(losses["fake_b"])
        disc = gan.discriminator_loss(a, b, fake_a, fake_b)
        optimizer_step(disc, optimizers[f"{key}/d"])  # zeroing D also drops what the generator pass left there
        for k in ("gan", "cycle", "identity"):
            out[k] += losses[k].item()
        out["disc"] += disc.item()
    return out


@torch.no_grad()
def translate_all(translator, data, batch_size=256):
    """Every image's version in each subgroup of its class: (N, 2, C, H, W) uint8, index-aligned with ``data``.

    ``[:, k]`` is the generator into subgroup k applied to the image (eval mode: BatchNorm's running
    statistics), so ``[i, subgroup[i]]`` is G(x_i) and ``[i, 1 - subgroup[i]]`` is F(x_i).
    """
    translator.eval()
    device = next(translator.parameters()).device
    out = torch.empty((len(data), 2) + tuple(data.images.shape[1:]), dtype=torch.uint8)
    labels = data.labels.cpu()
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        x = data.images[sl].to(device).float().div_(255.0)
        y = labels[sl]
        for key, gan in translator.gans.items():
            rows = torch.ones_like(y, dtype=torch.bool) if key == "shared" else y == int(key)
            if not bool(rows.any()):
                continue
            xi = x[rows.to(device)]
            for k, gen in ((0, gan.g_ba), (1, gan.g_ab)):
                out[sl][rows, k] = gen(xi).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).cpu()
    return out


def save_translations(translations, data, path, meta=None):
    """Write the (N, K, C, H, W) uint8 ``translations`` of ``data`` (the training GroupedImageData they
    are index-aligned with) as a ``patching-translations`` artifact, with the labels and subgroups that
    :func:`load_translations` checks them against. Returns ``path``."""
    return save_artifact(KIND, {"translations": translations, "labels": data.labels.cpu(),
                                "subgroup": data.subgroup.cpu()}, path,
                         meta={"images": len(data), "channels": data.channels, "image_size": list(data.image_size),
                               **(meta or {})})


def load_translations(path, data):
    """The (N, K, C, H, W) uint8 translations of a ``patching-translations`` artifact, checked against
    ``data`` (the training GroupedImageData): one-sentence ValueError when they belong to another one."""
    state = load_artifact(KIND, path).state
    if not (torch.equal(state["labels"], data.labels.cpu()) and torch.equal(state["subgroup"], data.subgroup.cpu())):
        raise ValueError(f"the translations in {path} belong to another training set; rerun stage 1 in a new "
                         f"--output-dir")
    return state["translations"]


def translations_figure(data, translations, per_group=8):
    """A matplotlib Figure: for each group, a row of its training images and rows of their versions in
    each subgroup of their class (the image's own subgroup row is G(x), the other F(x))."""
    plt = pyplot()
    from torchvision.utils import make_grid

    ids = data.group_ids.cpu()
    rows = []
    for g, name in enumerate(data.group_names):
        members = (ids == g).nonzero().squeeze(1)[:per_group]
        if members.numel() == 0:
            continue
        cls = int(data.group_class[g])
        rows.append((f"{name}: x", data.images.cpu()[members]))
        for k, sub in enumerate(data.subgroups[cls]):
            mark = "G(x)" if sub == name.split("/", 1)[1] else "F(x)"
            rows.append((f"-> {sub} ({mark})", translations[members, k]))
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.0 * per_group + 2.2, 1.05 * len(rows)), squeeze=False)
    for ax, (label, imgs) in zip(axes[:, 0], rows):
        grid = make_grid(imgs.float() / 255.0, nrow=per_group, padding=1, pad_value=0.5)
        ax.imshow(grid.permute(1, 2, 0).squeeze(-1).numpy() if grid.shape[0] == 1 else grid.permute(1, 2, 0).numpy(),
                  cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("stage 1: each training subgroup and its versions in every subgroup of its class", fontsize=9)
    fig.tight_layout()
    return fig
