"""Resume after SIGKILL is bit-identical on CPU (weights and the policy-search state), and under
torchrun (two CPU processes, gloo) every rank holds the same policies and controller."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return env


def _cmd(out, extra):
    return [sys.executable, "-m", "fastaug", "train", "--device", "cpu", "--no-progress", "--output-dir", str(out),
            "--train-size", "128", "--batch-size", "16", "--eval-batch-size", "1000", *extra]


def _progress(path):
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # not written yet
        return None
    return state


def _equal(a, b, where=""):
    """Deep equality of checkpoint pieces (tensors bit-for-bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            if k == "seconds":  # wall time, not state
                continue
            _equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _kill_then_resume(tmp_path, extra, ready):
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_cmd(full, extra), env=_env(), check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(_cmd(cut, extra + ["--checkpoint-every", "1"]), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        state = _progress(cut / "checkpoint.pt")
        if state is not None and ready(state):
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = state
            break
        time.sleep(0.05)
    proc.wait()
    assert killed_at is not None, "the run ended before it could be killed mid-way"
    assert proc.returncode == -signal.SIGKILL
    subprocess.run(_cmd(cut, extra + ["--checkpoint-every", "1", "--resume"]), env=_env(), check=True,
                   capture_output=True, timeout=600)
    a = torch.load(full / "checkpoint.pt", map_location="cpu", weights_only=False)
    b = torch.load(cut / "checkpoint.pt", map_location="cpu", weights_only=False)
    _equal(a["model"], b["model"], "model")
    _equal(a["optimizer"], b["optimizer"], "optimizer")
    _equal(a["method"], b["method"], "method")
    return killed_at, a


@pytest.mark.slow
def test_adversarial_resume_after_sigkill_mid_epoch_is_bit_identical(tmp_path):
    extra = ["--augment", "adversarial", "--instances", "4", "--epochs", "2"]
    # killed inside epoch 2, after the first epoch's controller update, with a partial L_m window
    killed, final = _kill_then_resume(tmp_path, extra,
                                      lambda s: s["epoch"] == 1 and 2 <= s["step_in_epoch"] <= 6)
    assert killed["method"][0]["window"]["steps"] == killed["step_in_epoch"]
    assert final["method"][0]["optimizer"]["state"]  # the controller was updated (Adam has moments)


@pytest.mark.slow
def test_tanda_resume_after_sigkill_in_phase_1_is_bit_identical(tmp_path):
    extra = ["--augment", "tanda", "--epochs", "1", "--tanda-epochs", "2", "--tanda-samples", "2",
             "--tanda-batch-size", "32"]
    killed, final = _kill_then_resume(tmp_path, extra, lambda s: 1 <= s["method"][0]["search_step"] <= 5
                                      and not s["method"][0]["search_done"])
    assert final["method"][0]["search_done"] and final["method"][0]["search_step"] == 8


@pytest.mark.slow
def test_ddp_two_cpu_processes_share_policies_and_controller(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "fastaug",
           "train", "--device", "cpu", "--no-progress", "--output-dir", str(out), "--train-size", "128",
           "--batch-size", "16", "--augment", "adversarial", "--instances", "4", "--epochs", "1",
           "--policy-update", "step", "--policy-update-every", "3", "--controller-lr", "0.05"]
    subprocess.run(cmd, env=_env(), check=True, capture_output=True, timeout=600)
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    r0, r1 = state["method"]
    assert r0["ops"] is not None
    _equal(r0["ops"], r1["ops"], "ops")
    _equal(r0["levels"], r1["levels"], "levels")
    _equal(r0["controller"], r1["controller"], "controller")
    _equal(r0["last_losses"], r1["last_losses"], "last_losses")
    # the controller did learn (its parameters left the shared initialisation)
    assert r0["optimizer"]["state"]
    # only rank 0 drew policies: rank 1's controller generator is untouched, so equal policies come
    # from the broadcast, not from equal draws
    assert not torch.equal(r0["generator"], r1["generator"])
