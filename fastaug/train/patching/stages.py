"""Model patching as a pipeline (:class:`fastaug.train.pipeline.Pipeline`): stage 1, then one engine run per
(method, seed).

* :class:`TranslationStage` (folder ``translation/``): the CycleGANs on the loop primitive
  (:class:`fastaug.train.loop.Loop`: resumable at any step, options checked on resume), then every
  training image translated into each subgroup of its class (``translations.pt``, a
  ``patching-translations`` artifact, index-aligned: the stage's result), ``translations.png``, and the
  translations as a loadable augmentation for new images (``augmentation.pt``, an
  ``augmentation/translation`` artifact: :class:`fastaug.augment.SubgroupTranslation`, with the graded
  quality in its meta).
* :class:`PatchedTrainingStage` (folder ``<method>/seed<k>/``): the plain engine
  (:class:`fastaug.train.engine.Trainer`) with the stage-2 method (:mod:`.methods`, a plain
  :class:`~fastaug.train.method.Method`: its own group-balanced batches, each batch's subgroups and
  translations looked up by the batch's dataset indices, its loss, per-subgroup test accuracy every
  epoch in ``metrics.jsonl``), built with stage 1's translations when it uses them (the pipeline hands
  the artifact on). The engine's checkpoint resumes it (``resume="auto"``); the group DRO weights are
  part of the method's checkpointed state. Its result: the trained classifier (``classifier.pt``, a
  ``classifier`` artifact) and its final robust and aggregate accuracy.
"""
import dataclasses
import json
import os
import time

import torch

from ...augment.learned_module import AUGMENTATION_FILE
from ...augment.learned_translation import SubgroupTranslation
from ...figures import save_figure
from ...models import save_classifier
from ..args import replace_args
from ..engine import Trainer
from ..loop import Loop
from ..pipeline import Stage, StageResult
from ..rng import derive_seed
from .grading import grade_translations, quality_flags, train_class_model, train_judge
from .methods import patch_method_class
from .translation import (build_translation_parts, save_translations, translate_all, translation_step,
                          translations_figure)

__all__ = ["TranslationStage", "PatchedTrainingStage", "final_records"]

TRANSLATIONS_FILE = "translations.pt"
CLASSIFIER_FILE = "classifier.pt"


class _PoolState:
    """An ImagePool and its random stream as one checkpoint part (the pool's images live on ``device``)."""

    def __init__(self, pool, device):
        self.pool, self.device = pool, device

    def state_dict(self):
        return {**self.pool.state_dict(), "rng": self.pool.rng.get_state()}

    def load_state_dict(self, state):
        self.pool.load_state_dict(state, self.device)
        self.pool.rng.set_state(state["rng"])


class TranslationStage(Stage):
    """Stage 1: train the translator (resumable), then precompute the translations of every training
    image; its result is the ``translations`` artifact, and its metrics hold the graded translations
    (``quality``, :mod:`.grading`).

    Args:
        cfg: the resolved TranslationConfig; train: the training GroupedImageData; held: the held-out
            GroupedImageData the translations are graded on (None: not graded); device;
        checkpoint_every: steps between checkpoints (0: only at the end); progress: tqdm bar.
    """

    name, title, key = "translation", "stage 1 (subgroup translation)", "translation"
    distributed = False

    def __init__(self, cfg, train, held, device, checkpoint_every=50, progress=True):
        self.cfg, self.train, self.held, self.device = cfg, train, held, torch.device(device)
        self.checkpoint_every, self.progress = checkpoint_every, progress

    def options(self):
        return dataclasses.asdict(self.cfg)

    def run(self, folder, inputs):
        cfg, data = self.cfg, self.train.to(self.device)
        translator, opts, pools = build_translation_parts(cfg, data, self.device)
        loop = Loop(folder, name="translation", options=self.options(), allowed_changes=(), epochs=1,
                    steps_per_epoch=cfg.gan_steps, checkpoint_every=self.checkpoint_every, log_every=50,
                    resume="auto", progress=self.progress, show=("cycle", "disc"), distributed=False)
        loop.register("translator", translator)
        for key, opt in opts.items():
            loop.register(f"optimizer/{key}", opt)
        for key, pool in pools.items():
            loop.register(f"pool/{key}", _PoolState(pool, self.device))
        for _, step in loop:
            loop.meters.add(**translation_step(translator, opts, pools, data, loop.global_step, cfg))
        translations = translate_all(translator, data)
        path = save_translations(translations, self.train, os.path.join(folder, TRANSLATIONS_FILE),
                                 meta={"dataset": cfg.dataset, "options": self.options()})
        save_figure(translations_figure(self.train, translations), os.path.join(folder, "translations.png"))
        last = loop.history[-1] if loop.history else {}
        metrics = {k: v for k, v in last.items() if k != "step"}
        seconds = loop.seconds
        if self.held is not None and len(self.held) and cfg.grade_steps:
            tick = time.perf_counter()
            metrics["quality"] = self.grade(translator)
            metrics["grade_seconds"] = time.perf_counter() - tick
            seconds += metrics["grade_seconds"]
        augmentation = self.save_augmentation(translator, os.path.join(folder, AUGMENTATION_FILE),
                                              metrics.get("quality"))
        return StageResult(artifacts={"translations": path, "augmentation": augmentation}, seconds=seconds,
                           metrics=metrics)

    def save_augmentation(self, translator, path, quality):
        """Write the trained generators as a SubgroupTranslation (eval mode, as translate_all applies them)
        with what they were learned from and, when graded, their quality. Returns ``path``."""
        data, cfg = self.train, self.cfg
        module = SubgroupTranslation({k: (gan.g_ba, gan.g_ab) for k, gan in translator.gans.items()}, data.classes,
                                     data.subgroups, data.channels, data.image_size[0], cfg.generator, cfg.gan_width)
        meta = {"dataset": cfg.dataset, "method": "patching", "train_images": len(data), "gan_steps": cfg.gan_steps,
                "gan_seed": cfg.gan_seed}
        if quality is not None:
            meta["quality"] = quality
        return module.save(path, meta=meta)

    def grade(self, translator):
        """Train the graders on the training images and grade the translations of the held-out ones."""
        seed, dev = derive_seed(self.cfg.gan_seed, "grading"), self.device
        judge = train_judge(self.train, self.cfg.grade_steps, seed=seed, device=dev)
        class_model = train_class_model(self.train, self.cfg.grade_steps, seed=seed, device=dev)
        quality = grade_translations(translate_all(translator, self.held), self.held, judge, class_model)
        quality["flags"] = quality_flags(quality)
        return quality


class PatchedTrainingStage(Stage):
    """Stage 2 for one (method, seed): an engine run in ``<method>/seed<seed>/`` with the usual outputs.

    Args:
        method: one of :data:`~.methods.PATCH_METHODS`; seed: the classifier's seed.
        cfg: the PatchConfig (the method's options); args: the engine arguments (``fastaug train``'s
            namespace; its output_dir, seed and augment are set here); train, val (None: no validation
            split), test: GroupedImageData.
    """

    distributed = False

    def __init__(self, method, seed, cfg, args, train, val, test):
        self.method, self.seed, self.cfg = method, int(seed), cfg
        self.name = os.path.join(method, f"seed{self.seed}")
        self.key = f"{method}/seed{self.seed}"
        self.title = f"stage 2 ({method}, seed {self.seed})"
        self.loop_name = f"patch {method} seed{self.seed}"  # the checkpoint's name and the test kill hook's key
        self.args, self.train, self.val, self.test = args, train, val, test
        self.method_class = patch_method_class(method)
        self.needs = (TranslationStage.name,) if self.method_class.uses_translations else ()
        self.summary = {}

    def options(self):
        return {**self.cfg.stage2_options(), "method": self.method, "seed": self.seed}

    def run(self, folder, inputs):
        inputs = {"translations": inputs[TranslationStage.name].artifact("translations")} if self.needs else {}
        args = replace_args(self.args, output_dir=folder, seed=self.seed, augment=self.method)
        # a stage killed earlier continues from its checkpoint; a fresh one starts
        trainer = Trainer(args, method=self.method_class, data=(self.train, self.val, self.test), loop_name=self.loop_name,
                          options=self.cfg, inputs=inputs, resume="auto")
        self.summary = trainer.fit()
        path = save_classifier(trainer.module, args.model, os.path.join(folder, CLASSIFIER_FILE),
                               meta={"dataset": self.cfg.translation.dataset, "options": self.options()})
        last = trainer.history[-1] if trainer.history else {}
        return StageResult(artifacts={"classifier": path}, seconds=self.summary.get("train_seconds", 0.0),
                           metrics={k: last.get(k) for k in ("robust_acc", "aggregate_acc")})


def final_records(folders):
    """{method: [final metrics record per seed]} and {method: [history per seed]} from each run's
    ``metrics.jsonl``; ``folders``: {(method, seed): the run's folder}, in order."""
    finals, histories = {}, {}
    for (m, _), folder in folders.items():
        with open(os.path.join(folder, "metrics.jsonl")) as f:
            history = [json.loads(line) for line in f if line.strip()]
        histories.setdefault(m, []).append(history)
        finals.setdefault(m, []).append(history[-1])
    return finals, histories
