"""TANDA: the discriminator separates real from strongly transformed digits, the generator's cost
penalises near-identity sequences, phase 2 transforms the scheduled fraction, a run completes."""
import json
import os
import random
import subprocess
import sys

import pytest
import torch

from fastaug.artifacts import load_artifact, save_artifact
from fastaug.augment.op_table import OP_IDS
from fastaug.data import load_dataset
from fastaug.models import build_model
from fastaug.train import Trainer, default_args, train
from fastaug.train.loop import KILL_ENV
from fastaug.train.tanda import transform_fraction
from fastaug.train.method import MissingInput
from fastaug.train.tanda.generator_stage import build_generator_net, real_logit
from fastaug.train.tanda.search import (apply_sequences, discriminator_loss, feature_distance, generator_costs,
                                        generator_loss, incremental_transforms, real_fake_logits)

from _train_utils import same_augmentation


@pytest.fixture(scope="module")
def digits():
    train, test = load_dataset("mnist5k")
    return train.images[:512], test.images[:256]


def _strong(x, g):
    """Three random ops at the strongest level: 'strongly transformed' digits."""
    ops = torch.randint(0, 16, (x.shape[0], 3), generator=g)
    return apply_sequences(x, ops, torch.full_like(ops, 9), 10, g, fill=0)


def test_discriminator_separates_real_from_strongly_transformed(digits):
    train, test = digits
    torch.manual_seed(0)
    d = build_model("allconv", 2, 1)
    opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(40):
        x = train[(step * 32) % 512:(step * 32) % 512 + 32]
        loss = discriminator_loss(*real_fake_logits(d, x.float() / 255, _strong(x, g).float() / 255))
        opt.zero_grad()
        loss.backward()
        opt.step()
    d.eval()
    with torch.no_grad():
        real = real_logit(d(test.float() / 255)) > 0
        fake = real_logit(d(_strong(test, g).float() / 255)) > 0
    acc = 0.5 * (real.double().mean() + (~fake).double().mean())
    assert acc > 0.85


def test_identity_sequence_cost_is_penalised(digits):
    x = digits[0][:8]
    torch.manual_seed(0)
    d = build_model("allconv", 2, 1).eval()
    g = torch.Generator().manual_seed(1)
    ident = torch.full((8, 3), OP_IDS["Brightness"])  # level 0: the identity
    moved = torch.full((8, 3), OP_IDS["Rotate"])
    lv0, lv9 = torch.zeros(8, 3, dtype=torch.long), torch.full((8, 3), 9)
    with torch.no_grad():
        costs = []
        for ops, lv in ((ident, lv0), (moved, lv9)):
            steps = incremental_transforms(x, ops, lv, 10, g, fill=0).flatten(0, 1).float() / 255
            logits = real_logit(d(steps)).view(4, 8).t()
            feats = steps.view(4, 8, -1)  # pixel distance (--tanda-distance pixels)
            costs.append(generator_costs(logits, feature_distance(feats[:1], feats).t(), 1e-4))
    assert torch.equal(incremental_transforms(x, ident, lv0, 10, g)[3], x)
    # every identity prefix carries the full penalty mse_term / eps = 100; the rotated ones less
    assert (costs[0][:, 1:] > 100).all() and (costs[1][:, 1:] < 5).all()
    # in a batch of both, the generator's gradient lowers the log-probability of the identity's first
    # transformation (incremental credit: the later identity steps keep the cost where it is)
    logp = torch.zeros(16, 3, requires_grad=True)
    generator_loss(logp, torch.cat(costs), gamma=0.5).backward()
    assert (logp.grad[:8, 0] > 0).all() and (logp.grad[8:, 0] < 0).all()


def _args(tmp_path, **kw):
    base = dict(augment="tanda", train_size=96, epochs=2, batch_size=16, device="cpu", tanda_epochs=1,
                tanda_samples=2, tanda_seq_len=3, output_dir=str(tmp_path / "run"), progress=False)
    base.update(kw)
    return default_args(**base)


def _generator_artifact(path, seq_len=3):
    """A (fresh) generator as stage 1 hands it on: a tanda-generator artifact."""
    state = build_generator_net(seq_len, 0, "cpu").state_dict()
    return save_artifact("tanda-generator", {"generator": state}, str(path), meta={"seq_len": seq_len})


def test_phase_two_transforms_the_scheduled_fraction(tmp_path):
    assert transform_fraction(0, 0.1, 1.05, 0.5) == pytest.approx(0.1)
    assert transform_fraction(10, 0.1, 1.05, 0.5) == pytest.approx(0.1 * 1.05 ** 10)
    assert transform_fraction(100, 0.1, 1.05, 0.5) == 0.5
    tr = Trainer(_args(tmp_path, crop_padding=0, cutout=0, tanda_p_init=0.5),
                 inputs={"generator": _generator_artifact(tmp_path / "g.pt")})
    x, y = next(iter(tr.train_batches.epoch(0)))
    with torch.no_grad():  # a generator that always picks Invert: changed rows are visible
        tr.method.generator_net.op_head.bias.fill_(-50)
        tr.method.generator_net.op_head.bias[OP_IDS["Invert"]] = 50
    batch = tr.method.augment(x, y, tr)
    changed = (batch.x != x.float() / 255).flatten(1).any(1)
    # an odd number of Inverts changes the image, an even number restores it (T = 3: always odd)
    assert changed.sum().item() == int(16 * 0.5)
    # the epoch's record counts the generated actions: 8 sequences of 3 ops, every one Invert
    freq = tr.method.epoch_end(0, tr)
    assert freq["op_frequencies"][OP_IDS["Invert"]] == 1.0 and sum(freq["magnitude_frequencies"]) == pytest.approx(1)
    assert tr.method.actions.op_counts.sum() == 0  # reset for the next epoch


def test_tanda_run_two_stages(tmp_path):
    summary = train(_args(tmp_path))
    assert summary["epochs"] == 2
    run = tmp_path / "run"
    recs = [json.loads(line) for line in open(run / "metrics.jsonl")]
    search = [json.loads(line) for line in open(run / "tanda_generator" / "metrics.jsonl")]
    assert len(search) == 1 and {"d_loss", "g_cost", "d_fooled", "entropy"} <= set(search[0])
    assert recs[1]["transform_fraction"] == pytest.approx(0.105)
    assert len(recs[0]["op_frequencies"]) == 16
    # the classifier samples from the trained generator (stage 1's result, handed on), not from a fresh one
    art = load_artifact("tanda-generator", run / "tanda_generator" / "generator.pt")
    trained = art.state["generator"]
    assert art.meta["seq_len"] == 3 and art.meta["options"]["tanda_samples"] == 2 and art.meta["dataset"] == "mnist5k"
    assert json.load(open(run / "tanda_generator" / "stage.json"))["artifacts"] == {"generator": "generator.pt"}
    fresh = build_generator_net(3, 0, "cpu").state_dict()
    assert any(not torch.equal(v, fresh[k]) for k, v in trained.items())  # stage 1 trained it
    tr = Trainer(_args(tmp_path, output_dir=str(run), resume=True),
                 inputs={"generator": str(run / "tanda_generator" / "generator.pt")})
    assert all(torch.equal(v, tr.method.generator_net.state_dict()[k]) for k, v in trained.items())
    # stage 1 happens outside the engine's epochs: the summary counts it once, in total_seconds
    stage = json.load(open(run / "tanda_generator" / "stage.json"))
    assert summary["pretrain_seconds"] == pytest.approx(stage["seconds"]) and stage["seconds"] > 0
    assert summary["total_seconds"] == pytest.approx(summary["train_seconds"] + summary["pretrain_seconds"])
    assert summary["train_seconds"] == pytest.approx(sum(r["epoch_seconds"] for r in recs))
    # a finished stage is reused with the same options and refused with others
    with pytest.raises(ValueError, match=r"other options \(--tanda-gamma 0.5 -> 0.7\)"):
        train(_args(tmp_path, resume=True, tanda_gamma=0.7))


_FLAGS = ["--augment", "tanda", "--train-size", "64", "--batch-size", "16", "--eval-batch-size", "500", "--epochs",
          "2", "--tanda-epochs", "2", "--tanda-samples", "2", "--tanda-seq-len", "2", "--tanda-batch-size", "16",
          "--checkpoint-every", "3", "--device", "cpu", "--no-progress"]


def _cli(out, *extra, kill=None):
    env = dict(os.environ)
    env.pop(KILL_ENV, None)
    if kill:
        env[KILL_ENV] = kill
    return subprocess.run([sys.executable, "-m", "fastaug", "train", "--output-dir", str(out), *_FLAGS, *extra],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_sigkill_in_either_stage_then_resume_is_bit_identical(tmp_path):
    assert _cli(tmp_path / "ref").returncode == 0
    ref = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    pick = random.Random(23)  # 4 steps per pass / epoch: 8 in each stage
    for loop, step in (("tanda generator", pick.randint(1, 7)), ("train", pick.randint(1, 7))):
        d = tmp_path / loop.replace(" ", "_")
        out = _cli(d, kill=f"{loop}:{step}")
        assert out.returncode == -9, out.stderr
        out = _cli(d, "--resume")
        assert out.returncode == 0, out.stderr
        got = torch.load(d / "checkpoint.pt", weights_only=True)
        for part in ("model", "optimizer"):
            assert repr(got[part].keys()) == repr(ref[part].keys())
        assert all(torch.equal(got["model"][k], v) for k, v in ref["model"].items()), loop
        assert torch.equal(got["ranks"][0]["method"]["op_counts"], ref["ranks"][0]["method"]["op_counts"])
        a = load_artifact("tanda-generator", tmp_path / "ref" / "tanda_generator" / "generator.pt").state["generator"]
        b = load_artifact("tanda-generator", d / "tanda_generator" / "generator.pt").state["generator"]
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert same_augmentation(tmp_path / "ref", d), loop  # the resumed run leaves the same augmentation


def test_a_foreign_or_torn_generator_checkpoint_is_refused_in_one_sentence(tmp_path):
    from fastaug.train.checkpoint import CheckpointError

    folder = tmp_path / "run" / "tanda_generator"
    folder.mkdir(parents=True)
    torch.save({"format": "fastaug-train-1", "search_step": 3}, folder / "checkpoint.pt")  # the old layout
    with pytest.raises(CheckpointError, match="older fastaug") as err:
        train(_args(tmp_path))
    (folder / "checkpoint.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(CheckpointError, match="unreadable") as err2:
        train(_args(tmp_path))
    assert "\n" not in str(err.value) + str(err2.value)


def test_tanda_without_its_stage_result_refuses_in_one_sentence(tmp_path):
    """The method on its own (no pipeline) would sample from an untrained generator: it refuses instead,
    and a generator of another sequence length is refused too."""
    with pytest.raises(MissingInput) as err:
        Trainer(_args(tmp_path))
    assert str(err.value).startswith("--augment tanda samples from the generator its stage 1 trains, and none was "
                                     "given") and "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"makes sequences of 4 ops, but --tanda-seq-len is 3"):
        Trainer(_args(tmp_path), inputs={"generator": _generator_artifact(tmp_path / "g4.pt", seq_len=4)})
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="is not a 'tanda-generator' artifact"):
        Trainer(_args(tmp_path), inputs={"generator": str(tmp_path / "foreign.pt")})


def _image_folder(root, per_class, classes=("red", "green", "blue"), size=(20, 14), seed=0):
    """root/<class>/<i>.png: synthetic RGB images with a colour cue per class; {class: count}."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, c in enumerate(classes):
        os.makedirs(root / c)
        for i in range(per_class):
            arr = rng.integers(0, 100, (size[1], size[0], 3), dtype=np.uint8)
            arr[..., k] += 150
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return {c: per_class for c in classes}


def test_tanda_on_an_image_folder(tmp_path):
    """--dataset folder: stage 1 reads its batches through the folder's DataLoader workers (it used to index
    an in-memory ``images`` tensor and crashed), every image once per pass; the whole command finishes and
    leaves the generator and the learned augmentation."""
    pytest.importorskip("PIL")
    from fastaug.augment import load
    from fastaug.train.engine import pipeline_inputs
    from fastaug.train.tanda.generator_stage import GeneratorStage
    from fastaug.train.tanda.method import TandaOptions

    data = tmp_path / "data"
    _image_folder(data / "train", 8)
    _image_folder(data / "val", 2, seed=1)
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "fastaug", "train", "--dataset", "folder", "--data-dir", str(data),
                          "--image-size", "16", "--model", "lenet", "--augment", "tanda", "--epochs", "1", "-b", "8",
                          "-j", "1", "--tanda-epochs", "1", "--tanda-batch-size", "8", "--tanda-samples", "2",
                          "--tanda-seq-len", "2", "--device", "cpu", "--no-progress", "--output-dir", str(out)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr  # stage 1's workers stopped cleanly
    search = [json.loads(line) for line in open(out / "tanda_generator" / "metrics.jsonl")]
    assert len(search) == 1 and {"d_loss", "g_cost", "d_fooled", "entropy"} <= set(search[0])
    art = load_artifact("tanda-generator", out / "tanda_generator" / "generator.pt")
    assert art.meta["dataset"] == "folder" and art.meta["channels"] == 3 and art.meta["image_size"] == [16, 16]
    fresh = build_generator_net(2, 0, "cpu").state_dict()
    assert any(not torch.equal(v, fresh[k]) for k, v in art.state["generator"].items())  # stage 1 trained it
    assert json.load(open(out / "summary.json"))["epochs"] == 1
    aug = load(out)
    assert type(aug).__name__ == "SequenceAugment" and aug.image_size == (16, 16)
    # every pass of stage 1 sees each of the 24 training images once, with the label of its folder
    args, (train_data, _, _), device = pipeline_inputs(default_args(
        dataset="folder", data_dir=str(data), image_size=16, augment="tanda", workers=0, device="cpu",
        tanda_batch_size=8))
    stage = GeneratorStage(TandaOptions.from_args(args), args, train_data, device)
    passes = []
    for epoch in (0, 1):
        ys = [y for _, y in stage._batches().epoch(epoch)]
        assert [len(y) for y in ys] == [8, 8, 8]
        passes.append(torch.cat(ys))
        assert torch.bincount(passes[-1], minlength=3).tolist() == [8, 8, 8]
    assert not torch.equal(passes[0], passes[1])  # a fresh seeded order per pass
