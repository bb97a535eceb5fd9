"""What every fastaug classifier shares: inputs in [0, 1], normalisation inside, ``features`` then ``fc``.

Models take float images in [0, 1] (what the augmentation ops produce) and normalise them with
the dataset's per-channel mean/std as their first step, so a frozen classifier can be called on
augmented images directly (the influence loop differentiates through it). ``forward(x) =
fc(features(x))`` with ``fc`` an ``nn.Linear``: last-layer influence
(:func:`fastaug.influence.find_last_linear`) finds it.
"""
import torch
from torch import nn

__all__ = ["Classifier"]


class Classifier(nn.Module):
    """Base class: ``features(x)`` (N, C, H, W) in [0, 1] -> (N, D); ``fc`` D -> num_classes."""

    def __init__(self, in_channels, num_classes, mean=None, std=None):
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        mean = (0.5,) * in_channels if mean is None else tuple(mean)
        std = (0.5,) * in_channels if std is None else tuple(std)
        if len(mean) != in_channels or len(std) != in_channels or min(std) <= 0:
            raise ValueError(f"mean and std need {in_channels} values each (std > 0), got {mean}, {std}")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def normalize(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects (N, {self.in_channels}, H, W) images in [0, 1], "
                             f"got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"images must be float in [0, 1] (convert uint8 with x / 255), got {x.dtype}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def body(self, x):  # pragma: no cover - abstract
        """Normalised images -> (N, D) feature vectors."""
        raise NotImplementedError

    def features(self, x):
        """x (N, C, H, W) in [0, 1] -> (N, D): the last layer's input."""
        return self.body(self.normalize(x))

    def forward(self, x):
        """x (N, C, H, W) in [0, 1] -> logits (N, num_classes)."""
        return self.fc(self.features(x))
