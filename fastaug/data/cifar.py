"""``cifar10`` / ``cifar100`` from a user folder, through ``torchvision.datasets``. Never downloads.

``--data-dir`` is the folder that holds ``cifar-10-batches-py/`` (or ``cifar-100-python/``), the
extracted "python version" archive, as torchvision lays it out; the extracted folder itself is
accepted too.
"""
import os
import pickle

import numpy as np
import torch

from .base import ImageData

__all__ = ["cifar", "CIFAR_STATS"]

#: Per-channel mean/std of the CIFAR training sets (the constants torchvision/timm recipes use).
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _torchvision_class(name):
    from torchvision import datasets

    base = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100

    class _Present(base):
        # torchvision verifies every file's MD5 before loading; fastaug only requires the files to
        # exist (so that a small CIFAR-format folder, e.g. one written by a test, loads too) and
        # lets the unpickling report real corruption. (md5 None = "exists" in check_integrity.)
        meta = {**base.meta, "md5": None}

        def _check_integrity(self):
            root = os.path.join(self.root, self.base_folder)
            files = [f for f, _ in self.train_list + self.test_list] + [self.meta["filename"]]
            return all(os.path.isfile(os.path.join(root, f)) for f in files)

    return _Present


#: What unpickling a torn or foreign file raises inside torchvision's CIFAR loader (a missing key, a
#: wrong array size, a truncated pickle): a user's file, not a bug, so one sentence naming the file.
_CORRUPT = (pickle.UnpicklingError, EOFError, KeyError, IndexError, ValueError, TypeError, AttributeError,
            UnicodeDecodeError)


def _corrupt_sentence(name, folder, split, err):
    cls = _torchvision_class(name)
    names = [f for f, _ in (cls.train_list if split == "train" else cls.test_list)] + [cls.meta["filename"]]
    for f in names:  # the first file that does not unpickle to a dict, if one does not
        try:
            with open(os.path.join(folder, f), "rb") as fh:
                entry = pickle.load(fh, encoding="latin1")
            if not isinstance(entry, dict):
                raise TypeError(f"a {type(entry).__name__}, not a dict")
        except Exception as bad:  # noqa: BLE001 - any failure names the file
            return (f"{name} file {os.path.join(folder, f)} is unreadable (truncated or not a CIFAR batch: "
                    f"{type(bad).__name__}: {bad}); extract the 'python version' archive again")
    return (f"{name} in {folder} is not in the CIFAR 'python version' layout torchvision reads "
            f"({type(err).__name__}: {err}); extract the archive again")


def _layout(name):
    if name == "cifar10":
        return "cifar-10-batches-py", "data_batch_1 ... data_batch_5, test_batch and batches.meta"
    return "cifar-100-python", "train, test and meta"


def cifar(name, data_dir, split="train"):
    """CIFAR-10/100 ``split`` ("train" or "test") from ``data_dir`` as ImageData (N, 3, 32, 32) uint8."""
    if name not in CIFAR_STATS:
        raise ValueError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder, files = _layout(name)
    if data_dir is None:
        raise ValueError(f"{name} loads from a folder you give with --data-dir (fastaug never downloads): "
                         f"the folder that holds {folder}/ with {files}")
    root = os.path.abspath(os.path.expanduser(str(data_dir)))
    if os.path.basename(root.rstrip(os.sep)) == folder:
        root = os.path.dirname(root.rstrip(os.sep))
    try:
        ds = _torchvision_class(name)(root, train=split == "train", download=False)
    except RuntimeError as err:
        raise FileNotFoundError(f"{name} not found in {root}: expected {os.path.join(root, folder)}{os.sep} with "
                                f"{files} (the extracted 'python version' archive; fastaug never downloads)") from err
    except _CORRUPT as err:  # the files exist (no MD5 check) but one is torn or not a CIFAR batch
        raise ValueError(_corrupt_sentence(name, os.path.join(root, folder), split, err)) from None
    images = torch.as_tensor(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(np.asarray(ds.targets, dtype=np.int64))
    mean, std = CIFAR_STATS[name]
    return ImageData(images, labels, tuple(ds.classes), name, hflip=True, mean=mean, std=std)
