"""Resuming what was started: a run started from Python (README: ``train(default_args(...))``) continues
with ``fastaug train --output-dir D --resume``, as a command-line run does; a run of a user's own method
records which method it trained (and its options), so nothing continues it with another one; a pipeline
killed before its classifier, and a folder where nothing started, are resumed with their own arguments
or refused."""
import dataclasses
import json
import os

import pytest
import torch

from fastaug.cli import main
from fastaug.train import Method, Options, Trainer, TrainBatch, option, to_float, train
from fastaug.train.checkpoint import CheckpointError
from fastaug.train.loop import Loop
from fastaug.train.options import above
from fastaug.train.policy_methods import RandAugmentMethod

from _train_utils import load_model_state

TINY = dict(train_size=32, batch_size=16, epochs=2, classes=[3, 8])


class _Stop(Exception):
    pass


def _run_one_epoch_then_stop(args, monkeypatch, method=None):
    """Train ``args`` until the first epoch's checkpoint is written, then stop (as a kill would)."""
    real = Loop.end_epoch

    def end_then_stop(self, record=None):
        real(self, record)
        raise _Stop

    with monkeypatch.context() as m:
        m.setattr(Loop, "end_epoch", end_then_stop)
        with pytest.raises(_Stop):
            Trainer(args, method=method).fit()


def test_a_library_run_resumes_from_the_command_line(small, monkeypatch, capsys):
    whole = small("whole", augment="randaugment", **TINY)
    train(whole)
    cut = small("cut", augment="randaugment", **TINY)
    _run_one_epoch_then_stop(cut, monkeypatch)
    assert main(["train", "--output-dir", cut.output_dir, "--resume", "--no-progress"]) == 0, capsys.readouterr().err
    a, b = load_model_state(whole.output_dir), load_model_state(cut.output_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    epochs = [json.loads(line)["epoch"] for line in open(f"{cut.output_dir}/metrics.jsonl")]
    assert epochs == [1, 2]


class Brighten(Method):
    name = "brighten"

    def augment(self, x, y, trainer):
        return TrainBatch((to_float(x) * 1.5).clamp(0, 1), y)


def test_a_user_method_run_records_its_method_and_the_command_line_refuses_it(small, monkeypatch, capsys):
    args = small("mine", **TINY)  # augment: the default, "standard"
    _run_one_epoch_then_stop(args, monkeypatch, method=Brighten)
    record = f"{Brighten.__module__}:Brighten"
    assert json.load(open(f"{args.output_dir}/args.json"))["augment"] == record
    before = open(f"{args.output_dir}/checkpoint.pt", "rb").read()
    # `fastaug train --resume` cannot build this method: one line, and it never trains it with "standard"
    assert main(["train", "--output-dir", args.output_dir, "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and record in err[0]
    assert open(f"{args.output_dir}/checkpoint.pt", "rb").read() == before
    # the script that started it continues it
    summary = Trainer(args, method=Brighten, resume=True).fit()
    assert summary["augment"] == record and summary["epochs"] == 2


def test_a_registered_method_passed_as_a_class_records_its_name(small):
    args = small("ra", **dict(TINY, epochs=1))  # augment: "standard", method: RandAugment's class
    summary = Trainer(args, method=RandAugmentMethod).fit()
    assert summary["augment"] == "randaugment"
    assert json.load(open(f"{args.output_dir}/args.json"))["augment"] == "randaugment"


def test_a_pipeline_killed_before_its_classifier_resumes_with_its_own_arguments(small, monkeypatch, capsys):
    """TANDA killed in its generator stage: `fastaug train --output-dir D --resume` reads D/args.json, which
    must exist already (it trained --augment standard on all 4,000 digits for 30 epochs instead)."""
    from fastaug.train.tanda.generator_stage import GeneratorStage

    seen = []

    def stop(self, folder, inputs):  # the generator stage, killed before it finishes
        seen.append(self.args)
        raise _Stop

    monkeypatch.setattr(GeneratorStage, "run", stop)
    d = small("tanda").output_dir
    argv = ["--augment", "tanda", "--train-size", "48", "--epochs", "3", "--tanda-epochs", "2", "--no-progress"]
    with pytest.raises(_Stop):
        main(["train", "--output-dir", d, *argv])
    saved = json.load(open(f"{d}/args.json"))
    assert (saved["augment"], saved["train_size"], saved["epochs"], saved["tanda_epochs"]) == ("tanda", 48, 3, 2)
    with pytest.raises(_Stop):  # the resumed run is the same TANDA run, continuing its generator stage
        main(["train", "--output-dir", d, "--resume", "--no-progress"])
    assert len(seen) == 2 and vars(seen[1]) == {**vars(seen[0]), "resume": True}
    assert json.load(open(f"{d}/args.json")) == {**saved, "resume": True}  # as the engine writes it on --resume


@dataclasses.dataclass
class BrightOptions(Options):
    factor: float = option(1.5, "brightness factor", check=above(0))


class BrightenBy(Method):
    name = "brighten-by"
    Options = BrightOptions

    def augment(self, x, y, trainer):
        return TrainBatch((to_float(x) * self.options.factor).clamp(0, 1), y)


def test_a_user_method_options_are_checked_and_must_match_on_resume(small, monkeypatch):
    args = small("opts", **TINY)
    with pytest.raises(ValueError, match=r"^--factor must be > 0, got -1$"):
        Trainer(args, method=BrightenBy, options=BrightOptions(factor=-1))
    _run_one_epoch_then_stop(args, monkeypatch, method=BrightenBy)  # factor 1.5, the default
    with pytest.raises(CheckpointError, match=r"--factor 1\.5 -> 2\.0"):
        Trainer(args, method=BrightenBy, options=BrightOptions(factor=2.0), resume=True).fit()
    summary = Trainer(args, method=BrightenBy, options=BrightOptions(factor=1.5), resume=True).fit()
    assert summary["epochs"] == 2


@pytest.mark.parametrize("make", [False, True])
def test_resume_of_a_folder_where_no_run_started_is_refused(small, capsys, make):
    """A mistyped --output-dir with --resume trained the defaults there (before any flag's check found
    anything to compare with); every run writes args.json before its first step, so none means none started."""
    d = small("typo").output_dir
    if make:
        os.makedirs(d)
    argv = ["train", "--output-dir", d, "--resume", "--train-size", "16", "--batch-size", "16", "--epochs", "1",
            "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no run to continue" in err[0] and d in err[0]
    assert os.listdir(d) == [] if make else not os.path.exists(d)
