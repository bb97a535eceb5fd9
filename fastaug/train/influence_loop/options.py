"""Typed options of ``--augment influence``, which stage each one affects, and the stage folders.

Defaults follow the paper's appendix B (Adam: G and D lr 1e-4, betas 0.5/0.9; E betas 0.9/0.99;
batch 128; tau of 128 dimensions; dropout 0.5 on tau) where it gives them, except stage 4's learning
rates (10x smaller than appendix B's, measured: see ``augment_stage``); the iteration counts are sized
for a CPU (the paper's are not given).
"""
import dataclasses
from typing import Optional, Tuple

from ..options import Options, above, at_least, option, require, within

__all__ = ["STAGES", "STAGE_DIRS", "DEPENDS", "OPTION_STAGE", "NEUTRAL_OPTIONS", "InfluenceOptions", "check_options",
           "stage_options", "critic_steps", "use_appearance", "order_seed"]

#: Stage number -> what it does.
STAGES = {1: "classifier", 2: "gan", 3: "influence", 4: "augmenter", 5: "retrain"}
#: Stage number -> its sub-folder of the run (stage 5 is the run folder itself).
STAGE_DIRS = {1: "stage1_classifier", 2: "stage2_gan", 3: "stage3_influence", 4: "stage4_augmenter"}

#: Stage -> the stages whose options decide its result (itself and what it is built on): G is pretrained
#: on F (1 -> 2), s_val is fitted on F (1 -> 3), E and G are trained on F, G and s_val (4), and the
#: retraining samples E and G (5).
DEPENDS = {1: (1,), 2: (1, 2), 3: (1, 3), 4: (1, 2, 3, 4), 5: (1, 2, 3, 4, 5)}


@dataclasses.dataclass
class InfluenceOptions(Options):
    """The options of ``--augment influence``; each field says which stage's result it decides (``stage=``;
    0: none, e.g. the checkpoint and logging cadence)."""

    stages: Tuple[int, ...] = option((1, 2, 3, 4, 5), "stages to run (1 classifier, 2 GAN pretraining of G, "
                                     "3 s_val, 4 E and G by influence, 5 retraining); finished stages are reused",
                                     nargs="+", metavar="K", stage=0)
    gan: str = option("ragan", "stage 2 GAN loss: relativistic average GAN (the CVPR version) or WGAN-GP (ICLR)",
                      choices=("ragan", "wgan-gp"), stage=2)
    gan_iters: int = option(300, "stage 2: generator updates", check=at_least(1), stage=2)
    gan_batch_size: int = option(128, "stage 2 batch size (appendix B)", check=at_least(2), stage=2)
    gan_critic_steps: Optional[int] = option(None, "discriminator updates per generator update (None: 1 for ragan, "
                                             "5 for wgan-gp)", check=at_least(1), stage=2)
    gan_lr: float = option(1e-4, "Adam lr of G and D in stage 2 (appendix B)", check=above(0), stage=2)
    gan_gp_weight: float = option(10.0, "WGAN-GP gradient-penalty weight", check=at_least(0), stage=2)
    gan_feature_weight: float = option(1.0, "weight of the feature-space discriminator (a linear layer over F's "
                                       "features)", check=at_least(0), stage=2)
    identity_weight: float = option(1e-3, "weight of the paper's term against the identity transformation: "
                                    "1/(eps + MSE) in image and flow space (0 disables it)", check=at_least(0), stage=2)
    identity_eps: float = option(1e-2, "eps of that term (bounds it by 2/eps)", check=above(0), stage=2)
    tau_dim: int = option(128, "dimension of tau", check=at_least(1), stage=2)
    tau_dropout: float = option(0.5, "dropout probability on tau", check=within(0, 1, open_hi=True), stage=2)
    appearance: Optional[bool] = option(None, "learn the appearance (colour) part too (None: on for RGB, off for "
                                        "grey images, as the CVPR version)", stage=2)
    transform_smooth: int = option(4, "box smoothing of G's maps", check=within(1, 64), stage=2)
    transform_mode: str = option("parallel", "spatial + appearance composition (parallel: the paper's best)",
                                 choices=("parallel", "serial"), stage=2)
    influence_damping: float = option(0.01, "damping lambda of the last-layer Hessian H + lambda I", check=above(0),
                                      stage=3)
    aug_iters: int = option(100, "stage 4: updates of E and G", check=at_least(1), stage=4)
    aug_batch_size: int = option(128, "stage 4 batch size (appendix B)", check=at_least(1), stage=4)
    aug_lr_e: float = option(1e-3, "Adam lr of E in stage 4 (appendix B's 0.01 leaves the first-order regime in "
                             "a few steps, see docs/influence_loop.md)", check=above(0), stage=4)
    aug_lr_g: float = option(1e-5, "Adam lr of G in stage 4 (appendix B: 1e-4; 0 = G fixed after stage 2, the "
                             "ICLR variant)", check=at_least(0), stage=4)
    aug_anchor: float = option(100.0, "stage 4: weight of the proximal term mean |G(tau) - G_2(tau)|^2 that keeps "
                               "G's maps near the GAN-pretrained G_2's for the same codes: the trust region of the "
                               "influence objective (0 = none)", check=at_least(0), stage=4)
    aug_gan_weight: float = option(0.0, "stage 4: weight of the stage-2 discriminators' adversarial loss next to "
                                   "the influence objective (the discriminators keep training) (0 = off)",
                                   check=at_least(0), stage=4)
    aug_eval_every: int = option(10, "stage 4: measure the refit validation loss every N iterations and keep the "
                                 "E, G with the lowest", check=at_least(1), stage=4)
    learned_prob: float = option(0.5, "stage 5: probability that a training image gets the learned augmentation",
                                 check=within(0, 1), stage=5)
    stage_checkpoint_every: int = option(50, "stages 2 and 4: checkpoint every N iterations", check=at_least(1),
                                         stage=0)
    stage_log_every: int = option(10, "stages 2 and 4: metrics every N iterations", check=at_least(1), stage=0)

    def extra_checks(self):
        bad = sorted(set(self.stages) - set(STAGES))
        return [(not bad, f"--stages must be among {sorted(STAGES)}, got {list(self.stages)}")]


#: Option (argparse dest) -> the stage whose result it changes (from the fields' ``stage=`` tags).
OPTION_STAGE = {k: v for k, v in InfluenceOptions.stage_of().items() if v}
#: Options of this method that change nothing computed.
NEUTRAL_OPTIONS = tuple(k for k, v in InfluenceOptions.stage_of().items() if not v)


def critic_steps(options):
    """Discriminator updates per generator update: ``--gan-critic-steps`` or 1 (RaGAN) / 5 (WGAN-GP)."""
    if options.gan_critic_steps is not None:
        return options.gan_critic_steps
    return 5 if options.gan == "wgan-gp" else 1


def use_appearance(options, channels):
    """Whether G's colour maps are used (``--appearance``; default: RGB yes, grey no)."""
    return channels == 3 if options.appearance is None else bool(options.appearance)


def check_options(args):
    """The run's validated :class:`InfluenceOptions` (ValueError, one sentence, naming the first bad
    option); the loop also needs a validation split, a common option."""
    options = InfluenceOptions.from_args(args)
    require([(args.val_size > 0, "--augment influence needs a held-out validation split for s_val: pass "
                                 "--val-size (e.g. --val-size 100)")])
    return options


def stage_options(options, args, stage):
    """What decides the result of ``stage``: every common training argument (data, model, optimisation,
    seed, ...: no method's own option), plus this method's options of the stages it depends on
    (:data:`DEPENDS`). Arguments that change nothing (``RESUMABLE_CHANGES``, ``--resume``,
    ``--augment``) are left out."""
    import json

    from ..args import common_options
    from ..checkpoint import RESUMABLE_CHANGES

    out = {k: v for k, v in sorted(common_options(args).items())
           if k not in RESUMABLE_CHANGES and k not in ("augment", "resume")}
    out.update(options.of_stage(*DEPENDS[stage]))
    return json.loads(json.dumps(dict(sorted(out.items())), default=str))


def order_seed(seed, *tags):
    """A data-order seed for :func:`fastaug.data.make_batches` from the run's seed and tags: 32 bits of
    :func:`~fastaug.train.rng.derive_seed` (the loaders multiply the seed by ~1e6, so it must stay small)."""
    from ..rng import derive_seed

    return derive_seed(seed, *tags) % 2 ** 32
