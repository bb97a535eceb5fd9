"""The contract between the training engine and a training method.

The engine (:class:`fastaug.train.engine.Trainer`) knows no method. It owns the model, optimiser,
schedule, data order, checkpoints, distributed set-up and metrics; a :class:`Method` supplies

* ``augment(x, y, trainer)``: turn a batch of uint8 images into what the model trains on
  (a :class:`TrainBatch`), on the device, batched;
* ``loss(model, batch)``: the step's loss and what to log (cross-entropy with the run's label
  smoothing and ``batch.weight`` by default, as timm's ``loss_fn`` / Fabric's ``training_step``);
* ``make_batch(x, y, index, trainer)``: the same as ``augment`` with each image's position in
  ``trainer.train_data`` (the default calls ``augment`` and keeps ``index`` in the batch);
  ``train_batches(trainer)``: the method's own batches (e.g. group-balanced), None for the engine's;
* optional hooks: ``setup`` (once, before resuming), ``after_step`` (sees the per-sample losses),
  ``epoch_start`` / ``epoch_end`` (may return extra per-epoch metrics), ``finish`` (figures);
* ``learned_augmentation(trainer)``: what a method that learns an augmentation learned, as a loadable
  module of :mod:`fastaug.augment` (:class:`~fastaug.augment.LearnedAugmentation`); the engine writes
  it to ``augmentation.pt`` at the end of the run (None, the default: the method learns none);
* ``state_dict`` / ``load_state_dict``: its own state, saved in every checkpoint (a per-rank part of
  the loop's :class:`~fastaug.train.loop.Checkpointer`): tensors, numbers, strings, lists and dicts
  only, since checkpoints load with ``weights_only=True`` (a ``torch.Generator``'s ``get_state()``
  is a tensor; convert NumPy arrays).

A method is built by the engine as ``Method(options, trainer, **inputs)``: ``options`` its typed
options (:mod:`fastaug.train.options`; None without), ``trainer`` the engine (``trainer.args`` holds
the resolved common options, read only), ``inputs`` what earlier stages of its pipeline made (e.g.
TANDA's ``generator``), handed on by the pipeline. A method that needs such an input and does not get
one refuses in one sentence; it never looks for files on its own.

Randomness: use ``trainer.rng`` (a CPU ``torch.Generator``, one per process, saved in every
checkpoint) for every augmentation draw, so a resumed run replays the same draws. A method that
keeps other generators or random state saves them in its ``state_dict``.
"""
import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F

from ..augment.standard import StandardAugment, to_float
from .options import Options as TypedOptions

__all__ = ["TrainBatch", "Method", "to_float", "standard_augment", "build_method", "MissingInput", "required"]


def standard_augment(args, hflip):
    """The run's standard augmentation (:class:`~fastaug.augment.standard.StandardAugment`, what
    ``--augment standard`` trains with): crop/flip/Cutout from ``--crop-padding``, ``hflip`` (the
    dataset allows flips and no ``--no-flip``: the trainer's ``info["hflip"]``) and ``--cutout``.
    Every method that augments starts from it, so it lives here, below the methods, rather than in
    any one of them (methods never import each other)."""
    return StandardAugment(padding=args.crop_padding, flip=hflip, cutout=args.cutout)


@dataclasses.dataclass
class TrainBatch:
    """What the model trains on in one step.

    Attributes:
        x: (B, C, H, W) float in [0, 1] on the training device.
        y: (B,) int64 labels.
        weight: optional (B,) per-sample loss weights; the default loss is ``sum(w * l) / sum(w)``
            (the plain mean when None).
        group: optional (B,) int64 tag of where each sample came from (e.g. the policy index m of
            Adversarial AutoAugment, the subgroup of model patching), for a method's own loss or
            ``after_step``.
        source_images: how many dataset images the batch was made from (for images/s; default B).
        index: optional (B,) int64 positions in ``trainer.train_data`` of the images the batch was
            made from (set by :meth:`Method.make_batch`; None when a method's batch mixes them).
        extras: the method's own tensors for its :meth:`Method.loss` (e.g. model patching's
            ``"t"``: (K, B, C, H, W) translations of x), documented by the method; empty by default.
    """

    x: torch.Tensor
    y: torch.Tensor
    weight: Optional[torch.Tensor] = None
    group: Optional[torch.Tensor] = None
    source_images: Optional[int] = None
    index: Optional[torch.Tensor] = None
    extras: dict = dataclasses.field(default_factory=dict)


class MissingInput(ValueError):
    """A method (or stage) was built without the result of the stage it needs (one sentence)."""


def required(value, sentence):
    """``value``, or :class:`MissingInput` with ``sentence`` when it is None: what a method built without
    the result of the stage it needs raises, instead of training without it."""
    if value is None:
        raise MissingInput(sentence)
    return value


class Method:
    """Base class of a training method; the default trains on the un-augmented images with cross-entropy.

    Subclasses set ``name`` (the ``--augment`` choice) and may declare command-line options as a typed
    ``Options`` dataclass (:mod:`fastaug.train.options`). The constructor receives those options (None
    when the method has none) and the trainer (model, device, data description, ``rng`` and the
    resolved common options ``trainer.args`` are ready; the checkpoint is not loaded yet).
    """

    name = "none"
    #: the method's :class:`~fastaug.train.options.Options` dataclass (None: no options of its own)
    Options = None

    @classmethod
    def check_args(cls, args):
        """Refuse, before any work, arguments this method cannot run with (ValueError, one sentence):
        its own options (``Options.from_args``) and what it needs of the common ones. ``fastaug compare``
        calls it for every method before training the first; a method with such needs overrides it."""
        if cls.Options is not None:
            cls.Options.from_args(args)

    @classmethod
    def pipeline(cls, args, data=None, resume=None):
        """A :class:`~fastaug.train.pipeline.Pipeline` when the method needs stages before (or instead
        of) the classifier's training, ending with :class:`~fastaug.train.engine.ClassifierStage`;
        None (the default) for a method that is one engine run. ``fastaug train`` runs it; ``resume``
        is the classifier stage's resume policy (default ``bool(args.resume)``)."""
        return None

    def __init__(self, options, trainer):
        self.options = options
        self.label_smoothing = float(trainer.args.label_smoothing)

    def setup(self, trainer):
        """Called once before training starts and before a checkpoint is loaded."""

    def augment(self, x, y, trainer) -> TrainBatch:
        """x (N, C, H, W) uint8 and y (N,) int64 on the device -> the batch to train on."""
        return TrainBatch(to_float(x), y)

    def loss(self, model, batch: TrainBatch):
        """The step's loss: ``(loss, logs)`` with ``loss`` a 0-d tensor to minimise and ``logs`` a dict:

        * ``"losses"``: (B,) detached per-sample losses (the epoch's ``train_loss``, :meth:`after_step`);
        * ``"logits"``: (B, K) detached logits of ``batch.x`` (the epoch's ``train_acc``);
        * any other entry, a detached 0-d tensor, is averaged over the epoch's samples into its record.

        ``model`` is the classifier to call (DDP-wrapped under torchrun); the engine runs this under
        the run's autocast. The default: cross-entropy with ``--label-smoothing``, weighted by
        ``batch.weight`` when set.
        """
        logits = model(batch.x)
        losses = F.cross_entropy(logits.float(), batch.y, reduction="none", label_smoothing=self.label_smoothing)
        loss = losses.mean() if batch.weight is None else (losses * batch.weight).sum() / batch.weight.sum()
        return loss, {"losses": losses.detach(), "logits": logits.detach()}

    def make_batch(self, x, y, index, trainer) -> TrainBatch:
        """What the engine calls for each batch: x (N, C, H, W) uint8, y (N,) int64 and ``index`` (N,)
        int64, the images' positions in ``trainer.train_data`` (all on the device) -> the batch to train
        on. The default calls :meth:`augment` and sets ``batch.index = index`` when the method left it
        unset; override it to look samples up by index (subgroup labels, precomputed per-image tensors)."""
        batch = self.augment(x, y, trainer)
        if batch.index is None:
            batch.index = index
        return batch

    def train_batches(self, trainer):
        """The method's own training batches, or None (the default) for the engine's.

        Return an object with ``__len__`` (steps per epoch, the same on every rank) and
        ``epoch(epoch, start_step)`` yielding ``(x uint8, y int64, index int64)`` on the device from step
        ``start_step`` on, its order a function of (seed, epoch) so that a resumed run replays it (e.g.
        group-balanced sampling). Called once, after the constructor; the schedule follows its length."""
        return None

    def after_step(self, batch: TrainBatch, losses: torch.Tensor, trainer):
        """After the optimiser step: ``losses`` (B,) are the batch's detached per-sample losses."""

    def epoch_start(self, epoch, trainer):
        """Before the first step of ``epoch``; also when a run resumes mid-epoch, where
        ``trainer.step_in_epoch > 0`` and the state loaded from the checkpoint must be kept."""

    def epoch_end(self, epoch, trainer):
        """After the last step of ``epoch``, before evaluation; returns extra metrics (a JSON-able dict),
        e.g. per-group test metrics computed with ``trainer.module`` (the classifier, not DDP-wrapped)."""
        return {}

    def finish(self, trainer):
        """After the last epoch, on every rank (write figures on ``trainer.is_main`` only)."""

    def learned_augmentation(self, trainer):
        """What this method learned, as a :class:`~fastaug.augment.LearnedAugmentation` (an ``nn.Module``
        a user loads back with :func:`fastaug.augment.load`), or None (the default) for a method that
        learns no augmentation. Called once after :meth:`finish`, on the main process only; the engine
        writes it to ``augmentation.pt`` in the run folder with the run's provenance in its meta."""
        return None

    def pretrain_seconds(self):
        """Seconds this method spent on its own work outside the engine's epochs, counted once across
        resumes; 0 for most methods (a pipeline's earlier stages are counted by the pipeline). The
        engine adds it to ``summary.json``'s ``total_seconds``, so comparisons count the whole method."""
        return 0.0

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        if state:
            raise ValueError(f"method {self.name!r} keeps no state, but the checkpoint holds some: {sorted(state)}")


def build_method(cls, args, trainer, options=None, inputs=None):
    """``cls(options, trainer, **inputs)``, ``options`` defaulting to ``cls.Options.from_args(args)``
    and None for a method without options; options given or made are validated (one-sentence ValueError)."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"method must be a fastaug.train.Method subclass, got {cls!r}")
    if options is None and cls.Options is not None:
        options = cls.Options.from_args(args)
    elif isinstance(options, TypedOptions):
        options.validate()  # options a caller built: the same one-sentence checks as from the command line
    return cls(options, trainer, **(inputs or {}))
