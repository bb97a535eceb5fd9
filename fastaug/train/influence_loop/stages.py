"""Stages 1-4 of the influence loop as pipeline stages, and the pipeline of ``--augment influence``.

Folders of a run ``RUN`` (``--output-dir``)::

    RUN/stage1_classifier/   a `fastaug train --augment standard` run (F), classifier.pt (F as an artifact),
                             stage.json
    RUN/stage2_gan/          augmenter.pt (G pretrained; E untouched), critics.pt (the discriminators),
                             metrics.jsonl (GAN losses), samples.png, checkpoint.pt, stage.json
    RUN/stage3_influence/    influence.pt (features, s_val), validation.pt, metrics.jsonl, stage.json
    RUN/stage4_augmenter/    metrics.jsonl (mean influence, predicted vs refit validation loss),
                             checkpoint.pt, stage.json
    RUN/augmenter.pt         E and G after stage 4 (what stage 5 samples from)
    RUN/figure4_tau_interpolation.png, RUN/learned_augmentations.png
    RUN/ (args.json, metrics.jsonl, checkpoint.pt, summary.json, curves.png)   stage 5, the engine's run
    RUN/stages.json          seconds and key metrics of every stage

Every ``.pt`` above that is not a ``checkpoint.pt`` is an artifact (:mod:`fastaug.artifacts`), and
each stage's result (:class:`~fastaug.train.pipeline.StageResult`) names its artifacts; a stage
receives the results of the stages it ``needs`` from the pipeline: F (``classifier``) for stages 2-4,
G and the critics (``augmenter``, ``critics``) and the influence (``influence``, ``validation``) for
stage 4, E and G after stage 4 (``augmenter``) for stage 5's method.

The driver (:class:`fastaug.train.pipeline.Pipeline`) reuses finished stages, continues an
interrupted one from its checkpoint (stages 2 and 4 run on the loop primitive, stage 1 and 5 are
engine runs) and refuses a finished stage with other options, naming them.
"""
import os

import torch

from ...models import save_classifier
from ..engine import ClassifierStage, Trainer, pipeline_inputs
from ..method import standard_augment
from ..pipeline import Pipeline, Stage, StageError, StageResult
from ..rng import derive_seed
from .augmenter import AUGMENTER_FILE, Augmenter
from .options import DEPENDS, STAGE_DIRS, check_options, stage_options, use_appearance

__all__ = ["influence_pipeline", "build_augmenter", "figure_images", "StageError", "AUGMENTER_FILE"]

CRITICS_FILE = "critics.pt"
CLASSIFIER_FILE = "classifier.pt"
FIGURE4 = "figure4_tau_interpolation.png"
FIGURE3 = "learned_augmentations.png"


def build_augmenter(options, seed, info, device):
    """A fresh Augmenter for the run's images, initialised from a seed derived from ``--seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "augmenter-init"))
        H, W = info["image_size"]
        aug = Augmenter(info["channels"], H, W, tau_dim=options.tau_dim, dropout=options.tau_dropout,
                        appearance=use_appearance(options, info["channels"]), smooth=options.transform_smooth,
                        mode=options.transform_mode)
    return aug.to(device)


def figure_images(data, count=4):
    """``count`` training images of different classes (the first image of each of the first classes),
    as float (count, C, H, W) on the CPU (an image folder's are decoded here, in this process)."""
    picks = []
    for c in range(data.num_classes):
        idx = (data.labels == c).nonzero()
        if idx.numel():
            picks.append(int(idx[0]))
        if len(picks) == count:
            break
    if hasattr(data, "images"):  # in memory
        return data.images[torch.tensor(picks, device=data.images.device)].cpu().float() / 255.0
    return torch.stack([data.dataset[i][0] for i in picks]).float() / 255.0  # FolderData: (uint8 (C, S, S), y)


class _Shared:
    """What the stages share: the method's options, the resolved common arguments, data, device, the
    run folder, the standard augmentation, and F (the frozen classifier of stage 1's artifact, loaded
    once)."""

    def __init__(self, options, args, data, device, log):
        self.o, self.args, self.device, self.root, self.log = options, args, device, args.output_dir, log
        self.train, self.val, self.test = data
        t = self.train
        self.info = dict(channels=t.channels, image_size=tuple(t.image_size), num_classes=t.num_classes)
        self.standard = standard_augment(args, t.hflip and not args.no_flip)
        self._models = {}

    def provenance(self, stage):
        """What an artifact of ``stage`` was made from (its meta): data, image shape, the stage's options."""
        return {"dataset": self.args.dataset, "channels": self.info["channels"],
                "image_size": list(self.info["image_size"]), "options": stage_options(self.o, self.args, stage)}

    def model(self, inputs):
        """F, from the ``classifier`` artifact in stage 1's result."""
        from .classifier import frozen_classifier

        path = inputs[STAGE_DIRS[1]].artifact("classifier")
        if path not in self._models:
            self._models[path] = frozen_classifier(path, self.device)
        return self._models[path]

    def critics(self, model):
        from .gan import Critics

        return Critics(model, self.info["channels"], *self.info["image_size"], self.o, self.args.seed, self.device)


class _InfluenceStage(Stage):
    number = 0
    distributed = False

    def __init__(self, shared):
        self.shared, self.o, self.args = shared, shared.o, shared.args
        self.name = STAGE_DIRS[self.number]
        self.key = str(self.number)
        self.needs = tuple(STAGE_DIRS[k] for k in self.reads)

    def options(self):
        return stage_options(self.o, self.args, self.number)


class ClassifierF(_InfluenceStage):
    """Stage 1: F, a ``--augment standard`` engine run in ``stage1_classifier``; its result is F as the
    ``classifier`` artifact."""

    number, title, reads = 1, "stage 1 (classifier)", ()

    def run(self, folder, inputs):
        from .classifier import classifier_args

        s = self.shared
        trainer = Trainer(classifier_args(self.args, folder), data=(s.train, s.val, s.test), loop_name=self.title,
                          resume="auto")  # an interrupted stage 1 continues from its checkpoint
        summary = trainer.fit()
        path = save_classifier(trainer.module, trainer.args.model, os.path.join(folder, CLASSIFIER_FILE),
                               meta=s.provenance(1))
        return StageResult(artifacts={"classifier": path}, seconds=summary.get("train_seconds"),
                           metrics={k: summary.get(k) for k in ("final_test_acc", "final_test_loss")})


class GanStage(_InfluenceStage):
    """Stage 2: G pretrained as a GAN to mimic the standard crop/flip (:mod:`.gan`)."""

    number, title, reads = 2, "stage 2 (GAN)", (1,)

    def run(self, folder, inputs):
        from .gan import train_gan

        s = self.shared
        model = s.model(inputs)
        aug, critics = build_augmenter(self.o, self.args.seed, s.info, s.device), s.critics(model)
        crop_flip = s.standard.crop_flip
        metrics, seconds = train_gan(folder, model, aug, critics, s.train, lambda x, g: crop_flip(x, g), self.o,
                                     self.args.seed, s.device, stage_options=self.options(),
                                     progress=self.args.progress, log=s.log, workers=self.args.workers)
        paths = {"augmenter": aug.save(os.path.join(folder, AUGMENTER_FILE), meta=s.provenance(2)),
                 "critics": critics.save(os.path.join(folder, CRITICS_FILE), meta=s.provenance(2))}
        self._figure(aug, os.path.join(folder, "samples.png"))
        return StageResult(artifacts=paths, metrics=metrics, seconds=seconds)

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

    number, title, reads = 3, "stage 3 (influence)", (1,)

    def run(self, folder, inputs):
        from .classifier import fit_influence

        s = self.shared
        metrics, paths = fit_influence(folder, s.model(inputs), s.train, s.val, self.o, self.args, s.device)
        seconds = metrics.pop("seconds")
        return StageResult(artifacts=paths, metrics=metrics, seconds=seconds)


class AugmenterStage(_InfluenceStage):
    """Stage 4: E and G trained on the influence objective (:mod:`.augment_stage`); its result is
    ``RUN/augmenter.pt``, what stage 5 samples from."""

    number, title, reads = 4, "stage 4 (E, G)", (1, 2, 3)

    def run(self, folder, inputs):
        from .augment_stage import train_augmenter
        from .classifier import load_influence

        s = self.shared
        gan, fit = inputs[STAGE_DIRS[2]], inputs[STAGE_DIRS[3]]
        model = s.model(inputs)
        aug = Augmenter.load(gan.artifact("augmenter"), s.device)  # G pretrained, E initialised
        critics = s.critics(model).load(gan.artifact("critics"))
        influence, val = load_influence(fit.artifact("influence"), fit.artifact("validation"), model, s.device)
        metrics, seconds = train_augmenter(folder, aug, critics, influence, s.train, s.standard, val, self.o,
                                           self.args, s.device, stage_options=self.options(), log=s.log)
        path = aug.save(os.path.join(s.root, AUGMENTER_FILE), meta=s.provenance(4))
        self._figures(aug)
        return StageResult(artifacts={"augmenter": path}, metrics=metrics, seconds=seconds)

    def _figures(self, aug):
        from .figures import dropout_samples_grid, tau_interpolation_grid

        s = self.shared
        g = torch.Generator().manual_seed(derive_seed(self.args.seed, "figures"))
        x = figure_images(s.train, 3).to(s.device)
        aug.eval()
        tau_interpolation_grid(os.path.join(s.root, FIGURE4), aug, x, g)
        dropout_samples_grid(os.path.join(s.root, FIGURE3), aug, figure_images(s.train, 6).to(s.device), g)


def influence_pipeline(method, args, data=None, log=None, resume=None):
    """The five stages of ``--augment influence`` in ``args.output_dir``: stages 1-4 (one process
    each), then stage 5, the engine's run of ``method`` (:class:`~.method.InfluenceAugment`) in the
    run folder, built with stage 4's ``augmenter``. ``--stages`` picks which run; a stage that a
    wanted one needs must have finished."""
    options = check_options(args)
    args, data, device = pipeline_inputs(args, data)
    shared = _Shared(options, args, data, device, log=None)
    stages = [ClassifierF(shared), GanStage(shared), InfluenceFit(shared), AugmenterStage(shared)]
    retrain = ClassifierStage(args, method=method, data=data, key="5", title="stage 5 (retrain)",
                              inputs={"augmenter": (STAGE_DIRS[4], "augmenter")},
                              needs=[STAGE_DIRS[k] for k in DEPENDS[5] if k != 5], resume=resume)
    pipeline = Pipeline(args.output_dir, stages + [retrain], log=log,
                        wanted={STAGE_DIRS[k] for k in options.stages if k in STAGE_DIRS}
                        | ({""} if 5 in options.stages else set()))
    shared.log = pipeline.log
    return pipeline
