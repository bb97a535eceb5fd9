"""``fastaug subsample`` end to end on a small MNIST 3-vs-8 problem, and its input errors."""
import csv
import json
import os

import numpy as np
import pytest
import torch

from fastaug.cli import main
from fastaug.models import build_model

SMALL = ["subsample", "--train-size", "60", "--feature-epochs", "3", "--rounds", "2", "--no-progress"]


def test_small_run_writes_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(SMALL + ["--augmentation", "rotate", "--policies", "baseline", "random_prop_update_downweight",
                       "det_inverse", "--output-dir", str(out)])
    assert rc == 0
    for name in ("curves.json", "auc.csv", "table1.csv", "table1.md", "summary.json", "curves.png", "scores.png"):
        assert (out / name).stat().st_size > 0, name
    curves = json.loads((out / "curves.json").read_text())
    assert curves["checkpoints"] == [0, 1, 3, 6, 15, 30, 45, 60]  # the paper's grid scaled to 60 points
    assert curves["meta"]["n_train"] == 60 and curves["meta"]["train_class_counts"] == [30, 30]
    assert curves["meta"]["n_poisoned_test"] == 200 * 15  # 200 test digits and their 14 rotations
    for score in ("loss", "influence"):
        rp = curves["curves"][score]["random_prop_update_downweight"]
        assert rp["rounds"] == 2 and len(rp["runs"]) == 2 and len(rp["std"]) == 8
        det = curves["curves"][score]["det_inverse"]
        assert det["rounds"] == 1 and det["std"] is None
        for e in curves["curves"][score].values():
            assert e["mean"][0] == pytest.approx(curves["no_aug_accuracy"])  # every curve starts at no augmentation
    # Without downweighting, augmenting every point is the full-augmentation fit.
    assert curves["curves"]["loss"]["det_inverse"]["mean"][-1] == pytest.approx(curves["full_aug_accuracy"])
    rows = list(csv.DictReader((out / "auc.csv").open()))
    assert len(rows) == 6 and {r["score"] for r in rows} == {"loss", "influence"}
    for score in ("loss", "influence"):
        means = [float(r["auc_mean"]) for r in rows if r["score"] == score]
        assert means == sorted(means, reverse=True) and all(0 < m <= 60 for m in means)
    det = [r for r in rows if r["policy"] == "det_inverse"][0]
    assert det["auc_std"] == "" and det["display_name"] == "Det Inverse Prop"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["table1"]) >= {"no_aug", "baseline_5%", "best_5%", "best_25%_policy", "full_aug"}
    assert summary["timings"]["total_s"] > 0
    printed = capsys.readouterr().out
    assert "| influence | Rand Prop Update Down |" in printed and "Baseline 10%" in printed
    md = (out / "table1.md").read_text()
    assert "Augmented points: 5% = 3, 10% = 6, 25% = 15 of 60." in md and "repeat one measurement" not in md


def test_table1_says_when_its_fractions_are_the_same_points():
    """On a tiny training set 5, 10 and 25 % round to the same number of points: table1.md says the columns
    are one measurement instead of presenting them as three."""
    from fastaug.experiments.subsample.experiment import TABLE1_FRACTIONS, fraction_points
    from fastaug.experiments.subsample.outputs import _table1_markdown

    n = 4
    counts = [fraction_points(f, n) for f in TABLE1_FRACTIONS]
    assert counts == [1, 1, 1]  # round(0.2), round(0.4), round(1.0), at least 1
    row = {"dataset": "mnist", "augmentation": "rotate", "n_train": n, "no_aug": 0.5, "full_aug": 0.6}
    for p, k in zip(("5%", "10%", "25%"), counts):
        row.update({f"baseline_{p}": 0.55, f"best_{p}": 0.56, f"best_{p}_policy": "x (loss)", f"points_{p}": k})
    md = _table1_markdown(row)
    assert ("Augmented points: 5% = 1, 10% = 1, 25% = 1 of 4; at this training size some of these fractions are "
            "the same points, and their columns repeat one measurement.") in md


@pytest.mark.slow
def test_retrained_features_run(tmp_path):
    """--features retrain: a new CNN at every checkpoint (tiny: 1 epoch, 3 checkpoints)."""
    out = tmp_path / "retrain"
    rc = main(["subsample", "--train-size", "30", "--feature-epochs", "1", "--rounds", "1", "--no-progress",
               "--features", "retrain", "--augmentation", "crop", "--score", "influence", "--policies",
               "random_prop_update", "--checkpoints", "0", "30", "--no-figures", "--output-dir", str(out)])
    assert rc == 0
    curves = json.loads((out / "curves.json").read_text())
    assert curves["meta"]["features"] == "retrain"
    assert curves["checkpoints"] == [0, 2, 3, 8, 30]  # 5/10/25 % added to the given ones


def test_multiclass_run(tmp_path):
    """Three digits: multinomial regression, influence scores and update end to end."""
    out = tmp_path / "three"
    rc = main(["subsample", "--classes", "1", "7", "9", "--train-size", "45", "--feature-epochs", "2", "--rounds",
               "1", "--score", "influence", "--policies", "det_prop_update", "random_inverse", "--no-progress",
               "--no-figures", "--output-dir", str(out)])
    assert rc == 0
    curves = json.loads((out / "curves.json").read_text())
    assert curves["meta"]["num_classes"] == 3 and curves["meta"]["train_class_counts"] == [15, 15, 15]
    assert set(curves["curves"]["influence"]) == {"det_prop_update", "random_inverse"}
    assert all(0 < a <= 1 for a in curves["curves"]["influence"]["det_prop_update"]["mean"])


@pytest.mark.parametrize("argv, message", [
    (["--classes", "3", "11"], "class 11 is not in mnist5k, which has classes 0..9"),
    (["--train-size", "1000"], "--train-size 1000 is more than the 800 training images of classes ['3', '8']"),
    (["--policies", "baseline", "greedy"], "unknown policy 'greedy'; choose from: baseline, baseline_downweight"),
    (["--checkpoints", "0", "500"], "checkpoints must be numbers of augmented points in [0, 60]"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, argv, message):
    assert main(SMALL + argv + ["--output-dir", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_unknown_augmentation_lists_the_choices(capsys):
    assert main(["subsample", "--augmentation", "shear"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastaug subsample: error: argument --augmentation: invalid choice: 'shear'")
    assert "choose from 'translate', 'translate_diag', 'rotate', 'crop'" in err and err.count("\n") == 1


def test_lenet_features():
    torch.manual_seed(0)
    for channels, side in ((1, 28), (3, 32)):
        model = build_model("lenet", 2, channels)
        x = torch.rand(5, channels, side, side)
        assert model.features(x).shape == (5, 84) and model(x).shape == (5, 2)
        assert bool((model.features(x) >= 0).all())  # ReLU features
    with pytest.raises(ValueError, match="at least 16x16"):
        build_model("lenet", 2, 1).features(torch.rand(1, 1, 12, 12))


def _write_tiny_cifar10(root, per_class_train=30, per_class_test=10):
    """A CIFAR-10-format folder (the python-version pickles) with learnable classes 0 and 1: reddish
    vs bluish noise images."""
    import os
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    os.makedirs(folder)
    rng = np.random.default_rng(0)

    def images(label, count):
        x = rng.integers(0, 120, (count, 3, 32, 32))
        x[:, 0 if label == 0 else 2] += 120
        return x.reshape(count, -1).astype(np.uint8)

    def batch(counts):
        data = np.concatenate([images(c, k) for c, k in counts])
        labels = [c for c, k in counts for _ in range(k)]
        return {"data": data, "labels": labels}

    share = per_class_train // 5
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch([(0, share), (1, share), (2, 1)]), f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch([(0, per_class_test), (1, per_class_test)]), f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)


def test_cifar_row_runs_on_rgb_images(tmp_path):
    """--dataset cifar10 with class names: 32x32 RGB, the paper's CIFAR augmentation parameters."""
    _write_tiny_cifar10(tmp_path / "data")
    out = tmp_path / "cifar"
    rc = main(["subsample", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"), "--classes", "airplane",
               "automobile", "--augmentation", "rotate", "--feature-epochs", "2", "--rounds", "1", "--policies",
               "baseline", "det_prop", "--no-progress", "--no-figures", "--output-dir", str(out)])
    assert rc == 0
    meta = json.loads((out / "curves.json").read_text())["meta"]
    assert meta["classes"] == ["airplane", "automobile"] and meta["n_train"] == 60
    assert meta["augmentations_per_point"] == 4 and "-5, -2.5, 2.5, 5 degrees" in meta["augmentation_description"]
    assert meta["n_poisoned_test"] == 20 * 5 and meta["feature_dim"] == 84


TINY = ["subsample", "--train-size", "20", "--feature-epochs", "1", "--rounds", "1", "--policies", "baseline",
        "--score", "loss", "--no-figures", "--no-progress"]


def test_a_rerun_with_other_classes_in_the_same_folder_is_refused(tmp_path, capsys):
    """A rerun in a folder continues its feature CNN; one with other classes (same number of images) used
    to reuse the CNN fit on the first run's classes, silently: its curves differed from the same run in a
    fresh folder. It is refused, naming the command's flag."""
    out = tmp_path / "run"
    assert main(TINY + ["--classes", "3", "8", "--output-dir", str(out)]) == 0
    capsys.readouterr()
    assert main(TINY + ["--classes", "1", "7", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastaug subsample: error: ") and err.count("\n") == 1
    assert "--classes ['3', '8'] -> ['1', '7']" in err, err
    assert "--images" not in err  # the command's flags, not the feature loop's field names


def test_a_feature_cnn_checkpoint_of_other_images_is_not_continued(tmp_path):
    from fastaug.experiments.subsample.features import FeatureConfig, train_feature_model
    from fastaug.train.checkpoint import CheckpointError

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.arange(8) % 2
    cfg = FeatureConfig(epochs=1, batch_size=8)
    first = train_feature_model(x, y, 2, cfg, folder=str(tmp_path)).state_dict()
    again = train_feature_model(x, y, 2, cfg, folder=str(tmp_path)).state_dict()  # the same fit: reused
    assert all(torch.equal(first[k], again[k]) for k in first)
    with pytest.raises(CheckpointError, match=r"--training-images '8 images [0-9a-f]+' -> '8 images [0-9a-f]+'"):
        train_feature_model(x, 1 - y, 2, cfg, folder=str(tmp_path))  # same settings, other labels


def test_an_image_folder_is_decoded_into_memory(tmp_path, capsys):
    """`fastaug subsample --dataset folder` (offered by --help) stopped with AttributeError: 'FolderData'
    object has no attribute 'to'. The folder is now decoded at --image-size: the images and labels are the
    PNG files' pixels and folders (reference: PIL, images already at that size), and an undecodable file is
    named in one sentence."""
    from PIL import Image

    from fastaug.experiments.subsample import SubsampleConfig
    from fastaug.experiments.subsample.experiment import prepare_data

    rng = np.random.default_rng(0)
    pixels = {}
    for split in ("train", "val"):
        for c in ("cat", "dog", "fox"):
            os.makedirs(tmp_path / "pets" / split / c)
            for i in range(3):
                a = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
                Image.fromarray(a).save(tmp_path / "pets" / split / c / f"{i}.png")
                pixels[split, c, i] = torch.from_numpy(a).permute(2, 0, 1)
    cfg = SubsampleConfig(dataset="folder", data_dir=str(tmp_path / "pets"), classes=("fox", "cat"), image_size=12,
                          device="cpu")
    train, test = prepare_data(cfg, torch.device("cpu"))
    for data, split in ((train, "train"), (test, "val")):
        assert data.classes == ("fox", "cat") and data.images.dtype == torch.uint8 and len(data) == 6
        # the folder lists cat/ before fox/: labels follow --classes (fox = 0, cat = 1)
        ref = torch.stack([pixels[split, c, i] for c in ("cat", "fox") for i in range(3)])
        assert torch.equal(data.images, ref) and data.labels.tolist() == [1, 1, 1, 0, 0, 0]
    (tmp_path / "pets" / "train" / "cat" / "bad.png").write_bytes(b"not a png")
    assert main(["subsample", "--dataset", "folder", "--data-dir", str(tmp_path / "pets"), "--classes", "cat", "dog",
                 "--image-size", "12", "--output-dir", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastaug subsample: error: cannot decode ") and "bad.png" in err and err.count("\n") == 1


def test_a_run_stopped_mid_way_already_says_whose_folder_it_is(tmp_path, monkeypatch, capsys):
    """args.json is written before the experiment (as train and patch do), so a subsample run killed
    mid-way leaves a folder that another command refuses."""
    import fastaug.experiments.subsample as subsample

    def killed(config, folder=None, on_start=None):  # killed once the experiment has started
        on_start()
        assert (tmp_path / "run" / "args.json").exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(subsample, "run_experiment", killed)
    out = tmp_path / "run"
    assert main(TINY + ["--classes", "3", "8", "--output-dir", str(out)]) == 130
    written = (out / "args.json").read_text()
    assert json.loads(written)["classes"] == ["3", "8"]
    capsys.readouterr()
    assert main(["train", "--output-dir", str(out)]) == 2
    assert "subsample" in capsys.readouterr().err


def test_the_experiment_starts_after_its_checks_and_before_its_first_write(tmp_path):
    """run_experiment's on_start: called once the data are checked, before feature_cnn/ is written."""
    from fastaug.commands.subsample import add_arguments, config_from_args
    from fastaug.experiments.subsample import run_experiment
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(TINY[1:] + ["--classes", "3", "8"]))

    class Started(Exception):
        pass

    def on_start():
        assert not (tmp_path / "feature_cnn").exists()
        raise Started

    with pytest.raises(Started):
        run_experiment(config, folder=str(tmp_path), on_start=on_start)
