"""The driver of multi-stage methods: a list of :class:`Stage` objects run in order, each resumable.

A method whose result needs work before the classifier trains (TANDA's generator, the influence
loop's four stages, model patching's translation models) is a pipeline: ``[stage, ..., classifier
stage]``, the classifier stage being the engine (:class:`fastaug.train.engine.ClassifierStage`).
The driver, for each stage:

* **finished** (its folder holds ``stage.json`` with the same options): reused, never recomputed;
  finished with other options: refused in one sentence naming each difference;
* **not finished**: :meth:`Stage.run` runs it; a stage trains on the loop primitive
  (:class:`fastaug.train.loop.Loop` with ``resume="auto"``), so a stage killed at any step continues
  from its checkpoint, and its ``seconds`` (the loop's, checkpointed) are counted once;
* **under torchrun** a stage that cannot be distributed (``distributed = False``) says so in one
  sentence before anything runs.

``stages.json`` in the run folder records every stage's seconds and key metrics. Nothing trains in a
constructor or another loop's hook: a stage's work happens in its ``run``.
"""
import json
import os
import time

from . import distributed as dist
from .checkpoint import atomic_write_text

__all__ = ["Stage", "Pipeline", "StageError"]


class StageError(ValueError):
    """A stage cannot run or be reused as asked (missing prerequisite, different options)."""


def _diff(saved, current):
    keys = sorted(set(saved) | set(current))
    return ", ".join(f"--{k.replace('_', '-')} {saved.get(k, '<unset>')!r} -> {current.get(k, '<unset>')!r}"
                     for k in keys if saved.get(k, "<unset>") != current.get(k, "<unset>"))


class Stage:
    """One resumable unit of a pipeline.

    Subclasses set ``name`` (its folder under the run folder; ``""`` for the run folder itself),
    ``title`` (in messages) and ``key`` (its entry in ``stages.json``; default the name), and implement
    :meth:`options` and :meth:`run`. ``marker``: write ``stage.json`` when finished (False for the
    classifier stage, whose engine run keeps its own outputs).
    """

    name = "stage"
    title = "stage"
    key = None
    distributed = False
    marker = True

    def options(self):
        """JSON-able dict of the options the stage's result depends on (checked on reuse and resume)."""
        return {}

    def check(self, root):
        """Called for every stage before any runs: raise (one sentence) when it cannot run as asked."""

    def run(self, folder, records):
        """Run or continue the stage in ``folder``; ``records`` holds the earlier stages' records
        ({name: stage.json dict}). Return its metrics (a JSON-able dict), with ``seconds`` (its own
        time, counted once across resumes) when it knows it."""
        raise NotImplementedError


class Pipeline:
    """Run ``stages`` in ``root`` (see the module docstring); :meth:`run` returns {stage name: record}.

    Args:
        root: the run folder.
        stages: the Stage objects, in order.
        wanted: names of the stages to run (default all); an unfinished stage not wanted is skipped,
            unless a wanted later stage ``needs`` it (then :class:`StageError`).
        needs: {stage name: names of the stages it reads}.
        log: one-line messages (default: print on rank 0).
    """

    def __init__(self, root, stages, *, wanted=None, needs=None, log=None):
        self.root, self.stages = root, list(stages)
        self.wanted = None if wanted is None else set(wanted)
        self.needs = needs or {}
        self.log = log or (lambda msg: print(msg, flush=True) if dist.rank_and_world()[0] == 0 else None)
        self.records = {}

    def folder(self, stage):
        return os.path.join(self.root, stage.name) if stage.name else self.root

    def _finished(self, stage):
        path = os.path.join(self.folder(stage), "stage.json")
        if not stage.marker or not os.path.isfile(path):
            return None
        with open(path) as f:
            record = json.load(f)
        options = json.loads(json.dumps(stage.options(), default=str))
        if record.get("options") != options:
            raise StageError(f"{stage.title} in {self.folder(stage)} finished with other options "
                             f"({_diff(record.get('options', {}), options)}); run with its options or use a new "
                             f"--output-dir")
        return record

    def run(self):
        world = dist.world_size_from_env()
        plan = []
        for stage in self.stages:
            stage.check(self.root)
            record = self._finished(stage)
            wanted = self.wanted is None or stage.name in self.wanted
            if record is None and not wanted:
                needing = [s for s in self.stages if (self.wanted is None or s.name in self.wanted)
                           and stage.name in self.needs.get(s.name, ())]
                if needing:
                    raise StageError(f"{needing[0].title} needs {stage.title}, which has not finished in "
                                     f"{self.folder(stage)}: add it to the stages to run")
            if record is None and wanted and world > 1 and not stage.distributed:
                raise StageError(f"{stage.title} runs in one process and cannot be distributed: run it without "
                                 f"torchrun first, then the later stages under torchrun")
            plan.append((stage, record, wanted))
        for stage, record, wanted in plan:
            if record is not None:
                self.log(f"{stage.title}: finished earlier, reused")
                self.records[stage.name] = record
                continue
            if not wanted:
                continue
            self.log(f"{stage.title} ...")
            os.makedirs(self.folder(stage), exist_ok=True)
            tick = time.perf_counter()
            metrics = dict(stage.run(self.folder(stage), dict(self.records)) or {})
            seconds = float(metrics.pop("seconds", time.perf_counter() - tick))
            record = {"stage": stage.name, "seconds": seconds, "metrics": metrics,
                      "options": json.loads(json.dumps(stage.options(), default=str)),
                      "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
            if stage.marker and dist.rank_and_world()[0] == 0:
                atomic_write_text(json.dumps(record, indent=2) + "\n", os.path.join(self.folder(stage), "stage.json"))
            self.records[stage.name] = record
            dist.barrier()  # later stages (on every rank) read what rank 0 wrote
            self.log(f"{stage.title} done in {seconds:.1f} s")
        if self.records and dist.rank_and_world()[0] == 0:
            table = {(s.key or s.name): {"seconds": self.records[s.name]["seconds"], **self.records[s.name]["metrics"]}
                     for s in self.stages if s.name in self.records}
            atomic_write_text(json.dumps(table, indent=2) + "\n", os.path.join(self.root, "stages.json"))
        return self.records
