"""Datasets with subgroups inside each class, for model patching: ``mnist-correlation`` and ``folder``.

A subgroup is a part of a class that a model can fail on (the blog's example: malignant lesions with
and without coloured bandages). :class:`GroupedImageData` is an :class:`~fastaug.data.base.ImageData`
that also holds, per image, its subgroup within its class (``subgroup``) and per class the subgroup
names; a loop looks a batch's groups up by the batch's dataset indices (``group_ids[idx]``), so the
labels travel with every batch without changing the batching code.

Group numbering: group ``g`` of (class y, subgroup z) is ``group_offsets[y] + z``; ``group_class[g]``
is its class. Every class has at least two subgroups (patching needs a gap to close).

* :func:`mnist_correlation`: the paper's MNIST-Correlation on the embedded MNIST-5k (Goel et al.,
  "Model Patching", section 5 / appendix): class = parity, subgroup = clean or zigzag-corrupted
  (:func:`zigzag`), correlated with the class in training, balanced in the test split.
* :func:`subgroup_folder`: ``DIR/train/<class>/<subgroup>/*`` (and ``DIR/val/`` likewise, or a seeded
  stratified split), decoded into memory.
"""
import dataclasses
import os

import torch

from .base import ImageData
from .mnist import MNIST_MEAN, MNIST_STD, mnist5k

__all__ = ["GroupedImageData", "zigzag", "mnist_correlation", "subgroup_folder", "PATCHING_DATASETS",
           "load_grouped_dataset", "stratified_split"]

PATCHING_DATASETS = ("mnist-correlation", "folder")
_TEST_ZIGZAG_SEED = 1_000_003  # a stream no training seed of a plausible run uses
_VAL_SEED = 2_000_003  # + the data seed: which training digits are held out for validation, and their zigzags
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclasses.dataclass
class GroupedImageData(ImageData):
    """An in-memory labelled image set whose classes are split into named subgroups.

    Attributes (beyond ImageData's):
        subgroup: (N,) int64, each image's subgroup index within its class.
        subgroups: per class, the tuple of its subgroup names (``len(subgroups) == num_classes``).
    """

    subgroup: torch.Tensor = None
    subgroups: tuple = ()

    def __post_init__(self):
        super().__post_init__()
        self.subgroups = tuple(tuple(str(s) for s in names) for names in self.subgroups)
        if len(self.subgroups) != self.num_classes:
            raise ValueError(f"subgroups must name the subgroups of each of the {self.num_classes} classes, "
                             f"got {len(self.subgroups)} lists")
        for c, names in zip(self.classes, self.subgroups):
            if len(names) < 2:
                raise ValueError(f"class {c!r} has {len(names)} subgroup(s) ({', '.join(names) or 'none'}); "
                                 f"model patching needs at least two subgroups in every class")
        s = self.subgroup
        if not isinstance(s, torch.Tensor) or s.dtype != torch.int64 or s.shape != self.labels.shape:
            raise ValueError(f"subgroup must be an int64 tensor of shape ({len(self)},), got "
                             f"{getattr(s, 'dtype', type(s).__name__)} {tuple(getattr(s, 'shape', ()))}")
        sizes = torch.tensor([len(n) for n in self.subgroups], dtype=torch.int64)
        if s.numel() and (bool((s < 0).any()) or bool((s.cpu() >= sizes[self.labels.cpu()]).any())):
            raise ValueError("every subgroup index must be in [0, number of subgroups of the image's class)")

    # ---- group numbering ------------------------------------------------------------------------
    @property
    def group_offsets(self):
        """(num_classes,) int64: the id of each class's first group."""
        sizes = torch.tensor([len(n) for n in self.subgroups], dtype=torch.int64)
        return torch.cumsum(sizes, 0) - sizes

    @property
    def num_groups(self):
        return sum(len(n) for n in self.subgroups)

    @property
    def group_class(self):
        """(num_groups,) int64: the class of each group."""
        return torch.cat([torch.full((len(n),), c, dtype=torch.int64) for c, n in enumerate(self.subgroups)])

    @property
    def group_names(self):
        """``"<class>/<subgroup>"`` for each group, in group order."""
        return tuple(f"{c}/{s}" for c, names in zip(self.classes, self.subgroups) for s in names)

    @property
    def group_ids(self):
        """(N,) int64 on the data's device: each image's group."""
        return self.group_offsets.to(self.labels.device)[self.labels] + self.subgroup

    def group_counts(self):
        """(num_groups,) int64: images per group."""
        return torch.bincount(self.group_ids.cpu(), minlength=self.num_groups)

    # ---- ImageData's copies keep the subgroup tensor aligned -------------------------------------
    def subset(self, index):
        index = torch.as_tensor(index)
        return dataclasses.replace(self, images=self.images[index.to(self.images.device)],
                                   labels=self.labels[index.to(self.labels.device)],
                                   subgroup=self.subgroup[index.to(self.subgroup.device)])

    def to(self, device):
        device = torch.device(device)
        if self.images.device == device:
            return self
        return dataclasses.replace(self, images=self.images.to(device), labels=self.labels.to(device),
                                   subgroup=self.subgroup.to(device))

    def __repr__(self):
        counts = ", ".join(f"{n} {c}" for n, c in zip(self.group_names, self.group_counts().tolist()))
        return f"GroupedImageData({self.name!r}, {len(self)} images: {counts})"


# ---- the zigzag corruption --------------------------------------------------------------------
def _zigzag_vertices(n, side, generator):
    """Polyline vertices of ``n`` zigzags, (n, V, 2) float64 as (column, row), NaN-padded.

    After MNIST-C's ``zigzag`` (Mu & Gilmer 2019, google-research/mnist-c): a straight line from
    column 2 to column side-3 at a random row r0, its far end moved by a random offset in [-5, 5)
    rows, with vertices alternating +-2 px about it every 2 px along it (zigzag length a = 2, width
    b = 2 at 28 px, scaled with the side here).
    """
    scale = side / 28.0
    a = b = 2.0 * scale
    c0, c1 = 2.0 * scale, side - 3.0
    r0 = torch.randint(0, side - 1, (n,), generator=generator).double()
    r1 = r0 + torch.randint(-5, 5, (n,), generator=generator).double() * scale
    theta = torch.atan((r1 - r0) / (c1 - c0))
    length = (c1 - c0) / torch.cos(theta)  # (n,)
    count = int(((length.max() - a) // (2 * a)).item()) + 1
    i = torch.arange(count, dtype=torch.float64)
    along = ((2 * i + 1) * a).expand(n, count)  # vertex positions along the line
    across = (b * (-1.0) ** i).expand(n, count)
    inside = along < length[:, None]
    along = torch.cat([torch.zeros(n, 1, dtype=torch.float64), along.where(inside, torch.nan), length[:, None]], 1)
    across = torch.cat([torch.zeros(n, 1, dtype=torch.float64), across.where(inside, torch.nan),
                        torch.zeros(n, 1, dtype=torch.float64)], 1)
    cos, sin = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
    cols = c0 + cos * along - sin * across
    rows = r0[:, None] + sin * along + cos * across
    return torch.stack([cols, rows], -1)


def _segment_distance(px, vertices):
    """Distance from pixel centres ``px`` (P, 2) to each polyline, (n, P): min over its segments."""
    best = torch.full((vertices.shape[0], px.shape[0]), torch.inf, dtype=torch.float64)
    for k in range(vertices.shape[1] - 1):
        p, q = vertices[:, k], vertices[:, k + 1]  # (n, 2)
        d = q - p
        t = ((px[None] - p[:, None]) * d[:, None]).sum(-1) / (d * d).sum(-1).clamp_min(1e-12)[:, None]
        near = p[:, None] + t.clamp(0, 1)[..., None] * d[:, None]
        dist = (px[None] - near).norm(dim=-1)
        best = torch.minimum(best, dist.nan_to_num(torch.inf))
    return best


def zigzag(images, generator):
    """Bright zigzag polylines drawn over ``images``, one random zigzag per image.

    Args:
        images: (N, C, H, W) uint8 (square, H = W).
        generator: a CPU torch.Generator (the zigzags are a function of its state).

    Returns:
        (N, C, H, W) uint8: ``clip(x + stroke, 0, 1)`` in [0, 1] units, where the stroke at distance d
        from the polyline is ``clip(log(1 - d / 2.3) + 1, 0, 1)`` (MNIST-C's line profile: 1 on the
        line, 0 beyond ~1.45 px). MNIST-C measures d vertically to each segment's line; here it is
        the Euclidean distance to the segment, which draws steep segments as thick as flat ones.
    """
    n, _, h, w = images.shape
    if h != w:
        raise ValueError(f"zigzag needs square images, got {h}x{w}")
    if n == 0:
        return images.clone()
    verts = _zigzag_vertices(n, w, generator)
    # compact each polyline: drop its NaN vertices (keep order), pad with its end point (zero-length tail)
    rows = []
    for v in verts:
        v = v[~v.isnan().any(1)]
        rows.append(torch.cat([v, v[-1:].expand(verts.shape[1] - v.shape[0], 2)]))
    verts = torch.stack(rows)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    px = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    dist = _segment_distance(px, verts).clamp(max=2.3 - 1e-10)
    stroke = (torch.log(1 - dist / 2.3) + 1).clamp(0, 1).reshape(n, 1, h, w)
    out = (images.double() / 255.0 + stroke).clamp(0, 1)
    return (out * 255.0).round().to(torch.uint8)


# ---- MNIST-Correlation ------------------------------------------------------------------------
def _minority_mask(labels, correlation, generator):
    """(N,) bool: the images put in their class's minority subgroup, exactly round((1 - p) n_y) per class."""
    mask = torch.zeros(labels.numel(), dtype=torch.bool)
    for c in torch.unique(labels).tolist():
        members = (labels == c).nonzero().squeeze(1)
        k = int(round((1.0 - correlation) * members.numel()))
        mask[members[torch.randperm(members.numel(), generator=generator)[:k]]] = True
    return mask


def _held_out_digits(n, val_fraction, seed):
    """(held, generator): the sorted indices of the round(val_fraction * n) training digits held out for
    validation, and the generator (seeded by ``seed``) that drew them, which then draws their zigzags."""
    g = torch.Generator().manual_seed(_VAL_SEED + int(seed))
    k = int(round(float(val_fraction) * n))
    return torch.randperm(n, generator=g)[:k].sort().values, g


def mnist_correlation(split="train", correlation=0.99, seed=0, val_fraction=0.0):
    """MNIST-Correlation from MNIST-5k: class = parity, subgroup = clean (0) or zigzag (1).

    Training split (MNIST-5k's 4,000 training digits, less those held out for validation): even
    digits are clean and odd digits zigzagged, except exactly ``round((1 - correlation) * n_class)``
    images of each class, drawn at random, which take the other subgroup (P(Z = Y) = ``correlation``,
    the paper's 0.99 leaves ~20 minority images per class here). Validation split ("val"):
    ``round(val_fraction * 4000)`` training digits drawn with ``seed``, held out of "train", each
    clean and zigzagged (a balanced split like the test split, so its worst group is measured on
    hundreds of images, not the few minority images a stratified share of "train" would hold). Test
    split (the fixed 1,000 test digits): every digit twice, clean and zigzagged, so all four groups
    hold the same digits.

    Args:
        split: "train", "val" or "test".
        correlation: P(subgroup = class) in training, in (0.5, 1].
        seed: the seed of which training images are minority and of their zigzags, and of the held-out
            digits and theirs. The test split's zigzags are fixed (their own seed) whatever ``seed`` and
            ``correlation``, as MNIST-5k's test digits are, so every run is scored on the same 2,000 images.
        val_fraction: the share of the training digits held out for validation, in [0, 1) (0: none,
            the training split is as it always was).
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    correlation = float(correlation)
    if not 0.5 < correlation <= 1.0:
        raise ValueError(f"--correlation must be in (0.5, 1] (the share of each class in its majority subgroup), "
                         f"got {correlation}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    base = mnist5k("test" if split == "test" else "train")
    if split != "test":
        held, g_val = _held_out_digits(len(base), val_fraction, seed)
        if split == "val":
            if held.numel() == 0:
                raise ValueError("the validation split of mnist-correlation needs --val-fraction > 0")
            base = base.subset(held)
        elif held.numel():
            keep = torch.ones(len(base), dtype=torch.bool)
            keep[held] = False
            base = base.subset(keep.nonzero().squeeze(1))
    parity = base.labels % 2
    if split == "train":
        g = torch.Generator().manual_seed(int(seed))
        zig = parity.bool() ^ _minority_mask(parity, correlation, g)  # odd -> zigzag unless minority
        images = base.images.clone()
        zidx = zig.nonzero().squeeze(1)
        images[zidx] = zigzag(base.images[zidx], g)
        labels, subgroup = parity, zig.long()
    else:
        g = g_val if split == "val" else torch.Generator().manual_seed(_TEST_ZIGZAG_SEED)
        images = torch.cat([base.images, zigzag(base.images, g)])
        labels = torch.cat([parity, parity])
        subgroup = torch.cat([torch.zeros_like(parity), torch.ones_like(parity)])
    return GroupedImageData(images, labels, ("even", "odd"), "mnist-correlation", hflip=False, mean=MNIST_MEAN,
                            std=MNIST_STD, subgroup=subgroup, subgroups=(("clean", "zigzag"), ("clean", "zigzag")))


# ---- folder of class/subgroup sub-folders -----------------------------------------------------
def _subdirs(path):
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _scan(split_dir):
    """{class: {subgroup: [files]}} of ``split_dir/<class>/<subgroup>/*``, with one-sentence errors."""
    classes = _subdirs(split_dir)
    if len(classes) < 2:
        raise ValueError(f"{split_dir} must hold one folder per class (at least two), found "
                         f"{len(classes)}: {', '.join(classes) or 'none'}")
    layout = {}
    for c in classes:
        subs = _subdirs(os.path.join(split_dir, c))
        if len(subs) < 2:
            raise ValueError(f"class {c!r} in {split_dir} has {len(subs)} subgroup folder(s) "
                             f"({', '.join(subs) or 'none'}); model patching needs at least two subgroups per class")
        layout[c] = {}
        for s in subs:
            d = os.path.join(split_dir, c, s)
            files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.lower().endswith(_IMAGE_EXTENSIONS))
            if not files:
                raise ValueError(f"subgroup folder {d} holds no images (expected *.png, *.jpg, ...)")
            layout[c][s] = files
    return layout


def _decode(files, size, grey):
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    out = torch.empty(len(files), 1 if grey else 3, size, size, dtype=torch.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                img = img.convert("L" if grey else "RGB")
                out[i] = TF.pil_to_tensor(TF.resize(img, [size, size], antialias=True))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read image {f}: {err}") from None
    return out


def _grouped(layout, classes, subgroups, size, grey, name):
    files, labels, subgroup = [], [], []
    for y, (c, subs) in enumerate(zip(classes, subgroups)):
        for z, s in enumerate(subs):
            files += layout[c][s]
            labels += [y] * len(layout[c][s])
            subgroup += [z] * len(layout[c][s])
    mean, std = ((0.5,), (0.5,)) if grey else ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return GroupedImageData(_decode(files, size, grey), torch.tensor(labels), tuple(classes), name, hflip=True,
                            mean=mean, std=std, subgroup=torch.tensor(subgroup), subgroups=subgroups)


def stratified_split(data, fraction, seed, what="a seeded validation split"):
    """(train, val) GroupedImageData with ``round(fraction * n_g)`` (at least 1, at most n_g - 1) images of
    every group g held out, drawn with ``seed``; ``what`` names the split in the error a group of one
    image gets."""
    g = torch.Generator().manual_seed(int(seed))
    ids = data.group_ids
    held = torch.zeros(len(data), dtype=torch.bool)
    for group in range(data.num_groups):
        members = (ids == group).nonzero().squeeze(1)
        if members.numel() < 2:
            raise ValueError(f"subgroup {data.group_names[group]} has {members.numel()} image(s); {what} needs "
                             f"at least two per subgroup")
        k = min(max(1, int(round(fraction * members.numel()))), members.numel() - 1)
        held[members[torch.randperm(members.numel(), generator=g)[:k]]] = True
    return data.subset((~held).nonzero().squeeze(1)), data.subset(held.nonzero().squeeze(1))


def subgroup_folder(data_dir, image_size=32, grey=False, val_fraction=0.2, seed=0):
    """``(train, val)`` GroupedImageData of ``data_dir/train/<class>/<subgroup>/*`` and ``data_dir/val/`` likewise.

    Without ``val/`` (or ``test/``), ``val_fraction`` of every subgroup of ``train/`` is held out,
    seeded. Images are decoded into memory (Pillow), converted to RGB (or L with ``grey``) and resized
    to ``image_size`` squared: patching datasets are small, and stage 1 precomputes a translation of
    every training image anyway.
    """
    if data_dir is None:
        raise ValueError("--dataset folder needs --data-dir: a folder holding train/<class>/<subgroup>/<image>")
    root = os.path.abspath(os.path.expanduser(str(data_dir)))
    train_dir = os.path.join(root, "train")
    if not os.path.isdir(train_dir):
        raise ValueError(f"{root} has no train/ folder: expected {root}/train/<class>/<subgroup>/<image> "
                         f"(and optionally {root}/val/ laid out the same way)")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    layout = _scan(train_dir)
    classes = tuple(layout)
    subgroups = tuple(tuple(layout[c]) for c in classes)
    val_dir = next((os.path.join(root, d) for d in ("val", "test") if os.path.isdir(os.path.join(root, d))), None)
    if val_dir is None:
        data = _grouped(layout, classes, subgroups, int(image_size), grey, "folder")
        return stratified_split(data, val_fraction, seed, what="a seeded test split (without a val/ folder)")
    val_layout = _scan(val_dir)
    if tuple(val_layout) != classes:
        raise ValueError(f"the classes of {val_dir} ({', '.join(val_layout)}) differ from those of {train_dir} "
                         f"({', '.join(classes)})")
    for c, subs in zip(classes, subgroups):
        if tuple(val_layout[c]) != subs:
            raise ValueError(f"class {c!r} has subgroups {', '.join(subs)} in train/ but "
                             f"{', '.join(val_layout[c])} in {os.path.basename(val_dir)}/; the names must match")
    return (_grouped(layout, classes, subgroups, int(image_size), grey, "folder"),
            _grouped(val_layout, classes, subgroups, int(image_size), grey, "folder"))


def load_grouped_dataset(name, *, data_dir=None, correlation=0.99, image_size=32, grey=False, seed=0, val_fraction=0.0):
    """``(train, val, test)`` GroupedImageData of a patching dataset (one of :data:`PATCHING_DATASETS`).

    ``val`` (None when ``val_fraction`` is 0) is held out of the training images: on
    ``mnist-correlation`` that share of the training digits, each clean and zigzagged (balanced, see
    :func:`mnist_correlation`); on ``folder`` that share of every (class, subgroup) group of ``train/``
    (:func:`stratified_split`), both drawn with ``seed``.
    """
    if name == "mnist-correlation":
        val = mnist_correlation("val", correlation, seed, val_fraction) if val_fraction > 0 else None
        return (mnist_correlation("train", correlation, seed, val_fraction), val,
                mnist_correlation("test", correlation, seed))
    if name == "folder":
        train, test = subgroup_folder(data_dir, image_size, grey, seed=seed)
        if val_fraction <= 0:
            return train, None, test
        train, val = stratified_split(train, val_fraction, seed, what="--val-fraction (0 turns it off)")
        return train, val, test
    raise ValueError(f"unknown patching dataset {name!r}; choose one of {', '.join(PATCHING_DATASETS)}")
