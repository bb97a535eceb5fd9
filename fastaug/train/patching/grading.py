"""Graded translations: how good stage 1's subgroup translations are, measured on held-out images.

A CycleGAN's losses do not say whether its translations are usable: at the authors' MNIST learning
rates and 400 steps F(x) stays a near-copy of x, and trained longer on subgroups whose class mix
differs it turns clean 0s into zigzagged 5s (docs/model_patching.md). Two small classifiers trained
on *real* training images grade them instead:

* the **subgroup judge** (:func:`train_judge`): one network with a logit per group; an image of
  class y is judged over the subgroups of y only (a softmax restricted to y's groups, in training
  and in use), so the judge never has to tell classes apart and shares what it learns about a
  subgroup's look across classes. One network serves per-class and shared translations alike.
* the **class model** (:func:`train_class_model`): a classifier of the class label.

Both train on group-balanced batches (every (class, subgroup) group equally often: the subgroup
then carries no information about the class, so the class model has no shortcut through it, and
the judge sees the minority subgroups as often as the majority ones) with pad-and-crop, from a
seeded stream.

:func:`grade_translations` then translates the held-out images (never seen by the CycleGANs nor by
the graders) and reports, per class and direction (subgroup a -> subgroup b), on the held-out
images of (class, a): ``target`` (share of F(x) the judge puts in b), ``class_kept`` (share of F(x)
the class model gives x's class) and ``change`` (mean |F(x) - x| per pixel, intensities in [0, 1]),
beside the graders' own accuracy on the real held-out images. :func:`quality_flags` names each
direction that misses its target subgroup (a near-copy, or noise that replaces the image) or changes
the class (thresholds :data:`THRESHOLDS`).
"""
import torch
import torch.nn.functional as F

from ...augment.standard import random_crop
from ...models import build_model
from ..rng import derive_seed
from .sampling import group_balanced_batches

__all__ = ["THRESHOLDS", "GRADER_MODEL", "train_judge", "train_class_model", "judge_subgroups",
           "grade_translations", "quality_flags", "crop_padding"]

#: The grader networks (the package's cheapest CNN; works from 16 px up).
GRADER_MODEL = "lenet"

#: When a direction is flagged (docs/model_patching.md, "Graded translations", measured there):
#: ``near_copy_target``: the judge puts fewer than half of F(x) in the target subgroup (most F(x) still
#: look like the source subgroup); ``class_kept``: the class model gives x's class to fewer than two
#: thirds of F(x) (more than a third changed class; on real held-out images of the minority groups the
#: class model itself is right 80-90 % of the time, so a faithful translation scores about that);
#: ``min_images``: directions graded on fewer held-out images are reported but not flagged;
#: ``replaced_change``: a direction that misses its target is a near-copy when F(x) stays close to x,
#: and replaces the image when its mean |F(x) - x| is at least this (measured on MNIST-Correlation, every
#: stage 1 trained for 400-3000 steps changed 0.04-0.10 per pixel, near-copies and real translations
#: alike; a 6-step CycleGAN's noise 0.44-0.58).
THRESHOLDS = {"near_copy_target": 0.5, "class_kept": 2 / 3, "min_images": 10, "replaced_change": 0.25}


def crop_padding(side):
    """Pad-and-crop padding for images of ``side`` px: 4 at 28-32 px (the authors' ``pad:crop``), side / 8."""
    return max(1, round(side / 8))


def _fit(model, data, logits_fn, steps, batch_size, seed, device, lr=1e-3):
    """Adam on group-balanced, pad-and-cropped batches of ``data``; ``logits_fn(model, x, y, group)``
    -> (logits, target) of the loss. Every draw comes from generators seeded by ``seed``."""
    ids = data.group_ids.cpu()
    batches = group_balanced_batches(ids, data.num_groups, max(batch_size, data.num_groups), 0, seed % 2 ** 31,
                                     steps=steps)  # it scales the seed by ~2^20
    rng = torch.Generator().manual_seed(derive_seed(seed, "crop"))
    pad = crop_padding(data.image_size[0])
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)
    model.train()
    for idx in batches:
        x = data.images[idx.to(data.images.device)].to(device).float().div_(255.0)
        x = random_crop(x, pad, generator=rng)
        y = data.labels[idx.to(data.labels.device)].to(device)
        logits, target = logits_fn(model, x, y, ids[idx].to(device))
        loss = F.cross_entropy(logits.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def _restricted(logits, y, group_class):
    """``logits`` (B, G) with the groups of classes other than ``y`` (B,) masked to -inf."""
    return logits.masked_fill(group_class.to(logits.device)[None, :] != y[:, None], float("-inf"))


def train_judge(data, steps=400, batch_size=100, seed=0, device="cpu"):
    """The subgroup judge: a classifier with one logit per group of ``data`` (a GroupedImageData),
    trained to tell the subgroups of each class apart (cross-entropy over the image's own class's
    groups). Use :func:`judge_subgroups` to apply it."""
    torch.manual_seed(derive_seed(seed, "judge-init"))
    model = build_model(GRADER_MODEL, data.num_groups, data.channels, mean=data.mean, std=data.std).to(device)
    cls = data.group_class

    def logits_fn(m, x, y, group):
        return _restricted(m(x), y, cls), group

    return _fit(model, data, logits_fn, steps, batch_size, derive_seed(seed, "judge"), device)


def train_class_model(data, steps=400, batch_size=100, seed=0, device="cpu"):
    """The class model: a classifier of ``data``'s class label on group-balanced batches."""
    torch.manual_seed(derive_seed(seed, "class-model-init"))
    model = build_model(GRADER_MODEL, data.num_classes, data.channels, mean=data.mean, std=data.std).to(device)
    return _fit(model, data, lambda m, x, y, group: (m(x), y), steps, batch_size,
                derive_seed(seed, "class-model"), device)


@torch.no_grad()
def _predict(model, images, batch_size=500, y=None, group_class=None):
    """Argmax of ``model`` over uint8 ``images`` (N, C, H, W) (restricted to y's groups when ``y`` is given)."""
    device = next(model.parameters()).device
    out = []
    for s in range(0, images.shape[0], batch_size):
        logits = model(images[s: s + batch_size].to(device).float().div_(255.0))
        if y is not None:
            logits = _restricted(logits, y[s: s + batch_size].to(device), group_class)
        out.append(logits.argmax(1).cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)


def judge_subgroups(judge, images, y, data):
    """The judged subgroup (within its class) of each uint8 image (N,), given its class ``y`` (N,)."""
    group = _predict(judge, images, y=y.cpu(), group_class=data.group_class)
    return group - data.group_offsets[y.cpu()]


def _share(hit):
    return float(hit.float().mean()) if hit.numel() else None


def grade_translations(translations, held, judge, class_model):
    """The quality of translations of the held-out images ``held`` (a GroupedImageData).

    Args:
        translations: (N, K, C, H, W) uint8, index-aligned with ``held``: ``[:, k]`` is each image
            translated into subgroup k of its class (as :func:`~.translation.translate_all` returns).
        judge, class_model: from :func:`train_judge` / :func:`train_class_model` (trained on other images).

    Returns a JSON-able dict: ``held_out`` (image count), ``judge_acc`` / ``class_acc`` ({group name:
    accuracy of the grader on the real held-out images of the group}), ``directions``: one dict per
    class and ordered pair of its subgroups, ``{"class", "from", "to", "images", "target",
    "class_kept", "change"}`` (shares in [0, 1], None without images; ``change`` = mean |F(x) - x|
    per pixel in [0, 1] units).
    """
    x, y, sub = held.images.cpu(), held.labels.cpu(), held.subgroup.cpu()
    ids, names = held.group_ids.cpu(), held.group_names
    real_sub = judge_subgroups(judge, x, y, held)
    real_cls = _predict(class_model, x)
    judge_acc = {n: _share((real_sub == sub)[ids == g]) for g, n in enumerate(names)}
    class_acc = {n: _share((real_cls == y)[ids == g]) for g, n in enumerate(names)}
    directions = []
    for c, cname in enumerate(held.classes):
        for a, aname in enumerate(held.subgroups[c]):
            rows = (y == c) & (sub == a)
            for b, bname in enumerate(held.subgroups[c]):
                if b == a:
                    continue
                fx = translations[rows, b]
                n = int(rows.sum())
                judged = judge_subgroups(judge, fx, y[rows], held) if n else torch.empty(0, dtype=torch.int64)
                kept = _predict(class_model, fx) == c if n else torch.empty(0, dtype=torch.bool)
                change = float((fx.float() - x[rows].float()).abs().mean() / 255.0) if n else None
                directions.append({"class": cname, "from": aname, "to": bname, "images": n,
                                   "target": _share(judged == b), "class_kept": _share(kept), "change": change})
    return {"held_out": len(held), "judge_acc": judge_acc, "class_acc": class_acc, "directions": directions}


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.0f} %"


def quality_flags(quality, thresholds=None):
    """One short sentence per flagged direction of ``quality`` (from :func:`grade_translations`)."""
    t = {**THRESHOLDS, **(thresholds or {})}
    flags = []
    for d in quality["directions"]:
        if d["images"] < t["min_images"]:
            continue
        what = []
        if d["target"] < t["near_copy_target"]:
            miss = "near-copy" if d["change"] < t["replaced_change"] else "replaces the image"
            what.append(f"{miss} (the judge puts only {_pct(d['target'])} of F(x) in {d['to']}, "
                        f"mean |F(x) - x| {d['change']:.3f})")
        if d["class_kept"] < t["class_kept"]:
            what.append(f"changes the class (only {_pct(d['class_kept'])} of F(x) keep {d['class']})")
        if what:
            flags.append(f"{d['class']} {d['from']}->{d['to']}: {' and '.join(what)}")
    return flags
