"""A finished stage's stage.json damaged by hand: the pipeline said only the JSON parser's message
("Invalid control character at: line 1 column 21"), naming no file; now one sentence naming it and what to do."""
import pytest

from fastaug.train.pipeline import Pipeline, StageError

from test_pipeline import Count


@pytest.mark.parametrize("text", ['{"stage": "cou', "[]", '{"options": {"n": 3}}'])
def test_a_damaged_stage_json_is_named(tmp_path, text):
    Pipeline(str(tmp_path), [Count(3)], log=lambda m: None).run()
    (tmp_path / "count" / "stage.json").write_text(text)
    with pytest.raises(StageError, match=r"count/stage\.json is unreadable .*delete it to finish the stage again"):
        Pipeline(str(tmp_path), [Count(3)], log=lambda m: None).run()
    (tmp_path / "count" / "stage.json").unlink()  # as the sentence says: the stage runs again
    again = Count(3)
    Pipeline(str(tmp_path), [again], log=lambda m: None).run()
    assert again.runs == 1
