"""``fastaug compare``: one ordinary run per method, a table that reports those runs, reuse and resume."""
import json
import os

import pytest

from _train_utils import cli_args, load_model_state
from fastaug.cli import main

pytestmark = pytest.mark.slow


def _compare(d, methods, **kw):
    return main(["compare", "--methods", methods, *cli_args(d, **kw)])


def test_table_reports_each_methods_own_run_and_reruns_reuse_them(tmp_path, capsys):
    d = tmp_path / "cmp"
    assert _compare(d, "none,randaugment", epochs=1) == 0
    out = capsys.readouterr().out
    rows = json.loads((d / "comparison.json").read_text())
    assert [r["augment"] for r in rows] == ["none", "randaugment"]
    for r in rows:
        run = d / r["augment"]
        summary = json.loads((run / "summary.json").read_text())
        assert r["final_test_acc"] == summary["final_test_acc"]
        args = json.loads((run / "args.json").read_text())
        assert args["augment"] == r["augment"] and args["train_size"] == 256  # the shared arguments
        # the table line of this method carries its run's accuracy
        assert f"| {r['augment']} | {summary['final_test_acc']:.4f} |" in out
    assert (d / "comparison.md").read_text().count("\n") == 4  # header, rule, two methods
    assert (d / "comparison.png").stat().st_size > 0
    # the two methods really trained differently from the same initialisation
    a, b = load_model_state(d / "none"), load_model_state(d / "randaugment")
    assert any((a[k].float() - b[k].float()).abs().max() > 0 for k in a)

    # a second call with the same arguments reuses the finished runs: weights untouched
    before = {m: os.path.getmtime(d / m / "checkpoint.pt") for m in ("none", "randaugment")}
    assert _compare(d, "none,randaugment", epochs=1) == 0
    assert before == {m: os.path.getmtime(d / m / "checkpoint.pt") for m in ("none", "randaugment")}


def test_unknown_method_and_changed_arguments_are_refused(tmp_path, capsys):
    d = tmp_path / "cmp"
    assert _compare(d, "none,fancy", epochs=1) == 2
    assert "fancy" in capsys.readouterr().err
    assert not (d / "none").exists()  # nothing ran before the check
    assert _compare(d, "none", epochs=1) == 0
    capsys.readouterr()
    # other arguments in a folder that holds a run: refused with one sentence, never overwritten
    assert _compare(d, "none", epochs=1, lr=0.5) == 2
    assert "fastaug compare: error:" in capsys.readouterr().err


def test_a_method_that_stops_before_training_has_no_row(tmp_path, capsys):
    d = tmp_path / "cmp"
    # the influence loop's stage 1 only: a classifier for its later stages, no stage-5 run to compare
    assert _compare(d, "none,influence", epochs=1, train_size=100, val_size=50, stages=[1]) == 0
    out = capsys.readouterr().out
    assert "--augment influence trained no classifier" in out
    rows = json.loads((d / "comparison.json").read_text())
    assert [r["augment"] for r in rows] == ["none"]
    assert (d / "influence" / "stage1_classifier" / "checkpoint.pt").is_file()


def test_every_methods_arguments_are_checked_before_the_first_trains(tmp_path, capsys):
    """`--methods none,influence` without --val-size: refused before `none` trains (nothing written), and
    a method named twice is refused too."""
    out = tmp_path / "cmp"
    assert main(["compare", "--methods", "none,influence", "--train-size", "40", "--epochs", "1",
                 "--output-dir", str(out)]) == 2
    assert "--augment influence needs a held-out validation split" in capsys.readouterr().err
    assert not (out / "none").exists()
    assert main(["compare", "--methods", "none,standard,none", "--output-dir", str(out)]) == 2
    assert "--methods names none more than once" in capsys.readouterr().err
