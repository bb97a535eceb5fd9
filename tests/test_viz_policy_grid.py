"""fastaug.viz.policy_ops_grid and the ``ops-grid`` command write a PNG."""
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("skimage")


def test_ops_grid_cli(tmp_path):
    from PIL import Image

    from fastaug.cli import main

    out = tmp_path / "ops.png"
    assert main(["ops-grid", "--out", str(out), "--size", "32", "--magnitudes", "0,1"]) == 0
    with Image.open(out) as im:
        assert im.size[0] > 100 and im.size[1] > 400
