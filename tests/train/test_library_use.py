"""The engine as a library: a user's script outside the package defines its own stage and its own Method
with its own loss (``_user_method_script.py``, the docs' "How to add a method / a stage") and trains it
with ``fastaug.train``'s public names, in a subprocess started from a temporary folder."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from fastaug.artifacts import load_artifact
from fastaug.train import default_args, load_data
from fastaug.train.rng import derive_seed

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _lines(path):
    return [json.loads(line) for line in open(path) if line.strip()]


@pytest.mark.slow
def test_a_user_script_trains_its_own_method_and_stage(tmp_path):
    script = shutil.copy(os.path.join(HERE, "_user_method_script.py"), tmp_path / "my_method.py")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(script), "run"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    run = tmp_path / "run"
    # the stage's artifact: every class's mean image of the same 128 training digits, computed here again
    train, _, _ = load_data(default_args(train_size=128))
    x = train.images.float() / 255
    want = torch.stack([x[train.labels == c].mean(0) for c in range(10)])
    art = load_artifact("class-means", run / "class_means" / "means.pt")
    torch.testing.assert_close(art.state["means"], want)
    assert json.loads((run / "class_means" / "stage.json").read_text())["artifacts"] == {"means": "means.pt"}
    # the method's own loss trained the classifier; its own log ("lam") is the epoch's mean of the draws the
    # method made from trainer.rng: 4 steps per epoch, each one U(0, 1) then a permutation of 32
    hist = _lines(run / "metrics.jsonl")
    assert [r["epoch"] for r in hist] == [1, 2] and hist[1]["train_loss"] < hist[0]["train_loss"]
    g = torch.Generator().manual_seed(derive_seed(0, "augment", 0))
    lams = []
    for _ in range(8):
        lams.append(torch.rand((), generator=g).item())
        torch.randperm(32, generator=g)
    assert [r["lam"] for r in hist] == pytest.approx([sum(lams[:4]) / 4, sum(lams[4:]) / 4], rel=1e-6)
    stages = json.loads((run / "stages.json").read_text())
    assert set(stages) == {"class_means", "classifier"} and stages["class_means"]["classes"] == 10
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["pretrain_seconds"] == pytest.approx(stages["class_means"]["seconds"])


def test_the_user_method_without_its_stage_result_refuses(tmp_path):
    sys.path.insert(0, HERE)
    try:
        from _user_method_script import MixWithClassMeans
    finally:
        sys.path.remove(HERE)
    from fastaug.train import MissingInput, Trainer

    with pytest.raises(MissingInput, match="needs the class means of its first stage"):
        Trainer(default_args(train_size=64, output_dir=str(tmp_path / "r"), progress=False), method=MixWithClassMeans)
