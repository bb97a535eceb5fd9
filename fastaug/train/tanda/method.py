"""``--augment tanda``: TANDA (Ratner et al. 2017) as a two-stage pipeline.

Stage 1 (:class:`~fastaug.train.tanda.generator_stage.GeneratorStage`, folder ``RUN/tanda_generator``):
train the transformation-sequence generator adversarially against a discriminator for
``--tanda-epochs`` passes over the training set; its result is the ``generator`` artifact.

Stage 2 (the engine, in ``RUN``): the classifier trains with :class:`Tanda`, built with that
generator (``Tanda(options, trainer, generator=path)``, handed on by the pipeline; without one it
refuses in one sentence rather than sample from an untrained generator); in each batch a fraction p_e of the images
(chosen at random) gets a sequence drawn from the trained generator (TANDA's ``p_transform``: starts
at ``--tanda-p-init``, multiplied by ``--tanda-p-rate`` after every epoch, capped at
``--tanda-p-max``). The recipe is the project's: crop/flip, then the sequences, then Cutout. Each batch
goes through :class:`~fastaug.augment.SequenceAugment` (sample, then apply), the module that the run
leaves in ``augmentation.pt`` with the generator and the last epoch's p_e
(:meth:`Tanda.learned_augmentation`): what a user loads applies what the run applied, by construction.

Both stages run on the loop primitive, so a run killed in either continues with ``--resume``
bit-identically on CPU; ``summary.json``'s ``pretrain_seconds`` counts stage 1 once.
"""
import dataclasses

from ...augment.learned_sequences import SequenceAugment
from ...augment.op_table import AUTOAUGMENT_BINS, NUM_OPS
from ...augment.policy_batch import ActionCounter
from ...models import MODELS
from ..engine import ClassifierStage, pipeline_inputs
from ..method import Method, TrainBatch, required, standard_augment, to_float
from ..options import Options, above, at_least, option, within
from ..pipeline import Pipeline
from .generator_stage import STAGE_NAME, GeneratorStage, load_generator, real_logit

__all__ = ["Tanda", "TandaOptions", "transform_fraction", "real_logit"]

#: What ``Tanda`` without stage 1's generator says (rather than sample from an untrained generator).
NO_GENERATOR = ("--augment tanda samples from the generator its stage 1 trains, and none was given: run the whole "
                "method (fastaug train --augment tanda), or pass inputs={'generator': <its tanda_generator/generator.pt>}")


def transform_fraction(epoch, init, rate, cap):
    """TANDA's p_transform at 0-based ``epoch``: min(cap, init * rate ** epoch)."""
    return min(cap, init * rate ** epoch)


@dataclasses.dataclass
class TandaOptions(Options):
    """TANDA's options: stage 1 (the generator against a discriminator), then stage 2's schedule; each
    field says which stage's result it decides (``stage=``)."""

    tanda_epochs: int = option(5, "stage 1: passes over the training set", check=at_least(0), stage=1)
    tanda_batch_size: int = option(32, "stage 1: images per step (TANDA's)", check=at_least(1), stage=1)
    tanda_seq_len: int = option(5, "ops per generated sequence", check=at_least(1), stage=1)
    tanda_samples: int = option(5, "sequences per image in a generator step (TANDA's)", check=at_least(1), stage=1)
    tanda_gen_lr: float = option(1e-3, "generator SGD LR (TANDA's)", check=above(0), stage=1)
    tanda_disc_lr: float = option(1e-4, "discriminator Adam LR", check=above(0), stage=1)
    tanda_mse_term: float = option(1e-4, "weight of the inverse-distance term (TANDA's)", check=at_least(0),
                                   stage=1)
    tanda_distance: str = option("features", "distance to the original: D's penultimate features (TANDA's "
                                 "mse_layer=1) or pixels", choices=("features", "pixels"), stage=1)
    tanda_gamma: float = option(0.5, "discount of future rewards (TANDA's)", check=within(0, 1), stage=1)
    tanda_discriminator: str = option("allconv", "discriminator network", choices=MODELS, stage=1)
    tanda_p_init: float = option(0.1, "stage 2: first epoch's transformed fraction", check=within(0, 1), stage=2)
    tanda_p_rate: float = option(1.05, "stage 2: growth of the fraction per epoch", check=above(0), stage=2)
    tanda_p_max: float = option(0.5, "stage 2: cap of the fraction", check=within(0, 1), stage=2)


class Tanda(Method):
    """TANDA: a generator of op sequences trained against a discriminator, then used to augment.

    Args:
        options: :class:`TandaOptions`; trainer: the engine.
        generator: the path of the ``tanda-generator`` artifact stage 1 wrote (the pipeline hands it
            on); required: without it the method refuses in one sentence.
    """

    name = "tanda"

    Options = TandaOptions

    def __init__(self, options, trainer, generator=None):
        super().__init__(options, trainer)
        self.num_bins, self.T = AUTOAUGMENT_BINS, int(options.tanda_seq_len)
        self.generator_net = load_generator(required(generator, NO_GENERATOR), self.T, trainer.args.seed,
                                            trainer.device)
        self.standard = standard_augment(trainer.args, trainer.info["hflip"])
        self.fill = int(trainer.args.fill)
        self.actions = ActionCounter(NUM_OPS, self.num_bins)  # the epoch's generated ops/levels
        # crop/flip -> sequences on a share p of each batch -> Cutout; p is set per epoch (augment)
        self.sequences = SequenceAugment(self.generator_net, trainer.info["channels"], trainer.info["image_size"],
                                         self.standard, self.fill)

    @classmethod
    def pipeline(cls, args, data=None, resume=None):
        """[the generator stage, the classifier stage] in ``args.output_dir``; the generator stage's
        ``generator`` artifact is handed to the classifier stage's method."""
        options = cls.Options.from_args(args)  # refuse bad options before any stage runs
        args, data, device = pipeline_inputs(args, data)
        return Pipeline(args.output_dir, [
            GeneratorStage(options, args, data[0], device),
            ClassifierStage(args, method=cls, data=data, inputs={"generator": (STAGE_NAME, "generator")},
                            resume=resume)])

    # ---- Method hooks ------------------------------------------------------------------------------
    def _p(self, epoch):
        o = self.options
        return transform_fraction(epoch, o.tanda_p_init, o.tanda_p_rate, o.tanda_p_max)

    def augment(self, x, y, trainer):
        """Crop/flip, then a generated sequence on a random p_e fraction of the batch, then Cutout: one
        :class:`~fastaug.augment.SequenceAugment` call (its draws, in the recipe's order, from ``trainer.rng``)."""
        m = self.sequences
        m.p = self._p(trainer.epoch)
        out, params = m.apply(x, m.sample(x, trainer.rng))
        seq = params.learned.ops  # (n, T): the generated ops and their magnitudes level / (bins - 1)
        self.actions.add(seq.op, (seq.magnitude * (self.num_bins - 1)).round().long())
        return TrainBatch(to_float(out), y)

    def learned_augmentation(self, trainer):
        """The module every batch went through, with the last epoch's p_e: the trained generator's sequences
        on that share of each batch, between the run's crop/flip and Cutout."""
        self.sequences.p = self._p(max(int(trainer.args.epochs) - 1, 0))
        return self.sequences

    def epoch_end(self, epoch, trainer):
        extra = {"transform_fraction": self._p(epoch)}
        extra.update(self.actions.frequencies())
        self.actions.reset()
        return extra

    def state_dict(self):
        return self.actions.state_dict()  # {"op_counts", "level_counts"}

    def load_state_dict(self, state):
        self.actions.load_state_dict(state)
