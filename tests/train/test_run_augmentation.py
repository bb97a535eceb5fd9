"""Every learned training run leaves its augmentation: ``augmentation.pt`` in the run folder, used as a
user would use it.

Tiny runs of ``--augment adversarial``, ``random``, ``fixed``, ``tanda`` and ``influence`` each write
``augmentation.pt`` (beside their usual outputs, whose names are unchanged), with the run's provenance.
Then a fresh Python process, its working folder a temporary one outside the source tree, loads each run
folder with ``fastaug.augment.load``, applies it with a seed to uint8 and float digits, runs ``fastaug
show`` on it, and puts the adversarial run's augmentation in the README's ``v2.Compose`` through a
DataLoader with 2 workers. What it got must equal what the run's own module (the one its method built,
which TANDA's and the influence loop's batches go through) gives with the same seed or the same
replayed params. (A killed and resumed run writing the same file is checked by the kill tests:
test_policy_search_resume.py, test_tanda.py, test_influence_loop.py.)
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from fastaug.artifacts import load_artifact
from fastaug.data import load_dataset
from fastaug.train import Trainer, default_args, train
from fastaug.train.tanda import transform_fraction

from _train_utils import SMALL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 3
KINDS = ("adversarial", "random", "fixed", "tanda", "influence")
MODULES = {"adversarial": "ControllerAugment", "random": "RandomPolicyAugment", "fixed": "FixedAugment",
           "tanda": "SequenceAugment", "influence": "TransformAugment"}
#: Per kind: the tiny run's options (on top of SMALL, one epoch, CPU).
OPTIONS = {
    "adversarial": dict(train_size=64, instances=2, policy_update="step", policy_update_every=2),
    "random": dict(train_size=64, instances=2, policy_update="step", policy_update_every=2),
    "fixed": dict(train_size=64, instances=2),
    # p = 0.5 from the first epoch: the learned part acts on half of each batch
    "tanda": dict(train_size=64, tanda_epochs=1, tanda_seq_len=2, tanda_samples=2, tanda_batch_size=16,
                  tanda_p_init=0.5, tanda_p_max=0.5),
    "influence": dict(train_size=100, val_size=50, batch_size=50, gan_iters=4, gan_batch_size=32, aug_iters=2,
                      aug_batch_size=32, stage_log_every=2, stage_checkpoint_every=2),
}

# Runs in a fresh process, cwd a temporary folder: what a user does with a run folder.
CHILD = r'''
import json, os, sys
import torch
from torchvision.transforms import v2
import fastaug.augment
from fastaug.cli import main as fastaug_main

spec = json.loads(sys.argv[1])
x = torch.load(spec["x"], weights_only=True)
out = {"cwd": os.getcwd(), "module": fastaug.augment.__file__}
for kind, run in spec["runs"].items():
    aug = fastaug.augment.load(run)
    out[kind] = {"type": type(aug).__name__,
                 "uint8": aug(x, generator=torch.Generator().manual_seed(spec["seed"])),
                 "float": aug(x.float() / 255, generator=torch.Generator().manual_seed(spec["seed"])),
                 "show": fastaug_main(["show", run, "--output", f"show_{kind}.png", "--count", "3", "--draws", "2"])}

class Record(torch.nn.Module):  # keeps what the augmentation drew, to replay it in the parent
    def __init__(self, aug):
        super().__init__()
        self.aug = aug
    def forward(self, img):
        out, self.params = self.aug(img, return_params=True)
        return out

class Digits(torch.utils.data.Dataset):
    def __init__(self, x, tf):
        self.x, self.tf = x, tf
    def __len__(self):
        return self.x.shape[0]
    def __getitem__(self, i):
        img = self.tf(v2.functional.to_pil_image(self.x[i]))
        return i, img, self.tf.transforms[1].params, torch.utils.data.get_worker_info().id

aug = fastaug.augment.load(spec["runs"][spec["loader"]])
train_tf = v2.Compose([v2.PILToTensor(), Record(aug), v2.ToDtype(torch.float32, scale=True)])  # the README's line
loader = torch.utils.data.DataLoader(Digits(x, train_tf), batch_size=3, num_workers=2, collate_fn=list)
out["loader"] = [item for batch in loader for item in batch]
torch.save(out, "out.pt")
'''


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{kind: (run folder, the run's own module)}: each kind's tiny run, and the augmentation its method
    built (for the pipeline kinds, the method of a trainer rebuilt on the finished run)."""
    root = tmp_path_factory.mktemp("learned_runs")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for kind in KINDS:
            args = default_args(**dict(SMALL, epochs=1, device="cpu", progress=False, augment=kind,
                                       output_dir=str(root / kind), **OPTIONS[kind]))
            if kind in ("tanda", "influence"):
                train(args)
                stage = {"tanda": {"generator": str(root / kind / "tanda_generator" / "generator.pt")},
                         "influence": {"augmenter": str(root / kind / "augmenter.pt")}}[kind]
                tr = Trainer(default_args(**{**vars(args), "resume": True}), inputs=stage)
            else:
                tr = Trainer(args)
                tr.fit()
            out[kind] = (root / kind, tr.method.learned_augmentation(tr), tr)
    finally:
        torch.set_num_threads(n)
    return out


@pytest.fixture(scope="module")
def digits():
    _, test = load_dataset("mnist5k")
    return test.images[:12]


@pytest.fixture(scope="module")
def used(runs, digits, tmp_path_factory):
    """What the fresh process outside the source tree got from every run folder."""
    pytest.importorskip("torchvision.transforms.v2")
    work = tmp_path_factory.mktemp("elsewhere")
    torch.save(digits, work / "x.pt")
    spec = {"x": str(work / "x.pt"), "seed": SEED, "loader": "adversarial",
            "runs": {kind: str(d) for kind, (d, _, _) in runs.items()}}
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=work, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = torch.load(work / "out.pt", weights_only=False)  # our own file: it holds the drawn params
    return work, got, res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_every_learned_run_writes_augmentation_pt_with_its_provenance(kind, runs):
    d, own, tr = runs[kind]
    names = set(os.listdir(d))
    assert {"args.json", "metrics.jsonl", "checkpoint.pt", "summary.json", "curves.png", "augmentation.pt"} <= names
    if kind in ("adversarial", "random"):
        assert "policy.png" in names
    art = load_artifact(f"augmentation/{kind}", d / "augmentation.pt")
    meta, a = art.meta, tr.args
    assert type(own).__name__ == MODULES[kind]
    assert {k: meta[k] for k in ("dataset", "method", "model", "seed", "epochs", "train_images")} == {
        "dataset": "mnist5k", "method": kind, "model": "allconv", "seed": 0, "epochs": 1,
        "train_images": OPTIONS[kind]["train_size"]}
    assert meta["channels"] == 1 and meta["image_size"] == [28, 28]
    assert meta["value_range"] == "uint8 in [0, 255] or float in [0, 1]"
    # the recipe the run trained with around the learned part: digits, so no flip
    assert meta["standard"] == {"padding": a.crop_padding, "flip": False, "cutout": a.cutout} == \
        {"padding": 2, "flip": False, "cutout": 8}
    assert art.fastaug_version
    # the weights in the file are the run's (its final controller / generator / augmenter)
    assert own.state_dict().keys() == art.state.keys()
    assert all(torch.equal(v.cpu(), art.state[k]) for k, v in own.state_dict().items())
    if kind == "adversarial":
        ctrl = torch.load(d / "checkpoint.pt", weights_only=True)["ranks"][0]["method"]["controller"]
        assert all(torch.equal(ctrl[k], art.state[f"controller.{k}"]) for k in ctrl)
        assert len(meta["frozen_policy"]["subpolicies"]) == 25 and meta["options"]["fill"] == a.fill == 0
    if kind == "tanda":  # the p of the last epoch; the weights are stage 1's generator
        assert meta["options"]["p"] == transform_fraction(a.epochs - 1, 0.5, a.tanda_p_rate, 0.5) == 0.5
        gen = load_artifact("tanda-generator", d / "tanda_generator" / "generator.pt").state["generator"]
        assert all(torch.equal(gen[k], art.state[f"generator_net.{k}"]) for k in gen)
    if kind == "influence":  # the augmenter stage 4 chose, applied with --learned-prob
        assert meta["options"]["p"] == a.learned_prob == 0.5
        aug = load_artifact("influence-augmenter", d / "augmenter.pt").state
        assert all(torch.equal(aug["generator"][k], art.state[f"augmenter.generator.{k}"]) for k in aug["generator"])
    if kind == "random":
        assert meta["options"] == {"fill": 0, "ops_per_subpolicy": 2, "num_ops": 16, "num_bins": 10}


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_loaded_in_a_fresh_process_it_gives_the_runs_images(kind, runs, used, digits, one_thread):
    """The same seed, the same images, bit for bit (one thread each side: the same float arithmetic)."""
    work, got, _ = used
    assert got["cwd"] == str(work) and not got["cwd"].startswith(ROOT)
    assert got["module"].startswith(ROOT)  # this checkout's fastaug, imported from elsewhere
    _, own, _ = runs[kind]
    assert got[kind]["type"] == MODULES[kind]
    for dtype, x in (("uint8", digits), ("float", digits.float() / 255)):
        want = own(x, generator=torch.Generator().manual_seed(SEED))
        assert got[kind][dtype].dtype == x.dtype and torch.equal(got[kind][dtype], want), (kind, dtype)
    assert not torch.equal(got[kind]["uint8"], digits)  # it augments


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_fastaug_show_works_on_every_run_folder(kind, used):
    work, got, printed = used
    assert got[kind]["show"] == 0
    assert f"augmentation/{kind} ({MODULES[kind]}), learned on 1-channel 28x28 images (dataset mnist5k, " \
           f"method {kind}, model allconv, epochs 1)" in printed
    assert (work / f"show_{kind}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_in_a_v2_compose_through_two_dataloader_workers_it_replays_as_the_run(runs, used, digits):
    """Each worker drew its own params; the run's own module replaying them gives the worker's image."""
    from torchvision.transforms import v2

    _, got, _ = used
    _, own, _ = runs["adversarial"]
    items = got["loader"]
    assert sorted(i for i, *_ in items) == list(range(len(digits)))
    assert {w for *_, w in items} == {0, 1}
    to_float = v2.ToDtype(torch.float32, scale=True)
    changed = 0
    for i, img, params, _ in items:
        assert img.dtype == torch.float32 and img.shape == (1, 28, 28)
        assert torch.equal(img, to_float(own(digits[i], params=params)))
        changed += int(not torch.equal(img, to_float(digits[i])))
    assert changed > len(digits) // 2


@pytest.mark.slow
def test_the_runs_batches_are_what_its_module_gives_with_the_runs_draws(runs):
    """TANDA's and the influence loop's batches go through their module: the method's augment from a
    generator state equals the module's call from that state (as float), and its learned part acted."""
    for kind in ("tanda", "influence"):
        _, own, tr = runs[kind]
        x, y = next(iter(tr.train_batches.epoch(0)))
        state = tr.rng.get_state()
        batch = tr.method.augment(x, y, tr).x
        g = torch.Generator()
        g.set_state(state)
        want, params = own(x if kind == "tanda" else x.float() / 255, generator=g, return_params=True)
        assert torch.equal(batch, want.float() / 255 if want.dtype == torch.uint8 else want), kind
        picked = params.learned.index.numel()
        assert picked == (x.shape[0] // 2 if kind == "tanda" else picked) and picked > 0, kind
