"""The loops outside the engine (the 2-D toy's four, the subsampling feature CNN) stand on the loop
primitive: SIGKILL at a seeded step (the loop's test hook), rerun, and the result is bit-identical to
an uninterrupted run; a foreign checkpoint in their folder is refused in one sentence."""
import os
import random
import subprocess
import sys

import pytest
import torch

from fastaug.train.checkpoint import CheckpointError
from fastaug.train.loop import KILL_ENV

HERE = os.path.dirname(__file__)


def _run(what, folder, kill=None):
    path = [os.getcwd(), HERE] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), OMP_NUM_THREADS="1")
    env.pop(KILL_ENV, None)
    if kill:
        env[KILL_ENV] = kill
    return subprocess.run([sys.executable, os.path.join(HERE, "_resumable_loops.py"), what, str(folder)],
                          capture_output=True, text=True, timeout=600, env=env)


def _equal(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("what, loops", [
    ("toy2d", [("toy translations", 40), ("toy classifier control", 120)]),  # a middle loop and the last
    ("features", [("feature CNN", 18)]),
])
def test_killed_at_a_step_and_rerun_is_bit_identical(tmp_path, what, loops):
    ref = tmp_path / "ref"
    ref.mkdir()
    assert _run(what, ref).returncode == 0
    expect = torch.load(ref / "result.pt", weights_only=True)
    pick = random.Random(what)
    for name, steps in loops:
        d = tmp_path / name.replace(" ", "_")
        d.mkdir()
        out = _run(what, d, kill=f"{name}:{pick.randint(1, steps - 1)}")
        assert out.returncode == -9, out.stderr
        assert not (d / "result.pt").exists()
        out = _run(what, d)
        assert out.returncode == 0, out.stderr
        assert _equal(torch.load(d / "result.pt", weights_only=True), expect), name


def test_a_foreign_checkpoint_in_a_loop_folder_is_refused(tmp_path):
    from fastaug.experiments.toy2d import MLP, train_classifier, two_moons, ToyConfig

    x, y = two_moons(10, 0.1, torch.Generator().manual_seed(0))
    torch.save({"format": "fastaug-influence-stage-1", "iteration": 3}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="older fastaug") as err:
        train_classifier(MLP(4).double().state_dict(), x, y, ToyConfig(hidden=4, train_steps=3), folder=str(tmp_path))
    assert "\n" not in str(err.value)
