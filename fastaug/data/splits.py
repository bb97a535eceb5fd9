"""Seeded subsets and splits of an :class:`~fastaug.data.base.ImageData` (or a
:class:`~fastaug.data.folder.FolderData`: they read only its labels and take its ``subset``).

Every function takes a ``seed`` (an int) and draws from its own ``torch.Generator``, so a split is a
pure function of (data, sizes, seed): the same on every run, every rank and every device.
"""
import math

import torch

from .base import ImageData

__all__ = ["class_subset", "balanced_indices", "labelled_subset", "train_val_split"]


def class_subset(data: ImageData, classes, relabel=True) -> ImageData:
    """Keep the images of ``classes`` (ids or names), e.g. digits 3 and 8.

    A string that is one of ``data.classes`` is that class (an image folder's sub-folder ``10`` is
    class ``"10"``, whatever its number); any other integer or string of digits is a class id.
    With ``relabel`` (default) the kept classes become labels 0..k-1 in the order given (3 vs 8 ->
    0 vs 1), as a binary task expects; otherwise labels and ``classes`` stay as they were.
    """
    classes = list(classes)
    if not classes:
        raise ValueError("classes must name at least one class")
    ids = []
    for c in classes:
        if isinstance(c, str) and c in data.classes:
            ids.append(data.classes.index(c))
        elif isinstance(c, str) and not c.lstrip("-").isdigit():
            raise ValueError(f"class {c!r} is not in {data.name} (classes: {list(data.classes)})")
        else:
            i = int(c)
            if not 0 <= i < data.num_classes:
                raise ValueError(f"class {i} is not in {data.name}, which has classes 0..{data.num_classes - 1} "
                                 f"({list(data.classes)})")
            ids.append(i)
    if len(set(ids)) != len(ids):
        raise ValueError(f"classes must be distinct, got {classes}")
    lut = torch.full((data.num_classes,), -1, dtype=torch.int64)
    lut[torch.tensor(ids)] = torch.arange(len(ids))
    keep = lut[data.labels.cpu()] >= 0
    sub = data.subset(keep.nonzero().squeeze(1))
    if not relabel:
        return sub
    names = tuple(data.classes[i] for i in ids)
    if not isinstance(sub, ImageData):  # a FolderData: relabelled where its samples are produced
        return sub.relabelled(lut, names)
    sub.labels = lut.to(sub.labels.device)[sub.labels]
    sub.classes = names
    return sub


def balanced_indices(labels, size, seed=0, num_classes=None):
    """Indices of a class-balanced random subset of ``size`` images, (size,) int64, sorted.

    Each class present gets ``size // k`` images (k = classes present); the remainder goes one each to
    randomly chosen classes. Raises when a class has too few images for its share.
    """
    labels = torch.as_tensor(labels).cpu()
    size = int(size)
    if not 0 < size <= labels.numel():
        raise ValueError(f"subset size must be in [1, {labels.numel()}] (the images available), got {size}")
    g = torch.Generator().manual_seed(int(seed))
    present = torch.unique(labels)
    k = present.numel()
    share = torch.full((k,), size // k, dtype=torch.int64)
    share[torch.randperm(k, generator=g)[: size % k]] += 1
    picks = []
    for c, n in zip(present.tolist(), share.tolist()):
        members = (labels == c).nonzero().squeeze(1)
        if n > members.numel():
            raise ValueError(f"a class-balanced subset of {size} needs {n} images of class {c}, which has only "
                             f"{members.numel()}")
        picks.append(members[torch.randperm(members.numel(), generator=g)[:n]])
    return torch.cat(picks).sort().values


def _size(n, size, fraction, what):
    if (size is None) == (fraction is None):
        raise ValueError(f"give exactly one of {what}_size and {what}_fraction")
    if fraction is not None:
        if not 0 < fraction < 1:
            raise ValueError(f"{what}_fraction must be in (0, 1), got {fraction}")
        return max(1, int(math.floor(n * fraction + 0.5)))
    return int(size)


def labelled_subset(data: ImageData, size=None, fraction=None, seed=0):
    """A class-balanced labelled subset of ``size`` images (or ``fraction`` of them), and the rest.

    Returns ``(labelled, rest)``: the paper's semi-supervised setting keeps few labels and treats the
    rest as unlabelled.
    """
    n = _size(len(data), size, fraction, "labelled")
    idx = balanced_indices(data.labels, n, seed)
    rest = torch.ones(len(data), dtype=torch.bool)
    rest[idx] = False
    return data.subset(idx), data.subset(rest.nonzero().squeeze(1))


def train_val_split(data: ImageData, val_size=None, val_fraction=None, seed=0):
    """Hold out a class-balanced validation split: returns ``(train, val)``."""
    n = _size(len(data), val_size, val_fraction, "val")
    if n >= len(data):
        raise ValueError(f"a validation split of {n} leaves no training images (of {len(data)})")
    idx = balanced_indices(data.labels, n, seed)
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[idx] = False
    return data.subset(keep.nonzero().squeeze(1)), data.subset(idx)
