"""Adversarial AutoAugment loop on small MNIST-5k runs: the M·N layout and per-policy losses, the
controller's updates, the ablation modes, metrics and Figure 6."""
import json

import pytest
import torch
import torch.nn.functional as F

from fastaug.augment.op_table import OP_IDS
from fastaug.train import Trainer, default_args, train
from fastaug.train.adversarial import per_group_means


def _args(tmp_path, name="run", **kw):
    base = dict(augment="adversarial", train_size=96, epochs=1, batch_size=16, instances=4, device="cpu",
                output_dir=str(tmp_path / name), progress=False, eval_batch_size=500)
    base.update(kw)
    return default_args(**base)


def test_each_policy_loss_is_the_loss_of_its_own_images(tmp_path):
    """Policies 1, 3 invert, 0, 2 are the identity; the per-policy losses must be those of the
    inverted / plain images computed here independently (mixed-up slices would swap them)."""
    tr = Trainer(_args(tmp_path, subpolicies=2, subpolicy_ops=1, crop_padding=0, cutout=0))
    m = tr.method
    m.ops = torch.tensor([OP_IDS["Brightness"], OP_IDS["Invert"]] * 2).view(4, 1, 1).expand(4, 2, 1).clone()
    m.levels = torch.zeros(4, 2, 1, dtype=torch.long)
    x, y = next(iter(tr.train_batches.epoch(0)))
    batch = m.augment(x, y, tr)
    N = x.shape[0]
    assert batch.x.shape == (4 * N,) + tuple(x.shape[1:]) and batch.source_images == N
    assert torch.equal(batch.y, y.repeat(4))
    plain, inverted = x.float() / 255, 1 - x.float() / 255
    for k in range(4):
        torch.testing.assert_close(batch.x[k * N:(k + 1) * N], inverted if k % 2 else plain)
    tr.module.eval()
    with torch.no_grad():
        losses = F.cross_entropy(tr.module(batch.x), batch.y, reduction="none")
        loss_plain = F.cross_entropy(tr.module(plain), y).double()
        loss_inv = F.cross_entropy(tr.module(inverted), y).double()
    assert abs(loss_plain - loss_inv) > 1e-3  # the check below can tell them apart
    m.after_step(batch, losses, tr)
    expected = torch.stack([loss_plain, loss_inv, loss_plain, loss_inv])
    torch.testing.assert_close(m.window.value(), expected, rtol=1e-5, atol=1e-6)
    # a permuted group tag gives other losses: the test would catch mixed slices
    shuffled = per_group_means(losses, batch.group.view(4, N).t().reshape(-1), 4)
    assert not torch.allclose(shuffled, expected, rtol=1e-3)


def test_controller_learns_during_a_run_and_writes_figure_6(tmp_path):
    args = _args(tmp_path, policy_update="step", policy_update_every=1, epochs=2, controller_lr=0.05)
    tr = Trainer(args)
    before = {k: v.clone() for k, v in tr.method.controller.state_dict().items()}
    probe = torch.Generator()
    p0 = tr.method.controller.sample(1, probe.manual_seed(0)).op_probs.clone()
    tr.fit()
    after = tr.method.controller.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    p1 = tr.method.controller.sample(1, probe.manual_seed(0)).op_probs
    assert (p1 - p0).abs().max() > 1e-3  # the policy distribution moved
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert len(records) == 2
    for r in records:
        assert len(r["op_frequencies"]) == 16 and sum(r["op_frequencies"]) == pytest.approx(1)
        assert len(r["magnitude_frequencies"]) == 10 and sum(r["magnitude_frequencies"]) == pytest.approx(1)
        assert len(r["policy_losses"]) == 4
    assert (tmp_path / "run" / "policy.png").stat().st_size > 10_000


def test_epoch_cadence_one_update_per_epoch(tmp_path):
    tr = Trainer(_args(tmp_path, epochs=2))
    updates = []
    step = tr.method.optimizer.step
    tr.method.optimizer.step = lambda *a, **k: (updates.append(tr.global_step), step(*a, **k))[1]
    seen = []
    aug = tr.method.augment
    tr.method.augment = lambda x, y, t: (lambda b: (seen.append(tr.method.ops), b)[1])(aug(x, y, t))
    tr.fit()
    assert updates == [tr.steps_per_epoch, 2 * tr.steps_per_epoch]
    # the same policies for a whole epoch, new ones after the update
    s = tr.steps_per_epoch
    assert all(torch.equal(seen[0], seen[i]) for i in range(1, s))
    assert not torch.equal(seen[0], seen[s])


def test_random_and_fixed_modes(tmp_path):
    from fastaug.augment.policy_batch import random_policies
    from fastaug.train.rng import derive_seed

    tr = Trainer(_args(tmp_path, "random", augment="random", policy_update="step", policy_update_every=2))
    assert not hasattr(tr.method, "controller")  # no controller, nothing learned: uniform policies
    seen = []
    aug = tr.method.augment
    tr.method.augment = lambda x, y, t: (lambda b: (seen.append(tr.method.ops), b)[1])(aug(x, y, t))
    tr.fit()
    # uniform policies from the method's own seeded stream, new ones every --policy-update-every 2 steps
    g = torch.Generator().manual_seed(derive_seed(0, "controller"))
    first, second = random_policies(4, 5, 2, 16, 10, g)[0], random_policies(4, 5, 2, 16, 10, g)[0]
    assert torch.equal(seen[0], first) and torch.equal(seen[1], first) and torch.equal(seen[2], second)
    rec = json.loads(open(tmp_path / "random" / "metrics.jsonl").readline())
    assert len(rec["op_frequencies"]) == 16
    fixed = Trainer(_args(tmp_path, "fixed", augment="fixed", crop_padding=0, cutout=0))
    x, y = next(iter(fixed.train_batches.epoch(0)))
    batch = fixed.method.augment(x, y, fixed)
    torch.testing.assert_close(batch.x, (x.float() / 255).repeat(4, 1, 1, 1))  # no policy, no crop/cutout
    summary = train(_args(tmp_path, "fixed2", augment="fixed"))
    assert summary["epochs"] == 1
    rec = json.loads(open(tmp_path / "fixed2" / "metrics.jsonl").readline())
    assert "op_frequencies" not in rec and not (tmp_path / "fixed2" / "policy.png").exists()


def test_bad_options_are_named(tmp_path):
    with pytest.raises(ValueError, match="--instances"):
        Trainer(_args(tmp_path, instances=0))
    with pytest.raises(ValueError, match="--policy-ema-decay"):
        Trainer(_args(tmp_path, "b", policy_ema_decay=1.0))


def test_a_one_epoch_run_draws_visible_bars_of_its_frequencies(tmp_path, monkeypatch):
    """One epoch has no area to stack: policy.png must still show the epoch's op and magnitude
    frequencies (bars whose heights are metrics.jsonl's percentages), not two empty axes."""
    from oracles.figures import capture_figures

    figures = capture_figures(monkeypatch)
    train(_args(tmp_path, epochs=1))
    (rec,) = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    (fig,) = [f for f in figures if len(f.axes) == 2 and "operations" in f.axes[0].get_title()]
    ops_ax, mags_ax = fig.axes
    for ax, freqs in ((ops_ax, rec["op_frequencies"]), (mags_ax, rec["magnitude_frequencies"])):
        heights = [p.get_height() for p in ax.patches]
        assert heights == pytest.approx([100 * f for f in freqs])
        assert max(heights) > 0  # something visible
    assert (tmp_path / "run" / "policy.png").stat().st_size > 10_000
