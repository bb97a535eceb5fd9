"""Uncertainty-based sampling against a plain per-image Python reference; BatchNorm untouched."""
import pytest
import torch
import torch.nn.functional as F

import fastaug
from fastaug.train import Trainer
from fastaug.train.uncertainty import sample_candidate_params, select_candidates


def _reference_select(losses, keep, mode, u):
    """Per image, per draw: walk the cumulative losses (proportional) or sort (topk), in plain Python."""
    out = []
    for i, row in enumerate(losses.tolist()):
        row = [max(v, 0.0) for v in row]
        if mode == "topk":
            out.append(sorted(range(len(row)), key=lambda k: -row[k])[:keep])  # stable: ties to lower k
            continue
        if sum(row) == 0:
            row = [1.0] * len(row)
        picks = []
        for j in range(keep):
            target, acc = u[i][j] * sum(row), 0.0
            for k, v in enumerate(row):
                acc += v
                if acc > target:
                    break
            picks.append(k)
        out.append(picks)
    return torch.tensor(out)


@pytest.mark.parametrize("mode", ["proportional", "topk"])
def test_selection_matches_a_python_loop(mode):
    g = torch.Generator().manual_seed(0)
    losses = torch.rand(50, 5, generator=g) * 3
    losses[3] = 0.0  # all zero: uniform
    losses[4, 1] = losses[4, 3] = 9.0  # a tie for topk
    keep = 3
    g1 = torch.Generator().manual_seed(11)
    ours = select_candidates(losses, keep, mode, g1)
    u = torch.rand(50, keep, generator=torch.Generator().manual_seed(11), dtype=torch.float64).tolist()
    assert torch.equal(ours, _reference_select(losses.double(), keep, mode, u))
    if mode == "proportional":  # frequencies follow the losses
        w = torch.tensor([[1.0, 3.0, 0.0, 6.0]])
        picks = select_candidates(w.expand(20000, 4), 1, mode, torch.Generator().manual_seed(1))
        freq = torch.bincount(picks.flatten(), minlength=4).double() / 20000
        torch.testing.assert_close(freq, torch.tensor([0.1, 0.3, 0.0, 0.6], dtype=torch.float64), atol=0.015, rtol=0)
    with pytest.raises(ValueError, match="keep must be in"):
        select_candidates(losses, 6, mode)


@pytest.mark.parametrize("mode", ["proportional", "topk"])
def test_method_equals_a_per_image_reference_and_leaves_batchnorm_alone(small, mode):
    t = Trainer(small(augment="uncertainty", epochs=1, candidates=4, keep=2, select=mode))
    x, y = next(iter(t.train_batches.epoch(0)))
    x, y = x[:6], y[:6]
    N, K, a = x.shape[0], 4, t.args
    buffers = {k: v.clone() for k, v in t.module.state_dict().items() if "running" in k or "num_batches" in k}
    t.module.train()
    state = t.rng.get_state()
    batch = t.method.augment(x, y, t)
    assert t.module.training  # mode restored
    for k, v in t.module.state_dict().items():
        if k in buffers:
            assert torch.equal(v, buffers[k]), f"{k} moved during the selection pass"

    # the reference: replay the same draws, then handle every image in a Python loop
    g = torch.Generator()
    g.set_state(state)
    std = t.method.standard
    xk = std.crop_flip(x.repeat_interleave(K, 0), g)
    prm = sample_candidate_params(N * K, a.candidate_ops, 28, 28, a.candidate_op_prob, g)
    xk = std.cutout(fastaug.apply_ops(xk, fill=a.fill, **prm.kwargs()), g)
    u = None
    if mode == "proportional":
        u = torch.rand(N, 2, generator=g, dtype=torch.float64).tolist()
    model = t.module.eval()
    expect_x, expect_y = [], []
    with torch.no_grad():
        for i in range(N):
            cands = [xk[i * K + k].float() / 255 for k in range(K)]
            losses = torch.stack([F.cross_entropy(model(c[None]), y[i: i + 1]) for c in cands])
            picks = _reference_select(losses[None].double(), 2, mode, None if u is None else [u[i]])[0]
            for k in picks.tolist():
                expect_x.append(cands[k])
                expect_y.append(y[i])
    t.module.train()
    torch.testing.assert_close(batch.x, torch.stack(expect_x), rtol=0, atol=0)
    assert torch.equal(batch.y, torch.stack(expect_y)) and batch.source_images == N
