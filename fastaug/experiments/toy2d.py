"""The paper's 2-D toy (ICLR section 5.1, Figure 3): learned translations that maximise the influence.

A two-class 2-D dataset (two interleaving half-moons with Gaussian noise), a 3-layer MLP classifier F,
and an augmentation model that learns one translation ``t_i = (dx, dy)`` per training point, bounded
by ``max_shift`` (``t_i = max_shift * tanh(u_i)``, ``u_i`` starting at 0 = the identity). The bound is
the first-order prediction's trust region: with 0.5 instead of 0.15 the translations saturate and,
with an unshifted validation set, retraining with them raised the validation loss (docs/influence_loop.md). The
validation set is drawn from the training distribution and moved by ``val_shift`` (0, 0: the same
distribution; (0, -0.5): the paper's second row, a validation set moved down).

Steps (the image loop's stages 1, 3, 4, 5 in miniature):

1. train F on the training points (full batch, Adam, L2 = the Hessian damping);
2. fit last-layer influence on F and cache ``s_val`` from the validation set;
3. learn the translations by minimising the mean ``I_aug(z_i, z~_i)`` through the frozen F
   (:func:`fastaug.train.influence_loop.objective.influence_objective`: the sign convention), by plain
   gradient descent on ``N * mean I_aug``, so each point moves in proportion to its own influence
   (Adam would move every point at the same rate);
4. retrain F from the same initialisation on the training points plus their augmentations and
   measure the validation loss again. As a control, F is also retrained with every translation
   turned to a random direction (same lengths): the learned directions must beat it.

Every random draw comes from a ``torch.Generator`` seeded by ``seed``.
"""
import dataclasses
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from ..influence import LastLayerInfluence
from ..train.influence_loop.objective import influence_objective
from ..train.loop import Loop, optimizer_step

__all__ = ["ToyConfig", "two_moons", "MLP", "train_classifier", "learn_translations", "toward_misclassified",
           "run_toy2d"]


@dataclasses.dataclass
class ToyConfig:
    """Options of :func:`run_toy2d` (the ``fastaug toy2d`` flags)."""

    val_shift: tuple = (0.0, 0.0)
    seed: int = 0
    n_train: int = 200
    n_val: int = 200
    noise: float = 0.2
    hidden: int = 32
    train_steps: int = 1500
    lr: float = 0.01
    damping: float = 0.01
    max_shift: float = 0.15
    aug_steps: int = 200
    aug_lr: float = 0.05
    checkpoint_every: int = 100  # steps between checkpoints when run in a folder


def two_moons(n, noise, generator):
    """``n`` points of two interleaving half-moons (the maths of ``sklearn.datasets.make_moons``, in
    torch so the toy needs no scikit-learn at run time): (n, 2) float64 points, (n,) int64 labels,
    class 0 the upper moon, class 1 the lower one, Gaussian noise of std ``noise``."""
    n0 = n // 2
    n1 = n - n0
    a0 = torch.rand(n0, generator=generator, dtype=torch.float64) * math.pi
    a1 = torch.rand(n1, generator=generator, dtype=torch.float64) * math.pi
    upper = torch.stack([torch.cos(a0), torch.sin(a0)], 1)
    lower = torch.stack([1 - torch.cos(a1), 0.5 - torch.sin(a1)], 1)
    x = torch.cat([upper, lower]) + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    y = torch.cat([torch.zeros(n0, dtype=torch.int64), torch.ones(n1, dtype=torch.int64)])
    return x, y


class MLP(nn.Module):
    """The toy's 3-layer classifier: 2 -> hidden -> hidden (tanh) -> 2 (``fc``, the last layer)."""

    def __init__(self, hidden=32):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.fc = nn.Linear(hidden, 2)

    def features(self, x):
        """x (N, 2) -> (N, hidden): the last layer's input."""
        return self.body(x)

    def forward(self, x):
        return self.fc(self.body(x))


def _subfolder(folder, name):
    return None if folder is None else os.path.join(folder, name)


def train_classifier(init_state, x, y, cfg, folder=None, name="toy classifier"):
    """A fresh MLP from ``init_state`` trained full-batch on (x, y): Adam, ``cfg.train_steps`` steps,
    L2 penalty ``damping/2 * ||Theta||^2`` on every parameter (so the last layer's damped Hessian is
    the Hessian of the objective actually minimised). On the loop primitive: with ``folder`` it
    checkpoints every ``cfg.checkpoint_every`` steps and continues from its checkpoint."""
    model = MLP(cfg.hidden).double()
    model.load_state_dict(init_state)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loop = Loop(folder, name=name, options=_options(cfg, x), allowed_changes=("checkpoint_every",),
                steps_per_epoch=cfg.train_steps,
                checkpoint_every=cfg.checkpoint_every, record_epochs=False, progress=False, log=lambda m: None,
                distributed=False)
    loop.register("model", model)
    loop.register("optimizer", opt)
    for _ in loop:
        penalty = sum(p.square().sum() for p in model.parameters())
        optimizer_step(F.cross_entropy(model(x), y) + 0.5 * cfg.damping * penalty, opt)
    return model.eval()


def _options(cfg, x):
    return {**dataclasses.asdict(cfg), "points": int(x.shape[0])}


def val_loss(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


class _Translations(nn.Module):
    """The free variables u (N, 2) of the translations ``t = max_shift * tanh(u)``."""

    def __init__(self, n):
        super().__init__()
        self.u = nn.Parameter(torch.zeros(n, 2, dtype=torch.float64))


def learn_translations(model, influence, x, y, cfg, folder=None):
    """Translations (N, 2) minimising the mean I_aug of ``(x_i + t_i, y_i)`` through the frozen model,
    on the loop primitive (``folder``: checkpoints, as :func:`train_classifier`).

    Returns ``(t, history)`` with ``history`` the mean I_aug per step (it falls: the augmented points
    are predicted to lower the validation loss more and more)."""
    for p in model.parameters():
        p.requires_grad_(False)
    free = _Translations(x.shape[0])
    opt = torch.optim.SGD(free.parameters(), lr=cfg.aug_lr)
    loop = Loop(folder, name="toy translations", options=_options(cfg, x), allowed_changes=("checkpoint_every",),
                steps_per_epoch=cfg.aug_steps, checkpoint_every=cfg.checkpoint_every, record_epochs=False,
                progress=False, log=lambda m: None, distributed=False)
    loop.register("translations", free)
    loop.register("optimizer", opt)
    for _ in loop:
        loss = influence_objective(influence, x, x + cfg.max_shift * torch.tanh(free.u), y)
        optimizer_step(loss * x.shape[0], opt)
        loop.history.append({"step": loop.global_step + 1, "mean_influence": loss.item()})
    with torch.no_grad():
        t = cfg.max_shift * torch.tanh(free.u)
        final = influence_objective(influence, x, x + t, y).item()
    return t.detach(), [r["mean_influence"] for r in loop.history] + [final]


def toward_misclassified(x, y, t, xv, yv, wrong):
    """Length-weighted mean cosine between each translation ``t_i`` and the direction from ``x_i`` to the
    nearest misclassified validation point of its class: > 0 when the augmented points move toward
    the misclassified validation points (the paper's first row), 0 for random directions, NaN when no
    validation point is misclassified."""
    num = den = 0.0
    length = t.norm(dim=1)
    for c in y.unique().tolist():
        targets = xv[wrong & (yv == c)]
        rows = (y == c) & (length > 0)
        if targets.numel() == 0 or not bool(rows.any()):
            continue
        to = targets[torch.cdist(x[rows], targets).argmin(1)] - x[rows]  # (n, 2) to the nearest target
        cos = (t[rows] * to).sum(1) / (length[rows] * to.norm(dim=1)).clamp_min(1e-12)
        num += float((cos * length[rows]).sum())
        den += float(length[rows].sum())
    return num / den if den > 0 else float("nan")


def run_toy2d(cfg=None, folder=None, **overrides):
    """Run the toy; returns ``(summary, arrays)``: the JSON-able summary (``mean_translation``,
    validation losses before/after retraining, the control, the mean influence before/after learning)
    and the tensors the figure draws (points, translations, the two classifiers).

    With ``folder`` its four loops checkpoint in sub-folders of it and a rerun continues them."""
    cfg = dataclasses.replace(cfg or ToyConfig(), **overrides)
    g = torch.Generator().manual_seed(cfg.seed)
    x, y = two_moons(cfg.n_train, cfg.noise, g)
    xv, yv = two_moons(cfg.n_val, cfg.noise, g)
    xv = xv + torch.tensor(cfg.val_shift, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):  # the MLP's initialisation, seeded without touching the global stream
        torch.manual_seed(cfg.seed)
        init_state = MLP(cfg.hidden).double().state_dict()

    before = train_classifier(init_state, x, y, cfg, _subfolder(folder, "classifier_before"), "toy classifier before")
    influence = LastLayerInfluence(before, damping=cfg.damping, progress=False).fit([(x, y)])
    influence.s_val(h=before.features(xv).detach(), logits=before(xv).detach(), y=yv)
    t, history = learn_translations(before, influence, x, y, cfg, _subfolder(folder, "translations"))
    x_aug = x + t
    after = train_classifier(init_state, torch.cat([x, x_aug]), torch.cat([y, y]), cfg,
                             _subfolder(folder, "classifier_after"), "toy classifier after")

    # Control: the same translation lengths in random directions.
    angle = torch.rand(x.shape[0], generator=g, dtype=torch.float64) * 2 * math.pi
    t_rand = t.norm(dim=1, keepdim=True) * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    control = train_classifier(init_state, torch.cat([x, x + t_rand]), torch.cat([y, y]), cfg,
                               _subfolder(folder, "classifier_control"), "toy classifier control")

    with torch.no_grad():
        wrong = before(xv).argmax(1) != yv
    summary = {
        "val_shift": list(cfg.val_shift), "seed": cfg.seed, "n_train": cfg.n_train, "n_val": cfg.n_val,
        "mean_translation": t.mean(0).tolist(),
        "mean_translation_length": t.norm(dim=1).mean().item(),
        "val_loss_before": val_loss(before, xv, yv), "val_loss_after": val_loss(after, xv, yv),
        "val_loss_random_directions": val_loss(control, xv, yv),
        "val_acc_before": (~wrong).double().mean().item(),
        "val_acc_after": (after(xv).argmax(1) == yv).double().mean().item(),
        "mean_influence_start": history[0], "mean_influence_end": history[-1],
        "misclassified_val_before": int(wrong.sum()),
        "toward_misclassified_cosine": toward_misclassified(x, y, t, xv, yv, wrong),
        "config": dataclasses.asdict(cfg),
    }
    arrays = dict(x=x, y=y, xv=xv, yv=yv, x_aug=x_aug, before=before, after=after, history=history)
    return summary, arrays
