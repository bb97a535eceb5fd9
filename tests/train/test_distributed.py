"""DDP under torchrun: two CPU processes with gloo, shards, all-reduced metrics, rank 0 alone writes."""
import json
import os
import subprocess
import sys

import pytest
import torch

from _train_utils import cli, cli_args


def _torchrun(d, nproc=2, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "fastaug", "train", *cli_args(d, **kw)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, f"torchrun failed:\n{out.stdout}\n{out.stderr}"
    return out


@pytest.mark.slow
def test_two_gloo_processes_train_and_rank0_alone_writes(tmp_path):
    d = tmp_path / "ddp"
    out = _torchrun(d, augment="randaugment", epochs=2, train_size=250, batch_size=25)
    # only rank 0 prints: one line per epoch, not two
    assert sum(line.startswith("epoch 1/2 ") for line in out.stdout.splitlines()) == 1
    with open(d / "metrics.jsonl") as f:
        hist = [json.loads(line) for line in f]
    assert len(hist) == 2
    # each rank trained on its own shard of 125: the all-reduced count is the whole set
    assert all(h["train_samples"] == 250 for h in hist)
    assert sorted(os.listdir(d)) == [".fastaug.lock", "args.json", "checkpoint.pt", "curves.png", "metrics.jsonl", "summary.json"]
    state = torch.load(d / "checkpoint.pt", weights_only=True)
    assert state["world"] == 2 and len(state["ranks"]) == 2  # every rank's random state is saved
    assert not torch.equal(state["ranks"][0]["augment_generator"]["state"], state["ranks"][1]["augment_generator"]["state"])
    # one process would need to resume with the same number of processes
    res = cli("train", *cli_args(d, augment="randaugment", epochs=2, train_size=250, batch_size=25, resume=True),
              check=False)
    assert res.returncode == 2 and "written by 2 processes" in res.stderr


@pytest.mark.slow
def test_each_rank_trains_its_own_shard(tmp_path):
    """The indices each rank trained on (recorded by a method through the engine's batch indices) are
    disjoint and together the whole training set: the test fails if both ranks train the same shard."""
    here = os.path.dirname(__file__)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([os.getcwd(), here] + ([os.environ["PYTHONPATH"]] if os.environ.get(
                   "PYTHONPATH") else [])))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(here, "_ddp_shards.py"), str(tmp_path / "run")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    a, b = (r["method"]["seen"] for r in state["ranks"])
    assert a.numel() == b.numel() == 125
    assert set(a.tolist()).isdisjoint(b.tolist()) and sorted(a.tolist() + b.tolist()) == list(range(250))
