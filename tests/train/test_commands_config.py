"""Every command that writes a run folder writes ``args.json`` there, and ``--config args.json`` reruns it
bit-identically (``patch``, ``compare``, ``toy2d``, ``subsample``; ``train`` is in test_config.py); flags
win over the file; a key no option of the command has is refused by name."""
import json

import pytest
import torch

from _train_utils import cli
from fastaug.artifacts import load_artifact
from fastaug.cli import main


def _rerun(command, a, b, *extra):
    """Run ``command`` from a's args.json into folder b; return b's args.json (without output_dir) and a's."""
    cli(command, "--config", a / "args.json", "--output-dir", b, *extra)
    args_a, args_b = json.loads((a / "args.json").read_text()), json.loads((b / "args.json").read_text())
    assert args_a.pop("output_dir") != args_b.pop("output_dir")
    return args_a, args_b


def _same_model(a, b):
    wa = torch.load(a / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    wb = torch.load(b / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_toy2d_rerun_from_its_args_json(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    flags = ["--n-train", "24", "--n-val", "24", "--train-steps", "40", "--aug-steps", "10", "--seed", "3",
             "--val-shift", "0", "-0.5"]
    cli("toy2d", "--output-dir", a, *flags)
    args_a, args_b = _rerun("toy2d", a, b)
    assert args_a == args_b and args_a["seed"] == 3 and args_a["val_shift"] == [0.0, -0.5]
    assert json.loads((a / "summary.json").read_text()) == json.loads((b / "summary.json").read_text())
    cli("toy2d", "--config", a / "args.json", "--output-dir", c, "--seed", "4")  # the flag wins
    assert json.loads((c / "summary.json").read_text())["seed"] == 4


@pytest.mark.slow
def test_subsample_rerun_from_its_args_json(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cli("subsample", "--output-dir", a, "--train-size", "40", "--rounds", "1", "--policies", "baseline", "random_prop",
        "--feature-epochs", "1", "--checkpoints", "0", "10", "--no-figures", "--no-progress", "--device", "cpu")
    args_a, args_b = _rerun("subsample", a, b)
    assert args_a == args_b and args_a["train_size"] == 40 and args_a["policies"] == ["baseline", "random_prop"]
    assert json.loads((a / "curves.json").read_text()) == json.loads((b / "curves.json").read_text())


@pytest.mark.slow
def test_compare_rerun_from_its_args_json(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cli("compare", "--output-dir", a, "--methods", "none,randaugment", "--epochs", "1", "--train-size", "64",
        "-b", "32", "--ra-magnitude", "12", "--no-progress", "--device", "cpu")
    args_a, args_b = _rerun("compare", a, b)
    assert args_a == args_b and args_a["methods"] == "none,randaugment" and args_a["ra_magnitude"] == 12
    rows_a, rows_b = (json.loads((d / "comparison.json").read_text()) for d in (a, b))
    assert [r["final_test_acc"] for r in rows_a] == [r["final_test_acc"] for r in rows_b]
    assert all(_same_model(a / m, b / m) for m in ("none", "randaugment"))


@pytest.mark.slow
def test_patch_rerun_from_its_args_json(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cli("patch", "--output-dir", a, "--methods", "erm,camel", "--gan-steps", "3", "--gan-batch-size", "4",
        "--gan-width", "4", "--epochs", "1", "--batch-size", "400", "--seeds", "1", "--no-progress", "--device", "cpu")
    args_a, args_b = _rerun("patch", a, b)
    assert args_a == args_b and args_a["methods"] == ["erm", "camel"] and args_a["seeds"] == [1]
    assert (a / "patching.csv").read_text() == (b / "patching.csv").read_text()
    for run in ("erm/seed1", "camel/seed1"):
        assert _same_model(a / run, b / run), run
    ta, tb = (load_artifact("patching-translations", d / "translation" / "translations.pt").state["translations"]
              for d in (a, b))
    assert torch.equal(ta, tb)


def test_a_config_key_no_option_of_the_command_has_is_refused_by_name(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"n_train": 30, "learning_rate": 0.1}))
    assert main(["toy2d", "--config", str(cfg), "--output-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"fastaug toy2d: error: config {cfg}: 'learning_rate' is no option of fastaug toy2d"
    cfg.write_text(json.dumps({"translation": "diagonal"}))
    assert main(["patch", "--config", str(cfg), "--output-dir", str(tmp_path / "r")]) == 2
    assert "translation must be one of auto, per-class, shared, got 'diagonal'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
