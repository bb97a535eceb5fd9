"""The training-loop primitive every loop of the package stands on (see docs/design.md, "Training loops").

* :class:`Loop`: a resumable loop over epochs and steps: checkpoints every K steps and after every
  epoch, resumes exactly, running :class:`Meters`, a tqdm bar, ``metrics.jsonl``;
* :class:`Checkpointer`: a registry of named stateful parts saved atomically in one weights-only
  format (``fastaug-checkpoint-2``), per-rank parts gathered under DDP;
* :func:`optimizer_step`: backward, float16 grad scaling, clipping, optimiser and scheduler step;
  :func:`make_scaler`, :func:`autocast`;
* :class:`Meters`: running sums of named metrics on the device.

``from fastaug.train.loop import Checkpointer, Loop, Meters, optimizer_step``
"""
from .checkpointer import Checkpointer
from .loop import KILL_ENV, Loop
from .meters import Meters
from .step import autocast, make_scaler, optimizer_step

__all__ = ["Loop", "Checkpointer", "Meters", "optimizer_step", "make_scaler", "autocast", "KILL_ENV"]
