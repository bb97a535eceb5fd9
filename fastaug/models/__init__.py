"""Classifiers: inputs (N, C, H, W) float in [0, 1], normalisation inside, ``features(x)`` then ``fc``.

``build_model(name, num_classes, in_channels, mean=, std=)`` with ``name`` in :data:`MODELS`:

* ``allconv``: the papers' 4-layer all-convolutional MNIST CNN (features 128);
* ``lenet``: LeNet-5 with ReLU, the data-subsampling paper's MNIST feature CNN (features 84);
* ``resnet20``, ``resnet56``: CIFAR ResNets (features 64);
* ``wrn28_10``: Wide-ResNet-28-10 (features 640).

A trained classifier handed from one stage to another is a ``classifier`` artifact
(:func:`save_classifier` / :func:`load_classifier`).
"""
from .allconv import AllConv
from .artifact import load_classifier, save_classifier
from .base import Classifier
from .lenet import LeNet
from .resnet_cifar import CifarResNet, resnet20, resnet56
from .wide_resnet import WideResNet, wrn28_10

__all__ = ["MODELS", "build_model", "Classifier", "AllConv", "LeNet", "CifarResNet", "WideResNet", "save_classifier",
           "load_classifier"]

_BUILDERS = {
    "allconv": AllConv,
    "lenet": LeNet,
    "resnet20": resnet20,
    "resnet56": resnet56,
    "wrn28_10": wrn28_10,
}
MODELS = tuple(_BUILDERS)


def build_model(name, num_classes, in_channels, *, mean=None, std=None, **kwargs):
    """A fresh classifier ``name`` for ``num_classes`` classes and ``in_channels``-channel images.

    ``mean``/``std``: the dataset's per-channel normalisation constants (default 0.5 / 0.5).
    Extra keyword arguments go to the model's constructor (e.g. ``widths=`` for allconv).
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return _BUILDERS[name](num_classes=num_classes, in_channels=in_channels, mean=mean, std=std, **kwargs)
