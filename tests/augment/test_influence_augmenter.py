"""The influence loop's augmenter file (``augmenter.pt``): an ``"influence-augmenter"`` artifact, the
earlier ``"fastaug-augmenter-1"`` files still read, anything else refused in one sentence."""
import pytest
import torch

from fastaug.artifacts import ArtifactError, load_artifact
from fastaug.augment.influence_augmenter import AUGMENTER_KIND, Augmenter


def _augmenter():
    torch.manual_seed(0)
    aug = Augmenter(1, 12, 12, tau_dim=6, dropout=0.25, appearance=False, smooth=2)
    aug.generator.reset_head(0.05)
    return aug


def _same(a, b):
    x = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    return torch.equal(a(x, rng=torch.Generator().manual_seed(2)), b(x, rng=torch.Generator().manual_seed(2)))


def test_save_is_an_artifact_and_load_rebuilds_the_same_augmenter(tmp_path):
    aug = _augmenter()
    aug.save(tmp_path / "augmenter.pt", meta={"stage": 4})
    art = load_artifact(AUGMENTER_KIND, tmp_path / "augmenter.pt")
    assert art.meta["config"] == aug.config() and art.meta["stage"] == 4
    assert set(art.state) == {"encoder", "generator"}
    loaded = Augmenter.load(tmp_path / "augmenter.pt")
    assert loaded.config() == aug.config() and _same(aug, loaded)


def test_the_earlier_format_still_loads(tmp_path):
    aug = _augmenter()
    torch.save({"format": "fastaug-augmenter-1", "config": aug.config(), "encoder": aug.encoder.state_dict(),
                "generator": aug.generator.state_dict()}, tmp_path / "augmenter.pt")
    assert _same(aug, Augmenter.load(tmp_path / "augmenter.pt"))


def test_other_files_are_refused_in_one_sentence(tmp_path):
    torch.save({"weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ArtifactError, match="is not a 'influence-augmenter' artifact") as err:
        Augmenter.load(tmp_path / "other.pt")
    assert "\n" not in str(err.value)
    with pytest.raises(ArtifactError, match="does not exist"):
        Augmenter.load(tmp_path / "missing.pt")
