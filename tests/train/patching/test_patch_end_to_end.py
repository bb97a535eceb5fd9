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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

TINY = ["--gan-steps", "6", "--gan-batch-size", "4", "--gan-width", "4", "--model", "lenet", "--epochs", "2",
        "--batch-size", "400", "--no-progress", "--checkpoint-every", "3", "--grade-steps", "30"]


def _patch(d, *extra, kill=None, check=True):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if kill:
        env[KILL_ENV] = kill
    out = subprocess.run([sys.executable, "-m", "fastaug", "patch", "--output-dir", str(d), *TINY, *extra],
                         capture_output=True, text=True, timeout=900, env=env)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


# A user's script in a fresh process outside the source tree: the run folder's augmentation on new images
# (here the first training digits, whose stage-1 translations the test compares against).
USER = r'''
import sys, torch, fastaug.augment
aug = fastaug.augment.load(sys.argv[1])
x, y = torch.load(sys.argv[2], weights_only=True)
torch.save({"type": type(aug).__name__, "into0": aug.translate(x, y, 0), "into1": aug.translate(x, y, 1),
            "quality": aug.provenance.get("quality"), "drawn": aug((x, y), generator=torch.Generator().manual_seed(0))},
           "got.pt")
'''


def _weights(d, run):
    return torch.load(os.path.join(d, run, "checkpoint.pt"), map_location="cpu", weights_only=True)


def test_tiny_patch_run_and_kill_resume_is_bit_identical(tmp_path):
    methods = ["--methods", "erm,camel"]
    ref = tmp_path / "ref"
    first = _patch(ref, *methods)
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
    # the validation split (400 of the 4,000 training digits, each clean and zigzagged): its metrics in every
    # epoch, the selected epoch
    assert set(last["val_group_acc"]) == set(groups) and last["val_robust_acc"] == min(last["val_group_acc"].values())
    assert "## Selected epoch" in table and "## Last epoch" in table and (ref / "patching_selected.csv").is_file()
    # stage 1 graded on the 800 held-out images (~200 per direction); a flagged stage 1 is one warning line
    quality = json.loads((ref / "translation" / "stage.json").read_text())["metrics"]["quality"]
    assert quality["held_out"] == 800 and len(quality["directions"]) == 4
    assert sum(d["images"] for d in quality["directions"]) == 800
    warnings = [line for line in first.stderr.splitlines() if "warning" in line]
    assert quality["flags"]  # 6 steps of a width-4 CycleGAN do not translate
    assert warnings == ["fastaug patch: warning: stage 1's translations look wrong: " + "; ".join(quality["flags"])
                        + " (patching.md, translation/stage.json; try other --gan-steps / --gan-lr)"]
    assert "## Stage 1: translation quality (800 held-out images)" in table and quality["flags"][0] in table
    art = load_artifact("patching-translations", ref / "translation" / "translations.pt")
    translations = art.state["translations"]
    assert translations.shape == (3600, 2, 1, 28, 28) and translations.dtype == torch.uint8
    # stage 1's translations leave the run: augmentation.pt in the folder, loaded by a user's script, gives
    # the precomputed translations of the training images, and carries the graded quality
    assert f"fastaug.augment.load({str(ref)!r})" in first.stdout
    assert (ref / "augmentation.pt").read_bytes() == (ref / "translation" / "augmentation.pt").read_bytes()
    from fastaug.data.subgroups import load_grouped_dataset
    train = load_grouped_dataset("mnist-correlation", val_fraction=0.1)[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    torch.save((train.images[:16], train.labels[:16]), elsewhere / "x.pt")
    subprocess.run([sys.executable, "-c", USER, str(ref), str(elsewhere / "x.pt")], cwd=elsewhere, check=True,
                   env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"), timeout=300)
    got = torch.load(elsewhere / "got.pt", weights_only=True)
    assert got["type"] == "SubgroupTranslation" and got["quality"] == quality
    assert torch.equal(got["into0"], translations[:16, 0]) and torch.equal(got["into1"], translations[:16, 1])
    drawn, labels = got["drawn"]
    assert torch.equal(labels, train.labels[:16]) and drawn.dtype == torch.uint8
    assert all(torch.equal(drawn[i], translations[i, 0]) or torch.equal(drawn[i], translations[i, 1])
               for i in range(16))
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
    assert [line for line in out.stderr.splitlines() if "warning" in line] == warnings  # a reused stage 1 too
    assert torch.equal(load_artifact("patching-translations", run / "translation" / "translations.pt")
                       .state["translations"], translations)
    assert (run / "augmentation.pt").read_bytes() == (ref / "augmentation.pt").read_bytes()
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
    assert t.shape == (16, 2, 3, 16, 16)  # 5 per subgroup, one of each held out for grading and selection
    import fastaug.augment

    aug = fastaug.augment.load(out)  # per-class translations of the user's 16x16 RGB images
    assert type(aug).__name__ == "SubgroupTranslation" and not aug.shared and aug.image_size == (16, 16)
    assert aug.classes == ("cat", "dog") and aug.subgroups == (("indoor", "outdoor"), ("indoor", "outdoor"))
    header = next(line for line in (out / "patching.md").read_text().splitlines() if line.startswith("| method |"))
    assert "cat/indoor" in header and "dog/outdoor" in header and "gap dog" in header
