"""The training engine: epoch loop, evaluation, checkpoints and resume, torchrun/DDP, metrics and outputs.

The engine knows no augmentation method: a :class:`~fastaug.train.method.Method` turns each batch into
what the model trains on, says what the step's loss is (:meth:`~fastaug.train.method.Method.loss`,
cross-entropy by default) and keeps its own state (see :mod:`fastaug.train.method`).

Outputs in ``--output-dir`` (written by rank 0 only):

* ``args.json``: the resolved arguments;
* ``metrics.jsonl``: one JSON object per epoch: ``epoch`` (1-based), ``train_loss``, ``train_acc`` (on
  the batches the model trained on), ``test_loss``, ``test_acc``, ``lr`` (the rate the epoch's last
  optimiser step used; the schedule steps per step), ``epoch_seconds`` (training + evaluation),
  ``augment_seconds`` (inside ``Method.augment``), ``images_per_second`` (dataset images consumed per
  second of training), ``train_samples`` (images the model trained on, all ranks),
  ``unreadable_images`` (folder datasets only: the distinct undecodable training images skipped so
  far with ``--skip-unreadable``, all ranks), plus the method's own;
* ``checkpoint.pt``: everything needed to continue (``model`` is the classifier's state_dict);
* ``augmentation.pt`` at the end, for a method that learns an augmentation
  (:meth:`~fastaug.train.method.Method.learned_augmentation`: ``adversarial``, ``random``, ``fixed``,
  ``tanda``, ``influence``): the learned augmentation as one artifact that
  :func:`fastaug.augment.load` reads back as an ``nn.Module``, with :meth:`Trainer.provenance` in its meta;
* ``summary.json`` and ``curves.png`` at the end.

The epochs run on the loop primitive (:mod:`fastaug.train.loop`): checkpoints are written
atomically at every epoch end and every ``--checkpoint-every`` steps, with every random state
(torch CPU/CUDA, Python, NumPy, the augmentation generator of every rank) and the method's state;
the data order of an epoch is a function of (seed, epoch), so ``--resume`` after a SIGKILL at any
moment continues exactly where the checkpoint left off (or starts over, saying so, when the run died
before its first one): on CPU the final weights are bit-identical to an uninterrupted run. The
resume policy is the loop's (``resume="auto" | True | False``; ``--resume`` is True, a pipeline's
stages and ``compare`` pass ``"auto"``).

:func:`train` runs a method's pipeline (:meth:`Method.pipeline`) when it has one, the engine being its
last stage (:class:`ClassifierStage`).
"""
import dataclasses
import json
import os
import time

import torch
import torch.nn.functional as F

from .. import data as D
from ..augment.learned_module import AUGMENTATION_FILE
from ..models import build_model
from . import distributed as dist
from .args import data_seed, method_option_names, replace_args, resolve_defaults, write_args_json
from .batches import IndexedBatches
from .checkpoint import RESUMABLE_CHANGES, CheckpointError, atomic_write_text, hold_folder, run_exists
from .figures import training_curves
from .loop import Loop, autocast, make_scaler, optimizer_step
from .method import build_method
from .optim import build_optimizer, build_scheduler
from .options import Options
from .pipeline import Stage, StageResult
from .registry import method_class, names as method_names
from .rng import derive_seed

__all__ = ["Trainer", "ClassifierStage", "pipeline_inputs", "train", "load_data"]


def load_data(args):
    """(train, val, test) for the arguments: dataset, class subset, validation split, labelled subset.

    ``val`` is None unless ``--val-size`` > 0. The validation split is held out of the training set
    first, then ``--train-size`` draws the class-balanced labelled subset from what is left, both with
    ``--data-seed`` (``--seed`` when unset). ``args`` is only read.

    A folder dataset takes ``--classes``, ``--val-size`` and ``--train-size`` as an in-memory one does
    (the same functions on its labels: the same images chosen, nothing decoded).
    """
    seed = data_seed(args)
    train, test = D.load_dataset(args.dataset, args.data_dir, image_size=args.image_size)
    if args.classes:
        train, test = D.class_subset(train, args.classes), D.class_subset(test, args.classes)
    val = None
    if args.val_size:
        if args.val_size >= len(train):
            raise ValueError(f"--val-size {args.val_size} leaves no training images (the training set has "
                             f"{len(train)})")
        train, val = D.train_val_split(train, val_size=args.val_size, seed=seed)
    if args.train_size:
        if args.train_size > len(train):
            raise ValueError(f"--train-size {args.train_size} is more than the {len(train)} training images")
        train, _ = D.labelled_subset(train, size=args.train_size, seed=seed)
    return train, val, test


class Trainer:
    """One training run: ``Trainer(args).fit()`` returns the summary dict.

    The epochs run on the loop primitive (:class:`fastaug.train.loop.Loop`): the classifier, its
    optimiser, schedule and grad scaler are shared checkpoint parts; the augmentation generator and
    the method's state are per-rank parts.

    Args:
        args: the ``fastaug train`` arguments (an argparse Namespace, e.g. from
            :func:`fastaug.train.args.default_args`), only read: the trainer keeps a resolved copy
            (:func:`~fastaug.train.args.resolve_defaults`) as ``trainer.args``.
        method: a :class:`~fastaug.train.method.Method` subclass to use instead of the one
            ``args.augment`` names (a user's own method, a pipeline's stage method).
        data: optional ``(train, val, test)`` to use instead of loading ``args.dataset``.
        loop_name: the name of the run's :class:`~fastaug.train.loop.Loop` (messages, the checkpoint's
            ``name``, the test kill hook); a pipeline names each engine stage differently.
        options: the method's typed options (default: ``method.Options.from_args(args)``, None for a
            method without options).
        inputs: keyword arguments of the method's constructor: what earlier stages made (e.g.
            ``{"generator": path}`` for TANDA), handed on by a pipeline.
        resume: the resume policy, ``"auto"`` | True | False (default ``bool(args.resume)``).

    Attributes a method may use: ``args`` (resolved), ``model`` (DDP-wrapped under torchrun),
    ``module`` (the classifier itself), ``device``, ``rng`` (this rank's augmentation generator),
    ``dist`` (rank, world), ``is_main``, ``info`` (channels, image_size, num_classes, hflip, dataset),
    ``train_data``, ``val_data``, ``test_data``, ``train_batches`` (the engine's ``(x, y)`` batches, or
    the method's own from :meth:`Method.train_batches`), ``epoch``, ``step_in_epoch``, ``global_step``,
    ``steps_per_epoch``, ``history``, ``output_dir``, ``loop``, :meth:`log`, :meth:`autocast`,
    :meth:`evaluate`, :meth:`save_checkpoint`.
    """

    def __init__(self, args, method=None, data=None, loop_name="train", *, options=None, inputs=None, resume=None):
        self.dist = dist.init_distributed(args.device)
        self.device = self.dist.device
        self.is_main = self.dist.is_main
        self.train_data, self.val_data, self.test_data = data if data is not None else load_data(args)
        self.args = args = resolve_defaults(args, image_side=self.train_data.image_size[0])
        self.output_dir = args.output_dir
        self.info = dict(channels=self.train_data.channels, image_size=tuple(self.train_data.image_size),
                         num_classes=self.train_data.num_classes, hflip=self.train_data.hflip and not args.no_flip,
                         dataset=self.train_data.name)

        torch.manual_seed(args.seed)  # the model's initialisation (the same on every rank)
        self.module = build_model(args.model, self.train_data.num_classes, self.train_data.channels,
                                  mean=self.train_data.mean, std=self.train_data.std).to(self.device)
        self.model = self.module
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        torch.manual_seed(derive_seed(args.seed, "torch", self.dist.rank))  # dropout etc. differ per rank

        kw = dict(seed=args.seed, rank=self.dist.rank, world=self.dist.world, workers=args.workers)
        self.train_batches = D.make_batches(self.train_data, args.batch_size, self.device, train=True, **kw)
        self.test_batches = D.make_batches(self.test_data, args.eval_batch_size, self.device, train=False, **kw)
        self.steps_per_epoch = len(self.train_batches)
        self.amp_dtype = getattr(torch, args.amp_dtype) if args.amp else None
        self.scaler = make_scaler(self.device, self.amp_dtype)
        self.rng = torch.Generator().manual_seed(derive_seed(args.seed, "augment", self.dist.rank))

        cls = method if method is not None else method_class(args.augment)
        self.args = args = replace_args(args, augment=_method_record(cls, args.augment))
        self.method = build_method(cls, args, self, options=options, inputs=inputs)
        own = self.method.train_batches(self)
        if own is not None:  # e.g. group-balanced sampling: the method's batches replace the engine's
            self.train_batches, self.steps_per_epoch = own, len(own)
        # what the epochs iterate: (x, y, index) batches
        self._indexed = own if own is not None else IndexedBatches(self.train_batches)
        self.optimizer = build_optimizer(self.module.parameters(), args)
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, args)

        self.loop = Loop(self.output_dir, name=loop_name, options=self._loop_options(), epochs=args.epochs,
                         steps_per_epoch=self.steps_per_epoch, checkpoint_every=args.checkpoint_every,
                         resume=bool(args.resume) if resume is None else resume, progress=args.progress,
                         show=("loss",), allowed_changes=RESUMABLE_CHANGES + _foreign_options(cls, args.augment))
        self.loop.register("model", self.module)
        self.loop.register("optimizer", self.optimizer)
        self.loop.register("scheduler", self.scheduler)
        if self.scaler is not None:
            self.loop.register("scaler", self.scaler)
        # "augment_generator": the checkpoint's name of ``rng`` (kept, so this release's checkpoints resume)
        self.loop.register("augment_generator", self.rng, per_rank=True)
        self.loop.register("method", self.method, per_rank=True)
        if hasattr(self.train_batches, "unreadable"):  # a folder dataset: the files it skipped so far
            self.loop.register("unreadable_images", self.train_batches, per_rank=True)
        self.earlier_stage_seconds = 0.0  # a pipeline's stages before this one (set by ClassifierStage)
        self.method.setup(self)
        self._prepare_output()

    # ---- the loop's position, for methods ----------------------------------------------------------
    epoch = property(lambda self: self.loop.epoch)
    step_in_epoch = property(lambda self: self.loop.step_in_epoch)
    global_step = property(lambda self: self.loop.global_step)
    history = property(lambda self: self.loop.history)

    @property
    def checkpoint_path(self):
        return self.loop.checkpointer.path

    def log(self, msg):
        """Print on rank 0 (above any progress bar)."""
        self.loop.log(msg)

    def autocast(self):
        """The autocast context of the run (a no-op without ``--amp``)."""
        return autocast(self.device, self.amp_dtype)

    def sync(self):
        """Wait for the device (CUDA) so that host timings measure finished work."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ---- output folder and resume --------------------------------------------------------------
    def _args_dict(self):
        return json.loads(json.dumps(vars(self.args), default=str))

    def _loop_options(self):
        """What a resumed run must match: the arguments and, for a user's own method, its typed options
        (``Trainer(..., options=MyOptions(...))``: they are in no ``args.json``)."""
        record = self._args_dict()
        opts = self.method.options
        if isinstance(opts, Options) and self.args.augment not in method_names():
            own = {k: v for k, v in dataclasses.asdict(opts).items() if k not in record}
            record.update(json.loads(json.dumps(own, default=str)))
        return record

    def _prepare_output(self):
        if self.is_main:
            hold_folder(self.output_dir)  # another process running in this folder is refused, before any write
        _check_checkpoint_not_lost(self.output_dir, self.checkpoint_path)
        resumed = self.loop.resume()  # refuses a folder holding a run unless --resume
        if not resumed and self.is_main:
            write_args_json(self.args, self.output_dir)
        dist.barrier()

    def save_checkpoint(self):
        """Write checkpoint.pt atomically now (every rank must call it: per-rank states are gathered)."""
        self.loop.save()

    # ---- one step ------------------------------------------------------------------------------
    def train_step(self, batch):
        """The method's loss (:meth:`Method.loss <fastaug.train.method.Method.loss>`, under the run's
        autocast; cross-entropy by default) and one optimiser step
        (:func:`~fastaug.train.loop.optimizer_step`); returns ``(loss, logs)`` as the method gave them."""
        with self.autocast():
            loss, logs = self.method.loss(self.model, batch)
        optimizer_step(loss, self.optimizer, scheduler=self.scheduler, scaler=self.scaler,
                       clip_grad=self.args.clip_grad, parameters=self.module.parameters())
        return loss, logs

    def _train_epoch(self, epoch):
        self.model.train()
        self.method.epoch_start(epoch, self)
        meters = self.loop.meters
        batches = iter(self._indexed.epoch(epoch, self.loop.step_in_epoch))
        for _ in self.loop.steps():
            x, y, index = next(batches)
            t0 = time.perf_counter()
            batch = self.method.make_batch(x, y, index, self)
            self.sync()
            t1 = time.perf_counter()
            loss, logs = self.train_step(batch)
            losses, logits = logs.get("losses"), logs.get("logits")
            if losses is None:  # a method's loss without per-sample values: every sample gets the mean
                losses = loss.detach().expand(batch.y.shape[0])
            self.method.after_step(batch, losses, self)
            extra = {k: v * losses.numel() for k, v in logs.items() if k not in ("losses", "logits")}
            if logits is not None:
                extra["correct"] = (logits.argmax(1) == batch.y).sum()
            meters.add(n=losses.numel(), loss=losses.sum(), images=batch.source_images or x.shape[0],
                       augment_seconds=t1 - t0, **extra)

    # ---- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, batches=None):
        """Mean loss and accuracy of the classifier over ``batches`` (the test set by default), all ranks."""
        batches = self.test_batches if batches is None else batches
        was_training = self.module.training
        self.module.eval()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        for x, y in batches.epoch(0):
            with self.autocast():
                logits = self.module(x.float().div_(255.0))
            sums[0] += F.cross_entropy(logits.float(), y, reduction="sum")
            sums[1] += (logits.argmax(1) == y).sum()
            sums[2] += y.numel()
        self.module.train(was_training)
        dist.all_reduce_sum(sums)
        loss, correct, n = sums.tolist()
        return loss / max(n, 1.0), correct / max(n, 1.0)

    # ---- epochs ----------------------------------------------------------------------------------
    def _end_epoch(self, epoch):
        extra = self.method.epoch_end(epoch, self) or {}
        train_seconds = self.loop.epoch_seconds
        tick = time.perf_counter()
        test_loss, test_acc = self.evaluate()
        epoch_seconds = train_seconds + time.perf_counter() - tick
        sums = self.loop.meters.all_reduce()
        seen = sums["count"]
        own = {k: v / max(seen, 1.0) for k, v in sums.items()
               if k not in ("count", "loss", "correct", "images", "augment_seconds")}  # a loss's extra logs
        record = {
            "epoch": epoch + 1, "train_loss": sums.get("loss", 0.0) / max(seen, 1.0),
            "train_acc": sums.get("correct", 0.0) / max(seen, 1.0),
            "test_loss": test_loss, "test_acc": test_acc, "lr": self._last_step_lr(),
            "epoch_seconds": epoch_seconds, "augment_seconds": self.loop.meters.sums().get("augment_seconds", 0.0),
            "images_per_second": sums.get("images", 0.0) / max(train_seconds, 1e-9), "train_samples": int(seen),
        }
        if hasattr(self.train_batches, "unreadable"):
            record["unreadable_images"] = self._unreadable_images()
        record.update(own)
        record.update(extra)
        self.loop.end_epoch(record)
        if self.is_main:
            self._write_curves()
        self.log(f"epoch {epoch + 1}/{self.args.epochs}  train loss {record['train_loss']:.4f} acc "
                 f"{record['train_acc']:.4f} | test loss {test_loss:.4f} acc {test_acc:.4f} | lr {record['lr']:.3g} | "
                 f"{record['epoch_seconds']:.1f} s (augment {record['augment_seconds']:.1f} s), "
                 f"{record['images_per_second']:.0f} img/s")

    def _last_step_lr(self):
        """The learning rate the epoch's last optimiser step used. The schedule steps once per step, so
        the optimiser's rate now is the next step's (0 after a cosine run's last step); this one comes
        from the (checkpointed) schedule, so a resumed epoch reports what an uninterrupted one does."""
        s = self.scheduler
        return s.base_lrs[0] * s.lr_lambdas[0](max(s.last_epoch - 1, 0))

    def _unreadable_images(self):
        """The distinct training images skipped as undecodable so far, over every rank (a padded shard
        may repeat a file on two ranks: the union counts it once)."""
        return len(set().union(*dist.all_gather_object(set(self.train_batches.unreadable))))

    def _write_curves(self):
        training_curves(self.history, os.path.join(self.output_dir, "curves.png"),
                        title=f"{self.args.dataset} / {self.args.model} / --augment {self.args.augment}")

    def summary(self):
        """Final and best test accuracy, time and throughput of the run so far.

        ``train_seconds`` sums the epochs, ``pretrain_seconds`` is the method's own work before them
        (:meth:`Method.pretrain_seconds`), ``total_seconds`` is both."""
        h = self.history
        if not h:
            return {}
        best = max(h, key=lambda r: r["test_acc"])
        train_s = sum(r["epoch_seconds"] for r in h)
        pre_s = float(self.method.pretrain_seconds()) + self.earlier_stage_seconds
        return {
            "dataset": self.args.dataset, "model": self.args.model, "augment": self.args.augment,
            "seed": self.args.seed, "epochs": len(h), "train_images": len(self.train_data),
            "final_test_acc": h[-1]["test_acc"], "final_test_loss": h[-1]["test_loss"],
            "best_test_acc": best["test_acc"], "best_epoch": best["epoch"],
            "total_seconds": train_s + pre_s, "train_seconds": train_s, "pretrain_seconds": pre_s,
            "augment_seconds": sum(r["augment_seconds"] for r in h),
            "images_per_second": sum(r["images_per_second"] for r in h) / len(h),
        }

    def provenance(self):
        """What the run's learned augmentation was learned from, for its artifact's meta (the module adds
        channels, image size, value range, its recipe and options; the artifact, the fastaug version).
        No path and no time: a resumed run writes what an uninterrupted one does."""
        a = self.args
        record = {"dataset": self.info["dataset"], "method": self.method.name, "model": a.model, "seed": a.seed,
                  "epochs": len(self.history), "train_images": len(self.train_data)}
        if a.classes:
            record["classes"] = list(a.classes)
        return record

    def write_augmentation(self):
        """Write the method's :meth:`~fastaug.train.method.Method.learned_augmentation` to
        ``augmentation.pt`` in the run folder (atomically); returns its path, None for a method that learns
        none. Main process only."""
        module = self.method.learned_augmentation(self)
        if module is None:
            return None
        return module.save(os.path.join(self.output_dir, AUGMENTATION_FILE), meta=self.provenance())

    def fit(self):
        """Train the remaining epochs, then write augmentation.pt (a method that learns one), summary.json
        and the figures; returns the summary."""
        for epoch in self.loop.epochs_left():
            self._train_epoch(epoch)
            self._end_epoch(epoch)
        self.method.finish(self)
        summary = self.summary()
        if self.is_main:
            self.write_augmentation()
            self.loop.write_metrics()
            self._write_curves()
            atomic_write_text(json.dumps(summary, indent=2) + "\n", os.path.join(self.output_dir, "summary.json"))
        dist.barrier()
        return summary


def _check_checkpoint_not_lost(folder, checkpoint):
    """Refuse a folder whose metrics.jsonl records epochs (or which has a summary.json) but has no checkpoint:
    the engine writes the checkpoint before the epoch's record, so the checkpoint was deleted or moved, and
    starting over (what --resume does in a folder killed before its first checkpoint) would overwrite the
    run's records without a word."""
    if folder is None or checkpoint is None or os.path.isfile(checkpoint):
        return
    epochs = 0
    try:
        with open(os.path.join(folder, "metrics.jsonl")) as f:
            epochs = sum(1 for line in f if line.strip())
    except OSError:
        pass
    finished = os.path.isfile(os.path.join(folder, "summary.json"))
    if epochs or finished:
        what = f"{epochs} epoch{'s' if epochs != 1 else ''} in metrics.jsonl" if epochs else "a summary.json"
        raise CheckpointError(f"{folder} holds a run ({what}) but no {os.path.basename(checkpoint)} (deleted or "
                              f"moved?): it cannot be continued, and starting over would overwrite its records; put "
                              f"the checkpoint back, or choose another --output-dir")


def _method_record(cls, augment):
    """What ``args.json``, the checkpoint and ``summary.json`` record as the run's ``augment``: its
    ``--augment`` name when ``cls`` is a registered method (``Trainer(args, method=RandAugmentMethod)``
    records ``randaugment`` whatever ``args.augment`` says), ``augment`` itself for a method outside the
    registry trained under a name of its own (model patching's ``erm``, ``camel``...), and otherwise,
    a user's own method, ``"module:Class"``: a run of a method that ``fastaug train`` cannot build is
    never resumed or rerun by it with another method (its ``--config`` refuses the name in one line)."""
    registered = method_names()
    if augment in registered and method_class(augment) is cls:
        return augment
    same = [name for name in registered if method_class(name) is cls]
    if same:
        return same[0]
    return augment if augment not in registered else f"{cls.__module__}:{cls.__qualname__}"


def _foreign_options(cls, augment):
    """The options of the other ``--augment`` methods, which this run's method does not read: they may
    differ on resume (a library run's arguments hold every method's options at their defaults, the command
    line's only the chosen method's, so either resumes the other's run)."""
    own = method_option_names([augment]) if augment in method_names() else set()
    if getattr(cls, "Options", None) is not None:
        own |= {f.name for f in dataclasses.fields(cls.Options)}
    return tuple(sorted(method_option_names() - own))


def pipeline_inputs(args, data=None):
    """What every stage of a pipeline starts from: ``(args, data, device)`` with ``args`` the resolved
    arguments (a new namespace, as :class:`Trainer` resolves them), ``data`` = (train, val, test)
    loaded once for every stage, and this process's device (joining torchrun's group if there is one)."""
    data = data if data is not None else load_data(args)
    args = resolve_defaults(args, image_side=data[0].image_size[0])
    return args, data, dist.init_distributed(args.device).device


class ClassifierStage(Stage):
    """The engine as the last stage of a pipeline: trains the classifier in the run folder itself, so
    its outputs (``metrics.jsonl``, ``checkpoint.pt``, ``summary.json``...) are those of any other
    ``--augment`` run. The engine's own checkpoint handles resume; ``summary.json``'s
    ``pretrain_seconds`` adds the earlier stages' seconds (each counted once).

    Args:
        args: the run's arguments; data: as :class:`Trainer`'s.
        method: the Method subclass (default: the one ``args.augment`` names).
        inputs: {constructor keyword: (stage name, artifact name)}: the earlier stages' artifacts the
            method is built with (e.g. ``{"generator": ("tanda_generator", "generator")}``).
        needs: the earlier stages (names) whose results it receives: every one it takes an input from,
            and those whose seconds count in ``pretrain_seconds``.
        resume: the resume policy of the engine's run (default ``bool(args.resume)``).
    """

    name, distributed, marker = "", True, False

    def __init__(self, args, method=None, data=None, key="classifier", title="the classifier", inputs=None,
                 needs=(), resume=None):
        self.args, self.method, self.data, self.key, self.title = args, method, data, key, title
        self.inputs = dict(inputs or {})
        self.needs = tuple(dict.fromkeys(list(needs) + [stage for stage, _ in self.inputs.values()]))
        self.resume = bool(args.resume) if resume is None else resume
        self.summary = {}

    def check(self, root):
        # refuse now, before the earlier stages run, what the engine would refuse after them
        started = os.path.isfile(os.path.join(root, "checkpoint.pt"))
        if self.resume is False and started:
            raise run_exists(root)
        if not started and dist.rank_and_world()[0] == 0:
            # the run's args.json now, as the engine will write it, not once the earlier stages are done: a run
            # killed in an earlier stage is continued by `fastaug train --output-dir D --resume`, which reads
            # its arguments there (without it, the defaults: another method on other data)
            cls = self.method if self.method is not None else method_class(self.args.augment)
            write_args_json(replace_args(self.args, augment=_method_record(cls, self.args.augment)), root)

    def run(self, folder, inputs):
        kwargs = {k: inputs[stage].artifact(name) for k, (stage, name) in self.inputs.items()}
        trainer = Trainer(self.args, method=self.method, data=self.data, loop_name="train", inputs=kwargs,
                          # --resume here continues the classifier or starts it: "auto" (True would say "the run
                          # stopped before its first checkpoint" of a classifier that simply had not started yet,
                          # the run having been killed in an earlier stage); check() already refused resume=False
                          resume="auto" if self.resume is True else self.resume)
        trainer.earlier_stage_seconds = sum(r.seconds for r in inputs.values())
        self.summary = trainer.fit()
        last = trainer.history[-1] if trainer.history else {}
        return StageResult(metrics={**{k: self.summary.get(k) for k in ("final_test_acc", "final_test_loss")},
                                    **{k: last[k] for k in ("val_loss", "val_acc") if k in last}},
                           seconds=self.summary.get("train_seconds", 0.0))


def train(args, method=None, data=None, resume=None):
    """Run ``fastaug train`` with parsed ``args`` (only read); returns the summary dict.

    A method with a pipeline (:meth:`Method.pipeline`, e.g. TANDA, the influence loop) runs it, its
    last stage being the engine (:class:`ClassifierStage`); any other method is one engine run.
    ``resume``: the policy (``"auto"`` | True | False; default ``bool(args.resume)``)."""
    if method is None:
        pipeline = method_class(args.augment).pipeline(args, data, resume=resume)
        if pipeline is not None:
            pipeline.run()
            last = pipeline.stages[-1]
            return getattr(last, "summary", None) or {}
    return Trainer(args, method=method, data=data, resume=resume).fit()
