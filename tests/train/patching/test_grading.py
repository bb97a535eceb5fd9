"""Graded translations (stage 1): the judge on real images, the metrics against a hand computation on toy
translations, the flags and their thresholds."""
import pytest
import torch

from fastaug.data.subgroups import GroupedImageData
from fastaug.train.patching.grading import (THRESHOLDS, grade_translations, judge_subgroups, quality_flags,
                                            train_class_model, train_judge)

SIDE = 16


def _toy(n_per_group, seed=0, counts=None):
    """16-px images: class 0 has a blob on the left, class 1 on the right (rows 6-9); subgroup 1 adds a
    bright bar on row 1 (columns 2-13) and subgroup 0 has none. Groups (c, z) hold ``counts[g]`` images."""
    g = torch.Generator().manual_seed(seed)
    counts = counts or [n_per_group] * 4
    images, labels, subgroup = [], [], []
    for group, n in enumerate(counts):
        c, z = divmod(group, 2)
        x = torch.randint(0, 40, (n, 1, SIDE, SIDE), generator=g, dtype=torch.uint8)  # dim noise
        col = 2 + 8 * c + torch.randint(0, 3, (n,), generator=g)
        for i in range(n):
            x[i, 0, 6:10, col[i]: col[i] + 4] = 255
        if z:
            x[:, 0, 1, 2:14] = 255
        images.append(x)
        labels += [c] * n
        subgroup += [z] * n
    return GroupedImageData(torch.cat(images), torch.tensor(labels), ("left", "right"), "toy", False, (0.5,), (0.5,),
                            subgroup=torch.tensor(subgroup), subgroups=(("plain", "bar"), ("plain", "bar")))


class _Rule(torch.nn.Module):
    """A grader by rule, for hand computations: the judge's logits per group are (0.5, bar brightness) per
    class; the class model's are (left half brightness, right half brightness) of rows 6-9."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.unused = torch.nn.Parameter(torch.zeros(()))  # graders are read for their device

    def forward(self, x):
        if self.kind == "judge":
            bar = x[:, 0, 1, 2:14].mean(1)
            half = torch.full_like(bar, 0.5)
            return torch.stack([half, bar, half, bar], 1)
        rows = x[:, 0, 6:10]
        return torch.stack([rows[..., :8].mean((1, 2)), rows[..., 8:].mean((1, 2))], 1)


def _add_bar(x):
    y = x.clone()
    y[:, 0, 1, 2:14] = 255
    return y


def _versions(held, into):
    """(N, 2, C, H, W): ``into[k](images)`` as the version in subgroup k of every image."""
    return torch.stack([into[0](held.images), into[1](held.images)], 1)


def test_metrics_by_hand_on_toy_translations():
    held = _toy(5)
    judge, cls = _Rule("judge"), _Rule("class")
    x = held.images

    # identity translation: nothing changes, the judge sees the source subgroup -> every direction a near-copy
    q = grade_translations(_versions(held, (lambda a: a.clone(), lambda a: a.clone())), held, judge, cls)
    assert q["held_out"] == 20 and len(q["directions"]) == 4
    for d in q["directions"]:
        assert d["images"] == 5 and d["change"] == 0.0 and d["target"] == 0.0 and d["class_kept"] == 1.0
    flags = quality_flags(q, {"min_images": 1})
    assert len(flags) == 4 and all("near-copy" in f and "class" not in f.split(":", 1)[1] for f in flags)

    # the right translation: bar added (into "bar") or removed (into "plain", back to the noise row of x)
    def remove(a):
        y = a.clone()
        y[:, 0, 1, 2:14] = 0
        return y

    q = grade_translations(_versions(held, (remove, _add_bar)), held, judge, cls)
    plain_to_bar = next(d for d in q["directions"] if d["class"] == "left" and d["from"] == "plain")
    rows = (held.labels == 0) & (held.subgroup == 0)
    by_hand = (255 - x[rows][:, 0, 1, 2:14].float()).sum() / (rows.sum() * SIDE * SIDE * 255)
    assert plain_to_bar["change"] == pytest.approx(float(by_hand), rel=1e-6)
    assert plain_to_bar["target"] == 1.0 and plain_to_bar["class_kept"] == 1.0
    bar_to_plain = next(d for d in q["directions"] if d["class"] == "right" and d["from"] == "bar")
    assert bar_to_plain["change"] == pytest.approx(12 / 256)  # 12 pixels 255 -> 0
    assert quality_flags(q, {"min_images": 1}) == []
    assert q["judge_acc"] == {n: 1.0 for n in held.group_names} and q["class_acc"] == {n: 1.0 for n in held.group_names}

    # a class-changing map: the blob moves to the other half (and the bar is added): class kept 0 %
    def swap_and_bar(a):
        y = _add_bar(a)
        y[:, 0, 6:10] = y[:, 0, 6:10].flip(-1)
        return y

    q = grade_translations(_versions(held, (swap_and_bar, swap_and_bar)), held, judge, cls)
    d = q["directions"][0]
    assert d["class_kept"] == 0.0
    flags = quality_flags(q, {"min_images": 1})
    assert any(f.startswith("left plain->bar: ") and "changes the class (only 0 % of F(x) keep left)" in f for f in flags)


def test_flags_thresholds_and_small_directions():
    d = {"class": "even", "from": "clean", "to": "zigzag", "images": 50, "target": 0.49, "class_kept": 0.9,
         "change": 0.01}
    q = {"directions": [d, {**d, "from": "zigzag", "to": "clean", "images": THRESHOLDS["min_images"] - 1,
                            "target": 0.0}]}
    assert quality_flags(q) == ["even clean->zigzag: near-copy (the judge puts only 49 % of F(x) in zigzag, "
                                "mean |F(x) - x| 0.010)"]  # the 9-image direction is not flagged
    assert quality_flags({"directions": [{**d, "target": 0.5}]}) == []
    # missing the target while changing the image by a quarter of the range or more is not a near-copy
    flag, = quality_flags({"directions": [{**d, "change": THRESHOLDS["replaced_change"]}]})
    assert flag == "even clean->zigzag: replaces the image (the judge puts only 49 % of F(x) in zigzag, " \
                   "mean |F(x) - x| 0.250)"
    flag, = quality_flags({"directions": [{**d, "target": 0.9, "class_kept": 0.66}]})
    assert flag == "even clean->zigzag: changes the class (only 66 % of F(x) keep even)"
    assert quality_flags({"directions": [{**d, "target": 0.9, "class_kept": 0.67}]}) == []


def test_judge_and_class_model_learn_real_images():
    # imbalanced as a patching training set: the minority subgroup of each class has 6 images
    train = _toy(0, seed=1, counts=[60, 6, 6, 60])
    held = _toy(20, seed=2)
    judge = train_judge(train, steps=60, batch_size=40, seed=0)
    cls = train_class_model(train, steps=60, batch_size=40, seed=0)
    judged = judge_subgroups(judge, held.images, held.labels, held)
    assert float((judged == held.subgroup).float().mean()) >= 0.95
    with torch.no_grad():
        pred = cls(held.images.float() / 255).argmax(1)
    # group-balanced training: right on the minority groups too, not only through the correlated bar
    for g in range(4):
        rows = held.group_ids == g
        assert float((pred[rows] == held.labels[rows]).float().mean()) >= 0.9, held.group_names[g]
    again = train_judge(train, steps=60, batch_size=40, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(judge.state_dict().values(), again.state_dict().values()))
