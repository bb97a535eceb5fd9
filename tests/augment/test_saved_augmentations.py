"""Learned augmentations out of the process that made them and back: ``save`` -> ``fastaug.augment.load``.

Tried as a user would: a fresh Python process, its working folder a temporary one outside the source
tree, loads each kind's file, applies it with a seed and must give exactly the images the in-memory
module gave with that seed (same params -> same images); it then runs the loaded module inside a
``torchvision.transforms.v2.Compose`` on single images through a DataLoader with 2 workers, and every
worker's output must equal the module replaying the parameters that worker drew. Then every bad file
and every mismatch gives its one sentence.
"""
import json
import os
import subprocess
import sys

import pytest
import torch
from learned_kinds import KINDS, SIDE, args_for, build, image_of, images

import fastaug.augment as A
from fastaug.artifacts import ArtifactError, load_artifact, save_artifact

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 11

# Runs in a fresh process, cwd a temporary folder: load every file, apply with the seed, then the
# same module inside a v2.Compose in DataLoader workers, recording what each worker drew.
CHILD = r'''
import json, sys
import torch
from torchvision.transforms import v2
import fastaug.augment as A

class Record(torch.nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module
    def forward(self, img, label):
        out, self.last = self.module(img, label, return_params=True)
        return out

class Photos(torch.utils.data.Dataset):
    def __init__(self, x, pipe):
        self.x, self.pipe = x, pipe
    def __len__(self):
        return self.x.shape[0]
    def __getitem__(self, i):
        label = i % 2
        out, label = self.pipe(v2.functional.to_pil_image(self.x[i]), label)
        return out, label, self.pipe.transforms[-1].last

def collate(batch):
    return batch

spec = json.loads(sys.argv[1])
report = {}
for kind, paths in spec.items():
    m = A.load(paths["file"])
    x = torch.load(paths["x"], weights_only=True)
    args = (x, torch.arange(x.shape[0]) % 2) if kind == "translation" else (x,)
    out = m(*args, generator=torch.Generator().manual_seed(int(paths["seed"])))
    torch.save(out[0] if kind == "translation" else out, paths["out"])
    pipe = v2.Compose([v2.PILToTensor(), Record(m)])
    loader = torch.utils.data.DataLoader(Photos(x, pipe), batch_size=3, num_workers=2, collate_fn=collate)
    checked, changed = 0, 0
    for batch in loader:
        for i, (img, label, params) in enumerate(batch):
            idx = checked
            replay = m(x[idx], label, params=params)
            replay = replay[0] if isinstance(replay, tuple) else replay
            assert torch.equal(img, replay), (kind, idx)
            assert label == idx % 2
            changed += int(not torch.equal(img, x[idx]))
            checked += 1
    report[kind] = {"checked": checked, "changed": changed, "type": type(m).__name__, "cwd": __import__("os").getcwd()}
print(json.dumps(report))
'''


def test_each_kind_loads_in_a_fresh_process_outside_the_tree_and_gives_the_same_images(tmp_path):
    pytest.importorskip("torchvision.transforms.v2")
    spec, expected = {}, {}
    for kind in KINDS:
        m, x = build(kind), images(kind, n=8)
        expected[kind] = image_of(kind, m(*args_for(kind, x), generator=torch.Generator().manual_seed(SEED)))
        paths = {k: str(tmp_path / f"{kind}_{k}.pt") for k in ("file", "x", "out")}
        m.save(paths["file"], meta={"note": "test"})
        torch.save(x, paths["x"])
        spec[kind] = {**paths, "seed": SEED}
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=work, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    for kind in KINDS:
        got = torch.load(spec[kind]["out"], weights_only=True)
        assert torch.equal(got, expected[kind]), kind
        assert report[kind]["checked"] == 8 and report[kind]["changed"] > 0, report[kind]
        assert report[kind]["cwd"] == str(work) and not report[kind]["cwd"].startswith(ROOT)
    assert {r["type"] for r in report.values()} == {"ControllerAugment", "RandomPolicyAugment", "FixedAugment",
                                                    "SequenceAugment", "TransformAugment", "SubgroupTranslation"}


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_in_process(kind, tmp_path):
    m, x = build(kind), images(kind)
    path = m.save(tmp_path / "augmentation.pt", meta={"dataset": "toy", "run": {"seed": 3}})
    loaded = A.load(tmp_path)  # a run folder: its augmentation.pt
    assert type(loaded) is type(m) and not loaded.training
    assert not any(q.requires_grad for q in loaded.parameters())
    for k, v in m.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    out = image_of(kind, loaded(*args_for(kind, x), generator=torch.Generator().manual_seed(1)))
    assert torch.equal(out, image_of(kind, m(*args_for(kind, x), generator=torch.Generator().manual_seed(1))))
    assert loaded.provenance["run"] == {"seed": 3} and loaded.provenance["dataset"] == "toy"
    loaded.save(tmp_path / "again.pt")  # what was loaded saves again, provenance kept
    assert A.load(tmp_path / "again.pt").provenance["run"] == {"seed": 3}
    meta = load_artifact(None, path).meta
    assert meta["channels"] == x.shape[1] and meta["image_size"] == [SIDE, SIDE]
    assert meta["value_range"] == "uint8 in [0, 255] or float in [0, 1]"
    assert (meta["standard"] is None) == (kind == "translation")


def test_load_without_the_standard_recipe(tmp_path):
    m = build("adversarial")
    m.save(tmp_path / "a.pt")
    bare = A.load(tmp_path / "a.pt", standard=False)
    assert bare.standard is None and A.load(tmp_path / "a.pt").standard is not None


def test_adversarial_file_holds_its_frozen_policy_which_autoaugment_takes(tmp_path):
    m = build("adversarial")
    m.save(tmp_path / "a.pt")
    fp = load_artifact(None, tmp_path / "a.pt").meta["frozen_policy"]
    assert fp == m.frozen_policy().as_dict()  # seeded: the same estimate every time
    assert len(fp["subpolicies"]) == 25 and all(len(s) == 2 for s in fp["subpolicies"])
    aa = A.AutoAugment(fp["subpolicies"], weights=fp["probabilities"], fill=128)
    x = images("adversarial")
    assert torch.equal(aa(x, generator=torch.Generator().manual_seed(0)),
                       m.frozen()(x, generator=torch.Generator().manual_seed(0)))


def test_the_influence_loops_augmenter_file_loads_as_the_augmenter_alone(tmp_path):
    m, x = build("influence"), images("influence", dtype=torch.float32)
    m.augmenter.save(tmp_path / "augmenter.pt", meta={"stage": 4})
    loaded = A.load(tmp_path / "augmenter.pt")
    assert isinstance(loaded, A.TransformAugment) and loaded.standard is None and loaded.p == 1.0
    r = torch.Generator().manual_seed(2)
    torch.rand(x.shape[0], generator=r)  # the pick coins (p = 1: every image)
    assert torch.equal(loaded(x, generator=torch.Generator().manual_seed(2)), m.augmenter(x, rng=r))


# ---- one sentence for every bad file -----------------------------------------------------------------

def _one_sentence(err):
    msg = str(err.value)
    assert "\n" not in msg and ". " not in msg, msg
    return msg


def test_folder_without_augmentation_pt_names_the_file_it_looked_for(tmp_path):
    with pytest.raises(ArtifactError, match="looked for .*augmentation.pt") as err:
        A.load(tmp_path)
    assert str(tmp_path / "augmentation.pt") in _one_sentence(err)


def test_missing_torn_pickle_foreign_kind_format_version_and_damaged_files(tmp_path):
    good = build("tanda").save(tmp_path / "good.pt")
    cases = {}
    cases["missing"] = (tmp_path / "nope.pt", "does not exist")
    torn = tmp_path / "torn.pt"
    torn.write_bytes(open(good, "rb").read()[:200])
    cases["torn"] = (torn, "unreadable")
    pickled = tmp_path / "pickle.pt"
    torch.save({"format": "fastaug-artifact-1", "kind": "augmentation/tanda", "payload": ArtifactError("x")}, pickled)
    cases["pickle"] = (pickled, "needs pickle")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 20)  # no pickle at all: not "needs pickle"
    cases["noise"] = (noise, "unreadable")
    other_kind = save_artifact("tanda-generator", {"w": torch.zeros(1)}, str(tmp_path / "kind.pt"))
    cases["kind"] = (other_kind, "'tanda-generator' artifact, not a learned augmentation")
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"format": "fastaug-checkpoint-3", "model": {}}, checkpoint)
    cases["checkpoint"] = (checkpoint, "training checkpoint")
    plain = tmp_path / "state_dict.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    cases["format"] = (plain, "is not a fastaug artifact")
    newer = save_artifact("augmentation/tanda", {}, str(tmp_path / "newer.pt"), meta={}, version=2)
    cases["version"] = (newer, "layout version 2")
    damaged = save_artifact("augmentation/tanda", {}, str(tmp_path / "damaged.pt"), meta={"channels": 3})
    cases["damaged"] = (damaged, "damaged 'augmentation/tanda' artifact")
    wrong_weights = save_artifact("augmentation/tanda", {"generator_net.lstm.weight_ih_l0": torch.zeros(3)},
                                  str(tmp_path / "weights.pt"),
                                  meta=load_artifact(None, good).meta)
    cases["weights"] = (wrong_weights, "damaged")
    for name, (path, phrase) in cases.items():
        with pytest.raises(ArtifactError) as err:
            A.load(path)
        msg = _one_sentence(err)
        assert phrase in msg and str(path) in msg, (name, msg)


# ---- one sentence for every mismatch -----------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_channels_other_than_the_learned_ones(kind):
    m = build(kind)
    C = 3 if kind == "translation" else 1
    x = torch.zeros(2, C, SIDE, SIDE, dtype=torch.uint8)
    with pytest.raises(ValueError, match=f"learned on {4 - C}-channel images, got {C}-channel images"):
        m(*args_for(kind, x))


@pytest.mark.parametrize("kind", ["influence", "translation"])
def test_sizes_where_the_kind_cannot_resize(kind):
    m = build(kind)
    x = torch.zeros(2, m.channels, SIDE + 4, SIDE + 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match=f"learned on {SIDE}x{SIDE} images and cannot resize, got 20x20"):
        m(*args_for(kind, x))


@pytest.mark.parametrize("kind", ["adversarial", "tanda", "fixed"])
def test_kinds_that_resize_take_other_sizes(kind):
    m = build(kind)
    x = torch.randint(0, 256, (2, 3, 24, 20), dtype=torch.uint8)
    assert m(x, generator=torch.Generator().manual_seed(0)).shape == x.shape


@pytest.mark.parametrize("kind", KINDS)
def test_float_images_outside_the_unit_range_and_other_dtypes(kind):
    m = build(kind)
    x = images(kind, dtype=torch.float32) * 2 - 0.5
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        m(*args_for(kind, x))
    with pytest.raises(ValueError, match="must be uint8 in"):
        m(*args_for(kind, images(kind).long()))


def test_translation_needs_labels_and_known_classes():
    m, x = build("translation"), images("translation")
    with pytest.raises(ValueError, match="needs the labels"):
        m(x)
    with pytest.raises(ValueError, match=r"classes in \[0, 2\)"):
        m(x, torch.full((6,), 5))
    assert torch.equal(m(x, labels=torch.zeros(6, dtype=torch.int64), params=m.params_into(torch.zeros(6))),
                       m.translate(x, torch.zeros(6, dtype=torch.int64), 0))


def test_replayed_params_of_another_batch_size_are_refused():
    m = build("tanda")
    _, p = m(images("tanda", n=6), return_params=True)
    with pytest.raises(ValueError, match="one row per image"):
        m(images("tanda", n=4), params=p)


def test_params_with_and_without_the_standard_recipe_do_not_mix(tmp_path):
    m = build("tanda")
    m.save(tmp_path / "a.pt")
    bare = A.load(tmp_path / "a.pt", standard=False)
    x = images("tanda")
    _, p = m(x, return_params=True)
    with pytest.raises(ValueError, match="drawn with the standard recipe, but this augmentation has none"):
        bare(x, params=p)
    _, q = bare(x, return_params=True)
    with pytest.raises(ValueError, match="drawn without the standard recipe, but this augmentation applies one"):
        m(x, params=q)


def test_meta_may_not_overwrite_what_the_module_writes(tmp_path):
    with pytest.raises(ValueError, match="meta may not set channels"):
        build("fixed").save(tmp_path / "a.pt", meta={"channels": 1})


@pytest.mark.cuda
def test_a_batch_on_another_device_than_the_module():
    m = build("influence")
    with pytest.raises(ValueError, match="move it with"):
        m(images("influence").cuda())


def test_a_folder_holding_only_the_influence_loops_augmenter_pt_loads_it(tmp_path):
    """`fastaug show RUN/stage2_gan` (the influence loop's GAN stage, which holds augmenter.pt) said "a folder
    without augmentation.pt: the run did not finish, or its method learns no augmentation"; the folder now
    loads as its augmenter.pt does, and a run folder holding both still gives augmentation.pt."""
    m, x = build("influence"), images("influence", dtype=torch.float32)
    stage = tmp_path / "stage2_gan"
    stage.mkdir()
    m.augmenter.save(stage / "augmenter.pt", meta={"stage": 2})
    g = lambda: torch.Generator().manual_seed(3)
    assert torch.equal(A.load(stage)(x, generator=g()), A.load(stage / "augmenter.pt")(x, generator=g()))
    m.save(stage / "augmentation.pt")
    both = A.load(stage)
    assert both.p == m.p and both.standard is not None
