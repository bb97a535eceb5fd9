"""``--augment tanda``: TANDA (Ratner et al. 2017) as a two-stage pipeline.

Stage 1 (:class:`~fastaug.train.tanda.generator_stage.GeneratorStage`, folder ``RUN/tanda_generator``):
train the transformation-sequence generator adversarially against a discriminator for
``--tanda-epochs`` passes over the training set.

Stage 2 (the engine, in ``RUN``): the classifier trains; in each batch a fraction p_e of the images
(chosen at random) gets a sequence drawn from the trained generator (TANDA's ``p_transform``: starts
at ``--tanda-p-init``, multiplied by ``--tanda-p-rate`` after every epoch, capped at
``--tanda-p-max``). The recipe is the project's: crop/flip, then the sequences, then Cutout.

Both stages run on the loop primitive, so a run killed in either continues with ``--resume``
bit-identically on CPU; ``summary.json``'s ``pretrain_seconds`` counts stage 1 once.
"""
import os

import torch

from ...augment.op_table import AUTOAUGMENT_BINS, NUM_OPS
from ...augment.policy_batch import ActionCounter
from ...models import MODELS
from ..engine import ClassifierStage, pipeline_inputs
from ..method import Method, TrainBatch, standard_pipeline
from ..pipeline import Pipeline
from .generator_stage import GENERATOR_FILE, STAGE_NAME, GeneratorStage, build_generator_net, real_logit
from .search import apply_sequences

__all__ = ["Tanda", "transform_fraction", "real_logit"]


def transform_fraction(epoch, init, rate, cap):
    """TANDA's p_transform at 0-based ``epoch``: min(cap, init * rate ** epoch)."""
    return min(cap, init * rate ** epoch)


def check_options(args):
    """Raise ValueError (one sentence) for the first TANDA option out of its range."""
    checks = [(args.tanda_epochs >= 0, "--tanda-epochs must be >= 0"),
              (args.tanda_batch_size >= 1, "--tanda-batch-size must be >= 1"),
              (args.tanda_seq_len >= 1, "--tanda-seq-len must be >= 1"),
              (args.tanda_samples >= 1, "--tanda-samples must be >= 1"),
              (args.tanda_gen_lr > 0 and args.tanda_disc_lr > 0, "--tanda-gen-lr/--tanda-disc-lr must be > 0"),
              (args.tanda_mse_term >= 0, "--tanda-mse-term must be >= 0"),
              (0 <= args.tanda_gamma <= 1, "--tanda-gamma must be in [0, 1]"),
              (0 <= args.tanda_p_init <= 1 and 0 <= args.tanda_p_max <= 1 and args.tanda_p_rate > 0,
               "--tanda-p-init/--tanda-p-max must be in [0, 1] and --tanda-p-rate > 0")]
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)


class Tanda(Method):
    """TANDA: a generator of op sequences trained against a discriminator, then used to augment."""

    name = "tanda"

    @classmethod
    def add_arguments(cls, parser):
        a = parser.add_argument
        a("--tanda-epochs", type=int, default=5, help="phase 1: passes over the training set (5)")
        a("--tanda-batch-size", type=int, default=32, help="phase 1: images per step (32, TANDA)")
        a("--tanda-seq-len", type=int, default=5, help="ops per generated sequence (5)")
        a("--tanda-samples", type=int, default=5, help="sequences per image in a generator step (5, TANDA)")
        a("--tanda-gen-lr", type=float, default=1e-3, help="generator SGD LR (1e-3, TANDA)")
        a("--tanda-disc-lr", type=float, default=1e-4, help="discriminator Adam LR (1e-4)")
        a("--tanda-mse-term", type=float, default=1e-4, help="weight of the inverse-distance term (1e-4, TANDA)")
        a("--tanda-distance", default="features", choices=("features", "pixels"),
          help="distance to the original: D's penultimate features (TANDA's mse_layer=1) or pixels")
        a("--tanda-gamma", type=float, default=0.5, help="discount of future rewards (0.5, TANDA)")
        a("--tanda-discriminator", default="allconv", choices=MODELS, help="discriminator network (allconv)")
        a("--tanda-p-init", type=float, default=0.1, help="phase 2: first epoch's transformed fraction (0.1)")
        a("--tanda-p-rate", type=float, default=1.05, help="phase 2: growth of the fraction per epoch (1.05)")
        a("--tanda-p-max", type=float, default=0.5, help="phase 2: cap of the fraction (0.5)")

    def __init__(self, args, trainer):
        super().__init__(args, trainer)
        check_options(args)
        self.num_bins, self.T = AUTOAUGMENT_BINS, int(args.tanda_seq_len)
        self.standard = standard_pipeline(args, trainer)
        self.fill = int(args.fill)
        self.generator_net = build_generator_net(args, trainer.device)
        path = os.path.join(trainer.output_dir, STAGE_NAME, GENERATOR_FILE)
        if os.path.isfile(path):  # stage 1's result (absent when the method is used on its own)
            self.generator_net.load_state_dict(torch.load(path, map_location=trainer.device, weights_only=True))
        self.actions = ActionCounter(NUM_OPS, self.num_bins)  # the epoch's generated ops/levels

    @classmethod
    def pipeline(cls, args, data=None):
        """[the generator stage, the classifier stage] in ``args.output_dir``."""
        check_options(args)
        args, data, device = pipeline_inputs(args, data)
        return Pipeline(args.output_dir, [GeneratorStage(args, data[0], device), ClassifierStage(args, data=data)])

    # ---- Method hooks ------------------------------------------------------------------------------
    def augment(self, x, y, trainer):
        """Crop/flip, then a generated sequence on a random p_e fraction of the batch, then Cutout."""
        p = transform_fraction(trainer.epoch, self.args.tanda_p_init, self.args.tanda_p_rate, self.args.tanda_p_max)
        return TrainBatch(self.standard.recipe(x, trainer.generator, lambda x, g: self._sequences(x, g, p)), y)

    def _sequences(self, x, g, p):
        N = x.shape[0]
        n = int(N * p)  # as TANDA: int(batch_size * p_transform) images of each batch
        if n == 0:
            return x
        idx = torch.randperm(N, generator=g)[:n].to(x.device)
        with torch.no_grad():
            s = self.generator_net.sample(n, g)
        x = x.clone()
        x[idx] = apply_sequences(x[idx], s.ops[:, 0], s.levels[:, 0], self.num_bins, g, self.fill)
        self.actions.add(s.ops, s.levels)
        return x

    def epoch_end(self, epoch, trainer):
        extra = {"transform_fraction": transform_fraction(epoch, self.args.tanda_p_init, self.args.tanda_p_rate,
                                                          self.args.tanda_p_max)}
        extra.update(self.actions.frequencies())
        self.actions.reset()
        return extra

    def state_dict(self):
        return self.actions.state_dict()  # {"op_counts", "level_counts"}

    def load_state_dict(self, state):
        self.actions.load_state_dict(state)
