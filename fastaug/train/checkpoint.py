"""Atomic checkpoints and the checks that make ``--resume`` safe.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one (``os.replace`` is atomic on POSIX), so a process killed at any moment leaves either the
previous complete checkpoint or the new complete one, never a torn file.
"""
import json
import os

import torch

__all__ = ["CheckpointError", "atomic_save", "atomic_write_text", "load_checkpoint", "check_same_args",
           "RESUMABLE_CHANGES", "FORMAT"]

FORMAT = "fastaug-train-1"
#: Arguments that may differ between a run and its resumption (they change no result).
RESUMABLE_CHANGES = ("resume", "output_dir", "workers", "progress", "checkpoint_every", "eval_batch_size")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or from a different run."""


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic(path, write):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_dir(folder)


def atomic_save(obj, path):
    """``torch.save(obj, path)`` atomically (temporary file, fsync, rename)."""
    _atomic(path, lambda f: torch.save(obj, f))


def atomic_write_text(text, path):
    """Write ``text`` to ``path`` atomically."""
    _atomic(path, lambda f: f.write(text.encode("utf-8")))


def load_checkpoint(path, map_location="cpu"):
    """Load a training checkpoint, or raise :class:`CheckpointError` saying what is wrong with it."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint to resume from: {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for a torn or foreign file
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt: {type(err).__name__}: "
                              f"{err}); start a new run in another --output-dir") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a fastaug training checkpoint (format "
                              f"{state.get('format') if isinstance(state, dict) else type(state).__name__!r}, "
                              f"expected {FORMAT!r})")
    return state


def _normalise(v):
    return json.loads(json.dumps(v, default=str))  # tuples -> lists, paths -> str, as args.json holds them


def check_same_args(saved, current, allowed=RESUMABLE_CHANGES):
    """Raise :class:`CheckpointError` listing every argument that differs from the checkpoint's run."""
    saved, current = _normalise(saved), _normalise(current)
    keys = sorted((set(saved) | set(current)) - set(allowed))
    diff = [k for k in keys if saved.get(k, "<unset>") != current.get(k, "<unset>")]
    if diff:
        lines = ", ".join(f"--{k.replace('_', '-')} {saved.get(k, '<unset>')!r} -> {current.get(k, '<unset>')!r}"
                          for k in diff)
        raise CheckpointError(f"cannot resume with different arguments ({lines}); resume with the run's own "
                              f"arguments (see args.json) or start a new run in another --output-dir")
