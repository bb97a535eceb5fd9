"""The training engine: epoch loop, evaluation, checkpoints and resume, torchrun/DDP, metrics and outputs.

The engine knows no augmentation method: a :class:`~fastaug.train.method.Method` turns each batch into
what the model trains on and keeps its own state (see :mod:`fastaug.train.method`).

Outputs in ``--output-dir`` (written by rank 0 only):

* ``args.json``: the resolved arguments;
* ``metrics.jsonl``: one JSON object per epoch: ``epoch`` (1-based), ``train_loss``, ``train_acc`` (on
  the batches the model trained on), ``test_loss``, ``test_acc``, ``lr`` (at the epoch's last step),
  ``epoch_seconds`` (training + evaluation), ``augment_seconds`` (inside ``Method.augment``),
  ``images_per_second`` (dataset images consumed per second of training), ``train_samples`` (images
  the model trained on, all ranks), plus the method's own;
* ``checkpoint.pt``: everything needed to continue (``model`` is the classifier's state_dict);
* ``summary.json`` and ``curves.png`` at the end.

Resume: checkpoints are written atomically at every epoch end and every ``--checkpoint-every``
steps, with every random state (torch CPU/CUDA, Python, NumPy, the augmentation generator of
every rank) and the method's state; the data order of an epoch is a function of (seed, epoch), so
``--resume`` after a SIGKILL at any moment continues exactly where the checkpoint left off: on CPU
the final weights are bit-identical to an uninterrupted run.
"""
import copy
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import data as D
from ..models import build_model
from . import distributed as dist
from .args import resolve_defaults
from .checkpoint import (FORMAT, CheckpointError, atomic_save, atomic_write_text, check_same_args,
                         load_checkpoint)
from .figures import training_curves
from .method import Method
from .optim import build_optimizer, build_scheduler
from .registry import method_class
from .rng import capture_rng, derive_seed, restore_rng

__all__ = ["Trainer", "train", "load_data"]


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def load_data(args):
    """(train, val, test) for the arguments: dataset, class subset, validation split, labelled subset.

    ``val`` is None unless ``--val-size`` > 0. The validation split is held out of the training set
    first, then ``--train-size`` draws the class-balanced labelled subset from what is left.
    """
    if args.data_seed is None:
        args.data_seed = args.seed
    train, test = D.load_dataset(args.dataset, args.data_dir, image_size=args.image_size)
    if args.classes:
        if not isinstance(train, D.ImageData):
            raise ValueError("--classes works with the in-memory datasets (mnist5k, cifar10, cifar100)")
        train, test = D.class_subset(train, args.classes), D.class_subset(test, args.classes)
    val = None
    if args.val_size:
        if not isinstance(train, D.ImageData):
            raise ValueError("--val-size works with the in-memory datasets (mnist5k, cifar10, cifar100)")
        train, val = D.train_val_split(train, val_size=args.val_size, seed=args.data_seed)
    if args.train_size:
        if not isinstance(train, D.ImageData):
            raise ValueError("--train-size works with the in-memory datasets (mnist5k, cifar10, cifar100)")
        if args.train_size > len(train):
            raise ValueError(f"--train-size {args.train_size} is more than the {len(train)} training images")
        train, _ = D.labelled_subset(train, size=args.train_size, seed=args.data_seed)
    return train, val, test


class Trainer:
    """One training run: ``Trainer(args).fit()`` returns the summary dict.

    Args:
        args: the ``fastaug train`` arguments (an argparse Namespace, e.g. from
            :func:`fastaug.train.args.default_args`); defaults are resolved here (a copy is kept).
        method: a Method subclass (or factory ``(args, trainer) -> Method``) to use instead of the
            one ``args.augment`` names; loops that compose the engine (e.g. a retraining stage) pass
            their own.
        data: optional ``(train, val, test)`` to use instead of loading ``args.dataset``.

    Attributes a method may use: ``args``, ``model`` (DDP-wrapped under torchrun), ``module`` (the
    classifier itself), ``device``, ``generator`` (this rank's augmentation generator), ``dist``
    (rank, world), ``is_main``, ``train_data``, ``val_data``, ``test_data``, ``epoch``,
    ``global_step``, ``steps_per_epoch``, ``output_dir``, :meth:`log`, :meth:`autocast`,
    :meth:`evaluate`, :meth:`save_checkpoint`.
    """

    def __init__(self, args, method=None, data=None):
        self.args = args = copy.deepcopy(args)
        self.dist = dist.init_distributed(args.device)
        self.device = self.dist.device
        self.is_main = self.dist.is_main
        self.train_data, self.val_data, self.test_data = data if data is not None else load_data(args)
        resolve_defaults(args, image_side=self.train_data.image_size[0])
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
        self.optimizer = build_optimizer(self.module.parameters(), args)
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, args)
        self.amp_dtype = getattr(torch, args.amp_dtype) if args.amp else None
        if args.amp and self.device.type != "cuda" and args.amp_dtype == "float16":
            raise ValueError("--amp-dtype float16 needs CUDA; use bfloat16 on CPU")
        self.scaler = torch.amp.GradScaler("cuda") if args.amp and args.amp_dtype == "float16" else None
        self.generator = torch.Generator().manual_seed(derive_seed(args.seed, "augment", self.dist.rank))

        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.history, self.accum = [], None
        factory = method if method is not None else method_class(args.augment)
        self.method = factory(args, self)
        if not isinstance(self.method, Method):
            raise TypeError(f"the method factory must return a fastaug.train.Method, got {type(self.method).__name__}")
        self.method.setup(self)
        self._prepare_output()

    # ---- helpers for methods -------------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return os.path.join(self.output_dir, "checkpoint.pt")

    def log(self, msg):
        """Print on rank 0 (above any progress bar)."""
        if self.is_main:
            tqdm.write(str(msg), file=sys.stdout)
            sys.stdout.flush()

    def autocast(self):
        """The autocast context of the run (a no-op without ``--amp``)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ---- output folder and resume --------------------------------------------------------------
    def _args_dict(self):
        return json.loads(json.dumps(vars(self.args), default=str))

    def _prepare_output(self):
        exists = os.path.isfile(self.checkpoint_path)
        if self.args.resume:
            self._resume()
        elif exists:
            raise CheckpointError(f"{self.output_dir} already holds a run (checkpoint.pt): pass --resume to continue "
                                  f"it, or choose another --output-dir")
        elif self.is_main:
            os.makedirs(self.output_dir, exist_ok=True)
            atomic_write_text(json.dumps(self._args_dict(), indent=2) + "\n", os.path.join(self.output_dir, "args.json"))
        dist.barrier()

    def _resume(self):
        state = load_checkpoint(self.checkpoint_path)
        check_same_args(state["args"], self._args_dict())
        if state["world"] != self.dist.world:
            raise CheckpointError(f"the checkpoint was written by {state['world']} processes, this run has "
                                  f"{self.dist.world}: resume with the same torchrun --nproc_per_node")
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch, self.global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        self.history, self.accum = state["history"], state["accum"]
        self.method.load_state_dict(state["method"][self.dist.rank])
        restore_rng(state["rng"][self.dist.rank], {"augment": self.generator})
        self.log(f"resumed {self.output_dir} at epoch {self.epoch + 1}, step {self.step_in_epoch} "
                 f"(global step {self.global_step})")

    def save_checkpoint(self):
        """Write checkpoint.pt atomically (every rank must call it: random states are gathered)."""
        rng = dist.all_gather_object(capture_rng({"augment": self.generator}))
        method = dist.all_gather_object(_to_cpu(self.method.state_dict()))
        if not self.is_main:
            return
        state = {
            "format": FORMAT, "args": self._args_dict(), "world": self.dist.world,
            "model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "history": self.history, "accum": self._accum_values(), "rng": rng, "method": method,
        }
        atomic_save(state, self.checkpoint_path)

    # ---- one step ------------------------------------------------------------------------------
    def _new_accum(self):
        z = lambda: torch.zeros((), dtype=torch.float64, device=self.device)  # noqa: E731
        return {"loss": z(), "correct": z(), "seen": z(), "images": 0, "train_seconds": 0.0,
                "augment_seconds": 0.0, "epoch_seconds": 0.0}

    def _accum_values(self):
        if self.accum is None:
            return None
        return {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in self.accum.items()}

    def _step(self, batch):
        with self.autocast():
            logits = self.model(batch.x)
        losses = F.cross_entropy(logits.float(), batch.y, reduction="none", label_smoothing=self.args.label_smoothing)
        loss = losses.mean() if batch.weight is None else (losses * batch.weight).sum() / batch.weight.sum()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.args.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.args.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return losses.detach(), logits.detach()

    def _train_epoch(self, epoch):
        self.model.train()
        self.method.epoch_start(epoch, self)
        acc = self._new_accum()
        if self.accum is not None:  # resuming mid-epoch: continue the running sums
            for k, v in self.accum.items():
                acc[k] = acc[k].fill_(v) if isinstance(acc[k], torch.Tensor) else v
        self.accum = acc
        bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, desc=f"epoch {epoch + 1}/{self.args.epochs}",
                   unit="step", leave=False, dynamic_ncols=True,
                   disable=(not self.is_main or not self.args.progress) or None)
        tick = time.perf_counter()
        for x, y in self.train_batches.epoch(epoch, self.step_in_epoch):
            t0 = time.perf_counter()
            batch = self.method.augment(x, y, self)
            self._sync()
            t1 = time.perf_counter()
            losses, logits = self._step(batch)
            self.method.after_step(batch, losses, self)
            acc["loss"] += losses.sum()
            acc["correct"] += (logits.argmax(1) == batch.y).sum()
            acc["seen"] += losses.numel()
            acc["images"] += batch.source_images or x.shape[0]
            acc["augment_seconds"] += t1 - t0
            self.step_in_epoch += 1
            self.global_step += 1
            now = time.perf_counter()
            acc["train_seconds"] += now - tick
            acc["epoch_seconds"] += now - tick
            tick = now
            bar.update(1)
            if bar.n % 10 == 0 or bar.n == self.steps_per_epoch:
                bar.set_postfix(loss=f"{acc['loss'].item() / max(1.0, acc['seen'].item()):.3f}")
            if self.args.checkpoint_every and self.global_step % self.args.checkpoint_every == 0 \
                    and self.step_in_epoch < self.steps_per_epoch:
                self.save_checkpoint()
                tick = time.perf_counter()  # checkpoint I/O is not training time
        bar.close()

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
        acc = self.accum
        extra = self.method.epoch_end(epoch, self) or {}
        tick = time.perf_counter()
        test_loss, test_acc = self.evaluate()
        acc["epoch_seconds"] += time.perf_counter() - tick
        sums = torch.tensor([acc["loss"].item(), acc["correct"].item(), acc["seen"].item(), float(acc["images"])],
                            dtype=torch.float64, device=self.device)
        dist.all_reduce_sum(sums)
        loss, correct, seen, images = sums.tolist()
        record = {
            "epoch": epoch + 1, "train_loss": loss / max(seen, 1.0), "train_acc": correct / max(seen, 1.0),
            "test_loss": test_loss, "test_acc": test_acc, "lr": self.optimizer.param_groups[0]["lr"],
            "epoch_seconds": acc["epoch_seconds"], "augment_seconds": acc["augment_seconds"],
            "images_per_second": images / max(acc["train_seconds"], 1e-9), "train_samples": int(seen),
        }
        record.update(extra)
        self.history.append(record)
        self.epoch, self.step_in_epoch, self.accum = epoch + 1, 0, None
        self.save_checkpoint()
        if self.is_main:
            self._write_metrics()
        self.log(f"epoch {epoch + 1}/{self.args.epochs}  train loss {record['train_loss']:.4f} acc "
                 f"{record['train_acc']:.4f} | test loss {test_loss:.4f} acc {test_acc:.4f} | lr {record['lr']:.3g} | "
                 f"{record['epoch_seconds']:.1f} s (augment {record['augment_seconds']:.1f} s), "
                 f"{record['images_per_second']:.0f} img/s")

    def _write_metrics(self):
        text = "".join(json.dumps(r) + "\n" for r in self.history)
        atomic_write_text(text, os.path.join(self.output_dir, "metrics.jsonl"))
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
        pre_s = float(self.method.pretrain_seconds())
        return {
            "dataset": self.args.dataset, "model": self.args.model, "augment": self.args.augment,
            "seed": self.args.seed, "epochs": len(h), "train_images": len(self.train_data),
            "final_test_acc": h[-1]["test_acc"], "final_test_loss": h[-1]["test_loss"],
            "best_test_acc": best["test_acc"], "best_epoch": best["epoch"],
            "total_seconds": train_s + pre_s, "train_seconds": train_s, "pretrain_seconds": pre_s,
            "augment_seconds": sum(r["augment_seconds"] for r in h),
            "images_per_second": sum(r["images_per_second"] for r in h) / len(h),
        }

    def fit(self):
        """Train the remaining epochs, then write summary.json and the figures; returns the summary."""
        if not self.method.trains_classifier:  # the method's run ends before training (a subset of its stages)
            self.method.finish(self)
            dist.barrier()
            return {}
        for epoch in range(self.epoch, self.args.epochs):
            self._train_epoch(epoch)
            self._end_epoch(epoch)
        self.method.finish(self)
        summary = self.summary()
        if self.is_main:
            self._write_metrics()
            atomic_write_text(json.dumps(summary, indent=2) + "\n", os.path.join(self.output_dir, "summary.json"))
        dist.barrier()
        return summary


def train(args, method=None, data=None):
    """Run ``fastaug train`` with parsed ``args``; returns the summary dict."""
    return Trainer(args, method=method, data=data).fit()
