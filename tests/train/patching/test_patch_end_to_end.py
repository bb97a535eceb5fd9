"""``fastaug patch`` end to end on a tiny setting: outputs, per-subgroup metrics, Table 1, resume after SIGKILL."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from fastaug.artifacts import load_artifact
from fastaug.train.loop import KILL_ENV

pytestmark = pytest.mark.slow

TINY = ["--gan-steps", "6", "--gan-batch-size", "4", "--gan-width", "4", "--model", "lenet", "--epochs", "2",
        "--batch-size", "400", "--no-progress", "--checkpoint-every", "3"]


def _patch(d, *extra, kill=None, check=True):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if kill:
        env[KILL_ENV] = kill
    out = subprocess.run([sys.executable, "-m", "fastaug", "patch", "--output-dir", str(d), *TINY, *extra],
                         capture_output=True, text=True, timeout=900, env=env)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def _weights(d, run):
    return torch.load(os.path.join(d, run, "checkpoint.pt"), map_location="cpu", weights_only=True)


def test_tiny_patch_run_and_kill_resume_is_bit_identical(tmp_path):
    methods = ["--methods", "erm,camel"]
    ref = tmp_path / "ref"
    _patch(ref, *methods)
    for name in ("patch.json", "stages.json", "patching.md", "patching.csv", "patching.png", "saliency.png",
                 "translation/translations.png", "translation/translations.pt", "erm/seed0/metrics.jsonl",
                 "camel/seed0/summary.json"):
        assert (ref / name).is_file(), name
    history = [json.loads(line) for line in open(ref / "camel" / "seed0" / "metrics.jsonl")]
    assert [r["epoch"] for r in history] == [1, 2]
    last = history[-1]
    groups = ("even/clean", "even/zigzag", "odd/clean", "odd/zigzag")
    assert set(last["group_acc"]) == set(groups)
    assert last["robust_acc"] == min(last["group_acc"].values())
    # the balanced test split: aggregate = mean of the four equal-sized groups
    assert last["aggregate_acc"] == pytest.approx(sum(last["group_acc"].values()) / 4)
    assert last["gap"]["even"] == pytest.approx(abs(last["group_acc"]["even/clean"] - last["group_acc"]["even/zigzag"]))
    assert len(last["dro_weights"]) == 4 and sum(last["dro_weights"]) == pytest.approx(1.0, abs=1e-4)
    table = (ref / "patching.md").read_text()
    assert "| erm |" in table and "| camel |" in table and "robust" in table
    art = load_artifact("patching-translations", ref / "translation" / "translations.pt")
    translations = art.state["translations"]
    assert translations.shape == (4000, 2, 1, 28, 28) and translations.dtype == torch.uint8
    assert art.meta["dataset"] == "mnist-correlation" and art.meta["options"]["gan_steps"] == 6
    # each run hands its classifier on as an artifact: the checkpoint's final weights
    camel = load_artifact("classifier", ref / "camel" / "seed0" / "classifier.pt").state["model"]
    assert all(torch.equal(camel[k], v) for k, v in _weights(ref, "camel/seed0")["model"].items())

    # SIGKILL inside stage 1, then inside stage 2 (camel, after its first checkpoint), each time --resume
    run = tmp_path / "killed"
    out = _patch(run, *methods, kill="translation:4", check=False)
    assert out.returncode == -signal.SIGKILL, out.stderr
    out = _patch(run, *methods, "--resume", kill="patch camel seed0:13", check=False)
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert (run / "erm" / "seed0" / "stage.json").is_file()  # erm finished before camel was killed
    out = _patch(run, *methods, "--resume")
    assert "finished earlier, reused" in out.stdout
    assert torch.equal(load_artifact("patching-translations", run / "translation" / "translations.pt")
                       .state["translations"], translations)
    for r in ("erm/seed0", "camel/seed0"):
        a, b = _weights(ref, r), _weights(run, r)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), r
    assert (ref / "patching.csv").read_text() == (run / "patching.csv").read_text()

    # without --resume the folder is refused; with other stage-1 options, the finished stage is refused
    out = _patch(run, *methods, check=False)
    assert out.returncode == 2 and "already holds a model patching comparison" in out.stderr
    out = _patch(run, *methods, "--resume", "--gan-steps", "7", check=False)
    assert out.returncode == 2 and "--gan-steps 6 -> 7" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_options_are_one_sentence(tmp_path):
    for flags, msg in ((["--correlation", "0.5"], "--correlation must be in (0.5, 1]"),
                       (["--methods", "erm,magic"], "unknown method 'magic'"),
                       (["--dataset", "folder"], "--dataset folder needs --data-dir")):
        out = _patch(tmp_path / "x", *flags, check=False)
        assert out.returncode == 2 and msg in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_folder_dataset_per_class_translation(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 5), ("val", 2)):
        for c in ("cat", "dog"):
            for s in ("indoor", "outdoor"):
                d = tmp_path / "data" / split / c / s
                d.mkdir(parents=True)
                for i in range(n):
                    v = int(torch.randint(256, (), generator=g))
                    Image.new("RGB", (20, 18), (v, 255 - v, 40 if s == "indoor" else 200)).save(d / f"{i}.png")
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "fastaug", "patch", "--dataset", "folder",
                    "--data-dir", str(tmp_path / "data"),
                    "--image-size", "16", "--output-dir", str(out), "--gan-steps", "2", "--gan-batch-size", "2",
                    "--gan-width", "4", "--epochs", "1", "--batch-size", "8", "--methods", "erm,camel",
                    "--no-progress"], check=True, capture_output=True, timeout=600,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    state = torch.load(out / "translation" / "checkpoint.pt", weights_only=True)
    gans = {k.split(".")[1] for k in state["translator"]}
    assert gans == {"0", "1"}  # auto = one CycleGAN per class on a folder dataset
    t = load_artifact("patching-translations", out / "translation" / "translations.pt").state["translations"]
    assert t.shape == (20, 2, 3, 16, 16)
    header = (out / "patching.md").read_text().splitlines()[4]
    assert "cat/indoor" in header and "dog/outdoor" in header and "gap dog" in header
