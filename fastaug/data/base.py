"""In-memory image datasets: uint8 images (N, C, H, W) with int64 labels and what a loop must know.

Small datasets (MNIST, CIFAR) are held whole as one uint8 tensor, moved to the training device
once, and batched by index (:mod:`fastaug.data.loaders`): no per-image Python in the hot loop.
"""
import dataclasses

import torch

__all__ = ["ImageData"]


@dataclasses.dataclass
class ImageData:
    """A labelled image set held in memory.

    Attributes:
        images: (N, C, H, W) uint8, C = 1 or 3.
        labels: (N,) int64 in [0, len(classes)).
        classes: class names; ``len(classes)`` is the number of classes of the task (kept when a
            subset drops some classes, so label ids stay stable).
        name: dataset name (``"mnist5k"``, ``"cifar10"``, ...).
        hflip: whether a horizontal flip preserves the label (False for digits).
        mean, std: per-channel normalisation constants in [0, 1] units (the model applies them).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple
    name: str
    hflip: bool
    mean: tuple
    std: tuple

    def __post_init__(self):
        x, y = self.images, self.labels
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"images must be a (N, C, H, W) uint8 tensor with C = 1 or 3, got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != x.shape[:1]:
            raise ValueError(f"labels must be an int64 tensor of shape ({x.shape[0]},), got "
                             f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}")
        self.classes = tuple(self.classes)
        if y.numel() and not (0 <= int(y.min()) and int(y.max()) < len(self.classes)):
            raise ValueError(f"labels must be in [0, {len(self.classes)}), got [{int(y.min())}, {int(y.max())}]")
        if len(self.mean) != x.shape[1] or len(self.std) != x.shape[1]:
            raise ValueError(f"mean and std need one value per channel ({x.shape[1]})")

    def __len__(self):
        return self.images.shape[0]

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def channels(self):
        return self.images.shape[1]

    @property
    def image_size(self):
        """(H, W)."""
        return tuple(self.images.shape[2:])

    def subset(self, index):
        """The images at ``index`` (a 1-D index tensor or boolean mask), same classes and constants."""
        index = torch.as_tensor(index)
        return dataclasses.replace(self, images=self.images[index.to(self.images.device)],
                                   labels=self.labels[index.to(self.labels.device)])

    def to(self, device):
        """A copy on ``device`` (the same object when already there)."""
        device = torch.device(device)
        if self.images.device == device:
            return self
        return dataclasses.replace(self, images=self.images.to(device), labels=self.labels.to(device))

    def class_counts(self):
        """(num_classes,) int64: images per class."""
        return torch.bincount(self.labels.cpu(), minlength=self.num_classes)

    def __repr__(self):
        return (f"ImageData({self.name!r}, {len(self)} images {self.channels}x{self.image_size[0]}x"
                f"{self.image_size[1]}, {self.num_classes} classes, on {self.images.device})")
