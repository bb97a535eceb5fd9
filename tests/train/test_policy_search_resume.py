"""Resume after SIGKILL is bit-identical on CPU (weights and the policy-search state), and under
torchrun (two CPU processes, gloo) every rank holds the same policies and controller. TANDA's two
stages are tested in test_tanda.py."""
import os
import random
import signal
import subprocess
import sys

import pytest
import torch

from fastaug.artifacts import load_artifact
from fastaug.train.loop import KILL_ENV

from _train_utils import same_augmentation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return env


def _cmd(out, extra):
    return [sys.executable, "-m", "fastaug", "train", "--device", "cpu", "--no-progress", "--output-dir", str(out),
            "--train-size", "128", "--batch-size", "16", "--eval-batch-size", "1000", *extra]


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


def _kill_then_resume(tmp_path, extra, step):
    """Run to the end in ``full``; in ``cut``, SIGKILL right after global step ``step`` (the loop's test
    hook), then ``--resume``; returns the two final checkpoints."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_cmd(full, extra), env=_env(), check=True, capture_output=True, timeout=600)
    proc = subprocess.run(_cmd(cut, extra + ["--checkpoint-every", "1"]), env=dict(_env(), **{KILL_ENV: f"train:{step}"}),
                          capture_output=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL
    killed = torch.load(cut / "checkpoint.pt", map_location="cpu", weights_only=True)
    subprocess.run(_cmd(cut, extra + ["--checkpoint-every", "1", "--resume"]), env=_env(), check=True,
                   capture_output=True, timeout=600)
    a = torch.load(full / "checkpoint.pt", map_location="cpu", weights_only=True)
    b = torch.load(cut / "checkpoint.pt", map_location="cpu", weights_only=True)
    _equal(a["model"], b["model"], "model")
    _equal(a["optimizer"], b["optimizer"], "optimizer")
    _equal(a["ranks"][0]["method"], b["ranks"][0]["method"], "method")
    assert same_augmentation(full, cut)  # the resumed run leaves the same learned augmentation
    return killed, a


@pytest.mark.slow
def test_adversarial_resume_after_sigkill_mid_epoch_is_bit_identical(tmp_path):
    extra = ["--augment", "adversarial", "--instances", "4", "--epochs", "2"]
    # 8 steps per epoch: killed inside epoch 2 at a seeded step, after the first epoch's controller
    # update, with a partial L_m window
    step = random.Random(5).randint(10, 14)
    killed, final = _kill_then_resume(tmp_path, extra, step)
    loop, method = killed["ranks"][0]["loop"], killed["ranks"][0]["method"]
    assert loop["epoch"] == 1 and loop["step_in_epoch"] == step - 8
    assert method["window"]["steps"] == loop["step_in_epoch"]
    assert final["ranks"][0]["method"]["optimizer"]["state"]  # the controller was updated (Adam has moments)


@pytest.mark.slow
def test_ddp_two_cpu_processes_share_policies_and_controller(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "fastaug",
           "train", "--device", "cpu", "--no-progress", "--output-dir", str(out), "--train-size", "128",
           "--batch-size", "16", "--augment", "adversarial", "--instances", "4", "--epochs", "1",
           "--policy-update", "step", "--policy-update-every", "3", "--controller-lr", "0.05"]
    subprocess.run(cmd, env=_env(), check=True, capture_output=True, timeout=600)
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    r0, r1 = (r["method"] for r in state["ranks"])
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
    # rank 0 writes the run's augmentation.pt: the controller every rank holds
    art = load_artifact("augmentation/adversarial", out / "augmentation.pt")
    _equal({k[len("controller."):]: v for k, v in art.state.items()}, r0["controller"], "augmentation.pt")
