"""``--augment tanda``: TANDA (Ratner et al. 2017) in one command, two phases.

Phase 1 (before the classifier's first step): train the transformation-sequence generator (the
shared :class:`~fastaug.augment.controller.PolicyController` with one sub-policy of
``--tanda-seq-len`` ops) adversarially against a discriminator (see :mod:`.search` for the maths),
for ``--tanda-epochs`` passes over the training set in batches of ``--tanda-batch-size``, each image
drawing ``--tanda-samples`` sequences for the generator's step (TANDA's ``n_sample``).

Phase 2: the engine trains the classifier; in each batch a fraction p_e of the images (chosen at
random) gets a sequence drawn from the trained generator (TANDA's ``p_transform``: starts at
``--tanda-p-init``, multiplied by ``--tanda-p-rate`` after every epoch, capped at ``--tanda-p-max``).
The pipeline is the project's: standard crop/flip, then the sequences, then Cutout.

Resume: phase 1 keeps its progress (generator, discriminator, both optimisers, its own CPU
generator, the step reached) in the method's state and calls ``trainer.save_checkpoint()`` every
``--checkpoint-every`` phase-1 steps, after every phase-1 epoch and at its end, so a run killed in
phase 1 continues from there bit-identically on CPU. Under torchrun every rank runs phase 1 on the
whole training set with the same seeds; rank 0's generator is then broadcast so all ranks agree.
"""
import math
import time

import torch
from tqdm.auto import tqdm

from ...augment.controller import PolicyController
from ...augment.op_table import AUTOAUGMENT_BINS, NUM_OPS
from ...augment.policy_batch import action_frequencies
from ...models import MODELS, build_model
from .. import distributed as dist
from ..method import Method, TrainBatch, standard_pipeline, to_float
from ..rng import derive_seed
from .search import (apply_sequences, discriminator_loss, feature_distance, generator_costs, generator_loss,
                     incremental_transforms, real_fake_logits)

__all__ = ["Tanda", "transform_fraction", "real_logit"]


def real_logit(out):
    """(B, 2) discriminator outputs (fake, real) -> (B,) logit of "real"."""
    return out[:, 1] - out[:, 0]


def transform_fraction(epoch, init, rate, cap):
    """TANDA's p_transform at 0-based ``epoch``: min(cap, init * rate ** epoch)."""
    return min(cap, init * rate ** epoch)


class Tanda(Method):
    """TANDA: a generator of op sequences trained against a discriminator, then used to augment."""

    name = "tanda"

    @classmethod
    def add_arguments(cls, parser):
        a = parser.add_argument
        a("--tanda-epochs", type=int, default=5, help="phase 1: passes over the training set (5)")
        a("--tanda-batch-size", type=int, default=32, help="phase 1: images per step (32, TANDA)")
        a("--tanda-seq-len", type=int, default=5, help="ops per generated sequence (5)")
        a("--tanda-samples", type=int, default=5, help="sequences per image in a generator step (5, TANDA)")
        a("--tanda-gen-lr", type=float, default=1e-3, help="generator SGD LR (1e-3, TANDA)")
        a("--tanda-disc-lr", type=float, default=1e-4, help="discriminator Adam LR (1e-4)")
        a("--tanda-mse-term", type=float, default=1e-4, help="weight of the inverse-distance term (1e-4, TANDA)")
        a("--tanda-distance", default="features", choices=("features", "pixels"),
          help="distance to the original: D's penultimate features (TANDA's mse_layer=1) or pixels")
        a("--tanda-gamma", type=float, default=0.5, help="discount of future rewards (0.5, TANDA)")
        a("--tanda-discriminator", default="allconv", choices=MODELS, help="discriminator network (allconv)")
        a("--tanda-p-init", type=float, default=0.1, help="phase 2: first epoch's transformed fraction (0.1)")
        a("--tanda-p-rate", type=float, default=1.05, help="phase 2: growth of the fraction per epoch (1.05)")
        a("--tanda-p-max", type=float, default=0.5, help="phase 2: cap of the fraction (0.5)")

    def __init__(self, args, trainer):
        super().__init__(args, trainer)
        checks = [(args.tanda_epochs >= 0, "--tanda-epochs must be >= 0"),
                  (args.tanda_batch_size >= 1, "--tanda-batch-size must be >= 1"),
                  (args.tanda_seq_len >= 1, "--tanda-seq-len must be >= 1"),
                  (args.tanda_samples >= 1, "--tanda-samples must be >= 1"),
                  (args.tanda_gen_lr > 0 and args.tanda_disc_lr > 0, "--tanda-gen-lr/--tanda-disc-lr must be > 0"),
                  (args.tanda_mse_term >= 0, "--tanda-mse-term must be >= 0"),
                  (0 <= args.tanda_gamma <= 1, "--tanda-gamma must be in [0, 1]"),
                  (0 <= args.tanda_p_init <= 1 and 0 <= args.tanda_p_max <= 1 and args.tanda_p_rate > 0,
                   "--tanda-p-init/--tanda-p-max must be in [0, 1] and --tanda-p-rate > 0")]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        self.device, self.num_bins, self.T = trainer.device, AUTOAUGMENT_BINS, int(args.tanda_seq_len)
        self.standard = standard_pipeline(args, trainer)
        self.fill = int(args.fill)
        data = trainer.train_data
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(args.seed, "tanda-init"))
            self.generator_net = PolicyController(1, self.T, NUM_OPS, self.num_bins).to(self.device)
            # Two classes (fake, real); the binary logit is their difference (models need >= 2 classes).
            self.discriminator = build_model(args.tanda_discriminator, 2, data.channels, mean=data.mean,
                                             std=data.std).to(self.device)
        self.g_opt = torch.optim.SGD(self.generator_net.parameters(), lr=args.tanda_gen_lr)
        self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=args.tanda_disc_lr)
        self.search_generator = torch.Generator().manual_seed(derive_seed(args.seed, "tanda-search"))
        self.search_step, self.search_done = 0, args.tanda_epochs == 0
        self.search_log, self._partial = [], None  # per phase-1 epoch means; running sums of the current one
        self.steps_per_search_epoch = math.ceil(len(data) / args.tanda_batch_size)
        self._reset_counts()

    def _reset_counts(self):
        self.op_counts = torch.zeros(NUM_OPS, dtype=torch.float64)
        self.level_counts = torch.zeros(self.num_bins, dtype=torch.float64)

    # ---- phase 1 -----------------------------------------------------------------------------------
    def _search_batch(self, step, trainer):
        """The uint8 images of phase-1 step ``step`` (a seeded permutation per phase-1 epoch)."""
        epoch, i = divmod(step, self.steps_per_search_epoch)
        data, b = trainer.train_data, self.args.tanda_batch_size
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(
            derive_seed(self.args.seed, "tanda-order", epoch)))
        return data.images[order[i * b:(i + 1) * b]].to(self.device)

    def search_step_once(self, x):
        """One phase-1 step on uint8 images x (B, C, H, W): a D step, then a generator step; returns logs."""
        g, a = self.search_generator, self.args
        B = x.shape[0]
        # Discriminator: real vs one transformed copy of each image (fresh sequences, no gradient to G).
        self.discriminator.train()
        with torch.no_grad():
            s = self.generator_net.sample(B, g)
        fake = apply_sequences(x, s.ops[:, 0], s.levels[:, 0], self.num_bins, g, self.fill)
        d_loss = discriminator_loss(*real_fake_logits(self.discriminator, to_float(x), to_float(fake)))
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        # Generator: n_sample sequences per image, costs of every prefix under the (eval-mode) D.
        xs = x.repeat(a.tanda_samples, 1, 1, 1)
        s = self.generator_net.sample(xs.shape[0], g)
        with torch.no_grad():
            self.discriminator.eval()
            steps = incremental_transforms(xs, s.ops[:, 0], s.levels[:, 0], self.num_bins, g, self.fill)
            flat = to_float(steps.flatten(0, 1))  # ((T+1)·B', C, H, W)
            logits = real_logit(self.discriminator(flat)).view(self.T + 1, -1).t()
            if a.tanda_distance == "features":
                feats = self.discriminator.features(flat).view(self.T + 1, xs.shape[0], -1)
            else:
                feats = flat.view(self.T + 1, xs.shape[0], -1)
            dist_t = feature_distance(feats[:1], feats).t()  # (B', T+1)
            costs = generator_costs(logits, dist_t, a.tanda_mse_term)
        g_loss = generator_loss(s.step_log_probs[:, 0].sum(-1), costs, a.tanda_gamma)
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        fooled = (logits[:, -1] > 0).double().mean().item()
        return {"d_loss": d_loss.item(), "g_cost": costs[:, -1].mean().item(),
                "d_fooled": fooled, "entropy": s.entropy.mean().item() / (2 * self.T)}

    def _run_search(self, trainer):
        a = self.args
        total = a.tanda_epochs * self.steps_per_search_epoch
        bar = tqdm(total=total, initial=self.search_step, desc="TANDA phase 1", unit="step", leave=False,
                   dynamic_ncols=True, disable=(not trainer.is_main or not a.progress) or None)
        tick = time.perf_counter()
        while self.search_step < total:
            logs = self.search_step_once(self._search_batch(self.search_step, trainer))
            if self._partial is None:
                self._partial = {k: 0.0 for k in logs} | {"steps": 0, "seconds": 0.0}
            for k, v in logs.items():
                self._partial[k] += v
            self._partial["steps"] += 1
            now = time.perf_counter()
            self._partial["seconds"] += now - tick
            tick = now
            self.search_step += 1
            bar.update(1)
            end_of_epoch = self.search_step % self.steps_per_search_epoch == 0
            if end_of_epoch:
                n = self._partial.pop("steps")
                rec = {k: (v if k == "seconds" else v / n) for k, v in self._partial.items()}
                self.search_log.append(dict(epoch=len(self.search_log) + 1, **rec))
                self._partial = None
                trainer.log("TANDA phase 1 epoch {epoch}: D loss {d_loss:.4f}, generator cost {g_cost:.4f}, "
                            "D fooled {d_fooled:.3f}, entropy/action {entropy:.3f}".format(**self.search_log[-1]))
            if self.search_step == total:
                break
            if end_of_epoch or (a.checkpoint_every and self.search_step % a.checkpoint_every == 0):
                trainer.save_checkpoint()
                tick = time.perf_counter()
        bar.close()
        # All ranks use rank 0's generator (CUDA kernels may differ in their last bits between ranks).
        state = dist.broadcast_object({k: v.cpu() for k, v in self.generator_net.state_dict().items()})
        self.generator_net.load_state_dict(state)
        self.search_done = True
        trainer.save_checkpoint()

    # ---- Method hooks ------------------------------------------------------------------------------
    def pretrain_seconds(self):
        """Phase 1 (its per-epoch log is checkpointed, so a resumed run counts it once)."""
        return sum(r["seconds"] for r in self.search_log) + (self._partial or {}).get("seconds", 0.0)

    def epoch_start(self, epoch, trainer):
        if not self.search_done:
            self._run_search(trainer)

    def augment(self, x, y, trainer):
        """Crop/flip, then a generated sequence on a random p_e fraction of the batch, then Cutout."""
        g = trainer.generator
        x = self.standard.crop_flip(x, g)
        N = x.shape[0]
        p = transform_fraction(trainer.epoch, self.args.tanda_p_init, self.args.tanda_p_rate, self.args.tanda_p_max)
        n = int(N * p)  # as TANDA: int(batch_size * p_transform) images of each batch
        if n > 0:
            idx = torch.randperm(N, generator=g)[:n].to(x.device)
            with torch.no_grad():
                s = self.generator_net.sample(n, g)
            x = x.clone()
            x[idx] = apply_sequences(x[idx], s.ops[:, 0], s.levels[:, 0], self.num_bins, g, self.fill)
            ops, levels = action_frequencies(s.ops, s.levels, NUM_OPS, self.num_bins)
            self.op_counts += ops
            self.level_counts += levels
        return TrainBatch(to_float(self.standard.cutout(x, g)), y)

    def epoch_end(self, epoch, trainer):
        extra = {"transform_fraction": transform_fraction(epoch, self.args.tanda_p_init, self.args.tanda_p_rate,
                                                          self.args.tanda_p_max)}
        if self.op_counts.sum() > 0:
            extra["op_frequencies"] = (self.op_counts / self.op_counts.sum()).tolist()
            extra["magnitude_frequencies"] = (self.level_counts / self.level_counts.sum()).tolist()
        if epoch == 0 and self.search_log:
            extra["tanda_search"] = self.search_log
        self._reset_counts()
        return extra

    def state_dict(self):
        return {"generator_net": self.generator_net.state_dict(), "discriminator": self.discriminator.state_dict(),
                "g_opt": self.g_opt.state_dict(), "d_opt": self.d_opt.state_dict(),
                "search_generator": self.search_generator.get_state(), "search_step": self.search_step,
                "search_done": self.search_done, "search_log": self.search_log, "partial": self._partial,
                "op_counts": self.op_counts, "level_counts": self.level_counts}

    def load_state_dict(self, state):
        self.generator_net.load_state_dict(state["generator_net"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        self.search_generator.set_state(state["search_generator"])
        self.search_step, self.search_done = state["search_step"], state["search_done"]
        self.search_log, self._partial = list(state["search_log"]), state["partial"]
        self.op_counts, self.level_counts = state["op_counts"].clone(), state["level_counts"].clone()
