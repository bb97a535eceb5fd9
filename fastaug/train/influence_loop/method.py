"""Stage 5 as a training method, and ``--augment influence`` (the whole loop) on top of it.

* :class:`LearnedRetrain`: retrain F from scratch on the engine with the standard augmentation plus
  samples of a trained augmenter: per batch, the standard crop/flip, then each image independently
  gets ``G(x, dropout(E(x)))`` with probability ``--learned-prob`` (dropout kept, a new mask per image:
  the diversity of CVPR Figure 3), then the standard Cutout -- the position of a policy in the
  standard augmentation, "in addition to the baseline" as the paper says. Every draw comes from the
  engine's generator, so ``--resume`` replays them. Reports the validation split's loss/accuracy per
  epoch (``val_loss``, ``val_acc``) and the share of learned samples. Library use::

      Trainer(args, method=lambda a, t: LearnedRetrain(a, t, Augmenter.load("RUN/augmenter.pt"))).fit()

* :class:`InfluenceAugment` (``--augment influence``): its :meth:`~InfluenceAugment.pipeline` is the
  five stages (:func:`~fastaug.train.influence_loop.stages.influence_pipeline`): stages 1-4 in
  sub-folders of the run, then the engine's run in the run folder *is* stage 5 (this method, sampling
  from ``RUN/augmenter.pt``), so ``summary.json`` / ``metrics.jsonl`` of the run folder are the final
  classifier's, directly comparable with any other ``--augment``. ``--stages`` without 5 stops after
  the requested stages. ``--resume`` continues whichever stage was interrupted (stages 1-4 always
  continue from their own checkpoints).
"""
import os

import torch

from ..method import Method, TrainBatch, standard_augment, to_float
from .options import InfluenceOptions

__all__ = ["LearnedRetrain", "InfluenceAugment"]


class LearnedRetrain(Method):
    """Standard augmentation plus learned samples (see the module docstring).

    Args:
        args, trainer: as every Method (``args.learned_prob`` is read; default 0.5 when absent).
        augmenter: a trained :class:`~fastaug.train.influence_loop.augmenter.Augmenter` (or set later
            with :meth:`set_augmenter`, before training starts).
    """

    name = "learned"

    def __init__(self, args, trainer, augmenter=None):
        super().__init__(args, trainer)
        self.standard = standard_augment(args, trainer.info["hflip"])
        self.learned_prob = float(getattr(args, "learned_prob", 0.5))
        self.augmenter = None
        if augmenter is not None:
            self.set_augmenter(augmenter, trainer.device)
        from ...data import make_batches

        self.val_batches = None if trainer.val_data is None else make_batches(
            trainer.val_data, args.eval_batch_size, trainer.device, train=False,
            rank=trainer.dist.rank, world=trainer.dist.world)
        self.counts = {"learned": 0, "images": 0}

    def set_augmenter(self, augmenter, device):
        self.augmenter = augmenter.to(device).eval()
        for p in self.augmenter.parameters():
            p.requires_grad_(False)

    def augment(self, x, y, trainer):
        if self.augmenter is None:
            raise RuntimeError("LearnedRetrain has no augmenter: pass one or call set_augmenter()")
        g = trainer.generator
        x = to_float(self.standard.crop_flip(x, g))
        pick = (torch.rand(x.shape[0], generator=g) < self.learned_prob).nonzero().squeeze(1).to(x.device)
        if pick.numel():
            with torch.no_grad(), trainer.autocast():
                learned = self.augmenter(x.index_select(0, pick), rng=g)
            x = x.index_copy(0, pick, learned.to(x.dtype))
        self.counts["learned"] += int(pick.numel())
        self.counts["images"] += int(x.shape[0])
        return TrainBatch(self.standard.cutout(x, g), y)

    def epoch_end(self, epoch, trainer):
        out = {"learned_fraction": self.counts["learned"] / max(self.counts["images"], 1)}
        self.counts = {"learned": 0, "images": 0}
        if self.val_batches is not None:
            out["val_loss"], out["val_acc"] = trainer.evaluate(self.val_batches)
        return out

    def state_dict(self):
        return {"counts": dict(self.counts)}

    def load_state_dict(self, state):
        self.counts = dict(state["counts"])


class InfluenceAugment(LearnedRetrain):
    """``--augment influence``: stages 1-4 in its pipeline, stage 5 in ``augment`` (module docstring)."""

    name = "influence"

    Options = InfluenceOptions

    def __init__(self, args, trainer):
        from .options import check_options
        from .stages import AUGMENTER_FILE

        check_options(args)
        super().__init__(args, trainer)
        path = os.path.join(trainer.output_dir, AUGMENTER_FILE)
        if os.path.isfile(path):  # stage 4's result
            from .augmenter import Augmenter

            self.set_augmenter(Augmenter.load(path, trainer.device), trainer.device)

    @classmethod
    def pipeline(cls, args, data=None):
        """Stages 1-4, then this method on the engine (stage 5)."""
        from .stages import influence_pipeline

        return influence_pipeline(args, data)
