"""Running sums of per-step metrics, kept on the device so that logging a step costs no sync.

Like timm's ``AverageMeter`` / torchvision references' ``MetricLogger``, but one object for all named
metrics, float64 sums (so that a resumed run sums exactly as an uninterrupted one), a state for
checkpoints and an all-reduce for DDP.
"""
import torch

from .. import distributed as dist

__all__ = ["Meters"]


class Meters:
    """Sums and a count of named scalars since the last :meth:`reset`.

    ``add(n=B, loss=losses.sum(), correct=...)`` adds each value to its sum and ``n`` to the count;
    :meth:`means` divides by the count (per-sample means when ``n`` is the batch size, per-step means
    with the default ``n=1``). Values may be Python numbers or 0-d tensors on any device; tensor sums
    stay on their device until read.
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self._sums, self.count = {}, 0

    def add(self, n=1, **values):
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                v = v.detach().to(torch.float64)
                self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
            else:
                self._sums[k] = self._sums.get(k, 0.0) + float(v)
        self.count += n

    def sums(self):
        """{name: float sum} (reads tensors: one sync)."""
        return {k: float(v) for k, v in self._sums.items()}

    def means(self):
        """{name: sum / count}."""
        return {k: v / max(self.count, 1) for k, v in self.sums().items()}

    def all_reduce(self):
        """Sums and count over every DDP rank (a new dict ``{name: sum}`` plus ``"count"``; self unchanged)."""
        names = sorted(self._sums)
        t = torch.tensor([float(self._sums[k]) for k in names] + [float(self.count)], dtype=torch.float64)
        t = dist.all_reduce_sum(t.to(dist.collective_device()))
        out = dict(zip(names, t[:-1].tolist()))
        out["count"] = t[-1].item()
        return out

    def state_dict(self):
        return {"sums": self.sums(), "count": self.count}

    def load_state_dict(self, state):
        self._sums, self.count = dict(state["sums"]), state["count"]
