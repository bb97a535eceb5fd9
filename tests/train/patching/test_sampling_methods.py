"""Group-balanced batches, batch gathering with translations, and each stage-2 method's loss by hand."""
import types

import pytest
import torch
import torch.nn.functional as F

from fastaug.data.subgroups import GroupedImageData
from fastaug.train.group_dro import GroupDRO
from fastaug.train.losses import consistency_loss
from fastaug.train.method import Method
from fastaug.train.patching.methods import PATCH_METHODS, gather_batch, patch_method_class
from fastaug.train.patching.sampling import group_balanced_batches


def test_group_balanced_batches():
    ids = torch.tensor([0] * 50 + [1] * 3 + [2] * 40 + [3] * 7)
    b = group_balanced_batches(ids, 4, batch_size=10, epoch=2, seed=5)
    assert b.shape == (10, 10)  # ceil(100 / 10) steps, like a uniform epoch
    counts = torch.stack([torch.bincount(ids[row], minlength=4) for row in b])
    assert bool((counts >= 2).all()) and bool((counts <= 3).all()) and bool((counts.sum(1) == 10).all())
    assert set(b[ids[b] == 1].tolist()) <= {50, 51, 52}  # drawn from their own group, with replacement
    assert torch.equal(group_balanced_batches(ids, 4, 10, 2, 5), b)  # a function of (seed, epoch)
    assert not torch.equal(group_balanced_batches(ids, 4, 10, 3, 5), b)
    with pytest.raises(ValueError, match="batch size 3 < 4 groups"):
        group_balanced_batches(ids, 4, 3, 0)


def _data():
    g = torch.Generator().manual_seed(0)
    return GroupedImageData(torch.randint(0, 256, (8, 1, 6, 6), generator=g, dtype=torch.uint8),
                            torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), ("a", "b"), "toy", False, (0.5,), (0.5,),
                            subgroup=torch.tensor([0, 0, 0, 1, 0, 1, 1, 1]), subgroups=(("p", "q"), ("p", "q")))


def test_gather_batch_looks_up_groups_and_translations():
    data = _data()
    t = torch.randint(0, 256, (8, 2, 1, 6, 6), dtype=torch.uint8)
    idx = torch.tensor([3, 4, 6])
    b = gather_batch(data, idx, t)
    assert b.group.tolist() == [1, 2, 3] and torch.equal(b.index, idx)
    assert torch.equal(b.x, data.images[idx].float() / 255)
    bt = b.extras["t"]
    assert bt.shape == (2, 3, 1, 6, 6) and torch.equal(bt[1, 2], t[6, 1].float() / 255)
    assert b.extras["t_group"].tolist() == [[0, 2, 2], [1, 3, 3]]  # version k of an image of class y: group 2y + k
    assert gather_batch(data, idx).extras == {}  # no translations: nothing extra


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(36, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("name", PATCH_METHODS)
def test_method_losses_by_hand(name):
    data = _data()
    cfg = types.SimpleNamespace(dro_step=0.3, dro_adjustment=1.0, consistency_weight=5.0)
    t = torch.randint(0, 256, (8, 2, 1, 6, 6), dtype=torch.uint8)
    b = gather_batch(data, torch.arange(8), t)
    model = _Linear()
    # a plain engine Method, built as the engine builds it (from what it reads of the trainer)
    trainer = types.SimpleNamespace(train_data=data, device=torch.device("cpu"),
                                    args=types.SimpleNamespace(label_smoothing=0.0))
    method = patch_method_class(name)(cfg, trainer, translations=t)
    assert isinstance(method, Method) and method.name == name
    loss, logs = method.loss(model, b)
    ce, logits = logs["losses"], logs["logits"]
    lx, lt = model(b.x), model(b.extras["t"].flatten(0, 1)).view(2, 8, 2)
    ce_x = F.cross_entropy(lx, b.y, reduction="none")
    ce_all = torch.cat([ce_x, F.cross_entropy(lt.flatten(0, 1), b.y.repeat(2), reduction="none")])
    conditional = data.group_class if name != "gdro" else None
    dro = GroupDRO(data.group_counts(), conditional, step_size=0.3, adjustment=1.0)
    want = {"erm": ce_x.mean(), "balanced": ce_x.mean(), "augment": ce_all.mean()}.get(name)
    if name in ("gdro", "camel"):
        want = dro.loss(ce_x, b.group)
    if name == "gdro-augment":
        want = dro.loss(ce_all, torch.cat([b.group, b.extras["t_group"].flatten()]))
    if name == "camel":
        want = want + 5.0 * consistency_loss(lx, lt).mean()
        assert logs["consistency"].item() == pytest.approx(consistency_loss(lx, lt).mean().item(), rel=1e-6)
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert torch.allclose(ce, ce_x.detach()) and torch.allclose(logits, lx.detach())
    if name in ("gdro", "gdro-augment", "camel"):
        assert torch.allclose(method.dro.q, dro.q)  # the state moved as the hand computation's
        assert method.balanced


def test_a_method_that_uses_translations_refuses_to_train_without_them():
    from fastaug.train.method import MissingInput

    trainer = types.SimpleNamespace(train_data=_data(), device=torch.device("cpu"),
                                    args=types.SimpleNamespace(label_smoothing=0.0))
    with pytest.raises(MissingInput, match="^model patching's camel trains on the translations of stage 1, and none "
                                           "were given"):
        patch_method_class("camel")(types.SimpleNamespace(), trainer)
    assert patch_method_class("erm")(types.SimpleNamespace(), trainer).translations is None  # erm needs none


@pytest.mark.parametrize("methods, refused", [("erm,gdro,camel", True), ("erm,augment", False)])
def test_a_batch_size_below_the_number_of_groups_is_refused_before_stage_1(tmp_path, capsys, monkeypatch, methods,
                                                                          refused):
    """`fastaug patch --batch-size 3` with a group-balanced method trained stage 1's CycleGANs (minutes at the
    defaults) and then stopped at stage 2. Now it stops first, in one sentence; uniform-batch methods
    take any batch size. (Stage 1 and the pipeline are stubbed: reaching them is recorded.)"""
    import fastaug.train.patching.experiment as E
    from fastaug.cli import main

    reached = []
    monkeypatch.setattr(E.Pipeline, "run", lambda self: reached.append(True) or (_ for _ in ()).throw(
        RuntimeError("stop")))
    out = tmp_path / "p"
    argv = ["patch", "--batch-size", "3", "--methods", methods, "--output-dir", str(out), "--no-progress",
            "--device", "cpu"]
    if refused:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == ("fastaug patch: error: --batch-size 3 is too small for the group-balanced batches of gdro, "
                       "camel: they hold at least one image of each of the 4 training groups; use --batch-size 4 "
                       "or more")
        assert not reached and not out.exists()
    else:
        with pytest.raises(RuntimeError, match="stop"):
            main(argv)
        assert reached


def test_resume_after_a_kill_continues_with_the_runs_own_arguments(tmp_path, monkeypatch):
    """`fastaug patch --output-dir D --resume` (the documented command after a kill) ignored D's arguments:
    args.json was written only at the end, so a killed run with --gan-steps 30 resumed with the defaults
    and stopped ("stage 1 finished with other options"). args.json is now written before stage 1 and read
    on --resume. (The pipeline is stubbed: it records the stages it is given, then the process "dies".)"""
    import json

    import fastaug.train.patching.experiment as E
    from fastaug.cli import main

    given = []

    class Killed(Exception):
        pass

    class Pipeline:
        def __init__(self, root, stages):
            given.append(stages)

        def run(self):
            raise Killed

    monkeypatch.setattr(E, "Pipeline", Pipeline)
    d = tmp_path / "p"
    flags = ["--gan-steps", "30", "--gan-width", "4", "--epochs", "2", "--methods", "erm,camel", "--seeds", "3"]
    with pytest.raises(Killed):
        main(["patch", "--output-dir", str(d), "--no-progress", "--device", "cpu", *flags])
    saved = json.loads((d / "args.json").read_text())
    assert (saved["gan_steps"], saved["gan_width"], saved["epochs"], saved["methods"]) == (30, 4, 2, ["erm", "camel"])
    with pytest.raises(Killed):
        main(["patch", "--output-dir", str(d), "--resume"])
    first, resumed = given
    assert [type(s).__name__ for s in resumed] == [type(s).__name__ for s in first]
    assert resumed[0].cfg == first[0].cfg and resumed[0].cfg.gan_steps == 30 and resumed[0].cfg.gan_width == 4
    import dataclasses

    as_json = lambda c: json.dumps(dataclasses.asdict(c), sort_keys=True)  # tuples and lists alike
    assert [(s.method, s.seed, as_json(s.cfg)) for s in resumed[1:]] == [(s.method, s.seed, as_json(s.cfg))
                                                                          for s in first[1:]]
    assert resumed[1].cfg.epochs == 2
    assert [s.seed for s in resumed[1:]] == [3, 3]
    assert json.loads((d / "args.json").read_text()) == saved  # the resumed run keeps its own args.json


@pytest.mark.parametrize("flag, value, rule", [
    ("--consistency-weight", "inf", "must be a finite number >= 0"), ("--dro-step", "inf", "must be a finite number >= 0"),
    ("--momentum", "inf", "must be a finite number >= 0"), ("--wd", "inf", "must be a finite number >= 0"),
    ("--dro-adjustment", "inf", "must be a finite number >= 0"), ("--lr", "inf", "must be a finite number > 0"),
    ("--cycle-weight", "nan", "must be a finite number >= 0"), ("--identity-weight", "inf", "must be a finite number >= 0"),
    ("--gan-lr", "inf", "must be a finite number > 0"), ("--checkpoint-every", "-1", "must be >= 0"),
])
def test_non_finite_weights_and_negative_checkpoint_steps_are_refused_before_stage_1(tmp_path, capsys, flag, value,
                                                                                     rule):
    """These were accepted: stage 1 trained its CycleGANs for minutes, then stage 2 ran on inf/NaN losses (or,
    for --checkpoint-every -1, a run the other commands refuse)."""
    from fastaug.cli import main

    out = tmp_path / "p"
    assert main(["patch", flag, value, "--output-dir", str(out), "--no-progress"]) == 2
    name = {"--wd": "--weight-decay"}.get(flag, flag)
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fastaug patch: error: {name} {rule}, got "), err
    assert not out.exists()
