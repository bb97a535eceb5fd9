"""Atomic checkpoints and the checks that make ``--resume`` safe (the atomic writers and the
weights-only check are :mod:`fastaug.artifacts`'s, shared with every file the package writes).

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one (``os.replace`` is atomic on POSIX), so a process killed at any moment leaves either the
previous complete checkpoint or the new complete one, never a torn file.
"""
import errno
import json
import os
import pickle

import torch

from ..artifacts import atomic_save, atomic_write_text, check_plain, needs_pickle

__all__ = ["CheckpointError", "atomic_save", "atomic_write_text", "load_checkpoint", "check_same_args",
           "RESUMABLE_CHANGES", "FORMAT", "check_plain", "run_exists", "hold_folder", "LOCK_FILE", "FolderInUse"]

#: The one checkpoint format of every training loop (``fastaug-train-1``, before the loop primitive,
#: needed pickle and is refused).
FORMAT = "fastaug-checkpoint-2"
#: Arguments that may differ between a run and its resumption (they change no result).
RESUMABLE_CHANGES = ("resume", "output_dir", "workers", "progress", "checkpoint_every", "eval_batch_size")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or from a different run."""


class FolderInUse(CheckpointError):
    """Another running process holds the folder (:func:`hold_folder`): nothing in it is wrong."""


def run_exists(folder, what="a run (checkpoint.pt)"):
    """The one refusal of a folder that already holds ``what`` when the caller did not ask to resume
    (the loop's, the pipeline's and ``fastaug patch``'s): a :class:`CheckpointError` to raise."""
    return CheckpointError(f"{folder} already holds {what}: pass --resume to continue it, or choose another "
                           f"--output-dir")


#: The advice of a checkpoint that cannot be resumed (a pipeline stage words it for its own folder).
NEW_RUN = "start a new run in another folder"

#: The lock file of a folder a run writes in (see :func:`hold_folder`).
LOCK_FILE = ".fastaug.lock"
_HELD = {}  # real path of a folder -> the open lock file this process holds on it


def hold_folder(folder):
    """Make ``folder`` (created if need be) this process's until it exits, or raise :class:`CheckpointError`
    in one sentence when another running process holds it: two runs started into the same ``--output-dir``
    would otherwise overwrite each other's args.json, checkpoint and metrics, and both report success.

    An advisory lock (``lockf``) on ``folder/.fastaug.lock``: the system drops it when the process ends, however it
    ends (SIGKILL included), so a killed run never leaves a stale lock. Reentrant within a process (a
    pipeline's root, then its classifier stage in the same folder). Call it on rank 0 only under torchrun
    (the other ranks are the same run). A filesystem without locks (some network mounts) is not locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    os.makedirs(folder, exist_ok=True)
    key = os.path.realpath(folder)
    if key in _HELD:
        return
    try:
        f = open(os.path.join(folder, LOCK_FILE), "a+")
    except OSError as err:  # a read-only or foreign folder: the sentence names the folder, not the lock file
        raise OSError(err.errno, err.strerror, folder) from err
    try:
        # a POSIX record lock, not flock: it belongs to this process only, so the DataLoader workers it forks
        # do not keep it once the process is killed (a --resume right after the kill is not refused)
        fcntl.lockf(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 0, os.SEEK_SET)  # the whole file
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EAGAIN):  # no locks on this filesystem
            f.close()
            return
        f.seek(0)
        pid = f.read().strip()
        f.close()
        raise FolderInUse(f"{folder} is in use by another running fastaug process{f' (pid {pid})' if pid else ''}: "
                              f"wait for it to end (then --resume continues its run), or choose another --output-dir")
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _HELD[key] = f


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint written by :class:`fastaug.train.loop.Checkpointer`, or raise
    :class:`CheckpointError` with one sentence saying what is wrong with it.

    The file is read with ``torch.load(..., weights_only=True)``: a checkpoint holds tensors, numbers,
    strings, lists and dicts only, so a file that needs pickle to load (a checkpoint of an older fastaug,
    or one crafted to run code) is refused before anything in it runs.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint to resume from: {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if not needs_pickle(err, path):  # random bytes: weights_only's unpickler stopped at an opcode
            raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt); {NEW_RUN}") from err
        # weights_only refused a global: old format or foreign pickle
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (it needs pickle to load, as checkpoints of "
                              f"older fastaug versions and foreign files do), so it was not loaded; {NEW_RUN}") from err
    except Exception as err:  # torch raises many types for a torn file
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt: {type(err).__name__}); "
                              f"{NEW_RUN}") from err
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    if found != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (it says format {found!r}: written by an older "
                              f"fastaug or another program); {NEW_RUN}")
    return state


def _device_kind(device):
    """``--device`` as the kind of device it runs on here: ``auto`` is cpu on a machine without a GPU, so
    ``--device cpu`` resumes an ``auto`` run there; the GPU index does not change a result (cuda:0 = cuda:1)."""
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device).split(":")[0]


def _normalise(v):
    return json.loads(json.dumps(v, default=str))  # tuples -> lists, paths -> str, as args.json holds them


def check_same_args(saved, current, allowed=RESUMABLE_CHANGES):
    """Raise :class:`CheckpointError` listing every argument that differs from the checkpoint's run."""
    saved, current = _normalise(saved), _normalise(current)
    keys = sorted((set(saved) | set(current)) - set(allowed))
    diff = [k for k in keys if saved.get(k, "<unset>") != current.get(k, "<unset>")
            and not (k == "device" and _device_kind(saved.get(k)) == _device_kind(current.get(k)))]
    if diff:
        lines = ", ".join(f"--{k.replace('_', '-')} {saved.get(k, '<unset>')!r} -> {current.get(k, '<unset>')!r}"
                          for k in diff)
        raise CheckpointError(f"cannot resume with different arguments ({lines}); resume with the run's own "
                              f"arguments (see args.json) or start a new run in another --output-dir")
