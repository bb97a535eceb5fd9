"""The engine: outputs, SIGKILL + resume bit-identical on CPU, clear errors, schedules, AMP."""
import json
import math
import os
import random
import signal
import subprocess
import sys

import pytest
import torch

from fastaug.train import Trainer, train
from fastaug.train.checkpoint import CheckpointError
from fastaug.train.figures import curves_figure
from fastaug.train.loop import KILL_ENV
from fastaug.train.optim import lr_factor

from _train_utils import cli, cli_args, load_model_state

KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds", "augment_seconds",
        "images_per_second", "train_samples"}


def _history(d):
    with open(os.path.join(d, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_outputs_and_what_they_hold(small, tmp_path):
    summary = train(small(epochs=2, augment="standard"))
    d = str(tmp_path / "run")
    assert {"args.json", "metrics.jsonl", "checkpoint.pt", "summary.json", "curves.png"} <= set(os.listdir(d))
    hist = _history(d)
    assert [h["epoch"] for h in hist] == [1, 2] and all(KEYS <= set(h) for h in hist)
    assert all(h["train_samples"] == 256 for h in hist)
    # lr: the rate of each epoch's last step (8 steps per epoch; the cosine reaches 0 only after the run)
    assert [h["lr"] for h in hist] == pytest.approx([0.01 * lr_factor(s, 8, _args(epochs=2)) for s in (7, 15)])
    assert hist[0]["lr"] > hist[1]["lr"] > 0
    with open(os.path.join(d, "summary.json")) as f:
        assert json.load(f) == summary
    assert summary["final_test_acc"] == hist[-1]["test_acc"] and summary["best_test_acc"] == max(
        h["test_acc"] for h in hist)
    assert summary["train_seconds"] == pytest.approx(sum(h["epoch_seconds"] for h in hist))
    assert summary["pretrain_seconds"] == 0 and summary["total_seconds"] == summary["train_seconds"]
    with open(os.path.join(d, "args.json")) as f:
        args = json.load(f)
    assert args["model"] == "allconv" and args["opt"] == "adam" and args["lr"] == 0.01  # resolved defaults
    # checkpoint["model"] is the classifier's state_dict: it loads into a fresh model and reproduces test_acc
    from fastaug.data import load_dataset
    from fastaug.models import build_model

    _, test = load_dataset("mnist5k")
    m = build_model("allconv", 10, 1, mean=test.mean, std=test.std)
    m.load_state_dict(load_model_state(d))
    m.eval()
    with torch.no_grad():
        acc = (m(test.images.float() / 255).argmax(1) == test.labels).double().mean().item()
    assert acc == pytest.approx(hist[-1]["test_acc"], abs=1e-9)


def test_the_callers_arguments_are_only_read(small):
    """The engine resolves defaults in a copy of its own: the caller's namespace means after a run what it
    meant before (no default filled in, no --data-seed set)."""
    import copy

    from fastaug.train import load_data, replace_args

    args = small(epochs=1, train_size=64)
    before = copy.deepcopy(vars(args))
    load_data(args)
    t = Trainer(args)
    assert vars(args) == before and args.model is None and args.data_seed is None
    assert t.args is not args and t.args.model == "allconv" and t.args.data_seed == args.seed
    changed = replace_args(args, drop=("cutout",), seed=4)
    assert changed.seed == 4 and not hasattr(changed, "cutout") and vars(args) == before


def test_curves_figure_plots_the_metrics():
    hist = [{"epoch": e, "train_loss": 2.0 / e, "test_loss": 2.5 / e, "train_acc": 0.1 * e, "test_acc": 0.09 * e}
            for e in range(1, 5)]
    fig = curves_figure(hist)
    ax_l, ax_a = fig.axes
    assert [list(l.get_ydata()) for l in ax_l.lines] == [[h["train_loss"] for h in hist], [h["test_loss"] for h in hist]]
    assert [list(l.get_ydata()) for l in ax_a.lines] == [[h["train_acc"] for h in hist], [h["test_acc"] for h in hist]]
    assert list(ax_a.lines[0].get_xdata()) == [1, 2, 3, 4]


def _kill_at_step(d, flags, step):
    """Run the CLI in a subprocess that SIGKILLs itself right after global step ``step`` (the loop's
    test hook, a step count, not a timer)."""
    env = dict(os.environ, **{KILL_ENV: f"train:{step}"})
    out = subprocess.run([sys.executable, "-m", "fastaug", "train", *cli_args(d, **flags)], capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == -signal.SIGKILL, out.stderr


def test_sigkill_at_a_random_step_then_resume_is_bit_identical(tmp_path):
    # 8 steps per epoch, checkpoints every 3 steps: the kill lands after a checkpoint, between two, or
    # before the first (then --resume starts over); the step comes from a seeded generator
    flags = dict(augment="randaugment", epochs=2, checkpoint_every=3, seed=5)
    ref = tmp_path / "ref"
    cli("train", *cli_args(ref, **flags))
    pick = random.Random(11)
    for step in (pick.randint(3, 15), pick.randint(1, 2)):  # after a checkpoint; before the first one
        killed = tmp_path / f"killed{step}"
        _kill_at_step(killed, flags, step)
        assert not (killed / "summary.json").exists()
        # checkpoints: after steps 3, 6, 9, ... and after step 8 (epoch end, written after the kill hook)
        saved = [s for s in range(1, step + 1) if s % 3 == 0] + [s for s in range(1, step) if s % 8 == 0]
        if saved:
            state = torch.load(killed / "checkpoint.pt", weights_only=True)
            assert state["ranks"][0]["loop"]["global_step"] == max(saved)
        else:
            assert not (killed / "checkpoint.pt").exists()
        out = cli("train", *cli_args(killed, resume=True, **flags))
        assert ("resumed" in out.stdout) == bool(saved) and ("from the beginning" in out.stdout) == (not saved)
        a, b = load_model_state(ref), load_model_state(killed)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        ha, hb = _history(ref), _history(killed)
        assert len(ha) == len(hb) == 2
        for x, y in zip(ha, hb):
            for k in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_samples"):
                assert x[k] == y[k], k


def test_resume_needs_only_the_output_dir(tmp_path):
    """``--output-dir D --resume`` continues with D/args.json's arguments: killed after epoch 1 of 2 and
    resumed with no other flag, the run ends bit-identical to an uninterrupted one; a flag given must
    still match the run's."""
    flags = dict(augment="randaugment", ra_magnitude=13, epochs=2, seed=5, sched="step", decay_milestones=[1],
                 decay_rate=0.5)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    cli("train", *cli_args(ref, **flags))
    _kill_at_step(killed, flags, 9)  # 8 steps per epoch: epoch 1 is checkpointed
    out = cli("train", "--output-dir", f"{killed}/", "--resume")
    assert "resumed train" in out.stdout and "at epoch 2, step 0" in out.stdout
    a, b = load_model_state(ref), load_model_state(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = _history(ref), _history(killed)
    assert [h["lr"] for h in ha] == [0.01, 0.005]  # the rate each epoch trained with (step schedule x0.5 at 1)
    for x, y in zip(ha, hb):
        for k in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_samples"):
            assert x[k] == y[k], k
    out = cli("train", "--output-dir", killed, "--resume", "--lr", "0.5", check=False)
    assert out.returncode == 2 and "cannot resume with different arguments (--lr 0.01 -> 0.5)" in out.stderr


def test_resume_takes_the_data_dir_with_or_without_a_trailing_slash():
    from fastaug.train.args import default_args, resolve_defaults
    from fastaug.train.checkpoint import check_same_args

    a, b = (vars(resolve_defaults(default_args(dataset="folder", data_dir=d, output_dir="o")))
            for d in ("/x/flat/", "/x/flat"))
    assert a["data_dir"] == "/x/flat"
    check_same_args(a, b)


def test_resume_errors_are_clear(small, tmp_path, capsys):
    args = small(epochs=1)
    train(args)
    d = tmp_path / "run"
    with pytest.raises(CheckpointError, match="already holds a run"):
        Trainer(args)  # same folder, no --resume: never overwritten silently
    args.resume = True
    changed = small(epochs=1, lr=0.5, resume=True)
    with pytest.raises(CheckpointError, match=r"different arguments \(--lr 0.01 -> 0.5\)"):
        Trainer(changed)
    with open(d / "checkpoint.pt", "r+b") as f:  # truncate: a torn file
        f.truncate(os.path.getsize(d / "checkpoint.pt") // 2)
    with pytest.raises(CheckpointError, match="unreadable"):
        Trainer(args)
    torch.save({"format": "fastaug-train-1", "model": {}}, d / "checkpoint.pt")  # before the loop primitive
    with pytest.raises(CheckpointError, match="written by an older fastaug"):
        Trainer(args)
    capsys.readouterr()
    Trainer(small("empty", resume=True))  # killed before its first checkpoint: starts over, saying so
    assert "starting train from the beginning" in capsys.readouterr().out


def test_cli_reports_errors_in_one_line(tmp_path):
    out = cli("train", "--dataset", "cifar10", "--data-dir", tmp_path / "none", "--output-dir", tmp_path / "o",
              check=False)
    assert out.returncode == 2 and "cifar10 not found in" in out.stderr and "Traceback" not in out.stderr
    out = cli("train", "--augment", "magic", check=False)
    assert out.returncode == 2 and "invalid choice: 'magic'" in out.stderr and "randaugment" in out.stderr
    out = cli("train", "--classes", "3", "11", "--output-dir", tmp_path / "o2", check=False)
    assert out.returncode == 2 and "class 11 is not in mnist5k" in out.stderr


def _args(**kw):
    from types import SimpleNamespace

    base = dict(epochs=10, warmup_epochs=0.0, sched="cosine", decay_milestones=[5, 8], decay_rate=0.1)
    base.update(kw)
    return SimpleNamespace(**base)


def test_lr_schedules():
    spe = 7
    a = _args()
    assert lr_factor(0, spe, a) == 1.0
    assert lr_factor(35, spe, a) == pytest.approx(0.5 * (1 + math.cos(math.pi * 35 / 70)))
    s = _args(sched="step")
    assert [lr_factor(e * spe, spe, s) for e in (0, 4, 5, 7, 8, 9)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    w = _args(warmup_epochs=2)
    assert [lr_factor(i, spe, w) for i in (0, 6, 13)] == pytest.approx([1 / 14, 7 / 14, 1.0])
    assert lr_factor(14, spe, w) == 1.0 and lr_factor(70, spe, w) == pytest.approx(0.0, abs=1e-12)


def test_amp_bfloat16_on_cpu_trains(small):
    """bfloat16 autocast runs the model in bfloat16, and training follows the float32 run closely."""
    tr = Trainer(small("probe", amp=True, amp_dtype="bfloat16"))
    x = torch.rand(2, 1, 28, 28)
    with tr.autocast():
        assert tr.module(x).dtype == torch.bfloat16
    assert tr.module(x).dtype == torch.float32
    amp = train(small("amp", epochs=1, amp=True, augment="none"))
    ref = train(small("fp32", epochs=1, augment="none"))
    hist = {k: _history(small(k).output_dir)[0] for k in ("amp", "fp32")}
    assert hist["amp"]["train_loss"] == pytest.approx(hist["fp32"]["train_loss"], abs=0.05)
    assert hist["amp"]["train_loss"] != hist["fp32"]["train_loss"]  # it did run in another precision
    assert amp["final_test_loss"] == pytest.approx(ref["final_test_loss"], abs=0.1)
    with pytest.raises(ValueError, match="float16 needs CUDA"):
        Trainer(small("fp16", amp=True, amp_dtype="float16"))


def test_image_folder_trains_with_workers(tmp_path):
    """A folder dataset is decoded in DataLoader workers and augmented on the device."""
    pytest.importorskip("PIL")
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    for c in ("red", "blue"):
        os.makedirs(tmp_path / "data" / c)
        for i in range(12):
            arr = rng.integers(0, 80, (20, 24, 3), dtype=np.uint8)
            arr[..., 0 if c == "red" else 2] += 150  # a learnable colour cue
            Image.fromarray(arr).save(tmp_path / "data" / c / f"{i}.png")
    from fastaug.train import default_args

    s = train(default_args(dataset="folder", data_dir=str(tmp_path / "data"), image_size=16, model="resnet20",
                           augment="randaugment", epochs=2, batch_size=8, workers=1, output_dir=str(tmp_path / "o"),
                           progress=False, opt="adam", lr=0.01))
    assert s["train_images"] == 19 and s["epochs"] == 2  # 24 images, a balanced 20 % held out
    with open(tmp_path / "o" / "args.json") as f:
        a = json.load(f)
    assert a["crop_padding"] == 2 and a["cutout"] == 8 and a["fill"] == 128  # defaults for small RGB images


def test_folder_cli_takes_classes_and_train_size(tmp_path):
    """fastaug train --dataset folder --classes a b --train-size 8: a two-class balanced subset of a
    three-class folder, in the main process (-j 0)."""
    pytest.importorskip("PIL")
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        os.makedirs(tmp_path / "data" / c)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
    out = tmp_path / "o"
    cli("train", "--dataset", "folder", "--data-dir", tmp_path / "data", "--image-size", "16", "--model", "lenet",
        "--classes", "a", "b", "--train-size", "8", "--epochs", "1", "-b", "4", "-j", "0", "--output-dir", out,
        "--no-progress")
    with open(out / "summary.json") as f:
        s = json.load(f)
    assert s["train_images"] == 8 and s["epochs"] == 1
    hist = _history(str(out))
    assert hist[0]["train_samples"] == 8
    with open(out / "args.json") as f:
        assert json.load(f)["classes"] == ["a", "b"]


def test_augmentation_defaults_follow_the_image_size():
    from fastaug.train.args import data_defaults

    assert data_defaults("mnist5k", 28) == dict(crop_padding=2, cutout=8, fill=0)  # digits: black background
    assert data_defaults("cifar10", 32) == dict(crop_padding=4, cutout=16, fill=128)  # AdvAA's CIFAR baseline
    assert data_defaults("folder", 224) == dict(crop_padding=28, cutout=0, fill=128)  # ImageNet-sized: no Cutout


def test_resume_takes_device_auto_for_the_device_it_resolves_to():
    """``--device auto`` on a machine without a GPU is cpu: a run started either way resumes the other
    way; a GPU index is not a different device kind, but cpu against cuda is refused."""
    from fastaug.train.args import default_args, resolve_defaults
    from fastaug.train.checkpoint import check_same_args

    def args(device):
        return vars(resolve_defaults(default_args(device=device, output_dir="o")))

    here = "cuda" if torch.cuda.is_available() else "cpu"
    check_same_args(args("auto"), args(here))
    check_same_args(args(here), args("auto"))
    check_same_args(args("cuda:0"), args("cuda:1"))
    with pytest.raises(CheckpointError, match=r"--device 'cpu' -> 'cuda'"):
        check_same_args(args("cpu"), args("cuda"))
    if here == "cpu":
        with pytest.raises(CheckpointError, match=r"--device 'auto' -> 'cuda'"):
            check_same_args(args("auto"), args("cuda"))
