"""``folder``: an image folder, one sub-folder per class (torchvision ``ImageFolder``), resized to a square.

Layouts accepted for ``--data-dir DIR``:

* ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (or ``test/``): the two splits as given. The classes
  (and their numbers, sorted names) are ``train/``'s: ``val/`` is labelled with them, a class
  ``val/`` lacks just has no test images (a warning says which), and a class folder of images in
  ``val/`` that ``train/`` lacks is refused in one sentence before anything trains;
* ``DIR/<class>/*``: one folder, split into train/test by a seeded class-balanced hold-out.

Images are decoded (Pillow), converted to RGB (or L) and resized to ``image_size`` x ``image_size`` in
DataLoader workers as uint8 tensors; augmentation then runs on the training device, batched. Greyscale
images of more than 8 bits are scaled to 8 bits first (Pillow's own conversion clips them): 16-bit
(modes ``I;16*``, and ``I``, read as [0, 65535]) as round(v / 257), floating point (mode ``F``, read as
[0, 1]) as round(255 v), clipped to [0, 255].

An image that cannot be decoded stops the run with one sentence naming its file; with
``skip_unreadable`` set on the :class:`FolderData` (``--skip-unreadable``) it is left out of its
batch instead and counted (:class:`~fastaug.data.loaders.FolderBatches` does both, in the main
process: a worker only marks the sample, see :class:`_ReadableFolder`).
"""
import os
import warnings

import torch

from .splits import balanced_indices

__all__ = ["FolderData", "image_folder", "IMAGENET_MEAN", "IMAGENET_STD", "is_unreadable", "unreadable_path"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _eight_bit(img):
    """A PIL image of 16-bit or float greyscale (modes ``I;16*``, ``I``, ``F``) as an 8-bit ``L`` image
    (module docstring); any other image unchanged."""
    if not (img.mode.startswith("I;16") or img.mode in ("I", "F")):
        return img
    import numpy as np
    from PIL import Image

    a = np.asarray(img, dtype=np.float64)
    a = np.nan_to_num(a * 255.0 if img.mode == "F" else a / 257.0)
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")


def _load(path):
    """The image file at ``path`` as an RGB PIL image (torchvision's ``pil_loader``, deep greyscale scaled
    to 8 bits first: module docstring)."""
    from PIL import Image

    with open(path, "rb") as f:
        img = Image.open(f)
        img.load()
        return _eight_bit(img).convert("RGB")


class _Decode:
    """PIL image -> (C, S, S) uint8 tensor (a picklable callable for DataLoader workers)."""

    def __init__(self, size, grey):
        self.size, self.grey = size, grey

    def __call__(self, img):
        from torchvision.transforms.v2 import functional as TF

        img = img.convert("L" if self.grey else "RGB")
        return TF.pil_to_tensor(TF.resize(img, [self.size, self.size], antialias=True))


class _Relabel(torch.utils.data.Dataset):
    """``dataset`` (an image folder) with its labels through ``lut`` (folder class number -> label): what
    ``--classes`` makes of a folder (:meth:`FolderData.relabelled`). A negative label (a sample
    :class:`_ReadableFolder` marked unreadable, ``-1 - index``) is kept. A list, so picklable for
    DataLoader workers; indices are the folder's own."""

    def __init__(self, dataset, lut):
        self.dataset, self.lut = dataset, [int(v) for v in lut]

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        x, y = self.dataset[index]
        return x, (self.lut[y] if y >= 0 else y)


class FolderData:
    """A labelled image folder decoded lazily (in DataLoader workers).

    Mirrors :class:`~fastaug.data.base.ImageData`'s read-only attributes (``labels``, ``classes``,
    ``name``, ``hflip``, ``mean``, ``std``, ``channels``, ``image_size``, ``num_classes``) and its
    :meth:`subset`, so the seeded subsets of :mod:`.splits` (``labelled_subset``, ``train_val_split``,
    ``class_subset``) take it as they take an in-memory dataset, from the labels alone (no image
    decoded). ``dataset`` is the torch Dataset yielding ``(uint8 (C, S, S), label)``: the image folder
    (``base``), its labels mapped by ``label_map`` ((folder classes,) int64, folder class number -> label,
    -1 for a class left out; None: the folder's own numbers), restricted to ``indices`` (of ``base``;
    None: all of it).
    """

    def __init__(self, dataset, indices, classes, image_size, grey, label_map=None):
        self.base = dataset
        self.indices = None if indices is None else torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        self.label_map = None if label_map is None else torch.as_tensor(label_map, dtype=torch.int64)
        self._grey, self._side = bool(grey), int(image_size)
        source = dataset if self.label_map is None else _Relabel(dataset, self.label_map.tolist())
        self.dataset = source if self.indices is None else torch.utils.data.Subset(source, self.indices.tolist())
        labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
        labels = labels if self.indices is None else labels[self.indices]
        self.labels = labels if self.label_map is None else self.label_map[labels]
        self.classes, self.name, self.hflip = tuple(classes), "folder", True
        self.channels = 1 if grey else 3
        self.mean, self.std = ((0.5,), (0.5,)) if grey else (IMAGENET_MEAN, IMAGENET_STD)
        self.image_size = (image_size, image_size)
        self.skip_unreadable = False  # --skip-unreadable: drop undecodable images from their batch

    def _derive(self, indices, classes, label_map):
        out = FolderData(self.base, indices, classes, self._side, self._grey, label_map=label_map)
        out.skip_unreadable = self.skip_unreadable
        return out

    def subset(self, index):
        """The images at ``index`` (a 1-D index tensor or boolean mask into this split), same classes and
        labels: a FolderData over the same folder, nothing decoded (as :meth:`ImageData.subset`)."""
        index = torch.as_tensor(index).cpu()
        if index.dtype == torch.bool:
            index = index.nonzero().squeeze(1)
        index = index.to(torch.int64).reshape(-1)
        return self._derive(index if self.indices is None else self.indices[index], self.classes, self.label_map)

    def relabelled(self, lut, classes):
        """These images labelled ``lut[label]`` ((num_classes,) int64) with classes ``classes``: what
        :func:`~fastaug.data.splits.class_subset` does to an in-memory dataset's labels, applied where the
        folder's samples are produced (every image here must map to a label >= 0)."""
        lut = torch.as_tensor(lut, dtype=torch.int64).cpu()
        if bool((lut[self.labels] < 0).any()):
            raise ValueError("relabelled: every image must keep a class (take the class subset first)")
        if self.label_map is None:
            label_map = lut
        else:  # compose: folder class number -> current label -> new label (-1 stays -1)
            label_map = torch.where(self.label_map >= 0, lut[self.label_map.clamp_min(0)], -1)
        return self._derive(self.indices, classes, label_map)

    def unreadable_path(self, label):
        """The file behind a sample that :class:`_ReadableFolder` marked unreadable (``label < 0``)."""
        return self.base.samples[-1 - int(label)][0]

    def __len__(self):
        return self.labels.numel()

    @property
    def num_classes(self):
        return len(self.classes)

    def __repr__(self):
        return (f"FolderData({len(self)} images -> {self.channels}x{self.image_size[0]}x{self.image_size[1]}, "
                f"{self.num_classes} classes)")


def _readable_folder_class():
    from torchvision.datasets import ImageFolder

    global _ReadableFolder
    if "_ReadableFolder" in globals():
        return _ReadableFolder

    class _ReadableFolder(ImageFolder):
        """ImageFolder whose sample ``i`` is ``(zeros, -1 - i)`` when its file cannot be decoded, so the
        main process can name the file (or skip it) instead of a worker dying with a PIL traceback.

        ``class_to_idx``: label the sub-folders with these classes (a held-out split takes the training
        split's) instead of numbering its own; a class without a sub-folder of images has no samples."""

        def __init__(self, root, transform=None, class_to_idx=None):
            self.given_classes = None if class_to_idx is None else dict(class_to_idx)
            super().__init__(root, transform=transform, loader=_load, allow_empty=class_to_idx is not None)

        def find_classes(self, directory):
            if self.given_classes is None:
                return super().find_classes(directory)
            return sorted(self.given_classes, key=self.given_classes.get), dict(self.given_classes)

        def __getitem__(self, index):
            try:
                return super().__getitem__(index)
            except (OSError, ValueError, SyntaxError):  # PIL: UnidentifiedImageError, truncated, bad header
                t = self.transform
                return torch.zeros(1 if t.grey else 3, t.size, t.size, dtype=torch.uint8), -1 - index

    _ReadableFolder.__qualname__ = "_ReadableFolder"  # picklable by name for spawned DataLoader workers
    return _ReadableFolder


def _image_folder(path, size, grey, class_to_idx=None):
    return _readable_folder_class()(path, transform=_Decode(size, grey), class_to_idx=class_to_idx)


def _foreign_classes(folder, classes):
    """The class sub-folders of ``folder`` that hold images (torchvision's extensions) and are not in
    ``classes``: only those are listed here (the image folder lists the others)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    names, _ = find_classes(folder)
    return sorted(c for c in names if c not in classes and make_dataset(folder, {c: 0}, IMG_EXTENSIONS,
                                                                        allow_empty=True))


def _held_out_folder(folder, train_folder, train_classes, size, grey):
    """The held-out split ``folder`` labelled with the training split's classes (``train_classes``,
    ``class_to_idx`` of ``train_folder``); refuses, in one sentence naming the classes and both folders, a
    class folder of images the training split lacks; warns of training classes it has no images of."""
    extra = _foreign_classes(folder, train_classes)
    if extra:
        if len(extra) == 1:
            c = extra[0]
            raise ValueError(f"{folder} holds images of class {c!r}, which {train_folder} has no folder of: the "
                             f"classes are the training split's, so add {os.path.join(train_folder, c)} or remove "
                             f"{os.path.join(folder, c)}")
        raise ValueError(f"{folder} holds images of classes {', '.join(map(repr, extra))}, which {train_folder} has no "
                         f"folders of: the classes are the training split's, so add them to {train_folder} or remove "
                         f"them from {folder}")
    ds = _image_folder(folder, size, grey, class_to_idx=train_classes)
    if not ds.samples:
        raise FileNotFoundError(f"no images of the classes of {train_folder} found under {folder}")
    present = set(ds.targets)
    missing = [c for c in sorted(train_classes, key=train_classes.get) if train_classes[c] not in present]
    if missing:
        warnings.warn(f"{folder} has no images of class{'es' if len(missing) > 1 else ''} "
                      f"{', '.join(repr(c) for c in missing)} (of {train_folder}): the test accuracy covers the "
                      f"other classes only", stacklevel=3)
    return ds


def is_unreadable(labels):
    """(B,) bool: the samples :func:`image_folder`'s dataset marked as undecodable (negative labels)."""
    return labels < 0


def unreadable_path(data, label):
    return data.unreadable_path(label)


def _two_classes(ds, folder):
    """Refuse, in one sentence naming the folder and its class, a folder with a single class sub-folder."""
    if len(ds.classes) < 2:
        raise ValueError(f"{folder} holds one class folder, {ds.classes[0]!r}: a classifier needs at least two "
                         f"classes, one sub-folder of images each")
    return ds


def image_folder(data_dir, split="train", image_size=224, grey=False, test_fraction=0.2, seed=0):
    """The ``split`` ("train" or "test") of an image folder as :class:`FolderData` (see module docstring)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if data_dir is None:
        raise ValueError("the folder dataset needs --data-dir: a folder with one sub-folder of images per class "
                         "(or train/ and val/ folders laid out that way)")
    root = os.path.abspath(os.path.expanduser(str(data_dir)))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root} does not exist: expected {root}/<class>/<image> (or "
                                f"{root}/train/<class>/<image> and {root}/val/<class>/<image>)")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    held_out = next((os.path.join(root, d) for d in ("val", "test") if os.path.isdir(os.path.join(root, d))), None)
    if os.path.isdir(os.path.join(root, "train")) and not held_out:
        raise FileNotFoundError(f"{root} holds train/ but no val/ or test/ next to it: add {root}/val/<class>/<image>, "
                                f"or point --data-dir at {root}/train to split it into train and test")
    try:
        if os.path.isdir(os.path.join(root, "train")) and held_out:
            train_folder = os.path.join(root, "train")
            if split == "train":
                ds = _two_classes(_image_folder(train_folder, image_size, grey), train_folder)
            else:  # labelled with train/'s classes (torchvision numbers sorted folder names)
                from torchvision.datasets.folder import find_classes

                ds = _held_out_folder(held_out, train_folder, find_classes(train_folder)[1], image_size, grey)
            return FolderData(ds, None, ds.classes, image_size, grey)
        ds = _two_classes(_image_folder(root, image_size, grey), root)
    except (FileNotFoundError, RuntimeError) as err:  # torchvision: no class folders / no images
        raise FileNotFoundError(f"no images found under {root}: expected {root}/<class>/<image> (or "
                                f"{root}/train/<class>/... and {root}/val/<class>/...): {err}") from err
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    n_test = max(1, int(round(test_fraction * labels.numel())))
    test = balanced_indices(labels, n_test, seed)
    mask = torch.zeros(labels.numel(), dtype=torch.bool)
    mask[test] = True
    idx = (mask if split == "test" else ~mask).nonzero().squeeze(1)
    return FolderData(ds, idx, ds.classes, image_size, grey)


def __getattr__(name):  # a worker unpickling the dataset finds the class by name (torchvision imported lazily)
    if name == "_ReadableFolder":
        return _readable_folder_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
