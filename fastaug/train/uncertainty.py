"""``--augment uncertainty``: uncertainty-based sampling of augmentations (Wu et al. 2020; blog part III).

Per step, for a batch of N images:

1. make K candidates of every image (``--candidates``, default 4) in one batched pass: the
   standard crop/flip, then a random composition of ``--candidate-ops`` (2) ops drawn uniformly
   from the 16-op space with magnitudes uniform in [0, 1], each op applied with probability
   ``--candidate-op-prob`` (0.5), then Cutout -- all K*N images in one :func:`fastaug.apply_ops` call;
2. one forward pass of the current model over the K*N candidates, without gradients and in eval
   mode, so BatchNorm statistics are not touched (the authors' code, ``dauphin``, also switches the
   model to eval for this pass);
3. keep ``--keep`` candidates per image by their loss: ``--select proportional`` (default) samples
   them with replacement with probability proportional to the loss, as the authors' code does
   (uniformly when every loss is 0); ``--select topk`` keeps the highest-loss ones, as the paper
   describes. The model then trains on the keep*N selected images.

Choices where the paper is silent, taken from the authors' code: every op of a candidate is applied
with a probability drawn uniformly in [0, 1] there, i.e. with probability 1/2 overall (our default);
the selection pass runs in eval mode. Candidates are laid out image-major: candidate k of image i
is row ``i * K + k``.
"""
import dataclasses

import torch
import torch.nn.functional as F

from ..augment.op_table import SEARCH_SPACE
from ..augment.params import IDENTITY, PolicyParams, sample_extras
from ..ops.policy import apply_ops
from .method import Method, TrainBatch, standard_augment
from .options import Options, at_least, option, within

__all__ = ["UncertaintySampling", "UncertaintyOptions", "sample_candidate_params", "select_candidates",
           "candidate_losses"]


@dataclasses.dataclass
class UncertaintyOptions(Options):
    candidates: int = option(4, "K candidates per image", check=at_least(1))
    select: str = option("proportional", "keep candidates by loss-proportional sampling (authors' code) or "
                         "top-k (paper)", choices=("proportional", "topk"))
    keep: int = option(1, "candidates kept per image, at most --candidates", check=at_least(1))
    candidate_ops: int = option(2, "ops composed per candidate", check=at_least(1))
    candidate_op_prob: float = option(0.5, "probability that each op of a candidate is applied (the authors' "
                                      "code)", check=within(0, 1))

    def extra_checks(self):
        return [(self.keep <= self.candidates,
                 f"--keep must be at most --candidates ({self.candidates}), got {self.keep}")]


def sample_candidate_params(n, num_ops, H, W, op_prob=0.5, generator=None):
    """Random compositions for ``n`` images: ops uniform over the 16-op space, magnitudes U[0, 1],
    each op kept with probability ``op_prob`` (else identity). PolicyParams with (n, num_ops) fields."""
    space = torch.tensor(SEARCH_SPACE, dtype=torch.int64)
    op = space[torch.randint(0, len(space), (n, num_ops), generator=generator)]
    magnitude = torch.rand(n, num_ops, generator=generator)
    keep = torch.rand(n, num_ops, generator=generator) < op_prob
    op = torch.where(keep, op, torch.full_like(op, IDENTITY))
    return PolicyParams(op, magnitude, *sample_extras(n, num_ops, H, W, generator))


@torch.no_grad()
def candidate_losses(model, x, y, autocast=None):
    """Per-candidate cross-entropy (K*N,) of ``model`` in eval mode, without gradients; BatchNorm
    running statistics are left exactly as they were and the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        if autocast is None:
            logits = model(x)
        else:
            with autocast:
                logits = model(x)
    finally:
        model.train(was_training)
    return F.cross_entropy(logits.float(), y, reduction="none")


def select_candidates(losses, keep, mode="proportional", generator=None):
    """Which candidates to keep: (N, keep) int64 indices in [0, K) from losses (N, K).

    ``proportional``: ``keep`` draws with replacement, P(k) = loss_k / sum(loss) (uniform when the sum
    is 0): draw u ~ U[0, 1) per pick from ``generator`` and take the first k whose cumulative loss
    exceeds u * sum (float64, on the CPU). ``topk``: the ``keep`` largest losses, ties to the lower k.
    """
    N, K = losses.shape
    if not 1 <= keep <= K or (mode == "topk" and keep > K):
        raise ValueError(f"keep must be in [1, {K}] (the number of candidates), got {keep}")
    w = losses.detach().to("cpu", torch.float64).clamp_min(0)
    if mode == "topk":
        return torch.sort(w, dim=1, descending=True, stable=True).indices[:, :keep]
    if mode != "proportional":
        raise ValueError(f"select must be 'proportional' or 'topk', got {mode!r}")
    u = torch.rand(N, keep, generator=generator, dtype=torch.float64)
    w = torch.where(w.sum(1, keepdim=True) > 0, w, torch.ones_like(w))  # all-zero row -> uniform
    cdf = w.cumsum(1)
    return torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_max(K - 1)


class UncertaintySampling(Method):
    """K random candidates per image, keep by loss (see the module docstring)."""

    name = "uncertainty"

    Options = UncertaintyOptions

    def __init__(self, options, trainer):
        super().__init__(options, trainer)
        self.fill = trainer.args.fill
        self.standard = standard_augment(trainer.args, trainer.info["hflip"])
        self.sums = {"selected": 0.0, "candidates": 0.0, "images": 0}

    def augment(self, x, y, trainer):
        a, g = self.options, trainer.rng
        N, _, H, W = x.shape
        K = a.candidates

        def candidate_ops(xk, g):  # the policy slot: a random composition per candidate
            prm = sample_candidate_params(N * K, a.candidate_ops, H, W, a.candidate_op_prob, g).to(x.device)
            return apply_ops(xk, fill=self.fill, **prm.kwargs())

        xk = self.standard.recipe(x.repeat_interleave(K, 0), g, candidate_ops)
        yk = y.repeat_interleave(K)
        losses = candidate_losses(trainer.module, xk, yk, trainer.autocast()).view(N, K)
        pick = select_candidates(losses, a.keep, a.select, g).to(x.device)  # (N, keep)
        rows = (torch.arange(N, device=x.device)[:, None] * K + pick).reshape(-1)
        self.sums["selected"] += losses.gather(1, pick).sum().item()
        self.sums["candidates"] += losses.mean(1).sum().item()
        self.sums["images"] += N
        return TrainBatch(xk[rows], yk[rows], source_images=N)

    def epoch_end(self, epoch, trainer):
        n = max(self.sums["images"], 1)
        out = {"selected_loss": self.sums["selected"] / (n * self.options.keep),
               "candidate_loss": self.sums["candidates"] / n}
        self.sums = {"selected": 0.0, "candidates": 0.0, "images": 0}
        return out

    def state_dict(self):
        return {"sums": dict(self.sums)}

    def load_state_dict(self, state):
        self.sums = dict(state["sums"])
