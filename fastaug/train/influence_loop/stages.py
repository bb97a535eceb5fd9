"""Stage bookkeeping: folders, the "finished" marker, reuse checks, resumable batch streams and the
checkpoints of the loops that do not run on the engine (stages 2 and 4).

A stage's folder holds ``stage.json`` once the stage has finished: its number, the options its result
depends on (:func:`~fastaug.train.influence_loop.options.stage_options`), its wall time and its key
metrics. A finished stage is reused when those options match and refused (with the differing options
named) when they do not. An unfinished stage with a ``checkpoint.pt`` continues from it.
"""
import json
import os
import time

import torch

from ..checkpoint import CheckpointError, atomic_save, atomic_write_text
from ..rng import capture_rng, restore_rng

__all__ = ["StageDir", "BatchStream", "LoopCheckpoint", "StageError", "RunningMeans", "order_seed"]


def order_seed(seed, *tags):
    """A data-order seed for :func:`fastaug.data.make_batches` from the run's seed and tags: 32 bits of
    :func:`~fastaug.train.rng.derive_seed` (the loaders multiply the seed by ~1e6, so it must stay small)."""
    from ..rng import derive_seed

    return derive_seed(seed, *tags) % 2 ** 32


class StageError(ValueError):
    """A stage cannot run or be reused as asked (missing prerequisite, different options)."""


class StageDir:
    """One stage's folder: ``stage.json`` (finished marker), ``metrics.jsonl``, ``checkpoint.pt``."""

    def __init__(self, root, name, stage, options):
        self.path = os.path.join(root, name)
        self.stage, self.options = stage, options

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def marker(self):
        return self.file("stage.json")

    def finished(self):
        """The saved record when the stage has finished with the same options; None when it has not
        finished; raises :class:`StageError` when it finished with other options."""
        if not os.path.isfile(self.marker):
            return None
        with open(self.marker) as f:
            record = json.load(f)
        self.check_options(record.get("options", {}), "finished")
        return record

    def check_options(self, saved, what):
        if saved == self.options:
            return
        keys = sorted(set(saved) | set(self.options))
        diff = [f"--{k.replace('_', '-')} {saved.get(k, '<unset>')!r} -> {self.options.get(k, '<unset>')!r}"
                for k in keys if saved.get(k, "<unset>") != self.options.get(k, "<unset>")]
        raise StageError(f"stage {self.stage} in {self.path} was {what} with other options ({', '.join(diff)}); "
                         f"run with its options or use a new --output-dir")

    def finish(self, seconds, metrics):
        record = {"stage": self.stage, "seconds": seconds, "metrics": metrics, "options": self.options,
                  "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write_text(json.dumps(record, indent=2) + "\n", self.marker)
        return record

    def write_metrics(self, records):
        atomic_write_text("".join(json.dumps(r) + "\n" for r in records), self.file("metrics.jsonl"))


class BatchStream:
    """Endless batches of a :func:`fastaug.data.make_batches` object, epoch after epoch.

    ``position`` counts the batches handed out; batch ``k`` is batch ``k % len`` of epoch ``k // len``
    (each epoch's order is a function of (seed, epoch)), so a stream restarted at a saved position
    continues exactly where it was."""

    def __init__(self, batches, position=0):
        self.batches, self.position, self._it = batches, int(position), None

    def next(self):
        epoch, step = divmod(self.position, len(self.batches))
        if self._it is None or step == 0:
            self._it = iter(self.batches.epoch(epoch, step))
        self.position += 1
        return next(self._it)


class RunningMeans:
    """Sums of per-iteration metrics until the next log line (saved in checkpoints, so that a resumed
    loop logs exactly what an uninterrupted one does)."""

    def __init__(self, sums=None, count=0):
        self.sums, self.count = dict(sums or {}), int(count)

    def add(self, values):
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach() if isinstance(v, torch.Tensor) else v)
        self.count += 1

    def pop_means(self):
        means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means

    def state(self):
        return {"sums": dict(self.sums), "count": self.count}


class LoopCheckpoint:
    """Atomic checkpoints of a custom training loop: modules, optimisers, the loop's CPU generator,
    every global random state, the iteration, the batch stream's position, metrics and elapsed time.

    ``FORMAT`` guards against foreign files; ``options`` must match the stage's on resume."""

    FORMAT = "fastaug-influence-stage-1"

    def __init__(self, stage_dir, modules, optimizers, generator):
        self.stage_dir, self.modules, self.optimizers, self.generator = stage_dir, modules, optimizers, generator

    @property
    def path(self):
        return self.stage_dir.file("checkpoint.pt")

    def save(self, iteration, stream, history, seconds, pending, extra=None):
        state = {"format": self.FORMAT, "options": self.stage_dir.options, "iteration": iteration,
                 "position": stream.position, "history": history, "seconds": seconds, "pending": pending.state(),
                 "extra": extra or {},
                 "rng": capture_rng({"loop": self.generator}),
                 "modules": {k: m.state_dict() for k, m in self.modules.items()},
                 "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}
        atomic_save(state, self.path)

    def load(self, stream):
        """Restore everything from ``checkpoint.pt`` if it exists; returns (iteration, history, seconds,
        pending :class:`RunningMeans`, the loop's ``extra`` dict)."""
        if not os.path.isfile(self.path):
            return 0, [], 0.0, RunningMeans(), {}
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as err:  # a torn or foreign file: say so in one sentence
            raise CheckpointError(f"{self.path} is unreadable ({type(err).__name__}: {err}); delete it to rerun "
                                  f"stage {self.stage_dir.stage}") from err
        if not isinstance(state, dict) or state.get("format") != self.FORMAT:
            raise CheckpointError(f"{self.path} is not a checkpoint of stage {self.stage_dir.stage}")
        self.stage_dir.check_options(state["options"], "started")
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        restore_rng(state["rng"], {"loop": self.generator})
        stream.position = state["position"]
        return (state["iteration"], state["history"], state["seconds"], RunningMeans(**state["pending"]),
                state["extra"])
