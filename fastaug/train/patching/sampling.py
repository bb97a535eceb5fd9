"""Group-balanced batches for patched training: every batch holds the same number of images of each group.

Model patching trains its robust methods on batches of 25 images per (class, subgroup) group (the
paper's batch 100 on four groups), so the ~1 % minority groups appear in every step. Each group's
images are drawn uniformly *with* replacement (a minority group of 20 images fills its share every
step), as Sagawa et al.'s group-weighted sampler does. The batches of epoch ``e`` are a pure
function of ``(seed, e)`` (like :func:`fastaug.data.epoch_order`), so a resumed run needs no sampler
state: it recomputes the epoch and starts at its step.
"""
import math

import torch

__all__ = ["group_balanced_batches", "balanced_steps", "BalancedBatches"]

_EPOCH_STRIDE = 1_000_003


def balanced_steps(num_images, batch_size):
    """Steps of a group-balanced epoch: as many as a plain epoch over ``num_images`` (so epochs compare)."""
    return math.ceil(num_images / batch_size)


def group_balanced_batches(group_ids, num_groups, batch_size, epoch, seed=0, steps=None):
    """(steps, batch_size) int64 dataset indices of the group-balanced batches of ``epoch``.

    Each batch takes ``batch_size // G`` images of every group; the remaining ``batch_size % G``
    places go one each to groups chosen at random per batch. Groups without images are skipped.

    Args:
        group_ids: (N,) int64 group of each image.
        num_groups: G (the groups that exist, some possibly empty here).
        batch_size: B >= the number of non-empty groups.
        epoch, seed: the epoch's order is a function of both.
        steps: batches in the epoch (default :func:`balanced_steps`).
    """
    group_ids = torch.as_tensor(group_ids).cpu()
    members = [(group_ids == g).nonzero().squeeze(1) for g in range(num_groups)]
    members = [m for m in members if m.numel()]
    k = len(members)
    if batch_size < k:
        raise ValueError(f"a group-balanced batch needs at least one image per group: batch size {batch_size} < "
                         f"{k} groups")
    steps = balanced_steps(group_ids.numel(), batch_size) if steps is None else int(steps)
    g = torch.Generator().manual_seed(int(seed) * _EPOCH_STRIDE + int(epoch))
    share = torch.full((steps, k), batch_size // k, dtype=torch.int64)
    extra = torch.rand(steps, k, generator=g).argsort(1)[:, : batch_size % k]
    share.scatter_add_(1, extra, torch.ones_like(extra))
    out = torch.empty(steps, batch_size, dtype=torch.int64)
    for s in range(steps):
        picks = [m[torch.randint(m.numel(), (int(n),), generator=g)] for m, n in zip(members, share[s])]
        out[s] = torch.cat(picks)
    return out


class BalancedBatches:
    """A method's own training batches (:meth:`fastaug.train.method.Method.train_batches`): the
    group-balanced batches of :func:`group_balanced_batches` as ``(x uint8, y, index)`` on the data's device.

    Args:
        data: the training GroupedImageData (on the training device); batch_size; seed: the run's seed.
    """

    def __init__(self, data, batch_size, seed):
        self.data, self.batch_size, self.seed = data, int(batch_size), seed
        self.ids = data.group_ids.cpu()

    def __len__(self):
        return balanced_steps(len(self.data), self.batch_size)

    def epoch(self, epoch, start=0):
        order = group_balanced_batches(self.ids, self.data.num_groups, self.batch_size, epoch, self.seed)
        dev = self.data.images.device
        for idx in order[start:]:
            idx = idx.to(dev)
            yield self.data.images.index_select(0, idx), self.data.labels.index_select(0, idx), idx
