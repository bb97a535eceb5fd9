"""fastaug.viz.transformation_grid and its command line (the seed's Figure 4)."""
import os

from fastaug import cli


def test_transform_grid_writes_a_png(tmp_path):
    out = os.path.join(tmp_path, "grid.png")
    assert cli.main(["transform-grid", "--out", out, "--size", "32", "--steps", "3"]) == 0
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_transform_grid_on_an_mnist_digit(tmp_path):
    from fastaug.viz import transformation_grid

    out = transformation_grid(os.path.join(tmp_path, "digit.png"), image="mnist", steps=2, mode="serial")
    assert os.path.getsize(out) > 1000
