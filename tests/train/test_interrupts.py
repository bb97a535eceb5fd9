"""A run stopped by Ctrl-C (SIGINT) or SIGTERM says so in one line (no traceback), exits 128 + the signal,
and leaves a run that ``--resume`` continues; an OS error the machine causes (a full disk, a read-only
folder) is one sentence, not a traceback."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from fastaug import cli
from fastaug.train.checkpoint import load_checkpoint

from _train_utils import cli_args


def _start(d, *extra):
    """The run, with Ctrl-C's default action, as a terminal's foreground job has it: a test run started in
    the background (nohup, a CI runner's shell without job control) holds SIGINT ignored, a child inherits
    that, and Python then installs no KeyboardInterrupt handler (the program rightly keeps ignoring it).
    A handler of our own here becomes the default action in the child at exec (no preexec_fn: threads)."""
    cmd = [sys.executable, "-m", "fastaug", "train", *cli_args(d, augment="standard", epochs=30), *extra]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=os.environ.copy())
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _wait_for(path, proc, timeout=300):
    t0 = time.monotonic()
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_run_in_one_line_and_it_resumes(tmp_path, sig):
    d = tmp_path / "run"
    proc = _start(d)
    _wait_for(d / "metrics.jsonl", proc)  # after the first epoch's checkpoint
    proc.send_signal(sig)
    if sig == signal.SIGINT:
        time.sleep(0.05)
        proc.send_signal(sig)  # a second Ctrl-C adds no traceback either
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("fastaug train: interrupted by") and f"--output-dir {d} --resume" in err
    state = load_checkpoint(str(d / "checkpoint.pt"))  # whole, and a run --resume continues
    assert state["ranks"][0]["loop"]["global_step"] >= 8
    assert not [f for f in os.listdir(d) if ".tmp" in f]


def _raise(exc):
    def run(args):
        raise exc
    return run


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_disk_or_read_only_folder_is_one_sentence(monkeypatch, capsys, tmp_path, code):
    from fastaug.commands import train as train_command

    monkeypatch.setattr(train_command, "run", _raise(OSError(code, os.strerror(code))))
    assert cli.main(["train", "--output-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastaug train: error: " + os.strerror(code)) and len(err.splitlines()) == 1
    assert ("copied there continues with --resume" in err) == (code == errno.EROFS)


def test_other_os_errors_keep_their_traceback(monkeypatch, tmp_path):
    from fastaug.commands import train as train_command

    monkeypatch.setattr(train_command, "run", _raise(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError):
        cli.main(["train", "--output-dir", str(tmp_path / "x")])


def _interrupted_import(args):
    """Ctrl-C during the first import of a C extension: the import fails with an error raised from it."""
    try:
        raise KeyboardInterrupt()
    except KeyboardInterrupt as err:
        raise ImportError("initialization failed") from err


def test_an_interrupt_a_library_turned_into_its_own_error_is_still_one_line(monkeypatch, capsys, tmp_path):
    from fastaug.commands import train as train_command

    monkeypatch.setattr(train_command, "run", _interrupted_import)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    assert cli.main(["train", "--output-dir", str(tmp_path / "x")]) == 130
    err = capsys.readouterr().err
    assert err.startswith("fastaug train: interrupted by Ctrl-C") and len(err.splitlines()) == 1
    assert {sig: signal.getsignal(sig) for sig in before} == before  # a caller in-process gets its handlers back
    monkeypatch.setattr(train_command, "run", _raise(ImportError("no module named x")))
    with pytest.raises(ImportError):  # any other error keeps its traceback
        cli.main(["train", "--output-dir", str(tmp_path / "y")])


def test_the_first_interrupt_ignores_the_next(monkeypatch, tmp_path):
    """In the command, Ctrl-C raises KeyboardInterrupt and from then on SIGINT and SIGTERM are ignored (a
    second one while the run unwinds or the interpreter exits does nothing); a caller in-process gets
    Python's handlers back."""
    from fastaug.commands import train as train_command

    seen = {}

    def run(args):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            seen.update({sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)})
            raise

    monkeypatch.setattr(train_command, "run", run)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert cli.main(["train", "--output-dir", str(tmp_path / "x")]) == 130
        assert seen == {signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN}
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
