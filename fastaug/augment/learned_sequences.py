"""What ``fastaug train --augment tanda`` learned, as a loadable augmentation: TANDA's sequence generator.

:class:`SequenceAugment` holds the trained generator (a :class:`~fastaug.augment.controller.PolicyController`
with one sub-policy of T ops) and applies what TANDA's stage 2 applies -- stage 2 augments its batches
through this module (``Tanda.augment`` in :mod:`fastaug.train.tanda.method`), and a run leaves it in
``augmentation.pt``: ``n = int(N * p)`` images of the batch, chosen by a random permutation, each get a
sequence of T (op, level) pairs drawn from the generator, applied in one chained
:func:`fastaug.apply_ops` call (:mod:`fastaug.augment.sequences`, as stage 1 applies them).

``p`` is TANDA's ``p_transform``, a share *of the batch* (a saved module records the run's last value;
one built by hand defaults to 1). An image given alone -- (C, H, W) or a PIL image, a transform inside a
``v2.Compose`` -- is not a batch: ``int(1 * p)`` would be 0 for any p < 1 and the sequences would never
run, so a single image always gets a sequence (p = 1 on single images); wrap the module in
``v2.RandomApply([aug], p=aug.p)`` to transform each image with the run's probability instead. A batch,
(N, C, H, W) with N = 1 included, keeps the share.
"""
import dataclasses

import torch

from ..ops.policy import apply_ops
from .controller import PolicyController
from .learned_module import LearnedAugmentation
from .learned_policies import top_subpolicies
from .op_table import OP_NAMES
from .params import PolicyParams
from .policy_batch import action_frequencies
from .sequences import sequence_params

__all__ = ["SequenceAugment", "SequenceParams"]


@dataclasses.dataclass
class SequenceParams:
    """The draws of TANDA's sequences for an N-image batch.

    Attributes:
        index: (n,) int64 the images that get a sequence (n = int(N * p); n = 1 for an image given alone).
        ops: :class:`~fastaug.augment.PolicyParams` of their sequences, each field (n, T) (centres (n, T, 2));
            partners index into the n chosen images.
    """

    index: torch.Tensor
    ops: PolicyParams

    def to(self, device):
        return SequenceParams(self.index.to(device), self.ops.to(device))

    def check(self, N):
        idx = self.index
        if not isinstance(idx, torch.Tensor) or idx.dim() != 1 or (idx.numel() and not 0 <= int(idx.min())
                                                                    <= int(idx.max()) < N):
            raise ValueError(f"params.learned.index must be a 1-d tensor of image indices in [0, {N})")
        self.ops.check(idx.numel())
        return self


class SequenceAugment(LearnedAugmentation):
    """TANDA's trained sequence generator as an augmentation (module docstring).

    Args:
        generator_net: the :class:`~fastaug.augment.controller.PolicyController` (Q = 1, L = T) TANDA trained.
        channels, image_size, standard, provenance: see :class:`~fastaug.augment.learned_module.LearnedAugmentation`.
        fill: value (0-255 scale) of the pixels the geometric ops expose (the run's ``--fill``).
        p: share of each batch that gets a sequence, in [0, 1] (TANDA's p_transform); an image given
            alone (C, H, W) always gets one (module docstring).
    """

    name = "tanda"

    def __init__(self, generator_net, channels, image_size, standard=None, fill=0, p=1.0, provenance=None):
        super().__init__(channels, image_size, standard, provenance)
        if not isinstance(generator_net, PolicyController) or generator_net.num_subpolicies != 1:
            raise TypeError("generator_net must be a fastaug.augment.controller.PolicyController with one sub-policy "
                            "(TANDA's sequence generator)")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.generator_net = generator_net  # held, not copied
        self.fill, self.p = int(fill), float(p)

    @property
    def length(self):
        return self.generator_net.ops_per_subpolicy

    def sample_learned(self, N, H, W, generator):
        return self._draw(N, int(N * self.p), H, W, generator)  # as TANDA: int(batch_size * p_transform) images

    def sample_learned_one(self, H, W, generator):
        """An image given alone gets a sequence (p = 1 on single images: ``int(1 * p)`` would be 0)."""
        return self._draw(1, 1, H, W, generator)

    def _draw(self, N, n, H, W, generator):
        """Sequences for ``n`` of N images, picked by a permutation (the draws in TANDA's order)."""
        if n == 0:  # nothing drawn, as TANDA
            z = torch.zeros(0, self.length, dtype=torch.int64)
            empty = PolicyParams(z, z.float(), z.float(), z, torch.zeros(0, self.length, 2, dtype=torch.int64))
            return SequenceParams(torch.zeros(0, dtype=torch.int64), empty)
        index = torch.randperm(N, generator=generator)[:n]
        with torch.no_grad():
            s = self.generator_net.sample(n, generator)
        return SequenceParams(index, sequence_params(s.ops[:, 0], s.levels[:, 0], self.generator_net.num_bins, H, W,
                                                     generator))

    def apply_learned(self, x, params, labels):
        if params.index.numel() == 0:
            return x, params
        idx = params.index.to(x.device)
        x = x.clone()
        x[idx] = apply_ops(x[idx], fill=self.fill, **params.ops.to(x.device).kwargs())
        return x, params

    def options(self):
        g = self.generator_net
        return {"fill": self.fill, "p": self.p, "length": g.ops_per_subpolicy, "num_ops": g.num_ops,
                "num_bins": g.num_bins, "hidden_size": g.lstm.hidden_size, "embedding_size": g.embedding.embedding_dim}

    @classmethod
    def from_parts(cls, channels, image_size, standard, provenance, options, state):
        o = dict(options)
        fill, p, T = int(o.pop("fill")), float(o.pop("p")), int(o.pop("length"))
        net = PolicyController(1, T, **o)
        module = cls(net, channels, image_size, standard, fill, p, provenance)
        module.load_state_dict(state)
        return module

    @torch.no_grad()
    def describe(self, samples=4096, seed=0, k=8):
        g = self.generator_net
        s = g.sample(samples, torch.Generator().manual_seed(seed))
        ops, levels = s.ops[:, 0].cpu(), s.levels[:, 0].cpu()
        subs, counts = top_subpolicies(ops, levels, k, g.num_bins)
        op_f, level_f = action_frequencies(ops, levels, g.num_ops, g.num_bins)
        lines = [f"TANDA sequence generator: sequences of {g.ops_per_subpolicy} ops ({g.num_ops} ops x {g.num_bins} "
                 f"levels), applied to {self.p:.0%} of each batch (to every image given alone)",
                 f"  most frequent of {samples} sequences drawn with seed {seed}:"]
        for sub, c in zip(subs, counts.tolist()):
            lines.append(f"    {c / samples:6.2%}  " + " -> ".join(o if l is None else f"{o} {l}" for o, _, l in sub))
        lines.append("  op histogram: " + ", ".join(f"{OP_NAMES[i]} {f / op_f.sum():.1%}" for i, f in
                                                    sorted(enumerate(op_f.tolist()), key=lambda t: -t[1])))
        lines.append(f"  magnitude histogram (levels 0-{g.num_bins - 1}): "
                     + " ".join(f"{f / level_f.sum():.0%}" for f in level_f.tolist()))
        return lines

    def extra_repr(self):
        return f"{super().extra_repr()}, length={self.length}, p={self.p:g}, fill={self.fill}"
