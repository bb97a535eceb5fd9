"""Model patching as a pipeline (:class:`fastaug.train.pipeline.Pipeline`): stage 1, then one engine run per
(method, seed).

* :class:`TranslationStage` (folder ``translation/``): the CycleGANs on the loop primitive
  (:class:`fastaug.train.loop.Loop`: resumable at any step, options checked on resume), then every
  training image translated into each subgroup of its class (``translations.pt``, index-aligned) and
  ``translations.png``.
* :class:`PatchedTrainingStage` (folder ``<method>/seed<k>/``): the classifier engine
  (:class:`fastaug.train.engine.Trainer`) with a :class:`PatchMethodAdapter`: the method's own
  group-balanced batches, each batch's subgroups and translations looked up by the batch's dataset
  indices, the method's loss (group DRO, consistency) in the engine's step
  (:class:`PatchTrainer` overrides only ``train_step``), per-subgroup test accuracy every epoch in
  ``metrics.jsonl``. The engine's checkpoint resumes it; the group DRO weights are part of the
  method's checkpointed state.
"""
import copy
import dataclasses
import json
import os

import torch

from ...figures import save_figure
from ..checkpoint import FORMAT, atomic_save, load_checkpoint
from ..engine import Trainer
from ..loop import Loop, optimizer_step
from ..method import Method, TrainBatch
from ..pipeline import Stage
from ..rng import derive_seed
from .evaluation import group_accuracy, summarise_groups, validation_summary
from .grading import grade_translations, quality_flags, train_class_model, train_judge
from .methods import build_patch_method, gather_batch, patch_method_class
from .sampling import balanced_steps, group_balanced_batches
from .translation import build_translation_parts, translate_all, translation_step, translations_figure

__all__ = ["TranslationStage", "PatchedTrainingStage", "PatchTrainer", "PatchMethodAdapter", "load_translations"]

TRANSLATIONS_FILE = "translations.pt"


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
    """Stage 1: train the translator (resumable), then precompute the translations of every training image.

    Args:
        cfg: the resolved TranslationConfig; train: the training GroupedImageData; held: the held-out
            GroupedImageData the translations are graded on (:mod:`.grading`; None: not graded); device;
        checkpoint_every: steps between checkpoints (0: only at the end); progress: tqdm bar.
    """

    name, title, key = "translation", "stage 1 (subgroup translation)", "translation"
    distributed = False

    def __init__(self, cfg, train, held, device, checkpoint_every=50, progress=True):
        self.cfg, self.train, self.held, self.device = cfg, train, held, torch.device(device)
        self.checkpoint_every, self.progress = checkpoint_every, progress

    def options(self):
        return dataclasses.asdict(self.cfg)

    def run(self, folder, records):
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
        atomic_save({"format": FORMAT, "translations": translations, "labels": self.train.labels.cpu(),
                     "subgroup": self.train.subgroup.cpu()}, os.path.join(folder, TRANSLATIONS_FILE))
        save_figure(translations_figure(self.train, translations), os.path.join(folder, "translations.png"))
        last = loop.history[-1] if loop.history else {}
        out = {"seconds": loop.seconds, **{k: v for k, v in last.items() if k != "step"}}
        if self.held is not None and len(self.held) and cfg.grade_steps:
            out["quality"] = self.grade(translator)
        return out

    def grade(self, translator):
        """Train the graders on the training images and grade the translations of the held-out ones."""
        seed, dev = derive_seed(self.cfg.gan_seed, "grading"), self.device
        judge = train_judge(self.train, self.cfg.grade_steps, seed=seed, device=dev)
        class_model = train_class_model(self.train, self.cfg.grade_steps, seed=seed, device=dev)
        quality = grade_translations(translate_all(translator, self.held), self.held, judge, class_model)
        quality["flags"] = quality_flags(quality)
        return quality


def load_translations(folder, train):
    """The (N, 2, C, H, W) uint8 translations stage 1 wrote in ``folder``, checked against ``train``."""
    state = load_checkpoint(os.path.join(folder, TRANSLATIONS_FILE))
    t = state["translations"]
    if not (torch.equal(state["labels"], train.labels.cpu()) and torch.equal(state["subgroup"], train.subgroup.cpu())):
        raise ValueError(f"the translations in {folder} belong to another training set; rerun stage 1 in a new "
                         f"--output-dir")
    return t


class _BalancedBatches:
    """The method's own training batches: group-balanced (:func:`group_balanced_batches`), ``(x, y, index)``."""

    def __init__(self, data, batch_size, seed):
        self.data, self.batch_size, self.seed = data, int(batch_size), seed
        self.ids = data.group_ids.cpu()

    def __len__(self):
        return balanced_steps(len(self.data), self.batch_size)

    def epoch(self, epoch, start=0):
        order = group_balanced_batches(self.ids, self.data.num_groups, self.batch_size, epoch, self.seed)
        dev = self.data.images.device
        for idx in order[start:]:
            idx = idx.to(dev)
            yield self.data.images.index_select(0, idx), self.data.labels.index_select(0, idx), idx


class _PatchTrainBatch(TrainBatch):
    """A TrainBatch that also carries the :class:`~.methods.PatchBatch` the method's loss reads."""

    def __init__(self, patch, index):
        super().__init__(patch.x, patch.y, group=patch.group, index=index)
        self.patch = patch


class PatchMethodAdapter(Method):
    """One stage-2 method (:mod:`.methods`) as an engine :class:`~fastaug.train.method.Method`."""

    def __init__(self, args, trainer, method_name, cfg, translations):
        super().__init__(args, trainer)
        self.name = method_name
        self.data = trainer.train_data.to(trainer.device)  # batches are gathered on the device, once moved
        self.objective = build_patch_method(method_name, cfg, self.data.group_counts(), self.data.group_class,
                                            trainer.device)
        self.translations = translations.to(trainer.device) if self.objective.uses_translations else None
        self.eval_batch_size = cfg.eval_batch_size

    def train_batches(self, trainer):
        if not self.objective.balanced:
            return None
        return _BalancedBatches(self.data, trainer.args.batch_size, trainer.args.seed)

    def make_batch(self, x, y, index, trainer):
        patch = gather_batch(self.data, index, self.translations, trainer.device)
        return _PatchTrainBatch(patch, index)

    def epoch_end(self, epoch, trainer):
        correct, total, _ = group_accuracy(trainer.module, trainer.test_data, self.eval_batch_size, trainer.device)
        out = {**summarise_groups(correct, total, trainer.test_data), **self.objective.epoch_metrics()}
        if trainer.val_data is not None and len(trainer.val_data):
            out.update(validation_summary(*group_accuracy(trainer.module, trainer.val_data, self.eval_batch_size,
                                                          trainer.device), trainer.val_data))
        return out

    def state_dict(self):
        return self.objective.state_dict()

    def load_state_dict(self, state):
        self.objective.load_state_dict(state)


class PatchTrainer(Trainer):
    """The engine with the stage-2 method's loss in its step (everything else is the engine's)."""

    def train_step(self, batch):
        with self.autocast():
            loss, ce, logits = self.method.objective.loss(self.model, batch.patch)
        optimizer_step(loss, self.optimizer, scheduler=self.scheduler, scaler=self.scaler,
                       clip_grad=self.args.clip_grad, parameters=self.module.parameters())
        return ce, logits


class PatchedTrainingStage(Stage):
    """Stage 2 for one (method, seed): an engine run in ``<method>/seed<seed>/`` with the usual outputs.

    Args:
        method: one of :data:`~.methods.PATCH_METHODS`; seed: the classifier's seed.
        cfg: the PatchConfig; args: the engine arguments (``fastaug train``'s namespace, without
            output_dir/seed/augment, set here); train, test: GroupedImageData.
    """

    distributed = False
    needs_translations = False

    def __init__(self, method, seed, cfg, args, train, val, test):
        self.method, self.seed, self.cfg = method, int(seed), cfg
        self.name = os.path.join(method, f"seed{self.seed}")
        self.key = f"{method}/seed{self.seed}"
        self.title = f"stage 2 ({method}, seed {self.seed})"
        self.loop_name = f"patch {method} seed{self.seed}"  # the checkpoint's name and the test kill hook's key
        self.args, self.train, self.val, self.test = args, train, val, test
        self.summary = {}
        self.needs_translations = patch_method_class(method).uses_translations

    def options(self):
        return {**self.cfg.stage2_options(), "method": self.method, "seed": self.seed}

    def run(self, folder, records):
        translations = None
        if self.needs_translations:
            translations = load_translations(os.path.join(os.path.dirname(os.path.dirname(folder)), "translation"),
                                             self.train)
        args = copy.deepcopy(self.args)
        args.output_dir, args.seed, args.augment = folder, self.seed, self.method
        # a stage killed earlier continues from its checkpoint; a fresh one starts (never "no checkpoint yet")
        args.resume = os.path.isfile(os.path.join(folder, "checkpoint.pt"))
        factory = lambda a, trainer: PatchMethodAdapter(a, trainer, self.method, self.cfg, translations)  # noqa: E731
        trainer = PatchTrainer(args, method=factory, data=(self.train, self.val, self.test), loop_name=self.loop_name)
        self.summary = trainer.fit()
        last = trainer.history[-1] if trainer.history else {}
        return {"seconds": self.summary.get("train_seconds", 0.0),
                **{k: last.get(k) for k in ("robust_acc", "aggregate_acc")}}


def final_records(root, methods, seeds):
    """{method: [final metrics record per seed]} and {method: [history per seed]} read from the run folders."""
    finals, histories = {}, {}
    for m in methods:
        for s in seeds:
            path = os.path.join(root, m, f"seed{s}", "metrics.jsonl")
            with open(path) as f:
                history = [json.loads(line) for line in f if line.strip()]
            histories.setdefault(m, []).append(history)
            finals.setdefault(m, []).append(history[-1])
    return finals, histories
