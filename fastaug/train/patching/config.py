"""``fastaug patch``'s options as typed objects, validated in one place with one-sentence errors.

* :class:`TranslationConfig`: stage 1 (the data and the CycleGANs). A finished stage 1 is reused by
  every method and seed; resuming with different stage-1 options is refused.
* :class:`PatchConfig`: the whole comparison (stage 1's options, then stage 2's: methods, seeds, the
  classifier's training and the robust objective).

Defaults follow the paper and the authors' MNIST settings where they say (docs/model_patching.md
lists each, and the choices made where they are silent), scaled so that the default ``fastaug patch``
finishes in minutes on two CPU cores.
"""
import dataclasses
import math

from ...data.subgroups import PATCHING_DATASETS
from ...models.cyclegan import GENERATORS
from .methods import PATCH_METHODS
from .translation import GAN_AUGMENTATIONS, GAN_BALANCES

__all__ = ["TranslationConfig", "PatchConfig", "TRANSLATIONS"]

TRANSLATIONS = ("auto", "per-class", "shared")


@dataclasses.dataclass
class TranslationConfig:
    """Stage 1: the data and the subgroup translation models."""

    dataset: str = "mnist-correlation"
    data_dir: str = None
    correlation: float = 0.99
    image_size: int = 32  # folder datasets only (MNIST stays 28 px)
    grey: bool = False
    data_seed: int = 0
    # held out of the training images (mnist-correlation: each digit clean and zigzagged; folder: stratified by
    # group): grades stage 1 and selects stage 2's epoch
    val_fraction: float = 0.1
    translation: str = "auto"  # auto: shared on mnist-correlation (the paper's MNIST), per class otherwise
    generator: str = "unet"
    gan_width: int = 16
    gan_loss: str = "bce"
    gan_steps: int = 1200
    gan_batch_size: int = 25
    gan_augment: str = "none"  # the authors' CycleGAN trains on rotated, padded-and-cropped digits
    gan_balance: str = "class"  # each domain's batch holds every class equally (the authors' MNIST domains)
    # Adam 2e-4 for both (CycleGAN's and the paper's appendix): the authors' MNIST code's 1e-3 / 5e-5 left
    # the translations near-identity in 400 steps here (docs/model_patching.md)
    gan_lr: float = 2e-4
    disc_lr: float = 2e-4
    cycle_weight: float = 10.0
    identity_weight: float = 0.5
    pool_size: int = 50
    gan_seed: int = 0
    grade_steps: int = 400  # steps of each grader (subgroup judge, class model); 0: no grading

    def resolved(self):
        """A copy with ``auto``/``None`` defaults filled in for the dataset."""
        c = dataclasses.replace(self)
        mnist = c.dataset == "mnist-correlation"
        if c.translation == "auto":
            c.translation = "shared" if mnist else "per-class"
        return c

    def validate(self):
        if self.dataset not in PATCHING_DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; model patching works on "
                             f"{', '.join(PATCHING_DATASETS)}")
        if not 0.5 < self.correlation <= 1.0:
            raise ValueError(f"--correlation must be in (0.5, 1] (the share of each class in its majority subgroup), "
                             f"got {self.correlation}")
        if self.translation not in TRANSLATIONS:
            raise ValueError(f"unknown --translation {self.translation!r}; choose from {', '.join(TRANSLATIONS)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be in [0, 1) (the share of each group held out for grading and "
                             f"model selection), got {self.val_fraction}")
        if self.gan_augment not in GAN_AUGMENTATIONS:
            raise ValueError(f"unknown --gan-augment {self.gan_augment!r}; choose from {', '.join(GAN_AUGMENTATIONS)}")
        if self.gan_balance not in GAN_BALANCES:
            raise ValueError(f"unknown --gan-balance {self.gan_balance!r}; choose from {', '.join(GAN_BALANCES)}")
        if self.grade_steps < 0:
            raise ValueError(f"--grade-steps must be >= 0, got {self.grade_steps}")
        if self.generator not in GENERATORS:
            raise ValueError(f"unknown --generator {self.generator!r}; choose from {', '.join(GENERATORS)}")
        if self.gan_loss not in ("bce", "lsgan"):
            raise ValueError(f"unknown --gan-loss {self.gan_loss!r}; choose 'bce' or 'lsgan'")
        for name in ("gan_steps", "gan_batch_size", "gan_width", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("gan_lr", "disc_lr"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v}")
        if self.pool_size < 0:
            raise ValueError(f"--pool-size must be >= 0, got {self.pool_size}")
        for name in ("cycle_weight", "identity_weight"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")


@dataclasses.dataclass
class PatchConfig:
    """The whole ``fastaug patch`` comparison."""

    translation: TranslationConfig = dataclasses.field(default_factory=TranslationConfig)
    methods: tuple = PATCH_METHODS
    seeds: tuple = (0,)
    model: str = "lenet"  # ours: the cheapest MNIST CNN of the package, so the default run takes CPU minutes
    epochs: int = 15  # ours (the paper: 200 on 20x the data)
    batch_size: int = 100  # 25 per group on four groups, as the paper
    lr: float = 0.01  # SGD momentum 0.9; the authors' 1e-3 learns little in 15 epochs of MNIST-5k
    sched: str = "const"  # the authors' constant rate, or "cosine"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    consistency_weight: float = 5.0  # lambda (the paper's MNIST)
    dro_step: float = 0.01  # eta
    dro_adjustment: float = 1.0  # C of C / sqrt(n_g) (the authors' MNIST)
    eval_batch_size: int = 500
    saliency_images: int = 6

    def validate(self):
        self.translation.validate()
        if not self.methods:
            raise ValueError(f"give at least one method: {', '.join(PATCH_METHODS)}")
        for m in self.methods:
            if m not in PATCH_METHODS:
                raise ValueError(f"unknown method {m!r}; choose from {', '.join(PATCH_METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"--methods lists a method twice: {','.join(self.methods)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds must list distinct seeds, got {list(self.seeds)}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.sched not in ("const", "cosine"):
            raise ValueError(f"unknown --sched {self.sched!r}; choose 'const' or 'cosine'")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"--lr must be a finite number > 0, got {self.lr}")
        for name in ("momentum", "weight_decay", "consistency_weight", "dro_step", "dro_adjustment"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):  # inf trained stage 1 for minutes, then stage 2 on NaN losses
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")

    def stage2_options(self):
        """The options a stage-2 run depends on (checked on resume), without methods and seeds."""
        d = dataclasses.asdict(self)
        for k in ("translation", "methods", "seeds", "eval_batch_size", "saliency_images"):
            d.pop(k)
        return d
