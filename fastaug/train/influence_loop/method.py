"""Stage 5 as a training method, and ``--augment influence`` (the whole loop) on top of it.

* :class:`LearnedRetrain`: retrain F from scratch on the engine with the standard augmentation plus
  samples of a trained augmenter: per batch, the standard crop/flip, then each image independently
  gets ``G(x, dropout(E(x)))`` with probability ``--learned-prob`` (dropout kept, a new mask per image:
  the diversity of CVPR Figure 3), then the standard Cutout -- the position of a policy in the
  standard augmentation, "in addition to the baseline" as the paper says. Every draw comes from the
  engine's generator, so ``--resume`` replays them. Each batch goes through
  :class:`~fastaug.augment.TransformAugment` (sample, then apply), the module the run leaves in
  ``augmentation.pt`` (:meth:`LearnedRetrain.learned_augmentation`): what a user loads applies what the
  run applied, by construction. Reports the validation split's loss/accuracy per
  epoch (``val_loss``, ``val_acc``) and the share of learned samples. Library use::

      Trainer(args, method=LearnedRetrain, inputs={"augmenter": "RUN/augmenter.pt"}).fit()

* :class:`InfluenceAugment` (``--augment influence``): its :meth:`~InfluenceAugment.pipeline` is the
  five stages (:func:`~fastaug.train.influence_loop.stages.influence_pipeline`): stages 1-4 in
  sub-folders of the run, then the engine's run in the run folder *is* stage 5 (this method, built
  with stage 4's ``augmenter`` artifact, ``RUN/augmenter.pt``, handed on by the pipeline), so
  ``summary.json`` / ``metrics.jsonl`` of the run folder are the final
  classifier's, directly comparable with any other ``--augment``. ``--stages`` without 5 stops after
  the requested stages. ``--resume`` continues whichever stage was interrupted (stages 1-4 always
  continue from their own checkpoints).
"""
import dataclasses

from ...augment.learned_transform import TransformAugment
from ..method import Method, TrainBatch, required, standard_augment, to_float
from ..options import Options, option, within
from .augmenter import Augmenter
from .options import InfluenceOptions

__all__ = ["LearnedRetrain", "LearnedRetrainOptions", "InfluenceAugment"]

#: What the retraining without stage 4's augmenter says (rather than train without learned samples).
NO_AUGMENTER = ("the influence loop's retraining (stage 5) samples from the augmenter (E, G) that its stage 4 trains, "
                "and none was given: run the whole method (fastaug train --augment influence), or pass "
                "inputs={'augmenter': <its augmenter.pt>}")


@dataclasses.dataclass
class LearnedRetrainOptions(Options):
    """The options of :class:`LearnedRetrain` used on its own (``--augment influence`` has them too)."""

    learned_prob: float = option(0.5, "probability that a training image gets the learned augmentation",
                                 check=within(0, 1))


class LearnedRetrain(Method):
    """Standard augmentation plus learned samples (see the module docstring).

    Args:
        options: :class:`LearnedRetrainOptions` (``learned_prob``); trainer: the engine.
        augmenter: a trained :class:`~fastaug.train.influence_loop.augmenter.Augmenter`, or the path of
            an ``influence-augmenter`` artifact (``augmenter.pt``); required: without it the method
            refuses in one sentence.
    """

    name = "learned"
    Options = LearnedRetrainOptions

    def __init__(self, options, trainer, augmenter=None):
        super().__init__(options, trainer)
        augmenter = required(augmenter, NO_AUGMENTER)
        if not isinstance(augmenter, Augmenter):  # the path of an influence-augmenter artifact
            augmenter = Augmenter.load(augmenter, trainer.device)
        self.augmenter = augmenter.to(trainer.device).eval().requires_grad_(False)
        self.standard = standard_augment(trainer.args, trainer.info["hflip"])
        self.learned_prob = float(options.learned_prob)
        # crop/flip -> each image with probability p: clamp(transform(x, G(E(x) * mask))) -> Cutout
        self.transform = TransformAugment(self.augmenter, self.standard, p=self.learned_prob)
        from ...data import make_batches

        self.val_batches = None if trainer.val_data is None else make_batches(
            trainer.val_data, trainer.args.eval_batch_size, trainer.device, train=False,
            rank=trainer.dist.rank, world=trainer.dist.world, workers=trainer.args.workers)
        self.counts = {"learned": 0, "images": 0}

    def augment(self, x, y, trainer):
        """One :class:`~fastaug.augment.TransformAugment` call on the float batch, its draws (crop offsets,
        flip coins, pick coins, dropout masks, Cutout centres) from ``trainer.rng``; E and G under the
        run's autocast."""
        m, x = self.transform, to_float(x)  # crop and flip copy pixels: the same before or after the float
        with trainer.autocast():
            x, params = m.apply(x, m.sample(x, trainer.rng))
        self.counts["learned"] += int(params.learned.index.numel())
        self.counts["images"] += int(x.shape[0])
        return TrainBatch(x, y)

    def learned_augmentation(self, trainer):
        """The module every batch went through: the trained augmenter on each image with probability
        ``--learned-prob``, between the run's crop/flip and Cutout."""
        return self.transform

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
    """``--augment influence``: stages 1-4 in its pipeline, stage 5 in ``augment`` (module docstring),
    built with stage 4's ``augmenter`` by the pipeline."""

    name = "influence"

    Options = InfluenceOptions

    @classmethod
    def check_args(cls, args):
        """Its options, and a validation split (``--val-size``) for s_val."""
        from .options import check_options

        check_options(args)

    @classmethod
    def pipeline(cls, args, data=None, resume=None):
        """Stages 1-4, then this method on the engine (stage 5)."""
        from .stages import influence_pipeline

        return influence_pipeline(cls, args, data, resume=resume)
