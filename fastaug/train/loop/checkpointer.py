"""A registry of named stateful parts saved atomically in one weights-only checkpoint format.

A part is anything with ``state_dict()`` / ``load_state_dict(state)`` (the ``Stateful`` protocol of
``torch.distributed.checkpoint``: modules, optimisers, LR schedulers, grad scalers, :class:`Meters`,
a method) or a ``torch.Generator`` (wrapped in :class:`~fastaug.train.rng.GeneratorState`). Shared
parts (the same on every rank: weights, optimiser) are saved once from rank 0; per-rank parts
(random states, data positions, a method's own state) are gathered from every rank under DDP.

The file (``FORMAT`` ``fastaug-checkpoint-2``)::

    {"format": FORMAT, "name": str, "options": {...}, "world": int,
     <shared part name>: <its state_dict>, ...,           # e.g. "model": the classifier's state_dict
     "ranks": [{<per-rank part name>: <its state>}, ...]}  # one dict per rank

holds tensors, numbers, strings, lists and dicts only and is read with ``weights_only=True``.
"""
import os
import shutil

import torch

from ...artifacts import to_cpu
from .. import distributed as dist
from ..checkpoint import (FORMAT, NEW_RUN, RESUMABLE_CHANGES, CheckpointError, atomic_save, check_plain,
                          check_same_args, load_checkpoint)
from ..rng import GeneratorState

__all__ = ["Checkpointer"]

_RESERVED = ("format", "name", "options", "world", "ranks")


class Checkpointer:
    """Save and restore the registered parts of one loop in ``path``.

    Args:
        path: the checkpoint file (written atomically: temporary file, fsync, rename); None keeps
            nothing (``save`` does nothing, ``exists`` is False).
        name: what the loop is (e.g. ``"train"``, ``"stage 2 (GAN)"``), named in errors.
        options: a JSON-able dict of the options the loop's result depends on; a resume with other
            options (except ``allowed_changes``) is refused, naming each difference.
        allowed_changes: option names that may differ on resume (they change no result).
    """

    def __init__(self, path, *, name="loop", options=None, allowed_changes=RESUMABLE_CHANGES):
        self.path, self.name = path, name
        self.options = dict(options or {})
        self.allowed_changes = tuple(allowed_changes)
        self.shared, self.per_rank = {}, {}
        self.rank, self.world = dist.rank_and_world()

    def register(self, name, part, per_rank=False):
        """Add ``part`` under ``name``; per_rank parts are kept for every DDP rank. Returns ``part``."""
        if name in _RESERVED or name in self.shared or name in self.per_rank:
            raise ValueError(f"checkpoint part name {name!r} is taken or reserved")
        stateful = GeneratorState(part) if isinstance(part, torch.Generator) else part
        if isinstance(stateful, torch.nn.parallel.DistributedDataParallel):
            stateful = stateful.module  # save the plain module: loadable without DDP
        if not all(callable(getattr(stateful, k, None)) for k in ("state_dict", "load_state_dict")):
            raise TypeError(f"checkpoint part {name!r} ({type(part).__name__}) has no state_dict/load_state_dict")
        (self.per_rank if per_rank else self.shared)[name] = stateful
        return part

    def exists(self):
        return self.path is not None and os.path.isfile(self.path)

    def save(self):
        """Write every part (every rank must call it under DDP: per-rank parts are gathered)."""
        if self.path is None:
            return
        mine = to_cpu({k: p.state_dict() for k, p in self.per_rank.items()})
        ranks = dist.all_gather_object(mine)
        if self.rank != 0:
            return
        state = {"format": FORMAT, "name": self.name, "options": self.options, "world": self.world, "ranks": ranks}
        for k, p in self.shared.items():
            state[k] = to_cpu(p.state_dict())
        check_plain(state, f"the checkpoint of {self.name}")
        try:
            atomic_save(state, self.path)
        except (OSError, RuntimeError) as err:
            # torch's zip writer reports a full disk as "[enforce fail at inline_container.cc] unexpected pos"
            if isinstance(err, RuntimeError) and "inline_container" not in str(err):
                raise
            raise CheckpointError(_write_failed(self.path, err)) from err

    def load(self):
        """Restore every part from ``path``; raises :class:`CheckpointError` (one sentence) when the file
        is missing, unreadable, foreign, from other options or another number of processes."""
        state = load_checkpoint(self.path)
        if state.get("name") != self.name:
            raise CheckpointError(f"{self.path} is a checkpoint of {state.get('name')!r}, not of {self.name!r}")
        check_same_args(state["options"], self.options, self.allowed_changes)
        if state["world"] != self.world:
            raise CheckpointError(f"the checkpoint was written by {state['world']} processes, this run has "
                                  f"{self.world}: resume with the same torchrun --nproc_per_node")
        missing = [k for k in self.shared if k not in state] + [k for k in self.per_rank
                                                                  if k not in state["ranks"][self.rank]]
        if missing:
            raise CheckpointError(f"{self.path} has no state for {', '.join(missing)}: it was written by another "
                                  f"version of {self.name}; {NEW_RUN}")
        for k, p in self.shared.items():
            p.load_state_dict(state[k])
        for k, p in self.per_rank.items():
            p.load_state_dict(state["ranks"][self.rank][k])
        return state


def _write_failed(path, err):
    """The sentence of a checkpoint that could not be written (the previous one is still there)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        free = f"{shutil.disk_usage(folder).free / 2 ** 20:.0f} MB free there"
    except OSError:
        free = "its folder is unreadable"
    reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())
    return (f"could not write the checkpoint {path} ({reason}; {free}): the previous checkpoint, if any, is kept; "
            f"free some space (or make the folder writable) and continue with --resume")
