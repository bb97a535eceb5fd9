"""Stage 2's validation metrics and the epoch selected on them; the stratified split of a folder dataset's groups."""
import pytest
import torch

from fastaug.data.subgroups import GroupedImageData, mnist_correlation, stratified_split
from fastaug.train.patching.evaluation import group_accuracy, validation_summary
from fastaug.train.patching.selection import select_epoch


def _rec(epoch, robust, loss, test):
    return {"epoch": epoch, "val_robust_acc": robust, "val_worst_loss": loss, "robust_acc": test}


def test_select_epoch_on_validation_robust_accuracy():
    h = [_rec(1, 0.5, 0.9, 0.1), _rec(2, 0.75, 0.8, 0.2), _rec(3, 0.75, 0.6, 0.3), _rec(4, 0.75, 0.7, 0.9),
         _rec(5, 0.25, 0.1, 0.95)]
    assert select_epoch(h)["epoch"] == 3  # the best validation robust accuracy; tie -> lower worst loss
    assert select_epoch(h + [_rec(6, 0.75, 0.6, 0.0)])["epoch"] == 6  # full tie -> the later epoch
    no_val = [{"epoch": 1, "robust_acc": 0.3}, {"epoch": 2, "robust_acc": 0.2}]
    assert select_epoch(no_val)["epoch"] == 2  # without a validation split: the last epoch
    with pytest.raises(ValueError, match="nothing to select"):
        select_epoch([])


def test_validation_summary_by_hand():
    data = GroupedImageData(torch.zeros(12, 1, 4, 4, dtype=torch.uint8), torch.tensor([0] * 6 + [1] * 6), ("a", "b"),
                            "toy", False, (0.5,), (0.5,), subgroup=torch.tensor(([0] * 3 + [1] * 3) * 2),
                            subgroups=(("p", "q"), ("p", "q")))  # 4 groups of 3 images, in group order

    class Fixed(torch.nn.Module):  # logits fixed per image, by its index in the batch
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.nn.Parameter(logits)

        def forward(self, x):
            return self.logits[: x.shape[0]]

    logits = torch.zeros(12, 2)
    logits[:, 1] = torch.tensor([-1, -1, 1, -1, -1, -1, 1, 1, -1, 1, 1, 1], dtype=torch.float)  # class 1 if > 0
    correct, total, loss = group_accuracy(Fixed(logits), data, batch_size=12)
    v = validation_summary(correct, total, loss, data)
    # right per group: (2, 3, 2, 3) of 3 images -> accuracies 2/3, 1, 2/3, 1
    assert v["val_group_acc"] == pytest.approx(dict(zip(data.group_names, [2 / 3, 1, 2 / 3, 1])))
    assert v["val_robust_acc"] == pytest.approx(2 / 3) and v["val_balanced_acc"] == pytest.approx(5 / 6)
    ce = torch.nn.functional.cross_entropy(logits, data.labels, reduction="none")
    worst = max(float(ce[g * 3: g * 3 + 3].mean()) for g in range(4))
    assert v["val_worst_loss"] == pytest.approx(worst)


def test_stratified_split_holds_out_a_share_of_every_group():
    train = mnist_correlation("train", 0.99, seed=0)
    rest, val = stratified_split(train, 0.2, seed=0)
    counts = train.group_counts()
    assert val.group_counts().tolist() == [round(0.2 * int(n)) for n in counts]  # 20 % of every group
    assert (rest.group_counts() + val.group_counts()).tolist() == counts.tolist()
    _, again = stratified_split(train, 0.2, seed=0)
    assert torch.equal(again.images, val.images)
    ids = train.group_ids
    two_each = torch.cat([(ids == g).nonzero().squeeze(1)[: 1 if g == 1 else 2] for g in range(4)])
    with pytest.raises(ValueError, match="even/zigzag has 1 image\\(s\\); --val-fraction needs at least two"):
        stratified_split(train.subset(two_each), 0.2, seed=0, what="--val-fraction")
