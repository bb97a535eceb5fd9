"""The driver of multi-stage methods: a list of :class:`Stage` objects run in order, each resumable,
each handing what it made to the stages that name it.

A method whose result needs work before the classifier trains (TANDA's generator, the influence
loop's four stages, model patching's translation models) is a pipeline: ``[stage, ..., classifier
stage]``, the classifier stage being the engine (:class:`fastaug.train.engine.ClassifierStage`).

Stage results are values. :meth:`Stage.run` returns a :class:`StageResult`: the paths of the
artifacts it wrote (:mod:`fastaug.artifacts`), its metrics and its seconds. A stage lists the
earlier stages whose results it reads in ``needs``; the driver passes exactly those results to its
``run`` (``inputs[name]``), and nothing else: no stage works out another stage's folder or file.

The driver, for each stage:

* **finished** (its folder holds ``stage.json`` with the same options): reused, never recomputed;
  its result (artifacts, metrics, seconds) is read back from ``stage.json``; finished with other
  options: refused in one sentence naming each difference;
* **not finished**: :meth:`Stage.run` runs it; a stage trains on the loop primitive
  (:class:`fastaug.train.loop.Loop` with ``resume="auto"``), so a stage killed at any step continues
  from its checkpoint, and its ``seconds`` (the loop's, checkpointed) are counted once;
* **needed but neither finished nor asked for** (``wanted``): refused before anything runs;
* **under torchrun** a stage that cannot be distributed (``distributed = False``) says so in one
  sentence before anything runs.

``stages.json`` in the run folder records every stage's seconds and key metrics. Nothing trains in a
constructor or another loop's hook: a stage's work happens in its ``run``.
"""
import dataclasses
import json
import os
import time
from typing import Optional

from . import distributed as dist
from .checkpoint import NEW_RUN, CheckpointError, atomic_write_text, hold_folder

__all__ = ["Stage", "StageResult", "Pipeline", "StageError"]


class StageError(ValueError):
    """A stage cannot run or be reused as asked (missing prerequisite, different options)."""


def _diff(saved, current):
    keys = sorted(set(saved) | set(current))
    return ", ".join(f"--{k.replace('_', '-')} {saved.get(k, '<unset>')!r} -> {current.get(k, '<unset>')!r}"
                     for k in keys if saved.get(k, "<unset>") != current.get(k, "<unset>"))


def _plain(value):
    return json.loads(json.dumps(value, default=str))


@dataclasses.dataclass
class StageResult:
    """What a stage made.

    Attributes:
        artifacts: {name: path} of the files it wrote for later stages (artifacts; absolute paths once
            the pipeline has the result).
        metrics: a JSON-able dict of its key metrics (``stage.json``, ``stages.json``).
        seconds: its own time, counted once across resumes (None: the driver times the call).
        title, folder: the stage's title and folder (for messages; set by the driver).
    """

    artifacts: dict = dataclasses.field(default_factory=dict)
    metrics: dict = dataclasses.field(default_factory=dict)
    seconds: Optional[float] = None
    title: str = "a stage"
    folder: str = ""

    def artifact(self, name):
        """The path of artifact ``name``; :class:`StageError` when the stage recorded none of that name (a
        stage finished by a fastaug from before stage results were recorded)."""
        if name not in self.artifacts:
            raise StageError(f"{self.title} in {self.folder} recorded no {name!r} artifact (it finished under an "
                             f"older fastaug): rerun the run in a new --output-dir")
        return self.artifacts[name]


class Stage:
    """One resumable unit of a pipeline.

    Subclasses set ``name`` (its folder under the run folder; ``""`` for the run folder itself),
    ``title`` (in messages), ``key`` (its entry in ``stages.json``; default the name) and ``needs``
    (names of the earlier stages whose results its ``run`` receives), and implement :meth:`options`
    and :meth:`run`. ``marker``: write ``stage.json`` when finished (False for the classifier stage,
    whose engine run keeps its own outputs).
    """

    name = "stage"
    title = "stage"
    key = None
    needs = ()
    distributed = False
    marker = True

    def options(self):
        """JSON-able dict of the options the stage's result depends on (checked on reuse and resume)."""
        return {}

    def check(self, root):
        """Called for every stage before any runs: raise (one sentence) when it cannot run as asked."""

    def run(self, folder, inputs) -> StageResult:
        """Run or continue the stage in ``folder``. ``inputs`` = {name: :class:`StageResult`} of the
        stages in :attr:`needs`. Return what it made (its artifacts' paths, metrics, seconds)."""
        raise NotImplementedError


class Pipeline:
    """Run ``stages`` in ``root`` (see the module docstring); :meth:`run` returns {stage name: StageResult}.

    Args:
        root: the run folder.
        stages: the Stage objects, in order.
        wanted: names of the stages to run (default all); an unfinished stage not wanted is skipped,
            unless a wanted later stage ``needs`` it (then :class:`StageError`).
        log: one-line messages (default: print on rank 0).
    """

    def __init__(self, root, stages, *, wanted=None, log=None):
        self.root, self.stages = root, list(stages)
        self.wanted = None if wanted is None else set(wanted)
        self.log = log or (lambda msg: print(msg, flush=True) if dist.rank_and_world()[0] == 0 else None)
        self.results = {}
        names = [s.name for s in self.stages]
        for i, stage in enumerate(self.stages):
            late = [n for n in stage.needs if n not in names[:i]]
            if late:
                raise ValueError(f"{stage.title} needs {late}, which is not an earlier stage of the pipeline")

    def folder(self, stage):
        return os.path.join(self.root, stage.name) if stage.name else self.root

    def _is_wanted(self, stage):
        return self.wanted is None or stage.name in self.wanted

    def _finished(self, stage):
        """The StageResult recorded in the stage's ``stage.json``, None when it has not finished."""
        path = os.path.join(self.folder(stage), "stage.json")
        if not stage.marker or not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                record = json.load(f)
            if not isinstance(record, dict) or not isinstance(record.get("seconds"), (int, float)):
                raise ValueError("not a stage record")
        except ValueError as err:  # edited or damaged by hand (fastaug writes it atomically)
            raise StageError(f"{path} is unreadable ({' '.join(str(err).split())}): it records that {stage.title} "
                             f"finished; delete it to finish the stage again from its checkpoint, or use a new "
                             f"--output-dir") from err
        options = _plain(stage.options())
        if record.get("options") != options:
            raise StageError(f"{stage.title} in {self.folder(stage)} finished with other options "
                             f"({_diff(record.get('options', {}), options)}); run with its options or use a new "
                             f"--output-dir")
        artifacts = {k: os.path.join(self.folder(stage), v) for k, v in record.get("artifacts", {}).items()}
        return StageResult(artifacts, record.get("metrics", {}), record["seconds"], stage.title, self.folder(stage))

    def _plan(self):
        world = dist.world_size_from_env()
        if dist.rank_and_world()[0] == 0:
            hold_folder(self.root)  # before a stage's check writes anything (the classifier's args.json)
        plan = []
        for stage in self.stages:
            stage.check(self.root)
            result = self._finished(stage)
            if result is None and not self._is_wanted(stage):
                needing = [s for s in self.stages if self._is_wanted(s) and stage.name in s.needs]
                if needing:
                    raise StageError(f"{needing[0].title} needs {stage.title}, which has not finished in "
                                     f"{self.folder(stage)}: add it to the stages to run")
            if result is None and self._is_wanted(stage) and world > 1 and not stage.distributed:
                raise StageError(f"{stage.title} runs in one process and cannot be distributed: run it without "
                                 f"torchrun first, then the later stages under torchrun")
            plan.append((stage, result))
        return plan

    def _record(self, stage, result):
        """Write the finished stage's ``stage.json`` (rank 0): its result, artifacts relative to its folder."""
        folder = self.folder(stage)
        record = {"stage": stage.name, "seconds": result.seconds, "metrics": _plain(result.metrics),
                  "artifacts": {k: os.path.relpath(v, folder) for k, v in result.artifacts.items()},
                  "options": _plain(stage.options()), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        if stage.marker and dist.rank_and_world()[0] == 0:
            atomic_write_text(json.dumps(record, indent=2) + "\n", os.path.join(folder, "stage.json"))

    def _run_stage(self, stage):
        """``stage.run`` on its inputs. A stage in a folder of its own whose checkpoint cannot be resumed
        (torn, foreign) is redone by deleting that folder alone: the sentence says so, not "start a new
        run", which would throw the finished stages away too."""
        folder = self.folder(stage)
        try:
            return stage.run(folder, {n: self.results[n] for n in stage.needs})
        except CheckpointError as err:
            if NEW_RUN not in str(err) or os.path.abspath(folder) == os.path.abspath(self.root):
                raise
            raise CheckpointError(str(err).replace(NEW_RUN, f"delete {folder} to run {stage.title} again (the "
                                                            f"finished stages are kept), or {NEW_RUN}")) from err

    def run(self):
        for stage, result in self._plan():
            if result is None and not self._is_wanted(stage):
                continue
            if result is not None:
                self.log(f"{stage.title}: finished earlier, reused")
            else:
                self.log(f"{stage.title} ...")
                os.makedirs(self.folder(stage), exist_ok=True)
                tick = time.perf_counter()
                result = self._run_stage(stage)
                if not isinstance(result, StageResult):
                    raise TypeError(f"{stage.title}'s run returned a {type(result).__name__}, not a StageResult")
                result = dataclasses.replace(
                    result, title=stage.title, folder=self.folder(stage),
                    artifacts={k: os.path.abspath(v) for k, v in result.artifacts.items()},
                    seconds=float(time.perf_counter() - tick if result.seconds is None else result.seconds))
                self._record(stage, result)
                dist.barrier()  # later stages (on every rank) read what rank 0 wrote
                self.log(f"{stage.title} done in {result.seconds:.1f} s")
            self.results[stage.name] = result
        if self.results and dist.rank_and_world()[0] == 0:
            table = {(s.key or s.name): {"seconds": self.results[s.name].seconds, **self.results[s.name].metrics}
                     for s in self.stages if s.name in self.results}
            atomic_write_text(json.dumps(_plain(table), indent=2) + "\n", os.path.join(self.root, "stages.json"))
        return self.results
