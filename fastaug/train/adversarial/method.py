"""``--augment adversarial`` / ``fixed`` / ``random``: Adversarial AutoAugment and its ablation (the paper's Table 4).

Three small classes on one shared part (the paper's section 4.4), one per ``--augment`` name:

* :class:`AdversarialAutoAugment` (``adversarial``): M policies sampled by the
  :class:`~fastaug.augment.controller.PolicyController`, updated by REINFORCE to raise the target
  network's training loss (eq. 9);
* :class:`RandomPolicies` (``random``): M uniformly random policies, resampled at the same cadence
  as the controller's;
* :class:`FixedInstances` (``fixed``): M instances of the standard augmentation only (no policy).

Each step (eq. 4): the N-image batch is replicated M times (policy-major layout, row m·N + n), then
standard crop/flip per copy, the policy (copy m draws one random sub-policy of policy m per image, in
one :func:`fastaug.apply_ops` call), then Cutout (the paper's order, section 4.2). The batch is tagged
with ``group`` = m, so ``after_step`` turns the engine's per-sample losses into the per-policy losses
L_m (eq. 5) by a scatter-add over the tags. The target network sees the M·N batch at the run's LR
(the paper: "without changing the learning rate").

Cadence (``--policy-update``): ``epoch`` (the paper's Algorithm 1: new policies at the start of every
epoch, L_m averaged over the epoch, one controller update at its end) or ``step`` (new policies and
one update every ``--policy-update-every k`` steps, L_m an exponential moving average with decay
``--policy-ema-decay`` over the window, started at its first step).

Distributed (torchrun): rank 0 samples the policies and broadcasts them; the window's L_m are
all-reduced (mean over ranks) before the update, and every rank applies the same update to its own
copy of the controller (identical initialisation, identical gradients), so the controllers never diverge.

State (in every checkpoint): the policies' own CPU generator, the current policies, the L_m window and
the epoch's op/magnitude counts, plus (adversarial) the controller's parameters and its Adam state.

What a run leaves (:meth:`~fastaug.train.method.Method.learned_augmentation`, the engine's
``augmentation.pt``): per image what a step does per copy of the batch, between the run's crop/flip
and Cutout -- :class:`~fastaug.augment.ControllerAugment` of the final controller (with its frozen top-K
policy), :class:`~fastaug.augment.RandomPolicyAugment` (uniform ops and levels, the marginal of a
uniformly random policy's uniformly chosen sub-policy) or :class:`~fastaug.augment.FixedAugment` (the
standard recipe alone). The steps themselves keep their M policies shared by the N images of a copy
(eq. 4), which a per-image module does not express, so they do not call these modules; the per-image
application is checked against :func:`~fastaug.augment.policy_batch.apply_policy_batch` with one image
per policy (``tests/augment/test_learned_kinds.py``).
"""
import dataclasses

import torch

from ...augment.controller import PolicyController
from ...augment.learned_policies import ControllerAugment, FixedAugment, RandomPolicyAugment
from ...augment.op_table import AUTOAUGMENT_BINS, NUM_OPS, OP_NAMES
from ...augment.policy_batch import ActionCounter, apply_policy_batch, policy_groups, random_policies, replicate
from ...augment.reinforce import LossWindow, adversarial_controller_loss, normalise_losses
from .. import distributed as dist
from ..loop import optimizer_step
from ..method import Method, TrainBatch, standard_augment
from ..options import Options, above, at_least, option, within
from ..rng import derive_seed
from .figure import policy_figure

__all__ = ["AdversarialAutoAugment", "RandomPolicies", "FixedInstances", "AdversarialOptions", "MODES"]

MODES = ("adversarial", "random", "fixed")


@dataclasses.dataclass
class AdversarialOptions(Options):
    instances: int = option(8, "M: augmented instances of every image per step (the paper's 8)",
                            flags=("--instances", "-M"), check=at_least(1))
    policy_update: str = option("epoch", "new policies + one controller update per epoch (the paper) or every "
                                "--policy-update-every steps", choices=("epoch", "step"))
    policy_update_every: int = option(1, "steps per controller update with --policy-update step", metavar="K",
                                      check=at_least(1))
    policy_ema_decay: float = option(0.9, "EMA decay of L_m within a window with --policy-update step",
                                     check=within(0, 1, open_hi=True))
    controller_lr: float = option(3.5e-4, "controller Adam LR", check=above(0))
    entropy_weight: float = option(1e-5, "controller entropy penalty", check=at_least(0))
    subpolicies: int = option(5, "Q: sub-policies per policy", check=at_least(1))
    subpolicy_ops: int = option(2, "L: ops per sub-policy", check=at_least(1))


class _Instances(Method):
    """The shared part: M augmented instances of every image per step (eq. 4), policy-major, each tagged
    with its instance m in ``batch.group``; between crop/flip and Cutout, the policies of
    :meth:`policy_fn` (none here). Subclasses say where policies come from and what is learned."""

    Options = AdversarialOptions

    def __init__(self, options, trainer):
        super().__init__(options, trainer)
        self.M = options.instances
        self.Q, self.L, self.num_bins = options.subpolicies, options.subpolicy_ops, AUTOAUGMENT_BINS
        self.standard = standard_augment(trainer.args, trainer.info["hflip"])
        self.fill = int(trainer.args.fill)
        self.device = trainer.device
        self._rank, self._world = trainer.dist.rank, trainer.dist.world

    def policy_fn(self):
        """``(x, rng) -> x`` applied to the M·N replicated batch between crop/flip and Cutout, or None."""
        return None

    def augment(self, x, y, trainer):
        """x (N, C, H, W) uint8 -> TrainBatch of M·N images, policy-major, ``group`` = instance index."""
        N, M = x.shape[0], self.M
        xr = self.standard.recipe(replicate(x, M), trainer.rng, self.policy_fn())
        return TrainBatch(xr, replicate(y, M), group=policy_groups(M, N, x.device), source_images=N)

    def load_state_dict(self, state):
        pass  # no state (a checkpoint of the one-class version holds its unused controller: ignored)

    def _shape(self, trainer):
        """(channels, (H, W)) of the run's images, what a learned augmentation records."""
        return trainer.info["channels"], trainer.info["image_size"]


class FixedInstances(_Instances):
    """``--augment fixed``: M instances of the standard augmentation only (the paper's ablation)."""

    name = "fixed"

    def learned_augmentation(self, trainer):
        """Nothing was learned: :class:`~fastaug.augment.FixedAugment`, the run's standard recipe alone."""
        return FixedAugment(*self._shape(trainer), self.standard)


class _PolicyInstances(_Instances):
    """M policies for a window of steps (an epoch, or ``--policy-update-every`` steps), their per-policy
    losses L_m collected over the window, then :meth:`learn` and new policies (:meth:`draw`).

    Policies are drawn on rank 0 and broadcast; the window's L_m are all-reduced (mean over ranks)."""

    def __init__(self, options, trainer):
        super().__init__(options, trainer)
        self.per_epoch = options.policy_update == "epoch"
        self.every = options.policy_update_every
        # the policies' draws use their own seeded stream (the same on every rank)
        self.generator = torch.Generator().manual_seed(derive_seed(trainer.args.seed, "controller"))
        self.window = LossWindow(self.M, "mean" if self.per_epoch else "ema", options.policy_ema_decay)
        self.ops = self.levels = None  # current policies (M, Q, L); None: sample before the next step
        self.last_losses = None  # the last window's L_m (M,), for the metrics
        self.actions = ActionCounter(NUM_OPS, self.num_bins)  # the epoch's sampled ops/levels (Figure 6)

    def draw(self):
        """(ops, levels) of M new policies, each (M, Q, L) int64 on the CPU (called on rank 0)."""
        raise NotImplementedError

    def learn(self, losses):
        """End of a window: learn from its per-policy losses (M,) (all ranks)."""

    def _sample(self):
        shape = (self.M, self.Q, self.L)
        ops, levels = torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, dtype=torch.int64)
        if self._rank == 0:
            ops, levels = self.draw()
        self.ops, self.levels = dist.broadcast_tensor(ops), dist.broadcast_tensor(levels)

    def _update(self):
        if self.window.steps == 0:
            return
        losses = dist.all_reduce_sum(self.window.value().clone()) / self._world
        self.last_losses = losses
        self.learn(losses)
        self.window.reset()
        self.ops = self.levels = None

    def policy_fn(self):
        if self.ops is None:
            self._sample()  # from the policies' own generator, not the recipe's
        return lambda xr, g: apply_policy_batch(xr, self.ops, self.levels, self.num_bins, g, fill=self.fill)

    def after_step(self, batch, losses, trainer):
        self.window.add(per_group_means(losses, batch.group, self.M))
        self.actions.add(self.ops, self.levels)
        if not self.per_epoch and self.window.steps >= self.every:
            self._update()

    def epoch_end(self, epoch, trainer):
        if self.per_epoch:
            self._update()
        extra = self.actions.frequencies()
        self.actions.reset()
        if self.last_losses is not None:
            extra["policy_losses"] = self.last_losses.tolist()
        return extra

    def finish(self, trainer):
        if trainer.is_main and trainer.history:
            policy_figure(trainer.history, f"{trainer.output_dir}/policy.png", OP_NAMES,
                          title=f"{trainer.args.dataset} / {trainer.args.model} / --augment {self.name} "
                                f"(M={self.M})")

    def state_dict(self):
        return {"generator": self.generator.get_state(), "window": self.window.state_dict(),
                "ops": self.ops, "levels": self.levels, "last_losses": self.last_losses,
                **self.actions.state_dict()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])
        self.window.load_state_dict(state["window"])
        self.ops, self.levels, self.last_losses = state["ops"], state["levels"], state["last_losses"]
        self.actions.load_state_dict(state)


class RandomPolicies(_PolicyInstances):
    """``--augment random``: M uniformly random policies, resampled at the controller's cadence."""

    name = "random"

    def draw(self):
        return random_policies(self.M, self.Q, self.L, NUM_OPS, self.num_bins, self.generator)

    def learned_augmentation(self, trainer):
        """:class:`~fastaug.augment.RandomPolicyAugment`: L uniformly random ops and levels per image."""
        return RandomPolicyAugment(*self._shape(trainer), self.standard, self.fill, ops_per_subpolicy=self.L,
                                   num_ops=NUM_OPS, num_bins=self.num_bins)


class AdversarialAutoAugment(_PolicyInstances):
    """``--augment adversarial``: M policies from the LSTM controller, which REINFORCE moves to raise
    the target network's training loss (eq. 9) at the end of every window."""

    name = "adversarial"

    def __init__(self, options, trainer):
        super().__init__(options, trainer)
        with torch.random.fork_rng(devices=[]):  # a seeded initialisation, the same on every rank
            torch.manual_seed(derive_seed(trainer.args.seed, "controller-init"))
            self.controller = PolicyController(self.Q, self.L, NUM_OPS, self.num_bins).to(self.device)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=options.controller_lr)

    def draw(self):
        with torch.no_grad():
            s = self.controller.sample(self.M, self.generator)
        return s.ops.cpu(), s.levels.cpu()

    def learned_augmentation(self, trainer):
        """:class:`~fastaug.augment.ControllerAugment` of the final controller (held, not copied)."""
        return ControllerAugment(self.controller, *self._shape(trainer), self.standard, self.fill)

    def learn(self, losses):
        s = self.controller.evaluate(self.ops.to(self.device), self.levels.to(self.device))
        loss = adversarial_controller_loss(normalise_losses(losses).to(self.device), s.log_prob, s.entropy,
                                           self.options.entropy_weight)
        optimizer_step(loss, self.optimizer)

    def state_dict(self):
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                **super().state_dict()}

    def load_state_dict(self, state):
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        super().load_state_dict(state)


def per_group_means(losses, group, M):
    """losses (B,) and group (B,) in [0, M) -> (M,) float64 mean loss of each group (0 where empty)."""
    losses = losses.detach().to(torch.float64)
    sums = torch.zeros(M, dtype=torch.float64, device=losses.device).index_add_(0, group, losses)
    counts = torch.bincount(group, minlength=M).to(sums)
    return (sums / counts.clamp(min=1)).cpu()
