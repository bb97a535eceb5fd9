"""--classes and --train-size on a folder dataset: the in-memory rules (class_subset, labelled_subset) on the
folder's labels, the same images chosen, nothing decoded to choose; --val-size too (train_val_split)."""
import os

import numpy as np
import pytest
import torch

from fastaug.data import (FolderData, ImageData, balanced_indices, class_subset, labelled_subset, load_dataset,
                          make_batches)
from fastaug.train import default_args, load_data

pytest.importorskip("PIL")

CLASSES = ("ant", "bee", "cat", "dog")


def _write(root, classes=CLASSES, per_class=6):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(os.path.join(root, c))
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(os.path.join(root, c, f"{i}.png"))


def _files(data):
    """[(class folder, file name)] of a FolderData's images, in order."""
    base, idx = data.base, (range(len(data.base)) if data.indices is None else data.indices.tolist())
    return [tuple(base.samples[i][0].split(os.sep)[-2:]) for i in idx]


def _args(root, **kw):
    return default_args(dataset="folder", data_dir=str(root), image_size=8, output_dir="unused", **kw)


def _as_memory(data):
    """An ImageData with ``data``'s labels and classes whose images hold their position: the in-memory twin."""
    n = len(data)
    images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = torch.arange(n) % 256, torch.arange(n) // 256
    return ImageData(images, data.labels.clone(), data.classes, "twin", False, (0.5,), (0.5,))


def _positions(twin):
    return (twin.images[:, 0, 0, 0].long() + 256 * twin.images[:, 0, 0, 1].long()).tolist()


@pytest.mark.parametrize("layout", ["one-folder", "train-val"])
def test_classes_keep_exactly_those_files_relabelled_in_the_order_given(tmp_path, layout):
    if layout == "one-folder":
        _write(str(tmp_path))
    else:
        _write(str(tmp_path / "train"))
        _write(str(tmp_path / "val"), per_class=2)
    full_train, full_test = load_dataset("folder", str(tmp_path), image_size=8)
    # "dog" by name, "1" by id (bee): labels 0 and 1, the order given
    train, val, test = load_data(_args(tmp_path, classes=["dog", "1"]))
    assert val is None and isinstance(train, FolderData) and isinstance(test, FolderData)
    for sub, full in ((train, full_train), (test, full_test)):
        assert sub.classes == ("dog", "bee") and sub.num_classes == 2
        want = [f for f in _files(full) if f[0] in ("dog", "bee")]
        assert _files(sub) == want and len(want) > 0
        assert sub.labels.tolist() == [{"dog": 0, "bee": 1}[c] for c, _ in want]
        # what the loader yields is relabelled too (decoded through the dataset, as workers do)
        assert [sub.dataset[i][1] for i in range(len(sub))] == sub.labels.tolist()
        ys = torch.cat([y for _, y in make_batches(sub, 4, "cpu", train=False, workers=0).epoch(0)])
        assert ys.tolist() == sub.labels.tolist()


def test_folder_class_subset_matches_the_in_memory_rule(tmp_path):
    _write(str(tmp_path))
    full, _ = load_dataset("folder", str(tmp_path), image_size=8)
    for classes in (["cat", "ant"], [3, 0, 1], ["2"]):
        sub, twin = class_subset(full, classes), class_subset(_as_memory(full), classes)
        assert sub.classes == twin.classes and torch.equal(sub.labels, twin.labels)
        assert sub.indices.tolist() == full.indices[torch.tensor(_positions(twin))].tolist()
    kept = class_subset(full, ["bee"], relabel=False)
    assert kept.classes == CLASSES and set(kept.labels.tolist()) == {1}
    with pytest.raises(ValueError, match="'zebra' is not in folder"):
        class_subset(full, ["zebra"])
    with pytest.raises(ValueError, match="class 9 is not in folder"):
        class_subset(full, ["9"])


def test_digit_named_class_folders_are_taken_by_name(tmp_path):
    """Folders 2 and 10 are numbered 1 and 0 (sorted names): --classes 2 means the folder 2, not class id 2."""
    _write(str(tmp_path), classes=("2", "10", "7"), per_class=3)
    train, _, _ = load_data(_args(tmp_path, classes=["2", "10"]))
    assert train.classes == ("2", "10")
    assert all(train.classes[y] == c for (c, _), y in zip(_files(train), train.labels.tolist()))


def test_train_size_is_the_balanced_indices_choice_and_deterministic(tmp_path):
    _write(str(tmp_path), per_class=8)
    full, _ = load_dataset("folder", str(tmp_path), image_size=8)
    sub = class_subset(full, ["cat", "bee"])
    a, _, _ = load_data(_args(tmp_path, classes=["cat", "bee"], train_size=7, data_seed=5))
    b, _, _ = load_data(_args(tmp_path, classes=["cat", "bee"], train_size=7, data_seed=5))
    pick = balanced_indices(sub.labels, 7, seed=5)
    assert a.indices.tolist() == sub.indices[pick].tolist() == b.indices.tolist()
    assert sorted(torch.bincount(a.labels, minlength=2).tolist()) == [3, 4]
    assert _files(a) == [_files(sub)[i] for i in pick.tolist()]
    assert [a.dataset[i][1] for i in range(len(a))] == a.labels.tolist() == sub.labels[pick].tolist()
    # the in-memory path on the same labels picks the same images
    labelled, _ = labelled_subset(_as_memory(sub), size=7, seed=5)
    assert _positions(labelled) == pick.tolist()
    # --data-seed (default --seed) decides the draw
    c, _, _ = load_data(_args(tmp_path, classes=["cat", "bee"], train_size=7, seed=6))
    assert len(c) == 7 and c.indices.tolist() != a.indices.tolist()
    # without --classes: balanced over the four folders
    d, _, _ = load_data(_args(tmp_path, train_size=8, data_seed=1))
    assert torch.bincount(d.labels, minlength=4).tolist() == [2, 2, 2, 2]
    assert d.indices.tolist() == full.indices[balanced_indices(full.labels, 8, seed=1)].tolist()
    with pytest.raises(ValueError, match=f"--train-size 99 is more than the {len(sub)} training images"):
        load_data(_args(tmp_path, classes=["cat", "bee"], train_size=99))


def test_val_size_on_a_folder_holds_out_the_images_the_in_memory_split_would(tmp_path):
    """--val-size on a folder: train_val_split on its labels, then --train-size from the rest, as for an
    in-memory dataset (the twin with the same labels picks the same positions); nothing decoded."""
    from fastaug.data import train_val_split

    _write(str(tmp_path), per_class=6)
    full, _ = load_dataset("folder", str(tmp_path), image_size=8)
    train, val, _ = load_data(_args(tmp_path, val_size=8, train_size=6, data_seed=3))
    assert isinstance(val, FolderData) and len(val) == 8 and len(train) == 6
    assert torch.bincount(val.labels, minlength=4).tolist() == [2, 2, 2, 2]
    rest_twin, val_twin = train_val_split(_as_memory(full), val_size=8, seed=3)
    labelled_twin, _ = labelled_subset(rest_twin, size=6, seed=3)
    def base(twin):  # positions in full -> indices into the folder (full is the 80 % training part)
        return full.indices[_positions(twin)].tolist()

    assert val.indices.tolist() == base(val_twin)
    assert train.indices.tolist() == base(labelled_twin)
    assert not set(train.indices.tolist()) & set(val.indices.tolist())  # held out
    assert [val.dataset[i][1] for i in range(len(val))] == val.labels.tolist()
    with pytest.raises(ValueError, match=f"--val-size {len(full)} leaves no training images"):
        load_data(_args(tmp_path, val_size=len(full)))


def test_an_unreadable_image_of_a_class_subset_is_still_named(tmp_path):
    _write(str(tmp_path / "train"), per_class=3)
    _write(str(tmp_path / "val"), per_class=1)
    bad = tmp_path / "train" / "dog" / "broken.png"
    bad.write_bytes(b"not an image")
    train, _, _ = load_data(_args(tmp_path, classes=["dog", "ant"]))
    assert ("dog", "broken.png") in _files(train)
    with pytest.raises(ValueError, match=f"cannot decode image {bad}"):
        list(make_batches(train, 8, "cpu", train=False, workers=0).epoch(0))
    train.skip_unreadable = True
    sub = train.subset(torch.arange(len(train)))  # a subset keeps the setting
    assert sub.skip_unreadable
    batches = make_batches(sub, 8, "cpu", train=False, workers=0)
    ys = torch.cat([y for _, y in batches.epoch(0)])
    assert ys.tolist() == [1, 1, 1, 0, 0, 0] and batches.unreadable == {str(bad)}
