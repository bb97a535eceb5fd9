"""Two processes in one --output-dir: the second is refused in one sentence before it writes anything;
a killed holder leaves no stale lock."""
import json
import os
import signal
import subprocess
import sys

from _train_utils import cli, cli_args

HOLD = ("import sys, time; from fastaug.train.checkpoint import hold_folder; hold_folder(sys.argv[1]); "
        "print('held', flush=True); time.sleep(300)")


def test_a_second_run_in_a_busy_folder_is_refused(tmp_path):
    d = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for augment in ("standard", "tanda"):  # one engine run; a pipeline (its classifier writes args.json early)
            out = cli("train", *cli_args(d, augment=augment, epochs=1, tanda_epochs=1) if augment == "tanda"
                      else cli_args(d, augment=augment, epochs=1), check=False)
            assert out.returncode == 2, out.stderr
            assert f"is in use by another running fastaug process (pid {holder.pid})" in out.stderr
            assert len(out.stderr.strip().splitlines()) == 1
            assert sorted(os.listdir(d)) == [".fastaug.lock"]  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    cli("train", *cli_args(d, augment="standard", epochs=1))  # the kill released the lock
    with open(d / "summary.json") as f:
        assert json.load(f)["final_test_acc"] >= 0


FORKS = ("import os, sys, time; from fastaug.train.checkpoint import hold_folder; hold_folder(sys.argv[1]); "
         "pid = os.fork()\n"
         "if pid == 0:\n    time.sleep(30); os._exit(0)\n"  # a DataLoader worker, forked after the lock
         "print(pid, flush=True); time.sleep(300)")


def test_a_killed_run_is_not_held_by_the_workers_it_forked(tmp_path):
    """The lock is the process's own (lockf), not shared with the children it forks (flock would be): a run
    SIGKILLed while its DataLoader workers still live is resumable at once."""
    from fastaug.train.checkpoint import hold_folder

    d = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", FORKS, str(d)], stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        os.kill(child, 0)  # the forked child still lives
        hold_folder(str(d))  # not refused
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_second_patch_comparison_in_a_busy_folder_writes_nothing(tmp_path):
    """`fastaug patch` writes patch.json and args.json before stage 1: the second of two comparisons started
    into one folder overwrote them before any loop's lock could refuse it."""
    d = tmp_path / "patch"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = cli("patch", "--output-dir", d, "--gan-steps", "2", "--methods", "erm", "--epochs", "1",
                  "--no-progress", check=False)
        assert out.returncode == 2 and f"in use by another running fastaug process (pid {holder.pid})" in out.stderr
        assert sorted(os.listdir(d)) == [".fastaug.lock"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_compare_does_not_advise_removing_a_busy_run(tmp_path):
    """compare adds "(remove RUN to rerun METHOD)" to a method's checkpoint error: said of a folder another
    process is training in, that advice destroys a live run."""
    d = tmp_path / "cmp"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d / "none")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = cli("compare", "--methods", "none", *cli_args(d, epochs=1), check=False)
        assert out.returncode == 2 and "in use by another running fastaug process" in out.stderr
        assert "remove" not in out.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_a_folder_whose_lock_cannot_be_opened_is_named_not_the_lock_file(tmp_path, monkeypatch):
    """A read-only run folder (root writes anywhere, so the refusal is simulated): the OS error names the
    folder the user chose, not fastaug's .fastaug.lock inside it."""
    import errno

    import pytest

    from fastaug.train import checkpoint

    def read_only(path, mode="r", *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(checkpoint, "open", read_only, raising=False)
    with pytest.raises(OSError) as err:
        checkpoint.hold_folder(str(tmp_path / "run"))
    assert err.value.errno == errno.EROFS and err.value.filename == str(tmp_path / "run")
