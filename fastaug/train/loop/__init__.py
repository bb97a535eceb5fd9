"""The training-loop primitive every training loop stands on (see docs/design.md, "Training loops").

* :class:`Loop`: a resumable loop over epochs and steps: checkpoints every K steps and after every
  epoch, resumes exactly (one policy: ``resume="auto" | True | False``), running :class:`Meters`,
  a tqdm bar, ``metrics.jsonl``, a cadence for records (``log_every``) and work every K steps (:meth:`Loop.every`);
* :class:`Checkpointer`: a registry of named stateful parts saved atomically in one weights-only
  format (``fastaug-checkpoint-2``), per-rank parts gathered under DDP;
* :func:`optimizer_step`: backward, float16 grad scaling, clipping, optimiser(s) and scheduler step
  (several optimisers on one backward, or an L-BFGS closure); :func:`make_scaler`, :func:`autocast`;
* :class:`Meters`: running sums of named metrics on the device;
* beside the checkpointer, the one format of every *other* file a loop or stage writes for someone
  else to read back (:mod:`fastaug.artifacts`): :func:`save_artifact`, :func:`load_artifact`,
  :class:`Artifact`, :class:`ArtifactError`.

``from fastaug.train.loop import Checkpointer, Loop, Meters, optimizer_step, save_artifact, load_artifact``
"""
from ...artifacts import Artifact, ArtifactError, load_artifact, save_artifact
from .checkpointer import Checkpointer
from .loop import KILL_ENV, Loop, on_terminal
from .meters import Meters
from .step import autocast, make_scaler, optimizer_step

__all__ = ["Loop", "Checkpointer", "Meters", "optimizer_step", "make_scaler", "autocast", "KILL_ENV", "on_terminal",
           "save_artifact", "load_artifact", "Artifact", "ArtifactError"]
