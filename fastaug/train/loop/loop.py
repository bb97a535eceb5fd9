"""The resumable step loop every training loop of the package runs on.

::

    loop = Loop(folder, name="stage 2 (GAN)", options=opts, epochs=1, steps_per_epoch=iters,
                checkpoint_every=100, log_every=50)
    loop.register("generator_net", G); loop.register("optimizer", opt)
    loop.register("rng", generator, per_rank=True)       # CPU/CUDA generators, data positions, ...
    for epoch, step in loop:                               # resumes first (see ``resume``)
        loss = ...                                         # the caller's forward and loss
        optimizer_step(loss, opt)
        loop.meters.add(loss=loss.detach())                # running means, checkpointed with the loop

After step ``s`` the loop counts it, records the meters' means (every ``log_every`` steps and after
its last step), calls what :meth:`Loop.every` registered (an evaluation every K steps, say), then
(every ``checkpoint_every`` global steps, and after every epoch) saves the checkpoint, so a process killed at any moment resumes from the last complete one;
data orders are functions of (seed, epoch) and every random state is a registered part, so the
resumed run replays exactly what the lost steps did (bit-identical on CPU).

With ``for epoch in loop.epochs_left(): for step in loop.steps(): ...; loop.end_epoch(record)`` the caller
writes its own per-epoch record (evaluation, extra metrics) before the epoch's checkpoint.
"""
import json
import os
import signal
import sys
import time

from tqdm.auto import tqdm

from ...figures import pyplot

from .. import distributed as dist
from ..checkpoint import RESUMABLE_CHANGES, atomic_write_text, hold_folder, run_exists
from ..rng import GlobalRandomState
from .checkpointer import Checkpointer
from .meters import Meters

__all__ = ["Loop", "KILL_ENV"]

#: Test hook: ``FASTAUG_TEST_KILL="<loop name>:<global step>"`` makes that loop SIGKILL its own
#: process right after finishing that step (and any checkpoint due at it), as a crash would.
KILL_ENV = "FASTAUG_TEST_KILL"


def on_terminal():
    """Whether stderr, where tqdm draws, is a terminal. The loops' bars (tqdm's ``disable=None``) are drawn
    only there; the other bars of a command ask this too, so a log file (nohup, CI) gets no \\r-bars."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _kill_step(name):
    spec = os.environ.get(KILL_ENV, "")
    target, _, step = spec.rpartition(":")
    return int(step) if spec and target == name else None


class Loop:
    """A resumable loop over ``epochs`` x ``steps_per_epoch`` steps with checkpoints, meters, a tqdm bar
    and a ``metrics.jsonl`` writer.

    Args:
        folder: where ``checkpoint.pt`` (``checkpoint_name``) and ``metrics.jsonl`` go (rank 0 writes);
            None for a loop in memory (no checkpoints, no files: e.g. a benchmark or a short fit).
        name: what the loop is, shown on the bar and in messages, stored in the checkpoint (a checkpoint
            of another loop is refused) and the key of the test kill hook (:data:`KILL_ENV`).
        options: JSON-able dict of the options the result depends on (checked on resume).
        allowed_changes: option names that may differ on resume.
        epochs, steps_per_epoch: the loop's length (``steps_per_epoch`` may be a ``len()``-able).
        checkpoint_every: save every this many global steps (0: only after each epoch).
        log_every: when > 0, append ``{step_key: global_step, **meters.means()}`` to the history (and
            reset the meters) every this many steps and after the loop's last step; when 0,
            :meth:`end_epoch` records per epoch.
        step_key: the name of the step count in those records (``"step"``; a stage may say ``"iteration"``).
        record_epochs: False when the caller appends its own records to ``history`` (then
            :meth:`end_epoch` without a record appends nothing).
        resume: the one resume policy of the package (the engine's ``resume=`` is passed here):
            ``"auto"`` continues from a checkpoint when there is one (pipeline stages, ``compare``);
            True continues, or starts from the beginning saying so in one line when the folder has
            no checkpoint yet (``--resume`` after a kill before the first one); False refuses a folder
            that already holds a checkpoint (:func:`~fastaug.train.checkpoint.run_exists`).
        progress: show the tqdm bar (rank 0 only).
        show: meter names whose means the bar shows.
        distributed: False for a loop that cannot run on several processes: started under torchrun, it
            raises ValueError in one sentence.
        log: ``log(message)`` for the one-line messages (default: print on rank 0).

    Attributes: ``epoch`` (0-based, the current one), ``step_in_epoch``, ``global_step``, ``history``
    (the records so far), ``seconds`` (time inside the loop's steps, checkpoint writing excluded, counted
    once across resumes), ``epoch_seconds`` (the same for the current epoch), ``meters``
    (:class:`Meters`), ``checkpointer``, ``resumed``.
    """

    def __init__(self, folder, *, name="train", options=None, allowed_changes=RESUMABLE_CHANGES, epochs=1,
                 steps_per_epoch, checkpoint_every=0, log_every=0, step_key="step", record_epochs=True, resume="auto",
                 progress=True, show=(), distributed=True, checkpoint_name="checkpoint.pt",
                 metrics_name="metrics.jsonl", log=None):
        if resume not in ("auto", True, False):
            raise ValueError(f"resume must be 'auto', True or False, got {resume!r}")
        if not distributed:
            dist.require_single_process(name)
        self.folder, self.name = folder, name
        self.epochs, self.steps_per_epoch = int(epochs), int(steps_per_epoch if isinstance(steps_per_epoch, int)
                                                             else len(steps_per_epoch))
        self.checkpoint_every, self.log_every = int(checkpoint_every or 0), int(log_every or 0)
        self.step_key, self._every = step_key, []
        self.record_epochs = bool(record_epochs) and not self.log_every
        self.resume_policy, self.progress, self.show = resume, progress, tuple(show)
        self.metrics_path = os.path.join(folder, metrics_name) if metrics_name and folder else None
        self.rank, self.world = dist.rank_and_world()
        self.is_main = self.rank == 0
        self._log = log
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.history, self.seconds, self.epoch_seconds = [], 0.0, 0.0
        self.resumed, self._started = False, False
        self.meters = Meters()
        self.checkpointer = Checkpointer(os.path.join(folder, checkpoint_name) if folder else None, name=name,
                                         options=options, allowed_changes=allowed_changes)
        self.checkpointer.register("loop", self, per_rank=True)
        self.checkpointer.register("rng", GlobalRandomState(), per_rank=True)
        self._kill_at = _kill_step(name)

    # ---- registry --------------------------------------------------------------------------------
    def register(self, name, part, per_rank=False):
        """Add a stateful part (module, optimiser, scheduler, scaler, generator, method...) to the checkpoint."""
        return self.checkpointer.register(name, part, per_rank=per_rank)

    def every(self, n, fn):
        """Call ``fn(global_step)`` after every ``n``-th global step and after the loop's last step, after
        the ``log_every`` record and before the checkpoint due at that step (e.g. an evaluation whose
        result is part of the checkpointed state). The cadence is the loop's: a resumed loop keeps it."""
        if int(n) < 1:
            raise ValueError(f"every() needs n >= 1, got {n}")
        self._every.append((int(n), fn))
    def state_dict(self):
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "history": self.history, "seconds": self.seconds,
                "epoch_seconds": self.epoch_seconds, "meters": self.meters.state_dict()}

    def load_state_dict(self, state):
        self.epoch, self.step_in_epoch, self.global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        self.history, self.seconds = list(state["history"]), float(state["seconds"])
        self.epoch_seconds = float(state["epoch_seconds"])
        self.meters.load_state_dict(state["meters"])

    # ---- messages and outputs --------------------------------------------------------------------
    def log(self, msg):
        """Print one line on rank 0 (above any progress bar)."""
        if self._log is not None:
            self._log(msg)
        elif self.is_main:
            tqdm.write(str(msg), file=sys.stdout)
            sys.stdout.flush()

    def write_metrics(self):
        """Write the history to ``metrics.jsonl`` atomically (rank 0)."""
        if self.is_main and self.metrics_path:
            atomic_write_text("".join(json.dumps(r) + "\n" for r in self.history), self.metrics_path)

    @property
    def done(self):
        return self.epoch >= self.epochs

    # ---- resume ----------------------------------------------------------------------------------
    def resume(self):
        """Load the checkpoint as the ``resume`` policy says; returns True when the loop continues one.
        Called by the first iteration when not called before (after every part is registered)."""
        self._started = True
        if self.folder is not None and self.is_main:
            hold_folder(self.folder)  # one process at a time in a loop's folder
            # matplotlib imported before the first step, not at the first epoch's figures: a Ctrl-C that lands
            # in the first import of its C extensions turns into ImportError("initialization failed") and
            # can abort the interpreter at exit ("Fatal Python error: PyThreadState_Get")
            pyplot()
        exists = self.checkpointer.exists()
        if self.resume_policy is False:
            if exists:
                raise run_exists(self.folder)
            return False
        if not exists:
            if self.resume_policy is True:
                self.log(f"no checkpoint in {self.folder} yet (the run stopped before its first one): "
                         f"starting {self.name} from the beginning")
            return False
        self.checkpointer.load()
        self.resumed = True
        if self.done:  # killed after its last step, before its last outputs (or run again): nothing to train
            self.log(f"resumed {self.name} in {self.folder} after its last epoch ({self.epochs}, global step "
                     f"{self.global_step}): nothing left to train")
        else:
            self.log(f"resumed {self.name} in {self.folder} at epoch {self.epoch + 1}, step {self.step_in_epoch} "
                     f"(global step {self.global_step})")
        return True

    def save(self):
        """Write the checkpoint now (every rank must call it under DDP)."""
        self.checkpointer.save()

    # ---- iteration -------------------------------------------------------------------------------
    def epochs_left(self):
        """The remaining epoch numbers (0-based), resuming first."""
        if not self._started:
            self.resume()
        while self.epoch < self.epochs:
            yield self.epoch

    def steps(self):
        """The remaining steps of the current epoch (0-based step numbers). After each step: count it,
        time it, record means every ``log_every`` steps, checkpoint every ``checkpoint_every``."""
        if not self._started:
            self.resume()
        if self.done:  # resumed after its last epoch (killed before the caller's last outputs): no step is left
            return
        bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, unit="step", leave=False,
                   dynamic_ncols=True, disable=(not self.is_main or not self.progress) or None,
                   desc=f"{self.name} {self.epoch + 1}/{self.epochs}" if self.epochs > 1 else self.name)
        tick = time.perf_counter()
        try:
            while self.step_in_epoch < self.steps_per_epoch:
                yield self.step_in_epoch
                self.step_in_epoch += 1
                self.global_step += 1
                last = self.global_step == self.epochs * self.steps_per_epoch
                if self.log_every and (self.global_step % self.log_every == 0 or last):
                    self.record({self.step_key: self.global_step, **self.meters.means()})
                    self.meters.reset()
                for n, fn in self._every:
                    if self.global_step % n == 0 or last:
                        fn(self.global_step)
                now = time.perf_counter()
                self.seconds, self.epoch_seconds, tick = self.seconds + now - tick, self.epoch_seconds + now - tick, now
                bar.update(1)
                if self.show and (bar.n % 10 == 0 or bar.n == self.steps_per_epoch) and not bar.disable:
                    means = self.meters.means()
                    bar.set_postfix({k: f"{means[k]:.3f}" for k in self.show if k in means})
                if self.checkpoint_every and self.global_step % self.checkpoint_every == 0 \
                        and self.step_in_epoch < self.steps_per_epoch:
                    self.save()
                    tick = time.perf_counter()  # checkpoint I/O is not loop time
                if self._kill_at == self.global_step:
                    os.kill(os.getpid(), signal.SIGKILL)
        finally:
            bar.close()

    def record(self, record):
        """Append ``record`` (a JSON-able dict) to the history and rewrite ``metrics.jsonl``."""
        self.history.append(record)
        self.write_metrics()

    def end_epoch(self, record=None):
        """Close the current epoch: append ``record`` (default ``{"epoch": e, **meters.means()}`` when
        ``record_epochs``; then the meters are reset), move to the next epoch, checkpoint, write
        ``metrics.jsonl``."""
        if record is None and self.record_epochs:
            record = {"epoch": self.epoch + 1, **self.meters.means()}
        if record is not None:
            self.history.append(record)
        if self.record_epochs:
            self.meters.reset()
        self.epoch, self.step_in_epoch, self.epoch_seconds = self.epoch + 1, 0, 0.0
        self.save()
        self.write_metrics()

    def __iter__(self):
        """``for epoch, step in loop``: every remaining step; epochs end with :meth:`end_epoch`."""
        for epoch in self.epochs_left():
            for step in self.steps():
                yield epoch, step
            self.end_epoch()
