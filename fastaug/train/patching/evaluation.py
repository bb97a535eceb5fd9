"""Per-subgroup accuracy: what model patching is judged on (the paper's Table 1 columns).

* ``group_acc``: accuracy on each (class, subgroup) group of the test split;
* ``aggregate_acc``: accuracy over all test images (the test split of MNIST-Correlation is balanced);
* ``robust_acc``: the worst group's accuracy;
* ``gap``: per class, best minus worst subgroup accuracy.

On the validation split (held out of the training images, its groups known) :func:`validation_summary`
gives what an epoch is selected on: ``val_robust_acc`` (the worst group's accuracy, the paper's rule),
``val_balanced_acc`` (the mean of the groups' accuracies) and ``val_worst_loss`` (the worst group's
mean cross-entropy).
"""
import torch

__all__ = ["group_accuracy", "summarise_groups", "validation_summary"]


@torch.no_grad()
def group_accuracy(model, data, batch_size=500, device=None):
    """Per-group counts of ``model`` on ``data`` (a GroupedImageData): (G,) correct, (G,) totals, (G,)
    cross-entropy sums (float64).

    The model sees float images in [0, 1] in eval mode (restored afterwards).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    ids = data.group_ids
    correct = torch.zeros(data.num_groups, dtype=torch.float64)
    total = torch.zeros(data.num_groups, dtype=torch.float64)
    loss = torch.zeros(data.num_groups, dtype=torch.float64)
    for start in range(0, len(data), batch_size):
        x = data.images[start: start + batch_size].to(device).float().div_(255.0)
        y = data.labels[start: start + batch_size].to(device)
        g = ids[start: start + batch_size].cpu()
        logits = model(x).float()
        loss.index_add_(0, g, torch.nn.functional.cross_entropy(logits, y, reduction="none").double().cpu())
        hit = (logits.argmax(1) == y).double().cpu()
        correct.index_add_(0, g, hit)
        total.index_add_(0, g, torch.ones_like(hit))
    model.train(was_training)
    return correct, total, loss


def summarise_groups(correct, total, data, loss=None):
    """A JSON-able dict of the accuracies above, from :func:`group_accuracy`'s counts."""
    acc = (correct / total.clamp_min(1)).tolist()
    present = [a for a, n in zip(acc, total.tolist()) if n > 0]
    gap = []
    cls = data.group_class.tolist()
    for y in range(data.num_classes):
        mine = [a for a, c, n in zip(acc, cls, total.tolist()) if c == y and n > 0]
        gap.append(max(mine) - min(mine) if mine else 0.0)
    out = {"group_acc": dict(zip(data.group_names, acc)),
           "aggregate_acc": float(correct.sum() / total.sum().clamp_min(1)),
           "robust_acc": min(present) if present else 0.0,
           "gap": dict(zip(data.classes, gap))}
    if loss is not None:
        out["test_loss"] = float(loss.sum()) / max(float(total.sum()), 1.0)
    return out


def validation_summary(correct, total, loss, data):
    """The validation metrics of an epoch from :func:`group_accuracy`'s counts on the validation split
    (groups without images are left out): ``val_group_acc``, ``val_robust_acc``, ``val_balanced_acc``,
    ``val_worst_loss``."""
    present = total > 0
    acc = correct / total.clamp_min(1)
    mean_loss = loss / total.clamp_min(1)
    return {"val_group_acc": dict(zip(data.group_names, acc.tolist())),
            "val_robust_acc": float(acc[present].min()) if bool(present.any()) else 0.0,
            "val_balanced_acc": float(acc[present].mean()) if bool(present.any()) else 0.0,
            "val_worst_loss": float(mean_loss[present].max()) if bool(present.any()) else 0.0}
