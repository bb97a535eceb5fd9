"""Stages 1-4 of the influence loop as pipeline stages, and the pipeline of ``--augment influence``.

Folders of a run ``RUN`` (``--output-dir``)::

    RUN/stage1_classifier/   a `fastaug train --augment standard` run (F), plus stage.json
    RUN/stage2_gan/          augmenter.pt (G pretrained; E untouched), critics.pt (the discriminators),
                             metrics.jsonl (GAN losses), samples.png, checkpoint.pt, stage.json
    RUN/stage3_influence/    influence.pt (features, s_val), validation.pt, metrics.jsonl, stage.json
    RUN/stage4_augmenter/    metrics.jsonl (mean influence, predicted vs refit validation loss),
                             checkpoint.pt, stage.json
    RUN/augmenter.pt         E and G after stage 4 (what stage 5 samples from)
    RUN/figure4_tau_interpolation.png, RUN/learned_augmentations.png
    RUN/ (args.json, metrics.jsonl, checkpoint.pt, summary.json, curves.png)   stage 5, the engine's run
    RUN/stages.json          seconds and key metrics of every stage

The driver (:class:`fastaug.train.pipeline.Pipeline`) reuses finished stages, continues an
interrupted one from its checkpoint (stages 2 and 4 run on the loop primitive, stage 1 and 5 are
engine runs) and refuses a finished stage with other options, naming them.
"""
import os

import torch

from ..checkpoint import atomic_save
from ..engine import ClassifierStage, Trainer, pipeline_inputs
from ..method import standard_augment
from ..pipeline import Pipeline, Stage, StageError
from ..rng import derive_seed
from .augmenter import Augmenter
from .options import DEPENDS, STAGE_DIRS, check_options, stage_options, use_appearance

__all__ = ["influence_pipeline", "build_augmenter", "figure_images", "StageError", "AUGMENTER_FILE"]

AUGMENTER_FILE = "augmenter.pt"
CRITICS_FILE = "critics.pt"
FIGURE4 = "figure4_tau_interpolation.png"
FIGURE3 = "learned_augmentations.png"


def build_augmenter(args, info, device):
    """A fresh Augmenter for the run's images, initialised from a seed derived from ``--seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(args.seed, "augmenter-init"))
        H, W = info["image_size"]
        aug = Augmenter(info["channels"], H, W, tau_dim=args.tau_dim, dropout=args.tau_dropout,
                        appearance=use_appearance(args, info["channels"]), smooth=args.transform_smooth,
                        mode=args.transform_mode)
    return aug.to(device)


def figure_images(data, count=4):
    """``count`` training images of different classes (the first image of each of the first classes),
    as float (count, C, H, W)."""
    picks = []
    for c in range(data.num_classes):
        idx = (data.labels == c).nonzero()
        if idx.numel():
            picks.append(int(idx[0]))
        if len(picks) == count:
            break
    return data.images[torch.tensor(picks, device=data.images.device)].float() / 255.0


class _Shared:
    """What the stages share: arguments, data, device, folders, the standard augmentation, the frozen F
    (loaded once)."""

    def __init__(self, args, data, device):
        self.args, self.device, self.root = args, device, args.output_dir
        self.train, self.val, self.test = data
        t = self.train
        self.info = dict(channels=t.channels, image_size=tuple(t.image_size), num_classes=t.num_classes)
        self.standard = standard_augment(args, t.hflip and not args.no_flip)
        self._model = None

    def folder(self, k):
        return os.path.join(self.root, STAGE_DIRS[k])

    @property
    def model(self):
        if self._model is None:
            from .classifier import load_classifier

            self._model = load_classifier(self.folder(1), self.args, self.train, self.device)
        return self._model

    def critics(self):
        from .gan import Critics

        return Critics(self.model, self.info["channels"], *self.info["image_size"], self.args, self.device)


class _InfluenceStage(Stage):
    number = 0
    distributed = False

    def __init__(self, shared):
        self.shared, self.args = shared, shared.args
        self.name = STAGE_DIRS[self.number]
        self.key = str(self.number)

    def options(self):
        return stage_options(self.args, self.number)


class ClassifierF(_InfluenceStage):
    """Stage 1: F, a ``--augment standard`` engine run in ``stage1_classifier``."""

    number, title = 1, "stage 1 (classifier)"

    def run(self, folder, records):
        from .classifier import classifier_args

        s = self.shared
        summary = Trainer(classifier_args(self.args, folder), data=(s.train, s.val, s.test),
                          loop_name=self.title).fit()
        return {"seconds": summary.get("train_seconds"), "final_test_acc": summary.get("final_test_acc"),
                "final_test_loss": summary.get("final_test_loss")}


class GanStage(_InfluenceStage):
    """Stage 2: G pretrained as a GAN to mimic the standard crop/flip (:mod:`.gan`)."""

    number, title = 2, "stage 2 (GAN)"

    def run(self, folder, records):
        from .gan import train_gan

        s = self.shared
        aug, critics = build_augmenter(self.args, s.info, s.device), s.critics()
        crop_flip = s.standard.crop_flip
        metrics = train_gan(folder, s.model, aug, critics, s.train, lambda x, g: crop_flip(x, g), self.args,
                            s.device, options=self.options(), progress=self.args.progress, log=s.log)
        aug.save(os.path.join(folder, AUGMENTER_FILE))
        atomic_save({"critics": critics.state_dict(), "optimizer": critics.optimizer.state_dict()},
                    os.path.join(folder, CRITICS_FILE))
        self._figure(aug, os.path.join(folder, "samples.png"))
        return metrics

    def _figure(self, aug, path):
        from .augmenter import random_codes
        from .figures import gan_samples_grid

        s = self.shared
        g = torch.Generator().manual_seed(derive_seed(self.args.seed, "figures"))
        x = figure_images(s.train, 8).to(s.device)
        with torch.no_grad():
            codes = random_codes(x.shape[0], aug.tau_dim, g, s.device) * aug.dropout_mask(x.shape[0], g, s.device)
            fake = aug(x, codes=codes)
        gan_samples_grid(path, s.standard.crop_flip(x, g), fake)


class InfluenceFit(_InfluenceStage):
    """Stage 3: last-layer influence on F and s_val from the validation split (one solve, no loop)."""

    number, title = 3, "stage 3 (influence)"

    def run(self, folder, records):
        from .classifier import fit_influence

        s = self.shared
        return fit_influence(folder, s.model, s.train, s.val, self.args, s.device, self.args.progress)


class AugmenterStage(_InfluenceStage):
    """Stage 4: E and G trained on the influence objective (:mod:`.augment_stage`)."""

    number, title = 4, "stage 4 (E, G)"

    def run(self, folder, records):
        from .augment_stage import train_augmenter
        from .classifier import load_influence

        s = self.shared
        aug = Augmenter.load(os.path.join(s.folder(2), AUGMENTER_FILE), s.device)  # G pretrained, E initialised
        critics = s.critics()
        state = torch.load(os.path.join(s.folder(2), CRITICS_FILE), map_location=s.device, weights_only=True)
        critics.load_state_dict(state["critics"])
        critics.optimizer.load_state_dict(state["optimizer"])
        influence, val = load_influence(s.folder(3), s.model, s.device)
        metrics = train_augmenter(folder, aug, critics, influence, s.train, s.standard, val, self.args, s.device,
                                  options=self.options(), progress=self.args.progress, log=s.log)
        aug.save(os.path.join(s.root, AUGMENTER_FILE))
        self._figures(aug)
        return metrics

    def _figures(self, aug):
        from .figures import dropout_samples_grid, tau_interpolation_grid

        s = self.shared
        g = torch.Generator().manual_seed(derive_seed(self.args.seed, "figures"))
        x = figure_images(s.train, 3).to(s.device)
        aug.eval()
        tau_interpolation_grid(os.path.join(s.root, FIGURE4), aug, x, g)
        dropout_samples_grid(os.path.join(s.root, FIGURE3), aug, figure_images(s.train, 6).to(s.device), g)


def influence_pipeline(args, data=None, log=None):
    """The five stages of ``--augment influence`` in ``args.output_dir``: stages 1-4 (one process
    each), then stage 5, the engine's run of :class:`~fastaug.train.influence_loop.method.InfluenceAugment`
    in the run folder. ``--stages`` picks which run; a stage that a wanted one needs must have finished."""
    check_options(args)
    args, data, device = pipeline_inputs(args, data)
    shared = _Shared(args, data, device)
    pipeline = Pipeline(args.output_dir, [], log=log)
    shared.log = pipeline.log
    stages = [ClassifierF(shared), GanStage(shared), InfluenceFit(shared), AugmenterStage(shared)]
    retrain = ClassifierStage(args, data=data, key="5", title="stage 5 (retrain)")
    pipeline.stages = stages + [retrain]
    pipeline.wanted = {STAGE_DIRS[k] for k in args.stages if k in STAGE_DIRS} | ({""} if 5 in args.stages else set())
    pipeline.needs = {STAGE_DIRS.get(k, ""): [STAGE_DIRS[j] for j in DEPENDS[k] if j != k] for k in DEPENDS}
    return pipeline
