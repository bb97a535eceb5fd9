"""Subgroup datasets: MNIST-Correlation's groups and determinism, the zigzag, the class/subgroup folder."""

import pytest
import torch

from fastaug.data import mnist5k
from fastaug.data.subgroups import GroupedImageData, load_grouped_dataset, mnist_correlation, subgroup_folder, zigzag


@pytest.fixture(scope="module")
def corr():
    return mnist_correlation("train", 0.99, seed=3), mnist_correlation("test", 0.99, seed=3)


def test_mnist_correlation_groups(corr):
    train, test = corr
    base = mnist5k("train")
    parity = base.labels % 2
    assert torch.equal(train.labels, parity)
    counts = train.group_counts()  # even/clean, even/zigzag, odd/clean, odd/zigzag
    n_even, n_odd = int((parity == 0).sum()), int((parity == 1).sum())
    assert counts.tolist() == [n_even - round(0.01 * n_even), round(0.01 * n_even),
                               round(0.01 * n_odd), n_odd - round(0.01 * n_odd)]
    assert train.group_names == ("even/clean", "even/zigzag", "odd/clean", "odd/zigzag")
    # clean images are MNIST's untouched; zigzagged ones are brighter copies of them
    clean = train.subgroup == 0
    assert torch.equal(train.images[clean], base.images[clean])
    zig = ~clean
    assert bool((train.images[zig] >= base.images[zig]).all())
    assert bool(((train.images[zig].int() - base.images[zig].int()).flatten(1).amax(1) > 200).all())
    # test: every digit twice, clean then zigzagged, so the four groups hold the same digits
    base_test = mnist5k("test")
    assert len(test) == 2 * len(base_test)
    assert torch.equal(test.images[: len(base_test)], base_test.images)
    assert torch.equal(test.labels, torch.cat([base_test.labels % 2] * 2))
    assert test.group_counts().tolist() == [int((base_test.labels % 2 == 0).sum())] * 2 + \
        [int((base_test.labels % 2 == 1).sum())] * 2


def test_mnist_correlation_is_seeded(corr):
    train, test = corr
    again = mnist_correlation("train", 0.99, seed=3)
    assert torch.equal(again.images, train.images) and torch.equal(again.subgroup, train.subgroup)
    other = mnist_correlation("train", 0.99, seed=4)
    assert not torch.equal(other.subgroup, train.subgroup)
    assert torch.equal(other.group_counts(), train.group_counts())
    # the test split does not depend on the seed or the correlation
    assert torch.equal(mnist_correlation("test", 0.9, seed=7).images, test.images)
    half = mnist_correlation("train", 0.9, seed=3).group_counts()
    assert half[1] == round(0.1 * int(half[:2].sum()))


def test_mnist_correlation_balanced_validation_split(corr):
    full, test = corr
    base = mnist5k("train")
    train, val, test2 = load_grouped_dataset("mnist-correlation", correlation=0.99, seed=3, val_fraction=0.1)
    assert torch.equal(test2.images, test.images)  # the test split does not move
    # 400 training digits held out, each clean (MNIST's untouched) then zigzagged: four balanced groups
    assert len(train) == 3600 and len(val) == 800
    clean = val.images[:400]
    held = [int(i) for i in (base.images.flatten(1)[:, None, :] == clean.flatten(1)[None]).all(2).nonzero()[:, 0]]
    assert len(set(held)) == 400
    assert torch.equal(val.labels, torch.cat([base.labels[held] % 2] * 2))
    assert val.subgroup.tolist() == [0] * 400 + [1] * 400
    assert bool((val.images[400:] >= clean).all()) and not torch.equal(val.images[400:], clean)
    n_even = int((val.labels[:400] == 0).sum())
    assert val.group_counts().tolist() == [n_even, n_even, 400 - n_even, 400 - n_even]
    # the rest is the training split, correlated as always: exactly 1 % of each class in its minority subgroup
    rest = torch.ones(len(base), dtype=torch.bool)
    rest[held] = False
    assert torch.equal(train.labels, base.labels[rest] % 2)
    counts = train.group_counts()
    evens, odds = int(counts[:2].sum()), int(counts[2:].sum())
    assert counts.tolist() == [evens - round(0.01 * evens), round(0.01 * evens), round(0.01 * odds),
                               odds - round(0.01 * odds)]
    # seeded: the same digits and zigzags again, others with another seed; none held out at 0
    _, again, _ = load_grouped_dataset("mnist-correlation", correlation=0.99, seed=3, val_fraction=0.1)
    assert torch.equal(again.images, val.images)
    assert not torch.equal(mnist_correlation("val", 0.99, seed=4, val_fraction=0.1).images, val.images)
    none_train, none_val, _ = load_grouped_dataset("mnist-correlation", correlation=0.99, seed=3)
    assert none_val is None and torch.equal(none_train.images, full.images)
    with pytest.raises(ValueError, match=r"--val-fraction must be in \[0, 1\)"):
        mnist_correlation("val", 0.99, val_fraction=1.0)


@pytest.mark.parametrize("bad", [0.5, 0.2, 1.01, float("nan")])
def test_correlation_range(bad):
    with pytest.raises(ValueError, match=r"--correlation must be in \(0.5, 1\]"):
        mnist_correlation("train", bad)


def _reference_strokes(n, seed, side=28):
    """The stroke of each zigzag from its polyline by brute force: the distance of every pixel centre to
    2,000 points along each segment, MNIST-C's profile clip(log(1 - d / 2.3) + 1, 0, 1); (n, side, side)."""
    from fastaug.data.subgroups import _zigzag_vertices

    verts = _zigzag_vertices(n, side, torch.Generator().manual_seed(seed))
    yy, xx = torch.meshgrid(torch.arange(side, dtype=torch.float64), torch.arange(side, dtype=torch.float64),
                            indexing="ij")
    out = []
    for v in verts:
        v = v[~v.isnan().any(1)]
        t = torch.linspace(0, 1, 2000, dtype=torch.float64)[:, None]
        pts = torch.cat([v[k] + t * (v[k + 1] - v[k]) for k in range(len(v) - 1)])  # (S, 2) as (col, row)
        d = ((xx[..., None] - pts[:, 0]) ** 2 + (yy[..., None] - pts[:, 1]) ** 2).sqrt().amin(-1)
        out.append((torch.log(1 - d.clamp(max=2.3 - 1e-10) / 2.3) + 1).clamp(0, 1))
    return torch.stack(out)


def test_zigzag_matches_a_brute_force_polyline():
    out = zigzag(torch.zeros(6, 1, 28, 28, dtype=torch.uint8), torch.Generator().manual_seed(0))
    ref = (_reference_strokes(6, 0) * 255).round()
    assert (out[:, 0].double() - ref).abs().max() <= 8  # the brute force samples each segment every ~0.002 px
    # a zigzag: the polyline alternates about its line, so it crosses most columns 3..24 of the image
    assert out[:, 0, :, 3:25].amax(1).gt(0).double().mean() > 0.8
    assert int((out[:, 0] > 0).sum(1).max()) <= 10  # a thin stroke: few touched rows per column


def test_zigzag_is_seeded_and_only_brightens():
    blank = torch.zeros(16, 1, 28, 28, dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    out = zigzag(blank, g)
    assert torch.equal(zigzag(blank, torch.Generator().manual_seed(0)), out)
    assert not torch.equal(zigzag(blank, g), out)  # the generator moved on: other zigzags
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    y = zigzag(x, torch.Generator().manual_seed(1))
    assert bool((y >= x).all()) and int(y.max()) == 255


def _write_tree(root, layout, size=12):
    from PIL import Image

    k = 0
    for split, classes in layout.items():
        for c, subs in classes.items():
            for s, n in subs.items():
                d = root / split / c / s
                d.mkdir(parents=True)
                for i in range(n):
                    k += 1
                    Image.new("RGB", (size + i, size), (k * 7 % 256, k * 13 % 256, 40)).save(d / f"{i}.png")


def test_folder_layout_with_val(tmp_path):
    tree = {"cat": {"indoor": 3, "outdoor": 2}, "dog": {"a": 1, "b": 4, "c": 2}}
    _write_tree(tmp_path, {"train": tree, "val": {"cat": {"indoor": 1, "outdoor": 1}, "dog": {"a": 1, "b": 1, "c": 1}}})
    train, val = subgroup_folder(tmp_path, image_size=8)
    assert isinstance(train, GroupedImageData) and train.images.shape == (12, 3, 8, 8)
    assert train.classes == ("cat", "dog") and train.subgroups == (("indoor", "outdoor"), ("a", "b", "c"))
    assert train.group_counts().tolist() == [3, 2, 1, 4, 2]
    assert train.group_class.tolist() == [0, 0, 1, 1, 1]
    assert val.group_counts().tolist() == [1, 1, 1, 1, 1]
    # group ids follow the folders: the labels and subgroups of the files in order
    assert train.labels.tolist() == [0] * 5 + [1] * 7
    assert train.subgroup.tolist() == [0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 2, 2]
    sub = train.subset(torch.tensor([4, 11]))
    assert sub.group_ids.tolist() == [1, 4]


def test_folder_seeded_split(tmp_path):
    _write_tree(tmp_path, {"train": {"x": {"p": 10, "q": 5}, "y": {"p": 4, "q": 2}}})
    train, val = subgroup_folder(tmp_path, image_size=8, seed=1)
    assert val.group_counts().tolist() == [2, 1, 1, 1]  # 20 % of each subgroup, at least one
    assert train.group_counts().tolist() == [8, 4, 3, 1]
    train2, val2 = subgroup_folder(tmp_path, image_size=8, seed=1)
    assert torch.equal(val.images, val2.images)
    _, val3 = subgroup_folder(tmp_path, image_size=8, seed=2)
    assert not torch.equal(val.images, val3.images)


def test_folder_errors(tmp_path):
    one = tmp_path / "one"
    _write_tree(one, {"train": {"x": {"p": 2}, "y": {"p": 2, "q": 2}}})
    with pytest.raises(ValueError, match="class 'x' .* has 1 subgroup folder"):
        subgroup_folder(one)
    empty = tmp_path / "empty"
    _write_tree(empty, {"train": {"x": {"p": 2, "q": 2}, "y": {"p": 2, "q": 2}}})
    for f in (empty / "train" / "y" / "q").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="holds no images"):
        subgroup_folder(empty)
    names = tmp_path / "names"
    _write_tree(names, {"train": {"x": {"p": 2, "q": 2}, "y": {"p": 2, "q": 2}},
                        "val": {"x": {"p": 1, "r": 1}, "y": {"p": 1, "q": 1}}})
    with pytest.raises(ValueError, match="class 'x' has subgroups p, q in train/ but p, r in val/"):
        subgroup_folder(names)
    with pytest.raises(ValueError, match="has no train/ folder"):
        subgroup_folder(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    _write_tree(bad, {"train": {"x": {"p": 2, "q": 2}, "y": {"p": 2, "q": 2}}})
    (bad / "train" / "x" / "p" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        subgroup_folder(bad)
    with pytest.raises(ValueError, match="unknown patching dataset"):
        load_grouped_dataset("mnist5k")
