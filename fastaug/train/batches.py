"""The engine's training batches with each batch's dataset indices, for methods that look samples up."""
__all__ = ["IndexedBatches", "endless"]


class IndexedBatches:
    """``(x, y, index)`` batches of a :func:`fastaug.data.make_batches` object.

    ``index`` (B,) int64 on the batch's device holds the positions in the trainer's ``train_data`` of
    the batch's images (a method uses them to look up per-sample labels or precomputed tensors). The
    order is the wrapped object's: a function of (seed, epoch), resumable at any step.
    """

    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def epoch(self, epoch, start=0):
        """Batches of ``epoch`` from step ``start``: x (B, C, H, W) uint8, y (B,) int64, index (B,) int64."""
        order = self.batches.batch_indices(epoch, start)
        for (x, y), index in zip(self.batches.epoch(epoch, start), order):
            yield x, y, index.to(x.device)


def endless(batches, start=0):
    """Batches of ``batches`` (a :func:`fastaug.data.make_batches` object) one after another across
    epochs, from batch number ``start`` on: batch ``k`` is batch ``k % len`` of epoch ``k // len``.

    A loop that takes a fixed number of batches per step resumes its stream with
    ``endless(batches, step * per_step)``: the position is the loop's step, no state of its own."""
    epoch, step = divmod(int(start), len(batches))
    while True:
        yield from batches.epoch(epoch, step)
        epoch, step = epoch + 1, 0
