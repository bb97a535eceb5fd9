"""The whole experiment of the data-subsampling paper (section 5, appendix B) for one augmentation.

1. Data: the training images of ``classes`` (relabelled 0..K-1), optionally a class-balanced subset
   of ``train_size``; the test images of the same classes. The paper samples 1,000 MNIST 3/8 training
   images; ``mnist5k`` (fastaug's embedded MNIST) has 800 of them (400 + 400) and 200 test images.
2. Augmentation: every training point's |f_T| augmentations, and the "poisoned" test set = every
   test image plus all its augmentations.
3. Features: a CNN (LeNet by default) trained once on the un-augmented training set, then frozen
   (``features="frozen"``); or retrained at every checkpoint (``"retrain"``, slow).
4. Regression: L2-regularised logistic regression (C = 10) on the features; its un-augmented fit
   gives the scores (loss, LOO influence), the no-augmentation accuracy (the curves' value at 0) and,
   refit on everything, the full-augmentation accuracy.
5. Curves: for every score and policy, :func:`~.curve.run_curve` over ``rounds`` repetitions
   (random policies) or once (deterministic ones).

Randomness: the training subset is drawn with ``seed``; the feature CNN is seeded by ``seed``; the
curve of policy P in round r draws from a generator seeded by (seed, P, r) -- the same for both
scores, so loss and influence curves of a round share their random numbers (paired comparisons) and
the baseline, which ignores scores, is computed once and reported under both.

Default checkpoints: the paper's 0, 1, 10, 50, 100, 250, 500, 750, 1000 out of 1,000 points, scaled to
the training size (for mnist5k's 800: 0, 1, 8, 40, 80, 200, 400, 600, 800), so 5, 10 and 25 %
(the paper's Table 1 columns) are checkpoints; they are added to user-given checkpoints too.
"""
import dataclasses
import os
import time

import torch

from ...data import ImageData, class_subset, labelled_subset, load_dataset
from ...data.folder import is_unreadable, unreadable_path
from ...train.options import require
from ...train.rng import derive_seed
from .augmentations import build_augmentation
from .curve import normalize_checkpoints, run_curve
from .features import (CurveData, FeatureConfig, FrozenFeatures, RetrainedFeatures, featurize,
                       train_feature_model)
from .policies import PAPER_TABLE_POLICIES, parse_policy
from .regression import LogisticRegressionL2
from .scores import SCORES, compute_scores

__all__ = ["SubsampleConfig", "ExperimentResult", "run_experiment", "default_checkpoints", "prepare_data",
           "SEED_CHECKPOINT_FRACTIONS", "TABLE1_FRACTIONS", "FEATURE_MODES", "fraction_points"]

#: The paper's checkpoints (authors' ``n_aug_sample_points`` with 0) as fractions of its 1,000 points.
SEED_CHECKPOINT_FRACTIONS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
#: The paper's Table 1 columns: 5, 10 and 25 % of the training set augmented.
TABLE1_FRACTIONS = (0.05, 0.10, 0.25)
FEATURE_MODES = ("frozen", "retrain")


def fraction_points(fraction, n):
    """round(fraction * n) augmented points, at least 1 for a positive fraction."""
    return 0 if fraction == 0 else max(1, int(round(fraction * n)))


def default_checkpoints(n):
    """The paper's checkpoints scaled to ``n`` training points (for n = 1000 exactly the paper's)."""
    return normalize_checkpoints([fraction_points(f, n) for f in SEED_CHECKPOINT_FRACTIONS], n)


@dataclasses.dataclass
class SubsampleConfig:
    """Everything a run needs (defaults: the paper's MNIST setting on mnist5k). See ``fastaug subsample
    --help`` for each option."""

    dataset: str = "mnist5k"
    data_dir: str = None
    classes: tuple = (3, 8)
    train_size: int = None
    augmentation: str = "translate"
    scores: tuple = SCORES
    policies: tuple = PAPER_TABLE_POLICIES
    rounds: int = 5
    checkpoints: tuple = None
    C: float = 10.0
    features: str = "frozen"
    feature_model: str = "lenet"
    feature_epochs: int = 40
    feature_batch_size: int = 512
    feature_lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    image_size: int = 32  # --dataset folder: side its images are decoded at (the others keep theirs)

    def validate(self):
        """Raise ValueError naming the option and its valid choices."""
        unknown = [s for s in self.scores if s not in SCORES]
        require([
            (not unknown, f"unknown score {unknown[0]!r}; choose from: {', '.join(SCORES)}" if unknown else ""),
            (bool(self.scores), f"give at least one score ({', '.join(SCORES)})"),
            (bool(self.policies), "give at least one policy"),
            (self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}"),
            (self.features in FEATURE_MODES,
             f"unknown features mode {self.features!r}; choose from: {', '.join(FEATURE_MODES)}"),
            (self.C > 0, f"C must be > 0, got {self.C}"),
            (self.train_size is None or self.train_size >= 2, f"train_size must be >= 2, got {self.train_size}"),
            (len(self.classes) >= 2, f"classes needs at least two classes, got {list(self.classes)}"),
            (self.image_size >= 8, f"image size must be >= 8, got {self.image_size}"),
        ])
        for p in self.policies:
            parse_policy(p)  # names the unknown policy
        self.feature_config().validate()

    def feature_config(self):
        return FeatureConfig(self.feature_model, self.feature_epochs, self.feature_batch_size, self.feature_lr,
                             self.seed)

    def resolved_device(self):
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclasses.dataclass
class ExperimentResult:
    """Everything :mod:`.outputs` writes: the run's description, the reference accuracies, the scores
    and every curve."""

    config: SubsampleConfig
    meta: dict
    checkpoints: list
    no_aug_clean_accuracy: float   # un-augmented model on the clean test set
    no_aug_accuracy: float         # un-augmented model on the poisoned test set (every curve at 0)
    full_aug_accuracy: float       # model on all points + all augmentations, poisoned test set
    initial_scores: dict           # score -> (n,) tensor from the un-augmented fit
    final_scores: dict             # score -> (n,) tensor after augmenting every point
    curves: list                   # CurveResult, every score x policy x round
    timings: dict


def prepare_data(config, device):
    """(train, test, class names) after the class selection and the training subset, on ``device``."""
    train, test = load_dataset(config.dataset, config.data_dir, image_size=config.image_size)
    train = class_subset(train, config.classes, relabel=True)
    test = class_subset(test, config.classes, relabel=True)
    n_avail = len(train)
    if config.train_size is not None:
        if config.train_size > n_avail:
            raise ValueError(f"--train-size {config.train_size} is more than the {n_avail} training images of "
                             f"classes {list(config.classes)} in {config.dataset}; use at most {n_avail}")
        if config.train_size < n_avail:
            train, _ = labelled_subset(train, size=config.train_size, seed=derive_seed(config.seed, "subsample-data"))
    if len(test) == 0:
        raise ValueError(f"{config.dataset} has no test images of classes {list(config.classes)}")
    return _in_memory(train).to(device), _in_memory(test).to(device)


def _in_memory(data):
    """An image folder (decoded lazily, :class:`~fastaug.data.FolderData`) decoded into an in-memory
    :class:`~fastaug.data.ImageData`: the experiment augments, featurises and refits every image many times."""
    if isinstance(data, ImageData):
        return data
    images, labels = [], []
    for x, y in torch.utils.data.DataLoader(data.dataset, batch_size=256, num_workers=0):
        bad = is_unreadable(y)
        if bool(bad.any()):
            raise ValueError(f"cannot decode {unreadable_path(data, int(y[bad][0]))}: remove it or convert it")
        images.append(x)
        labels.append(y)
    c, (h, w) = data.channels, data.image_size
    return ImageData(torch.cat(images) if images else torch.zeros(0, c, h, w, dtype=torch.uint8),
                     torch.cat(labels).to(torch.int64) if labels else torch.zeros(0, dtype=torch.int64),
                     data.classes, data.name, data.hflip, data.mean, data.std)


def feature_options(config):
    """What a rerun in the same folder must share to continue the feature CNN, named as the command's
    flags (the images' fingerprint is added by :func:`train_feature_model`)."""
    return {"dataset": config.dataset, "image_size": config.image_size if config.dataset == "folder" else None,
            "classes": [str(c) for c in config.classes], "train_size": config.train_size,
            "feature_model": config.feature_model, "feature_epochs": config.feature_epochs,
            "feature_batch_size": config.feature_batch_size, "feature_lr": config.feature_lr, "seed": config.seed}


def run_experiment(config, folder=None, on_start=None):
    """Run the experiment described by ``config``; returns an :class:`ExperimentResult`.

    With ``folder`` the feature CNN's fit checkpoints in ``folder/feature_cnn`` and a rerun (after a
    kill, say) continues it, so ``fastaug subsample`` resumes as every training command does.
    ``on_start()``, if given, is called once the configuration and the data are checked, before
    anything is written (the command writes its args.json there)."""
    config.validate()
    device = config.resolved_device()
    t0 = time.perf_counter()
    timings = {}
    train, test = prepare_data(config, device)
    n, K = len(train), train.num_classes
    policies = [parse_policy(p) for p in config.policies]
    cps = default_checkpoints(n) if config.checkpoints is None else normalize_checkpoints(config.checkpoints, n)
    cps = normalize_checkpoints(list(cps) + [fraction_points(f, n) for f in TABLE1_FRACTIONS], n)
    aug = build_augmentation(config.augmentation, config.dataset, train.image_size)
    if on_start is not None:
        on_start()

    t = time.perf_counter()
    aug_images = aug.apply(train.images)                                    # (n, A, C, H, W)
    test_aug = aug.apply(test.images)
    poisoned = torch.cat([test.images, test_aug.reshape(-1, *test.images.shape[1:])])
    poisoned_y = torch.cat([test.labels, test.labels.repeat_interleave(aug.count)])
    timings["augment_s"] = time.perf_counter() - t

    t = time.perf_counter()
    fcfg = config.feature_config()
    model = train_feature_model(train.images, train.labels, K, fcfg, mean=train.mean, std=train.std,
                                progress=config.progress,
                                folder=None if folder is None else os.path.join(folder, "feature_cnn"),
                                options=feature_options(config))
    timings["feature_cnn_s"] = time.perf_counter() - t
    t = time.perf_counter()
    data = CurveData(featurize(model, train.images), train.labels, featurize(model, aug_images),
                     featurize(model, poisoned), poisoned_y)
    h_clean = featurize(model, test.images)
    timings["featurize_s"] = time.perf_counter() - t
    if config.features == "frozen":
        source = FrozenFeatures(data)
    else:
        source = RetrainedFeatures(train.images, train.labels, aug_images, poisoned, poisoned_y, K, fcfg,
                                   mean=train.mean, std=train.std, initial=data, progress=config.progress)

    t = time.perf_counter()
    base = LogisticRegressionL2(config.C, K).fit(data.h, data.y)
    no_aug_clean = base.accuracy(h_clean, test.labels)
    no_aug = base.accuracy(data.h_test, data.y_test)
    initial_scores = {s: compute_scores(base, s, n).cpu() for s in config.scores}
    everything = torch.arange(n)
    full_data = source.at(everything)
    full = LogisticRegressionL2(config.C, K)
    full.fit(*full_data.training_rows(everything), init=base.theta if config.features == "frozen" else None)
    full_aug = full.accuracy(full_data.h_test, full_data.y_test)
    final_scores = {s: compute_scores(full, s, n).cpu() for s in config.scores}
    timings["reference_fits_s"] = time.perf_counter() - t

    t = time.perf_counter()
    jobs = []
    for score in config.scores:
        for policy in policies:
            for r in range(config.rounds if policy.is_random else 1):
                jobs.append((score, policy, r))
    if config.progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc=f"curves ({config.augmentation})", unit="curve")
    curves, cache = [], {}
    for score, policy, r in jobs:
        key = (policy.name, r)
        if not policy.uses_scores and key in cache:  # the baseline ignores scores: reuse its curve
            curves.append(dataclasses.replace(cache[key], score=score))
            continue
        gen = torch.Generator().manual_seed(derive_seed(config.seed, "subsample-policy", policy.name, r))
        reg = LogisticRegressionL2(config.C, K)
        result = run_curve(source, policy, score, initial_scores[score], cps, gen, reg,
                           init=base.theta if config.features == "frozen" else None, round_index=r)
        cache[key] = result
        curves.append(result)
    timings["curves_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    counts = torch.bincount(train.labels.cpu(), minlength=K).tolist()
    test_counts = torch.bincount(test.labels.cpu(), minlength=K).tolist()
    meta = dict(dataset=config.dataset, classes=[str(c) for c in train.classes], num_classes=K, n_train=n,
                train_class_counts=counts, n_test=len(test), test_class_counts=test_counts,
                n_poisoned_test=int(poisoned.shape[0]), augmentation=aug.name,
                augmentation_description=aug.description, augmentations_per_point=aug.count,
                feature_dim=int(data.h.shape[1]), feature_model=config.feature_model, features=config.features,
                C=config.C, device=str(device), torch=torch.__version__, threads=torch.get_num_threads())
    return ExperimentResult(config, meta, cps, no_aug_clean, no_aug, full_aug, initial_scores, final_scores,
                            curves, timings)
