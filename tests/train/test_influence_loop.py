"""``--augment influence`` end to end on a tiny MNIST-5k run: every stage completes and writes its
outputs; ``--stages`` reuses finished stages (and a split run equals a single one); a stage killed with
SIGKILL and resumed gives the same result, bit for bit; clear errors."""
import json
import os
import random
import signal
import subprocess
import sys

import pytest
import torch

from fastaug.artifacts import load_artifact
from fastaug.train import default_args, train
from fastaug.train.influence_loop import Augmenter
from fastaug.train.loop import KILL_ENV
from fastaug.train.pipeline import StageError

from _train_utils import cli_args, same_augmentation

#: A run of seconds: 100 labelled digits, 50 for validation, one epoch, a few GAN and E/G steps.
TINY = dict(augment="influence", train_size=100, val_size=50, epochs=1, batch_size=50, gan_iters=8,
            gan_batch_size=32, aug_iters=6, aug_batch_size=32, stage_log_every=2, stage_checkpoint_every=2,
            eval_batch_size=500, progress=False)


def tiny(d, **kw):
    return default_args(**dict(TINY, output_dir=str(d), **kw))


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _model(d):
    return torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu", weights_only=True)["model"]


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses below (OMP_NUM_THREADS=1): bit-identical comparisons
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, one_thread):
    """The reference: all five stages in one call."""
    d = tmp_path_factory.mktemp("influence") / "full"
    summary = train(tiny(d))
    return d, summary


@pytest.mark.slow
def test_every_stage_completes_and_writes_its_outputs(full_run):
    d, summary = full_run
    names = set(os.listdir(d))
    assert {"args.json", "metrics.jsonl", "checkpoint.pt", "summary.json", "curves.png", "augmenter.pt",
            "stages.json", "figure4_tau_interpolation.png", "learned_augmentations.png", "augmentation.pt"} <= names
    for k, folder in enumerate(["stage1_classifier", "stage2_gan", "stage3_influence", "stage4_augmenter"], 1):
        with open(d / folder / "stage.json") as f:
            record = json.load(f)
        assert record["stage"] == folder and record["seconds"] > 0
    # every stage names the artifacts it hands on (relative to its folder), all in the one artifact format
    artifacts = {k: json.loads((d / k / "stage.json").read_text())["artifacts"]
                 for k in ("stage1_classifier", "stage2_gan", "stage3_influence", "stage4_augmenter")}
    assert artifacts == {"stage1_classifier": {"classifier": "classifier.pt"},
                         "stage2_gan": {"augmenter": "augmenter.pt", "critics": "critics.pt"},
                         "stage3_influence": {"influence": "influence.pt", "validation": "validation.pt"},
                         "stage4_augmenter": {"augmenter": "../augmenter.pt"}}
    kinds = {"classifier": "classifier", "critics": "influence-critics", "influence": "last-layer-influence",
             "validation": "influence-validation", "augmenter": "influence-augmenter"}
    for folder, named in artifacts.items():
        for name, rel in named.items():
            art = load_artifact(kinds[name], d / folder / rel)
            assert art.meta["dataset"] == "mnist5k", (folder, name)
    # stage 1: an engine run with the standard augmentation; F handed on as the checkpoint's final weights
    assert json.loads((d / "stage1_classifier" / "args.json").read_text())["augment"] == "standard"
    f = load_artifact("classifier", d / "stage1_classifier" / "classifier.pt").state["model"]
    assert _same_state(f, _model(d / "stage1_classifier"))
    assert len(_lines(d / "stage1_classifier" / "metrics.jsonl")) == 1
    # stage 2: GAN losses every 2 iterations, G moved away from its initialisation
    gan = _lines(d / "stage2_gan" / "metrics.jsonl")
    assert [r["iteration"] for r in gan] == [2, 4, 6, 8]
    assert all({"d_image", "d_feature", "g_image", "g_feature", "identity"} <= set(r) for r in gan)
    # stage 3: s_val from the 50 validation digits, F's validation loss
    (s3,) = _lines(d / "stage3_influence" / "metrics.jsonl")
    assert s3["val_points"] == 50 and s3["train_points"] == 100 and s3["solver"] == "exact"
    # stage 4: mean influence per step; predicted vs refit validation loss before and after
    s4 = _lines(d / "stage4_augmenter" / "metrics.jsonl")
    evals = [r for r in s4 if "refit_val_loss" in r]
    assert [r["iteration"] for r in evals] == [0, 6]
    assert [r["iteration"] for r in s4 if "refit_val_loss" not in r] == [2, 4, 6]
    for r in evals:
        assert r["predicted_val_loss"] == pytest.approx(r["val_loss"] + r["mean_influence"] / 2)
    # E and G trained; augmenter.pt holds the evaluated iterate with the lowest refit validation loss
    rec = json.loads((d / "stage4_augmenter" / "stage.json").read_text())["metrics"]
    best = min(evals, key=lambda r: r["refit_val_loss"])
    assert rec["selected_iteration"] == best["iteration"] and rec["refit_val_loss_selected"] == best["refit_val_loss"]
    last = torch.load(d / "stage4_augmenter" / "checkpoint.pt", weights_only=True)["augmenter"]
    start, chosen = Augmenter.load(d / "stage2_gan" / "augmenter.pt"), Augmenter.load(d / "augmenter.pt")
    assert not torch.equal(last["generator.head.weight"], start.generator.head.weight)
    assert not torch.equal(last["encoder.fc.weight"], start.encoder.fc.weight)
    same = torch.equal(chosen.encoder.fc.weight, start.encoder.fc.weight)
    assert same == (best["iteration"] == 0) and same != torch.equal(chosen.encoder.fc.weight, last["encoder.fc.weight"])
    assert chosen.appearance is False and chosen.dropout == 0.5  # grey digits: spatial only (CVPR 4.2)
    # stage 5: the engine's run, with validation metrics and learned samples
    (epoch,) = _lines(d / "metrics.jsonl")
    assert {"val_loss", "val_acc", "learned_fraction"} <= set(epoch) and 0 < epoch["learned_fraction"] < 1
    assert summary["augment"] == "influence" and summary["final_test_acc"] == epoch["test_acc"]
    stages = json.loads((d / "stages.json").read_text())
    assert set(stages) == {"1", "2", "3", "4", "5"} and all(stages[k]["seconds"] > 0 for k in stages)
    # the summary's total time counts stages 1-4 as well as the engine's epochs of stage 5
    assert summary["pretrain_seconds"] == pytest.approx(sum(stages[k]["seconds"] for k in "1234"))
    assert summary["train_seconds"] == pytest.approx(stages["5"]["seconds"])
    for png in ("figure4_tau_interpolation.png", "learned_augmentations.png", "stage2_gan/samples.png"):
        assert (d / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_stages_subset_reuses_finished_stages_and_equals_one_run(full_run, tmp_path, one_thread):
    ref, _ = full_run
    d = tmp_path / "split"
    assert train(tiny(d, stages=[1, 2])) == {}  # stops before retraining: nothing trained in the run folder
    assert not (d / "checkpoint.pt").exists() and (d / "stage2_gan" / "stage.json").exists()
    assert not (d / "stage3_influence").exists()
    marks = {k: (d / k / "stage.json").stat().st_mtime_ns for k in ("stage1_classifier", "stage2_gan")}
    train(tiny(d, stages=[3, 4, 5]))
    assert marks == {k: (d / k / "stage.json").stat().st_mtime_ns for k in marks}  # reused, not rewritten
    assert _same_state(_model(ref), _model(d))
    a, b = Augmenter.load(ref / "augmenter.pt"), Augmenter.load(d / "augmenter.pt")
    assert _same_state(a.generator.state_dict(), b.generator.state_dict())
    assert _same_state(a.encoder.state_dict(), b.encoder.state_dict())
    # A finished stage with other options is refused, naming the option; a missing prerequisite too.
    with pytest.raises(StageError, match="--gan-iters 8 -> 9"):
        train(tiny(d, stages=[3, 4], gan_iters=9, resume=True))
    with pytest.raises(StageError, match="needs stage 1"):
        train(tiny(tmp_path / "fresh", stages=[4]))


def _run(cmd, kill=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop(KILL_ENV, None)
    if kill:
        env[KILL_ENV] = kill
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["stage 2 (GAN)", "stage 4 (E, G)", "train"])
def test_a_stage_killed_and_resumed_gives_the_same_result(full_run, tmp_path, loop):
    """SIGKILL at a seeded step of a middle stage (2, 4) and of the last (5, the engine), then
    ``--resume``: the stage's metrics, the augmenter and the final classifier equal the reference."""
    ref, _ = full_run
    d = tmp_path / "killed"
    flags = cli_args(d, **{k: v for k, v in TINY.items() if k not in ("progress",)})
    cmd = [sys.executable, "-m", "fastaug", "train", *flags]
    steps = {"stage 2 (GAN)": TINY["gan_iters"], "stage 4 (E, G)": TINY["aug_iters"], "train": 2}[loop]
    step = random.Random(loop).randint(1, steps - 1)
    out = _run(cmd, kill=f"{loop}:{step}")
    assert out.returncode == -signal.SIGKILL, out.stdout + out.stderr
    assert (d / "stage1_classifier" / "stage.json").exists() and not (d / "summary.json").exists()
    out = _run(cmd + ["--resume"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reused" in out.stdout
    for folder in ("stage2_gan", "stage4_augmenter"):
        assert _lines(d / folder / "metrics.jsonl") == _lines(ref / folder / "metrics.jsonl"), folder
    a, b = Augmenter.load(ref / "augmenter.pt"), Augmenter.load(d / "augmenter.pt")
    assert _same_state(a.generator.state_dict(), b.generator.state_dict())
    assert _same_state(a.encoder.state_dict(), b.encoder.state_dict())
    assert _same_state(_model(ref), _model(d))
    assert same_augmentation(ref, d)  # the resumed run leaves the same learned augmentation


def test_the_retraining_without_its_stage_result_refuses_in_one_sentence(tmp_path):
    """``--augment influence`` on the engine alone (no pipeline) has no augmenter to sample from: it says so."""
    from fastaug.train import Trainer
    from fastaug.train.influence_loop import InfluenceAugment, LearnedRetrain
    from fastaug.train.method import MissingInput

    for method in (None, InfluenceAugment, LearnedRetrain):
        with pytest.raises(MissingInput) as err:
            Trainer(tiny(tmp_path / "alone"), method=method)
        assert str(err.value).startswith("the influence loop's retraining (stage 5) samples from the augmenter (E, G) "
                                         "that its stage 4 trains, and none was given") and "\n" not in str(err.value)


def test_bad_options_are_named(tmp_path):
    with pytest.raises(ValueError, match="--val-size"):
        train(tiny(tmp_path / "a", val_size=0))
    with pytest.raises(ValueError, match="--stages"):
        train(tiny(tmp_path / "b", stages=[0, 6]))
    with pytest.raises(ValueError, match="--learned-prob"):
        train(tiny(tmp_path / "c", learned_prob=1.5))


@pytest.mark.slow
def test_learned_retrain_passed_to_a_trainer_is_stage_5(full_run, tmp_path, one_thread):
    """The stage-5 method on its own (``Trainer(args, method=...)``) with the run's augmenter.pt trains the
    very classifier of the run's stage 5: same data, initialisation and draws."""
    from fastaug.train import Trainer
    from fastaug.train.influence_loop import LearnedRetrain

    ref, _ = full_run
    aug = Augmenter.load(ref / "augmenter.pt")
    args = default_args(**{k: v for k, v in TINY.items() if k in ("train_size", "val_size", "epochs", "batch_size",
                                                                   "eval_batch_size", "progress")},
                        augment="standard", output_dir=str(tmp_path / "retrain"))
    Trainer(args, method=LearnedRetrain, inputs={"augmenter": aug}).fit()
    (epoch,) = _lines(tmp_path / "retrain" / "metrics.jsonl")
    assert 0 < epoch["learned_fraction"] < 1 and {"val_loss", "val_acc"} <= set(epoch)
    assert _same_state(_model(ref), _model(tmp_path / "retrain"))


def test_foreign_and_torn_stage_checkpoints_are_refused_in_one_sentence(full_run, tmp_path):
    import shutil

    from fastaug.train.checkpoint import CheckpointError

    ref, _ = full_run
    d = tmp_path / "run"
    for folder in ("stage1_classifier", "stage2_gan", "stage3_influence"):
        shutil.copytree(ref / folder, d / folder)
    (d / "stage4_augmenter").mkdir()
    (d / "stage4_augmenter" / "checkpoint.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(CheckpointError, match="unreadable") as err:
        train(tiny(d, stages=[4]))
    shutil.rmtree(d / "stage2_gan")
    (d / "stage2_gan").mkdir()
    torch.save({"format": "fastaug-influence-stage-1", "iteration": 2}, d / "stage2_gan" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="older fastaug") as err2:
        train(tiny(d, stages=[2]))
    assert "\n" not in str(err.value) + str(err2.value)


@pytest.mark.slow
def test_an_image_folder_runs_every_stage_with_its_validation_split(tmp_path, one_thread):
    """``--dataset folder --val-size``: the stages batch the folder through its loader (decoded where
    the samples are produced, ``--workers``), s_val comes from the held-out images, and the figures
    show the first image of each class, decoded as the loader decodes it."""
    from PIL import Image

    from fastaug.train import load_data
    from fastaug.train.influence_loop.stages import figure_images

    root, g = tmp_path / "photos", torch.Generator().manual_seed(0)
    for k, c in enumerate(("ant", "bee", "cat")):
        os.makedirs(root / c)
        for i in range(12):
            img = (torch.rand(12, 12, 3, generator=g) * 80).to(torch.uint8)
            img[:, 4 * k:4 * k + 4] += 150  # a class is a bright column band
            Image.fromarray(img.numpy()).save(root / c / f"{i}.png")
    d = tmp_path / "run"
    args = tiny(d, dataset="folder", data_dir=str(root), image_size=8, train_size=15, val_size=6, batch_size=8,
                gan_batch_size=8, gan_iters=2, aug_iters=2, aug_batch_size=8, workers=0)
    summary = train(args)
    (s3,) = _lines(d / "stage3_influence" / "metrics.jsonl")
    assert s3["val_points"] == 6 and s3["train_points"] == 15
    assert summary["augment"] == "influence" and (d / "augmentation.pt").exists()
    assert (d / "learned_augmentations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    train_data, _, _ = load_data(args)
    x = figure_images(train_data, 3)
    first = [int((train_data.labels == c).nonzero()[0]) for c in range(3)]
    assert x.shape == (3, 3, 8, 8)
    assert torch.equal(x, torch.stack([train_data.dataset[i][0] for i in first]).float() / 255.0)
    assert [train_data.dataset[i][1] for i in first] == [0, 1, 2]
