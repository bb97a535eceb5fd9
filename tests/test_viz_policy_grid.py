"""The ``ops-grid`` command (fastaug.viz.policy_ops_grid): every tile of the figure is Pillow's result
of its op at its magnitude on the photo."""
import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the figures need matplotlib")
pytest.importorskip("PIL", reason="Pillow is the oracle of the policy ops")
skdata = pytest.importorskip("skimage.data", reason="the figure's photos come from scikit-image")
from PIL import Image  # noqa: E402

from fastaug.cli import main  # noqa: E402
from fastaug.ops.policy import OP_NAMES  # noqa: E402
from oracles.figures import axes_images, capture_figures  # noqa: E402
from oracles.pillow_policy import EXACT, pillow_op  # noqa: E402


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_ops_grid_tiles_are_pillows(tmp_path, monkeypatch, capsys, sign):
    figures = capture_figures(monkeypatch)
    out = tmp_path / "ops.png"
    size, mags, fill = 40, (0.0, 0.5, 1.0), 100
    argv = ["ops-grid", "--out", str(out), "--size", str(size), "--magnitudes", ",".join(map(str, mags)),
            "--sign", str(sign), "--fill", str(fill)]
    assert main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.format == "PNG"
    (fig,) = figures
    tiles = axes_images(fig)
    assert len(tiles) == len(OP_NAMES) * len(mags)

    def load(a):
        return np.asarray(Image.fromarray(a).convert("RGB").resize((size, size), Image.BILINEAR))

    photo, other = load(skdata.astronaut()), load(skdata.chelsea())
    for o, name in enumerate(OP_NAMES):
        for j, m in enumerate(mags):
            ref = pillow_op(name, photo, np.float32(m), sign, other, (size // 2, size // 2), fill)
            diff = np.abs(tiles[o * len(mags) + j].astype(int) - ref.astype(int)).max()
            assert diff <= (0 if name in EXACT else 1), f"{name} at m={m}: max diff {diff}"
