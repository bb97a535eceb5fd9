"""Model patching (CAMEL / CLAMP): learned subgroup translations, then patched training of each method
side by side, and the paper's Table 1 (docs/model_patching.md).

Examples:
  python -m fastaug patch                                            # MNIST-Correlation, every method, seed 0
  python -m fastaug patch --methods erm,gdro,camel --seeds 0,1,2 --output-dir runs/patch3
  python -m fastaug patch --output-dir runs/patch --resume           # continue after a kill; reuses stage 1
  python -m fastaug patch --dataset folder --data-dir ~/lesions --image-size 64 --translation per-class

Outputs in --output-dir: augmentation.pt (when a method uses stage 1: augment, gdro-augment, camel; stage 1's
translations for new images of the classes:
``fastaug.augment.load(output_dir)``, ``fastaug show output_dir``), translation/ (stage 1: checkpoint.pt,
translations.pt, translations.png, augmentation.pt),
<method>/seed<k>/ (each run: args.json, metrics.jsonl with per-subgroup test accuracy, checkpoint.pt,
summary.json, curves.png, classifier.pt), patching.md (Table 1 at the epoch selected on the validation
split and at the last epoch, every seed, stage 1's graded translations), patching.csv (last epoch),
patching_selected.csv, patching.png, saliency.png, stages.json, args.json (``--config args.json`` reruns
the comparison). A stage 1 whose translations are near-copies or change the class prints one warning line.
"""
import argparse
import dataclasses
import os
import sys

__all__ = ["HELP", "add_arguments", "run", "config_from_args"]

HELP = "model patching: subgroup translations + robust consistency training (CAMEL / CLAMP)"
#: ``--output-dir D --resume`` without ``--config`` continues with D/args.json's arguments (written at the start)
RESUME_FROM_ARGS_JSON = True


def _csv(kind):
    def parse(text):
        items = [t.strip() for t in str(text).split(",") if t.strip()]
        try:
            return tuple(kind(t) for t in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse


def add_arguments(p):
    from ..data.subgroups import PATCHING_DATASETS
    from ..models import MODELS
    from ..models.cyclegan import GENERATORS
    from ..train.patching import PATCH_METHODS, PatchConfig, TranslationConfig
    from ..train.patching.translation import GAN_AUGMENTATIONS, GAN_BALANCES

    t, c = TranslationConfig(), PatchConfig()
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=t.dataset, choices=PATCHING_DATASETS,
                   help="mnist-correlation (embedded MNIST-5k: parity x zigzag) or folder (train/<class>/<subgroup>/)")
    g.add_argument("--data-dir", default=None, help="the folder dataset's root (train/ and optionally val/)")
    g.add_argument("--correlation", type=float, default=t.correlation,
                   help="mnist-correlation: share of each class in its majority subgroup, in (0.5, 1] (0.99)")
    g.add_argument("--image-size", type=int, default=t.image_size, help="folder: side images are resized to (32)")
    g.add_argument("--grey", action="store_true", help="folder: load images as 1-channel")
    g.add_argument("--data-seed", type=int, default=t.data_seed, help="seed of the data's subgroups/zigzags (0)")
    g.add_argument("--val-fraction", type=float, default=t.val_fraction,
                   help=f"share of the training images held out to grade stage 1 and select stage 2's epoch "
                        f"(mnist-correlation: of the digits, each then clean and zigzagged; folder: of every "
                        f"group; {t.val_fraction}; 0: none, the last epoch, grading on the test split)")
    g = p.add_argument_group("stage 1: subgroup translation (CycleGAN)")
    g.add_argument("--translation", default=t.translation, choices=("auto", "per-class", "shared"),
                   help="one CycleGAN per class, or one shared by all classes (auto: shared on mnist-correlation, "
                        "as the paper; per-class otherwise)")
    g.add_argument("--generator", default=t.generator, choices=GENERATORS, help="generator (unet)")
    g.add_argument("--gan-width", type=int, default=t.gan_width, help="first-level channels of G and D (16)")
    g.add_argument("--gan-loss", default=t.gan_loss, choices=("bce", "lsgan"), help="GAN loss (bce, the authors')")
    g.add_argument("--gan-steps", type=int, default=t.gan_steps, help=f"CycleGAN steps ({t.gan_steps})")
    g.add_argument("--gan-batch-size", type=int, default=t.gan_batch_size, help="images per domain per step (25)")
    g.add_argument("--gan-augment", default=t.gan_augment, choices=GAN_AUGMENTATIONS,
                   help=f"augmentation of the CycleGAN's training images ({t.gan_augment})")
    g.add_argument("--gan-balance", default=t.gan_balance, choices=GAN_BALANCES,
                   help=f"class: every class equally in each domain's batch ({t.gan_balance})")
    g.add_argument("--gan-lr", type=float, default=t.gan_lr, help="generators' Adam LR (2e-4)")
    g.add_argument("--disc-lr", type=float, default=t.disc_lr, help="discriminators' Adam LR (2e-4)")
    g.add_argument("--cycle-weight", type=float, default=t.cycle_weight, help="cycle loss weight (10)")
    g.add_argument("--identity-weight", type=float, default=t.identity_weight, help="identity loss weight (0.5)")
    g.add_argument("--pool-size", type=int, default=t.pool_size, help="replay pool of fakes (50)")
    g.add_argument("--gan-seed", type=int, default=t.gan_seed, help="seed of stage 1 (0)")
    g.add_argument("--grade-steps", type=int, default=t.grade_steps,
                   help=f"training steps of each grader of the translations (subgroup judge, class model; "
                        f"{t.grade_steps}; 0: no grading)")
    g = p.add_argument_group("stage 2: patched training")
    g.add_argument("--methods", type=_csv(str), default=PATCH_METHODS,
                   help=f"comma-separated, of {','.join(PATCH_METHODS)} (default all)")
    g.add_argument("--seeds", type=_csv(int), default=c.seeds, help="comma-separated classifier seeds (0)")
    g.add_argument("--model", default=c.model, choices=MODELS, help=f"classifier ({c.model})")
    g.add_argument("--epochs", type=int, default=c.epochs, help=f"epochs per method and seed ({c.epochs})")
    g.add_argument("-b", "--batch-size", type=int, default=c.batch_size, help="images per step (100 = 25 per group)")
    g.add_argument("--lr", type=float, default=c.lr, help=f"SGD learning rate ({c.lr})")
    g.add_argument("--sched", default=c.sched, choices=("const", "cosine"), help=f"LR schedule ({c.sched})")
    g.add_argument("--momentum", type=float, default=c.momentum, help="SGD momentum (0.9)")
    g.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float, default=c.weight_decay,
                   help="weight decay (5e-4)")
    g.add_argument("--consistency-weight", type=float, default=c.consistency_weight,
                   help="lambda of the subgroup consistency loss (5, the paper's MNIST)")
    g.add_argument("--dro-step", type=float, default=c.dro_step, help="group DRO step eta (0.01)")
    g.add_argument("--dro-adjustment", type=float, default=c.dro_adjustment,
                   help="group adjustment C of C/sqrt(n_g) (1, the authors' MNIST)")
    g = p.add_argument_group("run")
    g.add_argument("--device", default="auto", help="cpu, cuda or auto")
    g.add_argument("--output-dir", default="runs/patch", help="the comparison's folder (runs/patch)")
    g.add_argument("--resume", action="store_true", help="continue the runs in --output-dir (reuses finished stages)")
    g.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints in every stage (50)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm bars")


def config_from_args(args):
    """The validated PatchConfig of parsed ``fastaug patch`` arguments."""
    from ..train.patching import PatchConfig, TranslationConfig

    t = TranslationConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TranslationConfig)})
    kw = {f.name: getattr(args, f.name) for f in dataclasses.fields(PatchConfig)
          if f.name not in ("translation", "eval_batch_size", "saliency_images")}
    cfg = PatchConfig(translation=t, **kw)
    cfg.validate()
    cfg.translation = t.resolved()
    return cfg


def run(args):
    from ..train.patching import run_patching

    from . import write_args

    cfg = config_from_args(args)  # a bad option is a ValueError: cli.main prints its one sentence
    if args.checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")

    # A new comparison writes args.json at once, so that --resume after a kill reads it; a resumed one keeps its
    # own until it ends (a resume refused for other options leaves it as it was).
    fresh = not os.path.exists(os.path.join(args.output_dir, "patch.json"))

    def on_start():
        if fresh:
            write_args(args, args.output_dir)

    out = run_patching(cfg, args.output_dir, resume=args.resume, device=args.device,
                       checkpoint_every=args.checkpoint_every, progress=args.progress,
                       warn=lambda msg: print(f"fastaug patch: warning: {msg}", file=sys.stderr, flush=True),
                       on_start=on_start)
    write_args(args, args.output_dir)
    epoch = "selected epoch" if cfg.translation.val_fraction > 0 else "last epoch"
    print(f"robust accuracy ({epoch}): " + ", ".join(f"{m} {100 * v:.2f}" for m, v in out["robust"].items())
          + f"; table in {os.path.join(args.output_dir, 'patching.md')}")
    if os.path.exists(os.path.join(args.output_dir, "augmentation.pt")):
        print(f"subgroup translations for new images: fastaug.augment.load({args.output_dir!r})")
    return 0
