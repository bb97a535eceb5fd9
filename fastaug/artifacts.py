"""One format for every file fastaug writes for someone else to read back: a stage's result handed to
the next stage, a learned augmentation handed to a user, a fitted influence model.

Training loops' own checkpoints (``checkpoint.pt``, :class:`fastaug.train.loop.Checkpointer`) are a
separate format that only the loop that wrote them reads; an *artifact* is a finished result::

    {"format": "fastaug-artifact-1",
     "kind": "tanda-generator",        # what it is; the reader names the kinds it accepts
     "version": 1,                      # the kind's own layout version; the reader names those it reads
     "fastaug_version": "0.1.0",        # who wrote it
     "meta": {...},                     # JSON-able description: options, provenance (dataset, image size...)
     "state": {...}}                    # tensors, numbers, strings, lists and dicts only (state_dicts)

It is written atomically (temporary file, fsync, rename: a killed writer leaves the old file or the
new one, never a torn one) and read with ``torch.load(weights_only=True)``, so a file that needs pickle
(a foreign file, or one crafted to run code) is refused before anything in it runs. Every way a file
can be wrong (missing, torn, pickle, not an artifact, another kind, a newer version) raises
:class:`ArtifactError` with one sentence naming the file.

The atomic writers (:func:`atomic_save`, :func:`atomic_write_text`) and the weights-only check
(:func:`check_plain`) live here, at the bottom of the package, because the layers above all write files.
"""
import glob
import os
import pickle
import pickletools
import shutil
from typing import NamedTuple, Optional, Sequence, Union

import torch

__all__ = ["FORMAT", "Artifact", "ArtifactError", "save_artifact", "load_artifact", "atomic_save",
           "atomic_write_text", "check_plain", "to_cpu"]

#: The one artifact format (a change of the envelope gets a new number; a kind's layout has its own version).
FORMAT = "fastaug-artifact-1"


class ArtifactError(ValueError):
    """An artifact file is missing, unreadable, foreign, of another kind or of a newer version
    (the message is one sentence naming the file)."""


class Artifact(NamedTuple):
    """What :func:`load_artifact` returns."""

    kind: str
    version: int
    meta: dict
    state: dict
    path: str
    fastaug_version: str


# ---- atomic writes --------------------------------------------------------------------------------

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
    remove_stale_temporaries(path)


def remove_stale_temporaries(path):
    """Remove the temporary files (``.<name>.tmp<pid>``) that processes killed while writing ``path`` left
    behind: a run killed at random moments would otherwise keep one file (checkpoint-sized, for a
    checkpoint) per kill. Another live process's file is left alone."""
    folder, name = os.path.split(os.path.abspath(path))
    for tmp in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.tmp*")):
        pid = tmp.rsplit(".tmp", 1)[1]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            os.remove(tmp)
        except OSError:
            pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def atomic_save(obj, path):
    """``torch.save(obj, path)`` atomically (temporary file in the same folder, fsync, rename)."""
    _atomic(path, lambda f: torch.save(obj, f))


def atomic_write_text(text, path):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _atomic(path, lambda f: f.write(text.encode("utf-8")))


def atomic_copy(src, path):
    """Copy the file ``src`` to ``path`` atomically (a reader sees the old file or the whole new one)."""
    with open(src, "rb") as source:
        _atomic(path, lambda f: shutil.copyfileobj(source, f))


# ---- weights-only contents ------------------------------------------------------------------------

def needs_pickle(err, path):
    """Whether ``torch.load(path, weights_only=True)``'s UnpicklingError ``err`` means a pickle that the
    weights-only reader refused (a pickle of objects: an older or foreign file, or one crafted to run
    code) rather than bytes that are no pickle at all (a torn or random file). A refused global says so;
    otherwise the file is read as a pickle stream opcode by opcode (``pickletools``: nothing is run)."""
    text = str(err).lower()  # torch words it "Unsupported global: GLOBAL x" or "unsupported GLOBAL x ... is blocked"
    if "global" in text or "can still be loaded" in text:
        return True
    try:
        with open(path, "rb") as f:
            for _ in pickletools.genops(f):
                pass
    except Exception:  # not a whole pickle stream
        return False
    return True


def check_plain(obj, where="state"):
    """Raise TypeError naming the first entry of ``obj`` that ``torch.load(weights_only=True)`` could not
    read back: a weights-only file holds tensors, numbers, strings, None, lists, tuples and dicts only."""
    if obj is None or isinstance(obj, (torch.Tensor, bool, int, float, str, torch.dtype, torch.Size)):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str or int keys")
            check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__name__}, which a weights-only file "
                    f"cannot hold; convert it to tensors or plain numbers")


def to_cpu(obj):
    """``obj`` with every tensor detached and moved to the CPU (dicts, lists and tuples walked)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


# ---- artifacts ------------------------------------------------------------------------------------

def _version():
    from . import __version__  # the package's version (fastaug/__init__ imports nothing from here)

    return __version__


def save_artifact(kind: str, state: dict, path: str, *, meta: Optional[dict] = None, version: int = 1) -> str:
    """Write ``state`` as an artifact of ``kind`` to ``path`` atomically; returns ``path``.

    Args:
        kind: what the file is (e.g. ``"tanda-generator"``); :func:`load_artifact` checks it.
        state: tensors (moved to the CPU), numbers, strings, lists and dicts only.
        meta: a JSON-able dict describing it (options, provenance); kept apart from ``state``.
        version: the kind's layout version (raise it when the layout of ``state`` changes).

    Raises:
        TypeError: naming the first entry a weights-only file cannot hold (nothing is written).
    """
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"kind must be a non-empty str, got {kind!r}")
    record = {"format": FORMAT, "kind": kind, "version": int(version), "fastaug_version": _version(),
              "meta": dict(meta or {}), "state": to_cpu(state)}
    check_plain(record, f"the {kind} artifact")
    atomic_save(record, path)
    return path


def _names(kinds):
    return " or ".join(repr(k) for k in kinds)


def load_artifact(kind: Union[str, Sequence[str], None], path: str, *, versions: Sequence[int] = (1,),
                  map_location="cpu") -> Artifact:
    """Read an artifact written by :func:`save_artifact`.

    Args:
        kind: the kind expected, several accepted kinds, or None for any kind (then ``versions`` is not
            checked: the caller dispatches on ``Artifact.kind``).
        path: the file.
        versions: the layout versions of ``kind`` this reader understands.
        map_location: as ``torch.load``'s (default the CPU).

    Returns:
        :class:`Artifact` (kind, version, meta, state, path, fastaug_version).

    Raises:
        ArtifactError: one sentence naming ``path``: missing, unreadable (torn), needing pickle (foreign
            or code-running), not an artifact (a training checkpoint, another program's file), another
            kind, or a layout version this fastaug does not read.
    """
    kinds = None if kind is None else ((kind,) if isinstance(kind, str) else tuple(kind))
    what = "a fastaug artifact" if kinds is None else f"a {_names(kinds)} artifact"
    if not os.path.exists(path):
        raise ArtifactError(f"{path} does not exist (expected {what})")
    if os.path.isdir(path):
        raise ArtifactError(f"{path} is a folder, not {what} file")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if not needs_pickle(err, path):  # random bytes: weights_only's unpickler stopped at an opcode
            raise ArtifactError(f"{path} is unreadable as {what} (truncated, corrupt or not a torch file)") from err
        raise ArtifactError(f"{path} is not {what}: it needs pickle to load (a foreign file, or one that would run "
                            f"code), so it was not loaded") from err
    except Exception as err:  # torch raises many types for a torn or non-torch file
        raise ArtifactError(f"{path} is unreadable as {what} (truncated, corrupt or not a torch file: "
                            f"{type(err).__name__})") from err
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        hint = " (a training checkpoint: the loop that wrote it resumes from it)" \
            if isinstance(found, str) and found.startswith("fastaug-checkpoint") else ""
        raise ArtifactError(f"{path} is not {what}: its format is {found!r}{hint}, not {FORMAT!r}")
    found_kind, found_version = record.get("kind"), record.get("version")
    if kinds is not None and found_kind not in kinds:
        raise ArtifactError(f"{path} is a {found_kind!r} artifact, not {what}")
    if kinds is not None and found_version not in tuple(versions):
        raise ArtifactError(f"{path} is a {found_kind!r} artifact of layout version {found_version}, which this "
                            f"fastaug ({_version()}) does not read (it reads {', '.join(map(str, versions))}): it was "
                            f"written by fastaug {record.get('fastaug_version')}")
    if not isinstance(record.get("state"), dict) or not isinstance(record.get("meta"), dict):
        raise ArtifactError(f"{path} is a damaged {found_kind!r} artifact (no state or meta dict)")
    return Artifact(found_kind, found_version, record["meta"], record["state"], path,
                    str(record.get("fastaug_version")))
