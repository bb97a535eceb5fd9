"""The pipeline driver: stage results are values handed to the stages that need them, recorded in
stage.json and read back from it when a finished stage is reused; what is refused, in one sentence."""
import json

import pytest

from fastaug.artifacts import load_artifact, save_artifact
from fastaug.train.pipeline import Pipeline, Stage, StageError, StageResult


class Count(Stage):
    """Writes ``n`` as an artifact; ``runs`` counts its calls."""

    name, title = "count", "the counting stage"

    def __init__(self, n):
        self.n, self.runs = n, 0

    def options(self):
        return {"n": self.n}

    def run(self, folder, inputs):
        self.runs += 1
        path = save_artifact("count", {"n": self.n}, f"{folder}/n.pt")
        return StageResult(artifacts={"n": path}, metrics={"n": self.n}, seconds=1.5)


class Double(Stage):
    """Reads the counting stage's artifact (the one input it lists in ``needs``); runs every time (no
    stage.json), as the engine's classifier stage does."""

    name, title, needs, marker = "double", "the doubling stage", ("count",), False

    def __init__(self):
        self.seen = None

    def run(self, folder, inputs):
        self.seen = dict(inputs)
        n = load_artifact("count", inputs["count"].artifact("n")).state["n"]
        return StageResult(metrics={"doubled": 2 * n})


def test_results_are_handed_on_and_read_back_from_stage_json_on_reuse(tmp_path):
    first, double = Count(3), Double()
    results = Pipeline(str(tmp_path), [first, double], log=lambda m: None).run()
    assert set(double.seen) == {"count"}  # exactly what it needs
    assert results["double"].metrics == {"doubled": 6} and results["count"].seconds == 1.5
    record = json.loads((tmp_path / "count" / "stage.json").read_text())
    assert record["artifacts"] == {"n": "n.pt"} and record["seconds"] == 1.5 and record["options"] == {"n": 3}
    # reused: the finished stage is not run again, its result comes back from stage.json
    again, double2 = Count(3), Double()
    results = Pipeline(str(tmp_path), [again, double2], log=lambda m: None).run()
    assert again.runs == 0 and results["count"].artifact("n") == str(tmp_path / "count" / "n.pt")
    assert double2.seen["count"].metrics == {"n": 3}
    stages = json.loads((tmp_path / "stages.json").read_text())
    assert stages == {"count": {"seconds": 1.5, "n": 3}, "double": {"seconds": stages["double"]["seconds"],
                                                                    "doubled": 6}}


def test_what_the_driver_refuses(tmp_path):
    with pytest.raises(ValueError, match="needs \\['count'\\], which is not an earlier stage"):
        Pipeline(str(tmp_path), [Double(), Count(1)])
    Pipeline(str(tmp_path / "a"), [Count(1)], log=lambda m: None).run()
    with pytest.raises(StageError, match=r"finished with other options \(--n 1 -> 2\)"):
        Pipeline(str(tmp_path / "a"), [Count(2)], log=lambda m: None).run()
    with pytest.raises(StageError, match="the doubling stage needs the counting stage, which has not finished"):
        Pipeline(str(tmp_path / "b"), [Count(1), Double()], wanted={"double"}, log=lambda m: None).run()
    # a stage finished before stage results were recorded: its missing artifact is one sentence
    record = json.loads((tmp_path / "a" / "count" / "stage.json").read_text())
    del record["artifacts"]
    (tmp_path / "a" / "count" / "stage.json").write_text(json.dumps(record))
    with pytest.raises(StageError) as err:
        Pipeline(str(tmp_path / "a"), [Count(1), Double()], log=lambda m: None).run()
    assert str(err.value) == (f"the counting stage in {tmp_path / 'a' / 'count'} recorded no 'n' artifact (it finished "
                              f"under an older fastaug): rerun the run in a new --output-dir")


class TornCheckpoint(Stage):
    """A stage whose loop finds a torn checkpoint in its folder (load_checkpoint's refusal)."""

    name, title = "torn", "the torn stage"

    def run(self, folder, inputs):
        from fastaug.train.checkpoint import load_checkpoint

        with open(f"{folder}/checkpoint.pt", "wb") as f:
            f.write(b"torn")
        load_checkpoint(f"{folder}/checkpoint.pt")


def test_a_stage_whose_checkpoint_is_torn_says_to_delete_its_folder_alone(tmp_path):
    """Not "start a new run in another folder", which would throw the finished stages away too."""
    from fastaug.train.checkpoint import CheckpointError

    with pytest.raises(CheckpointError) as err:
        Pipeline(str(tmp_path), [Count(3), TornCheckpoint()], log=lambda m: None).run()
    text = str(err.value)
    assert f"delete {tmp_path / 'torn'} to run the torn stage again (the finished stages are kept)" in text, text
    assert "\n" not in text and (tmp_path / "count" / "stage.json").exists()
