"""Command-line options of ``--augment influence``, which stage each one affects, and the stage folders.

Defaults follow the seed's appendix B (Adam: G and D lr 1e-4, betas 0.5/0.9; E betas 0.9/0.99;
batch 128; tau of 128 dimensions; dropout 0.5 on tau) where it gives them, except stage 4's learning
rates (10x smaller than appendix B's, measured: see ``augment_stage``); the iteration counts are sized
for a CPU (the seed's are not given).
"""
import argparse

__all__ = ["STAGES", "STAGE_DIRS", "DEPENDS", "OPTION_STAGE", "add_arguments", "check_options", "stage_options",
           "critic_steps", "use_appearance", "order_seed"]

#: Stage number -> what it does.
STAGES = {1: "classifier", 2: "gan", 3: "influence", 4: "augmenter", 5: "retrain"}
#: Stage number -> its sub-folder of the run (stage 5 is the run folder itself).
STAGE_DIRS = {1: "stage1_classifier", 2: "stage2_gan", 3: "stage3_influence", 4: "stage4_augmenter"}

#: Stage -> the stages whose options decide its result (itself and what it is built on): G is pretrained
#: on F (1 -> 2), s_val is fitted on F (1 -> 3), E and G are trained on F, G and s_val (4), and the
#: retraining samples E and G (5).
DEPENDS = {1: (1,), 2: (1, 2), 3: (1, 3), 4: (1, 2, 3, 4), 5: (1, 2, 3, 4, 5)}

#: Option (argparse dest) -> the stage whose result it changes. Options not listed here
#: (``stages``, checkpoint and logging cadence) change no result.
OPTION_STAGE = {
    "gan": 2, "gan_iters": 2, "gan_batch_size": 2, "gan_critic_steps": 2, "gan_lr": 2, "gan_gp_weight": 2,
    "gan_feature_weight": 2, "identity_weight": 2, "identity_eps": 2, "tau_dim": 2, "tau_dropout": 2,
    "appearance": 2, "transform_smooth": 2, "transform_mode": 2,
    "influence_damping": 3,
    "aug_iters": 4, "aug_batch_size": 4, "aug_lr_e": 4, "aug_lr_g": 4, "aug_gan_weight": 4, "aug_anchor": 4,
    "aug_eval_every": 4,
    "learned_prob": 5,
}
#: Options of this method that change nothing computed.
NEUTRAL_OPTIONS = ("stages", "stage_checkpoint_every", "stage_log_every")


def add_arguments(parser):
    """Add the options to an argparse group of ``fastaug train``."""
    p = parser
    p.add_argument("--stages", type=int, nargs="+", default=[1, 2, 3, 4, 5], metavar="K",
                   help="stages to run (1 classifier, 2 GAN pretraining of G, 3 s_val, 4 E and G by influence, "
                        "5 retraining); finished stages are reused (default: 1 2 3 4 5)")
    p.add_argument("--gan", default="ragan", choices=("ragan", "wgan-gp"),
                   help="stage 2 GAN loss: relativistic average GAN (CVPR version, default) or WGAN-GP (ICLR)")
    p.add_argument("--gan-iters", type=int, default=300, help="stage 2: generator updates (300)")
    p.add_argument("--gan-batch-size", type=int, default=128, help="stage 2 batch size (128, appendix B)")
    p.add_argument("--gan-critic-steps", type=int, default=None,
                   help="discriminator updates per generator update (default: 1 for ragan, 5 for wgan-gp)")
    p.add_argument("--gan-lr", type=float, default=1e-4, help="Adam lr of G and D in stage 2 (1e-4, appendix B)")
    p.add_argument("--gan-gp-weight", type=float, default=10.0, help="WGAN-GP gradient-penalty weight (10)")
    p.add_argument("--gan-feature-weight", type=float, default=1.0,
                   help="weight of the feature-space discriminator (a linear layer over F's features) (1)")
    p.add_argument("--identity-weight", type=float, default=1e-3,
                   help="weight of the seed's term against the identity transformation: 1/(eps + MSE) in "
                        "image and flow space (1e-3; 0 disables it)")
    p.add_argument("--identity-eps", type=float, default=1e-2, help="eps of that term (bounds it by 2/eps)")
    p.add_argument("--tau-dim", type=int, default=128, help="dimension of tau (128)")
    p.add_argument("--tau-dropout", type=float, default=0.5, help="dropout probability on tau (0.5)")
    p.add_argument("--appearance", action=argparse.BooleanOptionalAction, default=None,
                   help="learn the appearance (colour) part too (default: on for RGB, off for grey images, as "
                        "the CVPR version)")
    p.add_argument("--transform-smooth", type=int, default=4, help="box smoothing of G's maps (4)")
    p.add_argument("--transform-mode", default="parallel", choices=("parallel", "serial"),
                   help="spatial + appearance composition (parallel, the seed's best)")
    p.add_argument("--influence-damping", type=float, default=0.01,
                   help="damping lambda of the last-layer Hessian H + lambda I (0.01)")
    p.add_argument("--aug-iters", type=int, default=100, help="stage 4: updates of E and G (100)")
    p.add_argument("--aug-batch-size", type=int, default=128, help="stage 4 batch size (128, appendix B)")
    p.add_argument("--aug-lr-e", type=float, default=1e-3,
                   help="Adam lr of E in stage 4 (1e-3; appendix B's 0.01 leaves the first-order regime in a few "
                        "steps, see docs/influence_loop.md)")
    p.add_argument("--aug-lr-g", type=float, default=1e-5,
                   help="Adam lr of G in stage 4 (1e-5; appendix B: 1e-4; 0 = G fixed after stage 2, the ICLR variant)")
    p.add_argument("--aug-anchor", type=float, default=100.0,
                   help="stage 4: weight of the proximal term mean |G(tau) - G_2(tau)|^2 that keeps G's maps near "
                        "the GAN-pretrained G_2's for the same codes: the trust region of the influence objective "
                        "(100; 0 = none)")
    p.add_argument("--aug-gan-weight", type=float, default=0.0,
                   help="stage 4: weight of the stage-2 discriminators' adversarial loss next to the influence "
                        "objective (the discriminators keep training) (0 = off)")
    p.add_argument("--aug-eval-every", type=int, default=10,
                   help="stage 4: measure the refit validation loss every N iterations and keep the E, G with "
                        "the lowest (10)")
    p.add_argument("--learned-prob", type=float, default=0.5,
                   help="stage 5: probability that a training image gets the learned augmentation (0.5)")
    p.add_argument("--stage-checkpoint-every", type=int, default=50,
                   help="stages 2 and 4: checkpoint every N iterations (50)")
    p.add_argument("--stage-log-every", type=int, default=10, help="stages 2 and 4: metrics every N iterations (10)")


def critic_steps(args):
    """Discriminator updates per generator update: ``--gan-critic-steps`` or 1 (RaGAN) / 5 (WGAN-GP)."""
    if args.gan_critic_steps is not None:
        return args.gan_critic_steps
    return 5 if args.gan == "wgan-gp" else 1


def use_appearance(args, channels):
    """Whether G's colour maps are used (``--appearance``; default: RGB yes, grey no)."""
    return channels == 3 if args.appearance is None else bool(args.appearance)


def check_options(args):
    """Raise ValueError naming the first bad option."""
    bad = sorted(set(args.stages) - set(STAGES))
    checks = [
        (not bad, f"--stages must be among {sorted(STAGES)}, got {args.stages}"),
        (args.val_size > 0, "--augment influence needs a held-out validation split for s_val: pass --val-size "
                            "(e.g. --val-size 100)"),
        (args.gan_iters >= 1, f"--gan-iters must be >= 1, got {args.gan_iters}"),
        (args.gan_batch_size >= 2, f"--gan-batch-size must be >= 2, got {args.gan_batch_size}"),
        (args.gan_critic_steps is None or args.gan_critic_steps >= 1,
         f"--gan-critic-steps must be >= 1, got {args.gan_critic_steps}"),
        (args.gan_lr > 0 and args.aug_lr_e > 0 and args.aug_lr_g >= 0, "--gan-lr and --aug-lr-e must be > 0, "
                                                                       "--aug-lr-g >= 0"),
        (args.gan_gp_weight >= 0 and args.gan_feature_weight >= 0, "--gan-gp-weight and --gan-feature-weight must "
                                                                   "be >= 0"),
        (args.identity_weight >= 0 and args.identity_eps > 0, "--identity-weight must be >= 0 and --identity-eps > 0"),
        (args.tau_dim >= 1, f"--tau-dim must be >= 1, got {args.tau_dim}"),
        (0 <= args.tau_dropout < 1, f"--tau-dropout must be in [0, 1), got {args.tau_dropout}"),
        (1 <= args.transform_smooth <= 64, f"--transform-smooth must be in [1, 64], got {args.transform_smooth}"),
        (args.influence_damping > 0, f"--influence-damping must be > 0, got {args.influence_damping}"),
        (args.aug_iters >= 1, f"--aug-iters must be >= 1, got {args.aug_iters}"),
        (args.aug_batch_size >= 1, f"--aug-batch-size must be >= 1, got {args.aug_batch_size}"),
        (args.aug_gan_weight >= 0, f"--aug-gan-weight must be >= 0, got {args.aug_gan_weight}"),
        (args.aug_anchor >= 0, f"--aug-anchor must be >= 0, got {args.aug_anchor}"),
        (args.aug_eval_every >= 1, f"--aug-eval-every must be >= 1, got {args.aug_eval_every}"),
        (0 <= args.learned_prob <= 1, f"--learned-prob must be in [0, 1], got {args.learned_prob}"),
        (args.stage_checkpoint_every >= 1, f"--stage-checkpoint-every must be >= 1, got {args.stage_checkpoint_every}"),
        (args.stage_log_every >= 1, f"--stage-log-every must be >= 1, got {args.stage_log_every}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)


def stage_options(args, stage):
    """What decides the result of ``stage``: every training argument that is not one of this method's
    options (data, model, optimisation, seed, ...), plus this method's options of the stages it depends
    on (:data:`DEPENDS`).
    Arguments that change nothing (``RESUMABLE_CHANGES``, ``--resume``, ``--augment``) are left out."""
    import json

    from ..checkpoint import RESUMABLE_CHANGES

    mine = set(OPTION_STAGE) | set(NEUTRAL_OPTIONS)
    out = {}
    for key, value in sorted(vars(args).items()):
        if key in RESUMABLE_CHANGES or key in ("augment", "resume") or key in NEUTRAL_OPTIONS:
            continue
        if key in mine and OPTION_STAGE[key] not in DEPENDS[stage]:
            continue
        out[key] = value
    return json.loads(json.dumps(out, default=str))


def order_seed(seed, *tags):
    """A data-order seed for :func:`fastaug.data.make_batches` from the run's seed and tags: 32 bits of
    :func:`~fastaug.train.rng.derive_seed` (the loaders multiply the seed by ~1e6, so it must stay small)."""
    from ..rng import derive_seed

    return derive_seed(seed, *tags) % 2 ** 32
