"""Writing a checkpoint when things go wrong: a full disk is one CheckpointError sentence (the previous
checkpoint kept), and the temporary files of processes killed while writing do not pile up."""
import errno
import os
import subprocess
import sys

import pytest
import torch

from fastaug.train.checkpoint import CheckpointError
from fastaug.train.loop import Checkpointer, checkpointer as checkpointer_module


def _checkpointer(folder):
    ck = Checkpointer(str(folder / "checkpoint.pt"), name="toy")
    ck.register("net", torch.nn.Linear(2, 2))
    return ck


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_killed_writers_are_removed(tmp_path):
    dead, alive = tmp_path / f".checkpoint.pt.tmp{_dead_pid()}", tmp_path / f".checkpoint.pt.tmp{os.getppid()}"
    other = tmp_path / f".metrics.jsonl.tmp{_dead_pid()}"
    for f in (dead, alive, other):
        f.write_bytes(b"partial")
    _checkpointer(tmp_path).save()
    assert not dead.exists()  # left by a process killed mid-write
    assert alive.exists() and other.exists()  # a live process's, and not this checkpoint's
    assert (tmp_path / "checkpoint.pt").exists()


def test_every_atomic_write_removes_its_dead_writers_temporaries(tmp_path):
    """augmentation.pt, generator.pt, metrics.jsonl, args.json: every file written through artifacts._atomic."""
    from fastaug import artifacts

    dead = {name: tmp_path / f".{name}.tmp{_dead_pid()}" for name in ("augmentation.pt", "args.json")}
    for f in dead.values():
        f.write_bytes(b"partial")
    artifacts.atomic_save({"w": torch.zeros(2)}, str(tmp_path / "augmentation.pt"))
    assert not dead["augmentation.pt"].exists() and dead["args.json"].exists()
    artifacts.atomic_write_text("{}", str(tmp_path / "args.json"))
    assert not dead["args.json"].exists()


@pytest.mark.parametrize("err", [RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1009792 vs 1009684"),
                                 OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))])
def test_a_full_disk_is_one_sentence(tmp_path, monkeypatch, err):
    ck = _checkpointer(tmp_path)

    def full(state, path):
        raise err

    monkeypatch.setattr(checkpointer_module, "atomic_save", full)
    with pytest.raises(CheckpointError, match="could not write the checkpoint .* MB free there.*--resume"):
        ck.save()


def test_other_errors_are_not_taken_for_a_full_disk(tmp_path, monkeypatch):
    ck = _checkpointer(tmp_path)

    def bug(state, path):
        raise RuntimeError("some bug")

    monkeypatch.setattr(checkpointer_module, "atomic_save", bug)
    with pytest.raises(RuntimeError, match="some bug"):
        ck.save()
