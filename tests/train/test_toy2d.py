"""The 2-D toy (the paper's section 5.1 / Figure 3): translations learned from the influence point down when
the validation set is moved down, toward misclassified validation points when it is not, and retraining
with the augmented points lowers the validation loss (better than the same translations in random
directions)."""
import json

import pytest
import torch

from fastaug.cli import main
from fastaug.experiments.toy2d import run_toy2d, two_moons


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """The command line, validation set moved down by 0.5 (the paper's second row)."""
    d = tmp_path_factory.mktemp("toy2d") / "down"
    assert main(["toy2d", "--val-shift", "0", "-0.5", "--output-dir", str(d)]) == 0
    with open(d / "summary.json") as f:
        return d, json.load(f)


@pytest.mark.slow
def test_validation_set_moved_down_gives_translations_pointing_down(shifted):
    d, s = shifted
    dx, dy = s["mean_translation"]
    assert dy < 0 and abs(dy) > 2 * abs(dx)
    assert s["val_shift"] == [0.0, -0.5]
    assert (d / "toy2d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_retraining_with_the_augmented_points_lowers_the_validation_loss(shifted):
    _, s = shifted
    assert s["val_loss_after"] < s["val_loss_before"]
    assert s["val_loss_after"] < s["val_loss_random_directions"]
    assert s["mean_influence_end"] < s["mean_influence_start"] == 0.0  # the identity has no influence


@pytest.mark.slow
def test_unshifted_validation_set_moves_points_toward_misclassified_validation_points():
    s, a = run_toy2d(val_shift=(0.0, 0.0), seed=2)
    x, y, xv, yv, t = a["x"], a["y"], a["xv"], a["yv"], a["x_aug"] - a["x"]
    with torch.no_grad():
        wrong = a["before"](xv).argmax(1) != yv
    assert 0 < int(wrong.sum()) < len(yv) // 4
    # Independently of the toy's own statistic: for every translated point, the cosine between its
    # translation and the direction to the nearest misclassified validation point of its class,
    # averaged with the translation lengths as weights (random directions would give 0).
    num = den = 0.0
    for i in range(len(x)):
        length = float(t[i].norm())
        targets = xv[wrong & (yv == y[i])]
        if length < 1e-6 or len(targets) == 0:
            continue
        to = targets[(targets - x[i]).norm(dim=1).argmin()] - x[i]
        num += float(t[i] @ to) / float(to.norm())
        den += length
    assert num / den > 0.2
    assert s["toward_misclassified_cosine"] == pytest.approx(num / den, rel=1e-9)
    assert s["val_loss_after"] < s["val_loss_before"]


def test_two_moons_matches_scikit_learn():
    make_moons = pytest.importorskip("sklearn.datasets").make_moons
    x, y = two_moons(400, 0.0, torch.Generator().manual_seed(0))
    xs, ys = make_moons(400, noise=0.0, random_state=0)
    # The same two noise-free half-moons: ours lie on scikit-learn's (evenly spaced) arcs and cover them
    # up to the gaps of 200 random angles.
    for c in (0, 1):
        ours, theirs = x[y == c], torch.as_tensor(xs[ys == c])
        assert torch.cdist(ours, theirs).min(1).values.max() < 0.01
        assert torch.cdist(theirs, ours).min(1).values.max() < 0.1


def test_bad_arguments_are_named(capsys, tmp_path):
    assert main(["toy2d", "--max-shift", "0", "--output-dir", str(tmp_path / "never-written")]) == 2
    assert not (tmp_path / "never-written").exists()
    assert "--max-shift" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_killed_in_a_loop_and_run_again_writes_the_same_summary(tmp_path):
    """`fastaug toy2d` keeps its four loops in OUTPUT/loops: SIGKILL in the translations loop (the
    loop primitive's test hook), the same command again, and summary.json equals an uninterrupted run's."""
    import os
    import subprocess
    import sys

    from fastaug.train.loop import KILL_ENV

    def run(out, kill=None):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        env.pop(KILL_ENV, None)
        if kill:
            env[KILL_ENV] = kill
        cmd = [sys.executable, "-m", "fastaug", "toy2d", "--n-train", "60", "--n-val", "60", "--train-steps", "120",
               "--aug-steps", "40", "--val-shift", "0", "-0.5", "--output-dir", str(out)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)

    assert run(tmp_path / "ref").returncode == 0
    killed = run(tmp_path / "run", kill="toy translations:23")
    assert killed.returncode == -9, killed.stderr
    assert not (tmp_path / "run" / "summary.json").exists()
    again = run(tmp_path / "run")
    assert again.returncode == 0, again.stderr
    ref = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == ref
