"""The one artifact format (fastaug/artifacts.py): round trip, atomicity, and one sentence per bad file."""
import os
import pickle

import pytest
import torch

from fastaug.artifacts import FORMAT, ArtifactError, load_artifact, save_artifact


def test_round_trip_keeps_kind_version_meta_and_state(tmp_path):
    path = str(tmp_path / "a.pt")
    state = {"net": {"w": torch.arange(6.0).view(2, 3)}, "steps": 3, "names": ["x", "y"]}
    save_artifact("toy", state, path, meta={"dataset": "mnist5k", "image_size": [28, 28]}, version=2)
    art = load_artifact("toy", path, versions=(1, 2))
    assert (art.kind, art.version, art.path) == ("toy", 2, path)
    assert art.meta == {"dataset": "mnist5k", "image_size": [28, 28]}
    assert torch.equal(art.state["net"]["w"], state["net"]["w"]) and art.state["steps"] == 3
    assert load_artifact(("other", "toy"), path, versions=(2,)).kind == "toy"
    assert load_artifact(None, path).kind == "toy"
    # nothing left behind but the file itself
    assert os.listdir(tmp_path) == ["a.pt"]


def test_refuses_what_a_weights_only_file_cannot_hold_and_writes_nothing(tmp_path):
    path = str(tmp_path / "a.pt")
    with pytest.raises(TypeError, match=r"\['state'\]\['f'\] is a builtins.builtin_function"):
        save_artifact("toy", {"f": len}, path)
    assert not os.path.exists(path)


def _one_sentence(err):
    text = str(err.value)
    assert "\n" not in text and text.count(". ") == 0, text
    return text


@pytest.mark.parametrize("case", ["missing", "folder", "torn", "pickle", "checkpoint", "foreign", "kind", "version"])
def test_every_bad_file_is_one_sentence_naming_it(tmp_path, case):
    path = str(tmp_path / "a.pt")
    if case == "folder":
        os.makedirs(path)
    elif case == "torn":
        save_artifact("toy", {"w": torch.randn(1000)}, path)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif case == "pickle":
        class Evil:
            def __reduce__(self):
                return (os.system, ("echo pwned",))
        with open(path, "wb") as f:
            pickle.dump(Evil(), f)
    elif case == "checkpoint":
        torch.save({"format": "fastaug-checkpoint-2", "name": "train"}, path)
    elif case == "foreign":
        torch.save({"w": torch.zeros(2)}, path)
    elif case == "kind":
        save_artifact("other", {}, path)
    elif case == "version":
        save_artifact("toy", {}, path, version=3)
    with pytest.raises(ArtifactError) as err:
        load_artifact("toy", path)
    text = _one_sentence(err)
    assert path in text
    expected = {"missing": "does not exist", "folder": "is a folder", "torn": "unreadable", "pickle": "pickle",
                "checkpoint": "training checkpoint", "foreign": FORMAT, "kind": "'other' artifact",
                "version": "layout version 3"}[case]
    assert expected in text, text


def test_artifact_error_is_a_user_error():
    from fastaug.commands import user_errors

    assert issubclass(ArtifactError, user_errors())
