"""Bad input, tried as a new user would (``python -m fastaug ...`` in a subprocess): one sentence on
stderr, exit status 2, no traceback, and nothing already written is lost."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fastaug(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "fastaug", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)


def assert_one_sentence(out, command, *phrases):
    """Exit 2, exactly one line on stderr: ``fastaug <command>: error: ...`` holding ``phrases``."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"fastaug {command}: error: "), lines[0]
    for p in phrases:
        assert p in lines[0], (p, lines[0])
    return lines[0]


def write_images(root, classes=("cat", "dog"), per_class=6, size=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                os.path.join(root, c, f"{i}.png"))


FOLDER_RUN = ("--dataset", "folder", "--image-size", "16", "--model", "lenet", "--epochs", "1", "-b", "4",
              "--workers", "0", "--no-progress", "--device", "cpu")


def test_folder_with_train_but_no_val_names_the_missing_folder(tmp_path):
    pytest.importorskip("PIL")
    write_images(str(tmp_path / "data" / "train"))
    out = fastaug("train", "--data-dir", tmp_path / "data", "--output-dir", tmp_path / "run", *FOLDER_RUN)
    assert_one_sentence(out, "train", "train/", "no val/")
    assert "num_classes" not in out.stderr


def test_an_unreadable_image_is_named_then_skipped_and_counted_on_request(tmp_path):
    pytest.importorskip("PIL")
    data = tmp_path / "data"
    write_images(str(data / "train"))
    write_images(str(data / "val"), per_class=2)
    bad = data / "train" / "dog" / "broken.png"
    bad.write_bytes(b"not a png at all")
    out = fastaug("train", "--data-dir", data, "--output-dir", tmp_path / "a", *FOLDER_RUN)
    assert_one_sentence(out, "train", str(bad), "--skip-unreadable")
    out = fastaug("train", "--data-dir", data, "--output-dir", tmp_path / "b", "--skip-unreadable", *FOLDER_RUN)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(f"skipping unreadable image {bad}") == 1
    (record,) = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    # every readable training image was trained on, the broken one was not
    assert record["train_samples"] == 12
    assert record["unreadable_images"] == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("command", ["train", "compare", "subsample"])
def test_device_cuda_without_a_gpu_is_one_sentence(tmp_path, command):
    out = fastaug(command, "--device", "cuda", "--output-dir", tmp_path / "run")
    assert_one_sentence(out, command, "--device cuda", "--device cpu")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_sentence_for_library_callers_too(tmp_path):
    from fastaug.train import Trainer
    from fastaug.train.args import default_args
    from fastaug.train.distributed import init_distributed, resolve_device

    for call in (lambda: init_distributed("cuda:0"),
                 lambda: Trainer(default_args(device="cuda", output_dir=str(tmp_path / "run")))):
        with pytest.raises(ValueError, match=r"^--device cuda(:0)? asks for a GPU, but torch sees none on this "
                                             r"machine: use --device cpu$"):
            call()
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="^--device must be cpu, cuda, cuda:N or auto, got 'gpu'$"):
        resolve_device("gpu")
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")


def test_toy2d_refuses_a_shift_that_is_not_a_number(tmp_path):
    out = fastaug("toy2d", "--val-shift", "nan", "0", "--output-dir", tmp_path / "toy")
    assert_one_sentence(out, "toy2d", "--val-shift", "nan")
    assert not (tmp_path / "toy").exists()


def test_a_bad_method_option_names_flag_rule_and_value(tmp_path):
    out = fastaug("train", "--augment", "uncertainty", "--candidates", "2", "--keep", "3", "--epochs", "1",
                  "--output-dir", tmp_path / "run", "--device", "cpu")
    assert_one_sentence(out, "train", "--keep must be at most --candidates (2), got 3")


def test_a_run_folder_is_never_overwritten(tmp_path):
    d = tmp_path / "run"
    small = ("--train-size", "64", "-b", "32", "--epochs", "1", "--no-progress", "--device", "cpu", "--augment", "none")
    assert fastaug("train", "--output-dir", d, *small).returncode == 0
    before = (d / "checkpoint.pt").read_bytes()
    out = fastaug("train", "--output-dir", d, "--lr", "0.5", *small)
    assert_one_sentence(out, "train", "already holds a run")
    assert (d / "checkpoint.pt").read_bytes() == before


def test_only_rank_0_prints_results_and_errors(tmp_path, monkeypatch, capsys):
    """Under torchrun every rank runs the command; ranks other than 0 say nothing (the exit status
    still tells): checked in-process with torchrun's RANK variable and one process."""
    from fastaug.cli import main

    flags = ["--train-size", "64", "-b", "32", "--epochs", "1", "--no-progress", "--device", "cpu", "--augment", "none"]
    assert main(["train", "--output-dir", str(tmp_path / "r0"), *flags]) == 0
    assert "final test accuracy" in capsys.readouterr().out
    monkeypatch.setenv("RANK", "1")
    assert main(["train", "--output-dir", str(tmp_path / "r1"), *flags]) == 0
    assert "final test accuracy" not in capsys.readouterr().out
    assert main(["train", "--epochs", "0", "--output-dir", str(tmp_path / "r2")]) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "--epochs", "0", "--output-dir", str(tmp_path / "r2")]) == 2
    assert capsys.readouterr().err.strip() == "fastaug train: error: --epochs must be >= 1, got 0"


@pytest.mark.parametrize("command", ["train", "compare", "toy2d", "patch", "subsample"])
def test_an_output_dir_that_is_a_file_is_one_sentence(tmp_path, command):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    out = fastaug(command, "--output-dir", taken, "--device", "cpu") if command != "toy2d" else \
        fastaug(command, "--output-dir", taken)
    assert_one_sentence(out, command, f"--output-dir {taken} is a file, not a folder")
    assert taken.read_text() == "mine"


def test_a_folder_dataset_with_one_class_names_the_folder_and_its_class(tmp_path):
    pytest.importorskip("PIL")
    write_images(str(tmp_path / "data"), classes=("cat",))
    out = fastaug("train", "--data-dir", tmp_path / "data", "--output-dir", tmp_path / "run", *FOLDER_RUN)
    line = assert_one_sentence(out, "train", str(tmp_path / "data"), "one class folder, 'cat'")
    assert "num_classes" not in line and not (tmp_path / "run").exists()


def test_negative_workers_are_refused(tmp_path):
    out = fastaug("train", "--workers", "-1", "--output-dir", tmp_path / "run", "--device", "cpu")
    assert_one_sentence(out, "train", "--workers must be >= 0", "got -1")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, line", [
    (["train", "--augment", "nope"], "fastaug train: error: argument --augment: invalid choice: 'nope' (choose from "),
    (["train", "--augment", "none", "--aa-policy", "imagenet"],
     "fastaug train: error: --aa-policy is an option of --augment autoaugment only, not of --augment none"),
    (["train", "--epochs", "x"], "fastaug train: error: argument --epochs: invalid int value: 'x'"),
    (["toy2d", "--bogus", "3"], "fastaug toy2d: error: unrecognized arguments: --bogus 3"),
    (["nope"], "fastaug: error: argument command: invalid choice: 'nope'"),
])
def test_argparse_mistakes_are_one_line_too(tmp_path, argv, line):
    """argparse's own errors take the one error path: no usage text, the prog ``fastaug`` (also under
    ``python -m fastaug``), exit status 2."""
    out = fastaug(*argv, "--output-dir", tmp_path / "run")
    assert out.returncode == 2 and out.stdout == "", (out.returncode, out.stdout)
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith(line), out.stderr
    assert not (tmp_path / "run").exists()


def test_a_config_value_of_the_wrong_type_names_the_file_and_the_key(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"epochs": "two"}))
    out = fastaug("train", "--config", cfg, "--output-dir", tmp_path / "run")
    assert_one_sentence(out, "train", f"config {cfg}: epochs must be an integer, got 'two'")


def test_only_rank_0_prints_argparse_mistakes(monkeypatch, capsys):
    from fastaug.cli import main

    monkeypatch.setenv("RANK", "1")
    assert main(["train", "--augment", "nope"]) == 2
    assert capsys.readouterr() == ("", "")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "--augment", "nope"]) == 2
    assert capsys.readouterr().err.startswith("fastaug train: error: argument --augment: invalid choice: 'nope'")


@pytest.mark.parametrize("flags, message", [
    (["--eval-batch-size", "0"], "--eval-batch-size must be >= 1, got 0"),
    (["--train-size", "-5"], "--train-size must be >= 1, got -5"),
    (["--val-size", "-3"], "--val-size must be >= 0, got -3"),
    (["--val-size", "4000"], "--val-size 4000 leaves no training images (the training set has 4000)"),
    (["--dataset", "folder", "--data-dir", ".", "--image-size", "0"], "--image-size must be >= 8, got 0"),
    (["--opt", "sgd", "--momentum", "-1"], "--momentum must be finite and >= 0, got -1.0"),
    (["--lr", "inf"], "--lr must be finite and > 0, got inf"),
    (["--lr", "nan"], "--lr must be finite and > 0, got nan"),
    (["--wd", "inf"], "--wd must be finite and >= 0, got inf"),
    (["--momentum", "inf"], "--momentum must be finite and >= 0, got inf"),
    (["--clip-grad", "inf"], "--clip-grad must be finite and > 0 (leave it out for no clipping), got inf"),
    (["--warmup-epochs", "inf"], "--warmup-epochs must be in [0, --epochs 30] (a longer warm-up never reaches --lr), "
                                 "got inf"),
    (["--epochs", "2", "--warmup-epochs", "3"], "--warmup-epochs must be in [0, --epochs 2] (a longer warm-up never "
                                                "reaches --lr), got 3.0"),
    (["--opt", "sgd", "--nesterov", "--momentum", "0"], "--nesterov needs --momentum > 0, got 0.0"),
    (["--opt-betas", "2", "0"], "--opt-betas must be two numbers in [0, 1), got 2.0 0.0"),
    (["--decay-rate", "5"], "--decay-rate must be in (0, 1] (the step schedule multiplies the lr by it at each "
                            "milestone), got 5.0"),
    (["--decay-rate", "-1"], "--decay-rate must be in (0, 1]"),
    (["--decay-rate", "nan"], "--decay-rate must be in (0, 1]"),
])
def test_a_bad_common_option_names_its_flag_and_rule(tmp_path, capsys, flags, message):
    """Checked before any data is read, so the sentence names the flag, not the data loader's argument."""
    from fastaug.cli import main

    assert main(["train", *flags, "--device", "cpu", "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastaug train: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_a_reader_that_goes_away_stops_the_command_quietly():
    """`fastaug show RUN | head`: the pipe closes while the command still prints; it stops with status 1 and
    no BrokenPipeError traceback (neither from the print nor from the interpreter's flush at exit)."""
    code = (
        "import argparse, sys\n"
        "from fastaug import cli\n"
        "def chatty(args):\n"
        "    for i in range(200000):\n"
        "        print('line', i)\n"
        "class Parser:\n"
        "    def parse_known_args(self, argv):\n"
        "        return argparse.Namespace(func=chatty, command='show'), []\n"
        "cli.build_parser = lambda argv=None: Parser()\n"
        "sys.exit(cli.main(['show']))\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert p.stdout.readline() == b"line 0\n"
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err


WRITERS = ["train", "compare", "subsample", "toy2d", "patch"]


def _args_json_of(command):
    """The args.json ``command`` writes with its defaults (the keys of its parsed arguments, as write_args)."""
    from fastaug.cli import build_parser

    values = vars(build_parser([command]).parse_args([command]))
    for key in ("func", "command", "config"):
        values.pop(key, None)
    return json.dumps(values, default=str)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_folder_of_another_command_is_not_overwritten(tmp_path, capsys, monkeypatch, writer):
    """`fastaug subsample --output-dir RUN` on a train run's folder overwrote its args.json, summary.json and
    curves.png (patch: its augmentation.pt); every command that writes a run folder now refuses the folder
    of another one before any work (the commands' bodies are stubbed: reaching one fails), and leaves its
    own to its own rules."""
    import importlib

    from fastaug.cli import _check_output_dir_owner, main

    def ran(args):
        raise AssertionError("the command ran in another command's folder")

    for command in WRITERS:
        monkeypatch.setattr(importlib.import_module(f"fastaug.commands.{command}"), "run", ran)

    d = tmp_path / "run"
    d.mkdir()
    (d / "args.json").write_text(_args_json_of(writer))
    (d / "summary.json").write_text("theirs")
    _check_output_dir_owner(writer, str(d))  # its own folder: its own rules apply
    for command in WRITERS:
        if command == writer:
            continue
        assert main([command, "--output-dir", str(d), "--device", "cpu"] if command != "toy2d"
                    else [command, "--output-dir", str(d)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"fastaug {command}: error: --output-dir {d} holds the outputs of `fastaug {writer}` (its "
                       f"args.json), which `fastaug {command}` would overwrite: choose another --output-dir")
    assert (d / "summary.json").read_text() == "theirs" and sorted(os.listdir(d)) == ["args.json", "summary.json"]


def test_a_figure_path_that_is_a_folder_is_one_sentence_and_leaves_no_stray_file(tmp_path, capsys):
    """`ops-grid --out FOLDER` drew the figure, then failed renaming FOLDER.tmp.png over the folder: the
    message named that temporary file ("Is a directory: FOLDER.tmp.png"), which stayed beside the folder."""
    from fastaug.cli import main

    d = tmp_path / "figs"
    d.mkdir()
    assert main(["ops-grid", "--out", str(d), "--size", "8", "--magnitudes", "1"]) == 2
    assert capsys.readouterr().err.strip() == (f"fastaug ops-grid: error: {d} is a folder: give the path of the PNG "
                                               f"file to write (e.g. {d / 'figure.png'})")
    assert sorted(os.listdir(tmp_path)) == ["figs"] and os.listdir(d) == []


@pytest.mark.parametrize("flags, message", [
    (["--smooth", "0"], "--smooth must be in [1, 64] (1 disables smoothing), got 0"),
    (["--spatial-strength", "nan"], "--spatial-strength must be a finite number >= 0 (a standard deviation), got nan"),
])
def test_transform_grid_bad_values_are_one_sentence(tmp_path, capsys, flags, message):
    """--smooth 0 was a RuntimeError traceback from avg_pool2d; a nan strength drew a figure of garbage."""
    from fastaug.cli import main

    assert main(["transform-grid", "--out", str(tmp_path / "t.png"), *flags]) == 2
    assert capsys.readouterr().err.strip() == f"fastaug transform-grid: error: {message}"
    assert not (tmp_path / "t.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["ops-grid", "--size", "100000"], "fastaug ops-grid: error: --size must be in [8, 1024] and --fill in [0, 255], "
                                       "got 100000 and 128"),
    (["transform-grid", "--size", "100000"], "fastaug transform-grid: error: --steps must be in [2, 64] and --size in "
                                             "[8, 1024], got 10 and 100000"),
    (["subsample", "--feature-lr", "inf", "--no-progress"], "fastaug subsample: error: feature learning rate must be "
                                                            "a finite number > 0, got inf"),
])
def test_sizes_and_rates_that_would_exhaust_memory_or_burn_minutes_are_refused(tmp_path, capsys, argv, message):
    """ops-grid --size 100000 (a typo of 1000) tried to allocate 48 photos of 10^10 pixels; subsample
    --feature-lr inf trained the feature CNN for its 40 epochs, then said "h contains NaN or infinite values"."""
    from fastaug.cli import main

    out = ["--out", str(tmp_path / "f.png")] if argv[0] != "subsample" else ["--output-dir", str(tmp_path / "s")]
    assert main(argv + out) == 2
    assert capsys.readouterr().err.strip() == message
    assert os.listdir(tmp_path) == []
