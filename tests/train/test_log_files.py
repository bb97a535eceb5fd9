"""Output that is not a terminal (a log file: nohup, CI) gets no tqdm bars: the loops' bars already
switched off there, but the influence loop's stage 3 ("training features", "validation features") and
subsample's curves drew \\r-bars into the log."""
import sys

from fastaug.cli import build_parser
from fastaug.commands import subsample

from _train_utils import cli


def test_influence_stages_write_no_bars_to_a_log(tmp_path):
    out = cli("train", "--augment", "influence", "--output-dir", tmp_path / "run", "--train-size", "64",
              "--val-size", "64", "--epochs", "1", "--batch-size", "32", "--gan-iters", "4", "--aug-iters", "2",
              "--gan-batch-size", "16", "--aug-batch-size", "16", "--stage-checkpoint-every", "2",
              "--stage-log-every", "2", "--tau-dim", "16", "--aug-eval-every", "2")  # --progress is the default
    assert "stage 3 (influence) done" in out.stdout
    assert "features" not in out.stderr and "\r" not in out.stderr, out.stderr


def test_subsample_bars_only_on_a_terminal(tmp_path, monkeypatch):
    argv = ["subsample", "--output-dir", str(tmp_path / "s")]
    args = build_parser(argv).parse_args(argv)
    assert args.progress
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert subsample.config_from_args(args).progress is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert subsample.config_from_args(args).progress is True
