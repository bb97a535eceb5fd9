"""Batches for training and evaluation: a seeded order per epoch, sharded across processes, resumable.

The order of epoch ``e`` is a pure function of ``(seed, e)``, so resuming needs no sampler state: a
run resumed at step ``s`` of epoch ``e`` recomputes the order and starts at batch ``s``. Under DDP
each rank takes every ``world``-th index of the (padded, as ``DistributedSampler`` does) order, so
the shards partition the data and every rank runs the same number of steps.

* :class:`TensorBatches`: an :class:`~fastaug.data.base.ImageData` held on the training device,
  batched by indexing (no per-image Python, no workers).
* :class:`FolderBatches`: a :class:`~fastaug.data.folder.FolderData` decoded in DataLoader workers;
  batches are moved to the device as uint8. An undecodable image stops the run with a sentence naming
  it, or, with the dataset's ``skip_unreadable``, is left out of its batch and added to ``unreadable``
  (its ``state_dict`` keeps that set across a resume).

Both yield ``(x, y)``: x (B, C, H, W) uint8 and y (B,) int64 on the device.
"""
import math
import sys

import torch

from .base import ImageData

__all__ = ["epoch_order", "TensorBatches", "FolderBatches", "make_batches"]

_EPOCH_STRIDE = 1_000_003  # a prime: (seed, epoch) pairs never collide for epochs < 10^6


def epoch_order(n, epoch, seed=0, rank=0, world=1, shuffle=True, pad=True):
    """This rank's indices for epoch ``epoch``, (ceil(n / world),) int64 (``pad``) or its exact share.

    With ``pad`` the order is extended by its own first indices to a multiple of ``world`` (as
    torch's ``DistributedSampler``), so every rank gets the same count; without, ranks get
    ``order[rank::world]`` (evaluation: nothing counted twice).
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank}")
    if shuffle:
        g = torch.Generator().manual_seed(int(seed) * _EPOCH_STRIDE + int(epoch))
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    if pad and world > 1 and n % world:
        total = math.ceil(n / world) * world
        order = torch.cat([order, order.repeat(math.ceil(total / max(n, 1)))[: total - n]])
    return order[rank::world]


class _Batches:
    def __init__(self, num_items, batch_size, seed, rank, world, shuffle, pad, order=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_items < 1:
            raise ValueError("the dataset is empty")
        if order is not None and world != 1:
            raise ValueError("order= is for one process (world 1): the loaders shard their own epoch_order")
        self.num_items, self.batch_size = num_items, int(batch_size)
        self.seed, self.rank, self.world, self.shuffle, self.pad = seed, rank, world, shuffle, pad
        self.order = order

    def indices(self, epoch):
        if self.order is not None:
            return self.order(epoch)
        return epoch_order(self.num_items, epoch, self.seed, self.rank, self.world, self.shuffle, self.pad)

    def __len__(self):
        """Steps per epoch (the same on every rank when padded)."""
        per_rank = math.ceil(self.num_items / self.world) if self.pad else len(self.indices(0))
        return math.ceil(per_rank / self.batch_size)

    def batch_indices(self, epoch, start=0):
        order = self.indices(epoch)
        return [order[i: i + self.batch_size] for i in range(start * self.batch_size, order.numel(), self.batch_size)]

    def close(self):
        """Release what the batches hold beyond their data (nothing here; see :meth:`FolderBatches.close`)."""


class TensorBatches(_Batches):
    """Batches of an in-memory dataset, gathered on its device by index."""

    def __init__(self, data: ImageData, batch_size, device, *, seed=0, rank=0, world=1, shuffle=True, pad=True,
                 order=None):
        super().__init__(len(data), batch_size, seed, rank, world, shuffle, pad, order)
        self.data = data.to(device)

    def epoch(self, epoch, start=0):
        """Iterate the batches of ``epoch`` from batch ``start`` on: (x uint8, y int64) on the device."""
        dev = self.data.images.device
        for idx in self.batch_indices(epoch, start):
            idx = idx.to(dev)
            yield self.data.images.index_select(0, idx), self.data.labels.index_select(0, idx)


class _EpochBatchSampler(torch.utils.data.Sampler):
    """The batches of one epoch, set before each pass (the sampler runs in the main process)."""

    def __init__(self):
        self.batches = []

    def __iter__(self):
        return iter([b.tolist() for b in self.batches])

    def __len__(self):
        return len(self.batches)


class FolderBatches(_Batches):
    """Batches of a lazily decoded folder dataset, decoded in ``workers`` DataLoader processes.

    One DataLoader with persistent workers serves every epoch: worker start-up is paid once.
    """

    def __init__(self, data, batch_size, device, *, seed=0, rank=0, world=1, shuffle=True, pad=True, workers=4,
                 order=None):
        super().__init__(len(data), batch_size, seed, rank, world, shuffle, pad, order)
        self.data, self.device, self.workers = data, torch.device(device), int(workers)
        self.sampler = _EpochBatchSampler()
        self.loader = None
        self.unreadable = set()  # files skipped with --skip-unreadable (each counted once)

    def epoch(self, epoch, start=0):
        self.sampler.batches = self.batch_indices(epoch, start)
        if self.loader is None:
            self.loader = torch.utils.data.DataLoader(
                self.data.dataset, batch_sampler=self.sampler, num_workers=self.workers,
                persistent_workers=self.workers > 0, pin_memory=self.device.type == "cuda")
        for x, y in self.loader:
            bad = y < 0  # samples the folder dataset could not decode (see fastaug.data.folder)
            if bad.any():
                x, y = self._drop_unreadable(x, y, bad)
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def close(self):
        """Stop the DataLoader workers now (a stage done with its batches calls it): a later stage's
        forked workers would otherwise inherit this loader, and its half-read epoch, from the main process.
        The next :meth:`epoch` starts new workers."""
        loader, self.loader = self.loader, None
        iterator = getattr(loader, "_iterator", None)  # the persistent workers' iterator, once started
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()

    def _drop_unreadable(self, x, y, bad):
        paths = [self.data.unreadable_path(label) for label in y[bad].tolist()]
        if not getattr(self.data, "skip_unreadable", False):
            raise ValueError(f"cannot decode image {paths[0]}: remove it, or pass --skip-unreadable to skip "
                             f"unreadable images")
        if bad.all():
            raise ValueError(f"no image of a batch could be decoded (e.g. {paths[0]}): is --data-dir an image folder?")
        for path in sorted(set(paths) - self.unreadable):  # said once per file, by the rank that met it
            print(f"skipping unreadable image {path}", file=sys.stderr, flush=True)
        self.unreadable.update(paths)
        return x[~bad], y[~bad]

    def state_dict(self):
        """The unreadable files skipped so far: a checkpoint part, so a resumed run goes on counting them."""
        return {"unreadable": sorted(self.unreadable)}

    def load_state_dict(self, state):
        self.unreadable = set(state["unreadable"])


def make_batches(data, batch_size, device, *, seed=0, rank=0, world=1, train=True, workers=4, order=None):
    """Training batches (shuffled, padded shards) or evaluation batches (in order, exact shards).

    ``order``: ``order(epoch) -> (len(data),)`` int64 indices, the epoch's order instead of
    :func:`epoch_order` (one process only: a loop that keeps its own seeded order, e.g. TANDA's stage 1);
    it must be a pure function of the epoch, so that a resumed loop recomputes it."""
    kw = dict(seed=seed, rank=rank, world=world, shuffle=train, pad=train, order=order)
    if isinstance(data, ImageData):
        return TensorBatches(data, batch_size, device, **kw)
    return FolderBatches(data, batch_size, device, workers=workers, **kw)
