"""Seeded splits and subsets; epoch order, DDP shards and resumable batches."""
import pytest
import torch

from fastaug.data import (ImageData, balanced_indices, class_subset, epoch_order, labelled_subset, make_batches,
                          train_val_split)


def _data(n_per_class=(7, 5, 9), seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    labels = labels[torch.randperm(labels.numel(), generator=g)]
    images = torch.randint(0, 256, (labels.numel(), 1, 4, 4), generator=g, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(labels.numel(), dtype=torch.uint8)  # an id per image
    return ImageData(images, labels, ("a", "b", "c"), "toy", False, (0.5,), (0.5,))


def _ids(d):
    return d.images[:, 0, 0, 0].tolist()


def test_class_subset_relabels_in_the_given_order():
    d = _data()
    sub = class_subset(d, [2, "a"])
    assert sub.classes == ("c", "a")
    assert len(sub) == 9 + 7
    for i, lab in zip(_ids(sub), sub.labels.tolist()):
        assert {2: 0, 0: 1}[int(d.labels[i])] == lab
    kept = class_subset(d, [1], relabel=False)
    assert kept.classes == d.classes and set(kept.labels.tolist()) == {1}
    with pytest.raises(ValueError, match="class 7 is not in toy"):
        class_subset(d, [7])
    with pytest.raises(ValueError, match="'zebra' is not in toy"):
        class_subset(d, ["zebra"])


def test_balanced_indices_are_balanced_seeded_and_distinct():
    d = _data()
    idx = balanced_indices(d.labels, 10, seed=3)
    counts = torch.bincount(d.labels[idx], minlength=3).tolist()
    assert sorted(counts) == [3, 3, 4] and idx.unique().numel() == 10
    assert torch.equal(idx, balanced_indices(d.labels, 10, seed=3))
    assert not torch.equal(idx, balanced_indices(d.labels, 10, seed=4))
    with pytest.raises(ValueError, match="needs 6 images of class 1, which has only 5"):
        balanced_indices(d.labels, 18, seed=0)
    with pytest.raises(ValueError, match="subset size must be in"):
        balanced_indices(d.labels, 22)


def test_labelled_subset_and_val_split_partition_the_data():
    d = _data()
    lab, rest = labelled_subset(d, size=6, seed=1)
    assert sorted(_ids(lab) + _ids(rest)) == list(range(21)) and len(lab) == 6
    assert torch.bincount(lab.labels, minlength=3).tolist() == [2, 2, 2]
    train, val = train_val_split(d, val_fraction=0.3, seed=2)
    assert len(val) == 6 and sorted(_ids(train) + _ids(val)) == list(range(21))
    with pytest.raises(ValueError, match="exactly one"):
        train_val_split(d, val_size=3, val_fraction=0.1)


@pytest.mark.parametrize("n,world", [(10, 1), (10, 2), (11, 2), (11, 3), (5, 4)])
def test_epoch_order_shards_partition_the_epoch(n, world):
    shards = [epoch_order(n, 4, seed=7, rank=r, world=world) for r in range(world)]
    assert len({s.numel() for s in shards}) == 1  # same number of steps on every rank
    together = torch.cat(shards)
    assert set(together.tolist()) == set(range(n))  # every image, padding repeats only a few
    assert together.numel() - n < world
    exact = [epoch_order(n, 4, seed=7, rank=r, world=world, pad=False) for r in range(world)]
    assert sorted(torch.cat(exact).tolist()) == list(range(n))  # evaluation: each image once
    assert torch.equal(epoch_order(n, 4, seed=7), epoch_order(n, 4, seed=7))
    assert not torch.equal(epoch_order(50, 4, seed=7), epoch_order(50, 5, seed=7))


def test_tensor_batches_resume_where_they_left_off():
    d = _data()
    b = make_batches(d, 4, "cpu", seed=1)
    assert len(b) == 6
    full = [(_ids(ImageData(x, y, d.classes, "t", False, (0.5,), (0.5,))), y.tolist()) for x, y in b.epoch(2)]
    later = [(x[:, 0, 0, 0].tolist(), y.tolist()) for x, y in b.epoch(2, start=4)]
    assert later == full[4:]
    for ids, ys in full:  # labels travel with their images
        assert ys == [int(d.labels[i]) for i in ids]
    ev = make_batches(d, 4, "cpu", train=False)
    assert [i for x, _ in ev.epoch(0) for i in x[:, 0, 0, 0].tolist()] == list(range(21))


def test_batches_in_a_given_order_resume_and_refuse_shards():
    """order=: a loop's own seeded order (TANDA's stage 1) instead of epoch_order; batches follow it, from
    any start step, the last one short."""
    d = _data()

    def order(epoch):
        return torch.randperm(21, generator=torch.Generator().manual_seed(100 + epoch))

    b = make_batches(d, 8, "cpu", order=order)
    assert len(b) == 3
    for epoch in (0, 3):
        got = [x[:, 0, 0, 0].tolist() for x, _ in b.epoch(epoch)]
        want = order(epoch).tolist()
        assert got == [want[:8], want[8:16], want[16:]]
        assert [x[:, 0, 0, 0].tolist() for x, _ in b.epoch(epoch, start=2)] == [want[16:]]
    with pytest.raises(ValueError, match="one process"):
        make_batches(d, 8, "cpu", order=order, rank=0, world=2)
    b.close()  # in-memory batches hold no workers: a no-op
