"""The feature CNN: trained on the un-augmented training set (or, with ``retrain``, on the current
augmented set), then frozen; its penultimate layer featurises every image for the regression.

The paper (appendix B): "we retrained the models for 40 - 50 epochs with Adam and a minibatch size
of 512"; the authors' MNIST code trains its Keras CNN for 40 epochs (``CNN_extractor_max_iter``)
with Keras' Adam defaults (learning rate 1e-3) and batch 512 on images scaled to [0, 1], from a
fresh initialisation at every ``fit`` (their pipeline refits the CNN whenever the classifier is
refit). fastaug's defaults are the same. The initialisation and the batch order come from
``seed`` alone, so a run is reproducible and two fits on the same images give the same network.
"""
import dataclasses
import hashlib
import math

import torch
import torch.nn.functional as F

from ...models import build_model
from ...train.loop import Loop, optimizer_step
from ...train.options import require
from ...train.rng import derive_seed

__all__ = ["FeatureConfig", "train_feature_model", "featurize", "CurveData", "FrozenFeatures", "RetrainedFeatures"]


@dataclasses.dataclass
class FeatureConfig:
    """How the feature CNN is trained (defaults: the authors' MNIST settings)."""

    model: str = "lenet"
    epochs: int = 40
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0

    def validate(self):
        require([(self.epochs >= 1, f"feature epochs must be >= 1, got {self.epochs}"),
                 (self.batch_size >= 1, f"feature batch size must be >= 1, got {self.batch_size}"),
                 (self.lr > 0 and math.isfinite(self.lr),
                  f"feature learning rate must be a finite number > 0, got {self.lr}")])


def data_fingerprint(images, labels):
    """``"<N> images <sha1 prefix>"``: which training images (and labels) a feature CNN was fit on."""
    h = hashlib.sha1()
    for t in (images, labels):
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), t.dtype)).encode())
        h.update(t.view(torch.uint8).reshape(-1).numpy().tobytes() if t.numel() else b"")
    return f"{images.shape[0]} images {h.hexdigest()[:16]}"


def train_feature_model(images, labels, num_classes, config, *, mean=None, std=None, progress=False, folder=None,
                        options=None):
    """Train a fresh ``config.model`` on uint8 images (N, C, H, W) with int64 labels (N,), on the
    images' device, and return it frozen in eval mode.

    Adam (``config.lr``), cross-entropy, ``config.epochs`` epochs of shuffled minibatches of
    ``config.batch_size``, on the loop primitive. Initialisation and batch order are seeded by
    ``config.seed`` (the order of epoch e is a function of (seed, e)). With ``folder``, the fit
    checkpoints there after every epoch and continues from its checkpoint when restarted -- only a fit
    of the same settings on the same images and labels (their fingerprint is part of the checkpoint's
    options): a folder holding another fit (other classes, another subset) is refused in one sentence
    naming what differs. ``options``: the settings to compare, named as the caller's flags (default:
    ``config``'s fields and the number of images).
    """
    config.validate()
    device = images.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(derive_seed(config.seed, "subsample", "feature-init"))
        model = build_model(config.model, num_classes, images.shape[1], mean=mean, std=std).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    n = images.shape[0]
    options = {**dataclasses.asdict(config), "images": n} if options is None else dict(options)
    options["training_images"] = data_fingerprint(images, labels)
    loop = Loop(folder, name="feature CNN", options=options, allowed_changes=(),
                epochs=config.epochs, steps_per_epoch=math.ceil(n / config.batch_size), resume="auto",
                progress=progress, show=("loss",), log=lambda msg: None, distributed=False)
    loop.register("model", model)
    loop.register("optimizer", opt)
    model.train()
    for epoch in loop.epochs_left():
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(
            derive_seed(config.seed, "subsample", "feature-order", epoch))).to(device)
        for step in loop.steps():
            idx = perm[step * config.batch_size:(step + 1) * config.batch_size]
            loss = F.cross_entropy(model(images[idx].float().div_(255.0)), labels[idx])
            optimizer_step(loss, opt)
            loop.meters.add(loss=loss.detach())
        loop.end_epoch()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def featurize(model, images, batch_size=2048, dtype=torch.float64):
    """Penultimate-layer features of uint8 images (..., C, H, W) -> (..., D) in ``dtype``.

    Leading dimensions are kept, e.g. (N, A, C, H, W) augmented sets -> (N, A, D).
    """
    lead = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:])
    outs = [model.features(flat[s:s + batch_size].float().div_(255.0)).to(dtype)
            for s in range(0, flat.shape[0], batch_size)]
    h = torch.cat(outs) if outs else torch.zeros(0, model.fc.in_features, dtype=dtype, device=images.device)
    return h.reshape(*lead, h.shape[-1])


@dataclasses.dataclass
class CurveData:
    """Features of one experiment state, all rows on one device, float64.

    Attributes:
        h: (n, D) features of the original training points; y: (n,) their labels.
        h_aug: (n, A, D) features of every point's A augmentations (labels: the source's).
        h_test: (M, D) features of the poisoned test set (test images and all their augmentations);
        y_test: (M,) its labels.
    """

    h: torch.Tensor
    y: torch.Tensor
    h_aug: torch.Tensor
    h_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def count(self):
        return self.h_aug.shape[1]

    def training_rows(self, selected):
        """(h, y) of the regression's training set: the n originals, then the augmentations of the
        ``selected`` points (LongTensor, selection order), each point's A augmentations together."""
        sel = selected.to(self.h.device)
        h = torch.cat([self.h, self.h_aug[sel].reshape(-1, self.h.shape[1])])
        y = torch.cat([self.y, self.y[sel].repeat_interleave(self.count)])
        return h, y


class FrozenFeatures:
    """``--features frozen``: one CNN trained on the un-augmented set; the same features at every
    checkpoint."""

    def __init__(self, data):
        self.data = data

    def at(self, selected):
        return self.data


class RetrainedFeatures:
    """``--features retrain``: at every checkpoint a fresh CNN (same seed, same settings) is trained on
    the current training images (originals + the selected points' augmentations) and every image is
    featurised again, as the authors' MNIST pipeline does on every ``fit``. Slow: one CNN training
    per checkpoint per curve.

    Args:
        images: (n, C, H, W) uint8 originals; labels (n,); aug_images (n, A, C, H, W) uint8;
        test_images: (M, C, H, W) uint8 poisoned test set; test_labels (M,);
        num_classes, config (:class:`FeatureConfig`), mean/std: as :func:`train_feature_model`.
        initial: optional CurveData of the CNN trained on the originals (reused at checkpoint 0).
    """

    def __init__(self, images, labels, aug_images, test_images, test_labels, num_classes, config, *,
                 mean=None, std=None, initial=None, progress=False):
        self.images, self.labels, self.aug_images = images, labels, aug_images
        self.test_images, self.test_labels = test_images, test_labels
        self.num_classes, self.config, self.mean, self.std = num_classes, config, mean, std
        self.initial, self.progress = initial, progress
        self.fits = 0

    def at(self, selected):
        if selected.numel() == 0 and self.initial is not None:
            return self.initial
        sel = selected.to(self.images.device)
        A = self.aug_images.shape[1]
        x = torch.cat([self.images, self.aug_images[sel].reshape(-1, *self.images.shape[1:])])
        y = torch.cat([self.labels, self.labels[sel].repeat_interleave(A)])
        model = train_feature_model(x, y, self.num_classes, self.config, mean=self.mean, std=self.std,
                                    progress=self.progress)
        self.fits += 1
        return CurveData(featurize(model, self.images), self.labels, featurize(model, self.aug_images),
                         featurize(model, self.test_images), self.test_labels)
