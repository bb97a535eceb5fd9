"""``--augment adversarial`` / ``fixed`` / ``random``: Adversarial AutoAugment and its ablation (seed Table 4).

One code path for the three (the seed's section 4.4):

* ``adversarial``: M policies sampled by the :class:`~fastaug.augment.controller.PolicyController`,
  updated by REINFORCE to raise the target network's training loss (eq. 9);
* ``random``: M uniformly random policies, resampled at the same cadence as the controller's;
* ``fixed``: M instances of the standard augmentation only (no policy).

Each step (eq. 4): the N-image batch is replicated M times (policy-major layout, row m·N + n), then
standard crop/flip per copy, the policy (copy m draws one random sub-policy of policy m per image, in
one :func:`fastaug.apply_ops` call), then Cutout (the seed's order, section 4.2). The batch is tagged
with ``group`` = m, so ``after_step`` turns the engine's per-sample losses into the per-policy losses
L_m (eq. 5) by a scatter-add over the tags. The target network sees the M·N batch at the run's LR
(the seed: "without changing the learning rate").

Cadence (``--policy-update``): ``epoch`` (the seed's Algorithm 1: new policies at the start of every
epoch, L_m averaged over the epoch, one controller update at its end) or ``step`` (new policies and
one update every ``--policy-update-every k`` steps, L_m an exponential moving average with decay
``--policy-ema-decay`` over the window, started at its first step).

Distributed (torchrun): rank 0 samples the policies and broadcasts them; the window's L_m are
all-reduced (mean over ranks) before the update, and every rank applies the same update to its own
copy of the controller (identical initialisation, identical gradients), so the controllers never diverge.

State (in every checkpoint): controller parameters, its Adam state, the controller's own CPU
generator, the current policies, the L_m window and the epoch's op/magnitude counts.
"""
import torch

from ...augment.controller import PolicyController
from ...augment.op_table import AUTOAUGMENT_BINS, NUM_OPS, OP_NAMES
from ...augment.policy_batch import ActionCounter, apply_policy_batch, policy_groups, random_policies, replicate
from ...augment.reinforce import LossWindow, adversarial_controller_loss, normalise_losses
from .. import distributed as dist
from ..method import Method, TrainBatch, standard_pipeline
from ..rng import derive_seed
from .figure import policy_figure

__all__ = ["AdversarialAutoAugment", "MODES"]

MODES = ("adversarial", "random", "fixed")


class AdversarialAutoAugment(Method):
    """Adversarial AutoAugment (``adversarial``) and the seed's ``fixed`` / ``random`` ablations."""

    name = "adversarial"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--instances", "-M", dest="instances", type=int, default=8,
                            help="M: augmented instances of every image per step (8, the seed)")
        parser.add_argument("--policy-update", default="epoch", choices=("epoch", "step"),
                            help="new policies + one controller update per epoch (the seed) or every "
                                 "--policy-update-every steps (default: epoch)")
        parser.add_argument("--policy-update-every", type=int, default=1, metavar="K",
                            help="steps per controller update with --policy-update step (1)")
        parser.add_argument("--policy-ema-decay", type=float, default=0.9,
                            help="EMA decay of L_m within a window with --policy-update step (0.9)")
        parser.add_argument("--controller-lr", type=float, default=3.5e-4, help="controller Adam LR (3.5e-4)")
        parser.add_argument("--entropy-weight", type=float, default=1e-5, help="controller entropy penalty (1e-5)")
        parser.add_argument("--subpolicies", type=int, default=5, help="Q: sub-policies per policy (5)")
        parser.add_argument("--subpolicy-ops", type=int, default=2, help="L: ops per sub-policy (2)")

    def __init__(self, args, trainer):
        super().__init__(args, trainer)
        self.mode = args.augment if args.augment in MODES else "adversarial"
        self.M = int(args.instances)
        checks = [(self.M >= 1, f"--instances must be >= 1, got {args.instances}"),
                  (args.policy_update_every >= 1, f"--policy-update-every must be >= 1, got {args.policy_update_every}"),
                  (0 <= args.policy_ema_decay < 1, f"--policy-ema-decay must be in [0, 1), got {args.policy_ema_decay}"),
                  (args.controller_lr > 0, f"--controller-lr must be > 0, got {args.controller_lr}"),
                  (args.entropy_weight >= 0, f"--entropy-weight must be >= 0, got {args.entropy_weight}"),
                  (args.subpolicies >= 1, f"--subpolicies must be >= 1, got {args.subpolicies}"),
                  (args.subpolicy_ops >= 1, f"--subpolicy-ops must be >= 1, got {args.subpolicy_ops}")]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        self.Q, self.L, self.num_bins = int(args.subpolicies), int(args.subpolicy_ops), AUTOAUGMENT_BINS
        self.standard = standard_pipeline(args, trainer)
        self.fill = int(args.fill)
        self.device = trainer.device
        self._rank, self._world = trainer.dist.rank, trainer.dist.world
        self.per_epoch = args.policy_update == "epoch"
        self.every = int(args.policy_update_every)
        # The controller's initialisation and draws use their own seeded streams (same on every rank).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(args.seed, "controller-init"))
            self.controller = PolicyController(self.Q, self.L, NUM_OPS, self.num_bins).to(self.device)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=args.controller_lr)
        self.generator = torch.Generator().manual_seed(derive_seed(args.seed, "controller"))
        self.window = LossWindow(self.M, "mean" if self.per_epoch else "ema", args.policy_ema_decay)
        self.ops = self.levels = None  # current policies (M, Q, L); None: sample before the next step
        self.last_losses = None  # the last window's L_m (M,), for the metrics
        self.actions = ActionCounter(NUM_OPS, self.num_bins)  # the epoch's sampled ops/levels (Figure 6)

    # ---- policies --------------------------------------------------------------------------------
    @property
    def uses_policies(self):
        return self.mode != "fixed"

    def _sample(self):
        """New M policies: drawn on rank 0 (controller or uniform), broadcast to every rank."""
        shape = (self.M, self.Q, self.L)
        ops, levels = torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, dtype=torch.int64)
        if self._rank == 0:
            if self.mode == "adversarial":
                with torch.no_grad():
                    s = self.controller.sample(self.M, self.generator)
                ops, levels = s.ops.cpu(), s.levels.cpu()
            else:
                ops, levels = random_policies(self.M, self.Q, self.L, NUM_OPS, self.num_bins, self.generator)
        self.ops, self.levels = dist.broadcast_tensor(ops), dist.broadcast_tensor(levels)

    def _update(self):
        """End of a window: one REINFORCE step of the controller (adversarial), then new policies."""
        if self.window.steps == 0:
            return
        losses = dist.all_reduce_sum(self.window.value().clone()) / self._world
        self.last_losses = losses
        if self.mode == "adversarial":
            s = self.controller.evaluate(self.ops.to(self.device), self.levels.to(self.device))
            loss = adversarial_controller_loss(normalise_losses(losses).to(self.device), s.log_prob, s.entropy,
                                               self.args.entropy_weight)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.window.reset()
        self.ops = self.levels = None

    # ---- Method hooks ----------------------------------------------------------------------------
    def augment(self, x, y, trainer):
        """x (N, C, H, W) uint8 -> TrainBatch of M·N images, policy-major, ``group`` = policy index."""
        N, M = x.shape[0], self.M
        policy = None
        if self.uses_policies:
            if self.ops is None:
                self._sample()  # from the controller's own generator, not the recipe's
            policy = lambda xr, g: apply_policy_batch(xr, self.ops, self.levels, self.num_bins, g,  # noqa: E731
                                                      fill=self.fill)
        xr = self.standard.recipe(replicate(x, M), trainer.generator, policy)
        return TrainBatch(xr, replicate(y, M), group=policy_groups(M, N, x.device), source_images=N)

    def after_step(self, batch, losses, trainer):
        if not self.uses_policies:
            return
        per_policy = per_group_means(losses, batch.group, self.M)
        self.window.add(per_policy)
        self.actions.add(self.ops, self.levels)
        if not self.per_epoch and self.window.steps >= self.every:
            self._update()

    def epoch_end(self, epoch, trainer):
        if not self.uses_policies:
            return {}
        if self.per_epoch:
            self._update()
        extra = self.actions.frequencies()
        self.actions.reset()
        if self.last_losses is not None:
            extra["policy_losses"] = self.last_losses.tolist()
        return extra

    def finish(self, trainer):
        if self.uses_policies and trainer.is_main and trainer.history:
            policy_figure(trainer.history, f"{trainer.output_dir}/policy.png", OP_NAMES,
                          title=f"{trainer.args.dataset} / {trainer.args.model} / --augment {self.mode} "
                                f"(M={self.M})")

    def state_dict(self):
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "window": self.window.state_dict(),
                "ops": self.ops, "levels": self.levels, "last_losses": self.last_losses,
                **self.actions.state_dict()}

    def load_state_dict(self, state):
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.window.load_state_dict(state["window"])
        self.ops, self.levels, self.last_losses = state["ops"], state["levels"], state["last_losses"]
        self.actions.load_state_dict(state)


def per_group_means(losses, group, M):
    """losses (B,) and group (B,) in [0, M) -> (M,) float64 mean loss of each group (0 where empty)."""
    losses = losses.detach().to(torch.float64)
    sums = torch.zeros(M, dtype=torch.float64, device=losses.device).index_add_(0, group, losses)
    counts = torch.bincount(group, minlength=M).to(sums)
    return (sums / counts.clamp(min=1)).cpu()
