"""TANDA's first stage: train the transformation-sequence generator against a discriminator.

The generator (the shared :class:`~fastaug.augment.controller.PolicyController` with one sub-policy
of ``--tanda-seq-len`` ops) and the discriminator train for ``--tanda-epochs`` passes over the
training set in batches of ``--tanda-batch-size`` (see :mod:`.search` for the maths), on the loop
primitive. The batches come from :func:`fastaug.data.make_batches`, as the engine's: an in-memory
dataset is indexed on the device, a folder dataset (``--dataset folder``) is decoded in ``--workers``
DataLoader workers (``--skip-unreadable`` applies; the skipped files are a checkpoint part, and the
workers stop when the stage ends), both in the stage's own seeded order per pass
(:meth:`GeneratorStage.order`), which a resumed stage recomputes; the sequences are applied batched on
the device either way. The stage writes checkpoints every ``--checkpoint-every`` steps and after every
pass, one record of means per pass in ``RUN/tanda_generator/metrics.jsonl``, the trained generator in
``generator.pt`` (a ``tanda-generator`` artifact, :mod:`fastaug.artifacts`: the network's weights, its
sequence length and the options it was trained with), the stage's result handed to the classifier stage.

Under torchrun every rank runs the stage on the whole training set with the same seeds (only rank 0
writes); rank 0's generator is then broadcast so that every rank samples from the same one.
"""
import os

import torch

from ...artifacts import load_artifact, save_artifact
from ...augment.controller import PolicyController
from ...augment.op_table import AUTOAUGMENT_BINS, NUM_OPS
from ...data import make_batches
from ...models import build_model
from .. import distributed as dist
from ..args import data_options
from ..loop import Loop, optimizer_step
from ..method import to_float
from ..pipeline import Stage, StageResult
from ..rng import derive_seed
from .search import (apply_sequences, discriminator_loss, feature_distance, generator_costs, generator_loss,
                     incremental_transforms, real_fake_logits)

__all__ = ["GeneratorStage", "build_generator_net", "load_generator", "real_logit", "GENERATOR_FILE",
           "STAGE_NAME", "KIND"]

STAGE_NAME = "tanda_generator"
GENERATOR_FILE = "generator.pt"
#: The artifact kind of the trained generator.
KIND = "tanda-generator"


def real_logit(out):
    """(B, 2) discriminator outputs (fake, real) -> (B,) logit of "real"."""
    return out[:, 1] - out[:, 0]


def build_generator_net(seq_len, seed, device):
    """The sequence generator of ``seq_len`` ops, initialised from a seed derived from the run's ``seed``
    (the global stream untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "tanda-init"))
        return PolicyController(1, int(seq_len), NUM_OPS, AUTOAUGMENT_BINS).to(device)


def load_generator(path, seq_len, seed, device):
    """The trained generator of a ``tanda-generator`` artifact; ValueError (one sentence) when its
    sequence length is not ``seq_len`` (``--tanda-seq-len``)."""
    art = load_artifact(KIND, path)
    if art.meta["seq_len"] != int(seq_len):
        raise ValueError(f"the TANDA generator in {path} makes sequences of {art.meta['seq_len']} ops, but "
                         f"--tanda-seq-len is {seq_len}: train the generator with these options")
    net = build_generator_net(seq_len, seed, device)
    net.load_state_dict(art.state["generator"])
    return net


class GeneratorStage(Stage):
    """TANDA's generator training as a pipeline stage (module docstring); its result is the
    ``generator`` artifact.

    Args:
        options: the run's :class:`~fastaug.train.tanda.method.TandaOptions`; args: the run's resolved
            common arguments (seed, fill, checkpoint cadence, progress, workers); data: the training
            split, an in-memory :class:`~fastaug.data.ImageData` or a :class:`~fastaug.data.FolderData`;
        device: where to train.
    """

    name, title, distributed = STAGE_NAME, "TANDA stage 1 (generator)", True

    def __init__(self, options, args, data, device):
        self.o, self.args, self.data, self.device = options, args, data, device
        self.T, self.num_bins, self.fill = int(options.tanda_seq_len), AUTOAUGMENT_BINS, int(args.fill)

    def options(self):
        """What the trained generator depends on: the training data, the seed, the fill and TANDA's
        stage-1 options."""
        return {"seed": self.args.seed, **data_options(self.args), "fill": self.args.fill, **self.o.of_stage(1)}

    def _build(self):
        o, data, seed = self.o, self.data, self.args.seed
        self.generator_net = build_generator_net(o.tanda_seq_len, seed, self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "tanda-discriminator"))
            # two classes (fake, real); the binary logit is their difference (models need >= 2 classes)
            self.discriminator = build_model(o.tanda_discriminator, 2, data.channels, mean=data.mean,
                                             std=data.std).to(self.device)
        self.g_opt = torch.optim.SGD(self.generator_net.parameters(), lr=o.tanda_gen_lr)
        self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=o.tanda_disc_lr)
        self.rng = torch.Generator().manual_seed(derive_seed(seed, "tanda-search"))

    def order(self, epoch):
        """(N,) int64: the order of pass ``epoch``, a seeded permutation (a pure function of the pass)."""
        g = torch.Generator().manual_seed(derive_seed(self.args.seed, "tanda-order", epoch))
        return torch.randperm(len(self.data), generator=g)

    def _batches(self):
        """The stage's ``(x uint8 (B, C, H, W), y)`` batches on the device, in :meth:`order`: the whole
        training set on every rank (every rank trains the same generator), the last batch of a pass short."""
        return make_batches(self.data, self.o.tanda_batch_size, self.device, train=True, order=self.order,
                            workers=getattr(self.args, "workers", 0))

    def step(self, x):
        """One step on uint8 images x (B, C, H, W): a discriminator step, then a generator step; returns
        {d_loss, g_cost, d_fooled, entropy} as 0-d tensors."""
        rng, a = self.rng, self.o
        B = x.shape[0]
        # discriminator: real vs one transformed copy of each image (fresh sequences, no gradient to G)
        self.discriminator.train()
        with torch.no_grad():
            s = self.generator_net.sample(B, rng)
        fake = apply_sequences(x, s.ops[:, 0], s.levels[:, 0], self.num_bins, rng, self.fill)
        d_loss = discriminator_loss(*real_fake_logits(self.discriminator, to_float(x), to_float(fake)))
        optimizer_step(d_loss, self.d_opt)
        # generator: n_sample sequences per image, costs of every prefix under the (eval-mode) D
        xs = x.repeat(a.tanda_samples, 1, 1, 1)
        s = self.generator_net.sample(xs.shape[0], rng)
        with torch.no_grad():
            self.discriminator.eval()
            steps = incremental_transforms(xs, s.ops[:, 0], s.levels[:, 0], self.num_bins, rng, self.fill)
            flat = to_float(steps.flatten(0, 1))  # ((T+1)·B', C, H, W)
            logits = real_logit(self.discriminator(flat)).view(self.T + 1, -1).t()
            if a.tanda_distance == "features":
                feats = self.discriminator.features(flat).view(self.T + 1, xs.shape[0], -1)
            else:
                feats = flat.view(self.T + 1, xs.shape[0], -1)
            dist_t = feature_distance(feats[:1], feats).t()  # (B', T+1)
            costs = generator_costs(logits, dist_t, a.tanda_mse_term)
        g_loss = generator_loss(s.step_log_probs[:, 0].sum(-1), costs, a.tanda_gamma)
        optimizer_step(g_loss, self.g_opt)
        return {"d_loss": d_loss.detach(), "g_cost": costs[:, -1].mean(),
                "d_fooled": (logits[:, -1] > 0).double().mean(), "entropy": s.entropy.mean().detach() / (2 * self.T)}

    def run(self, folder, inputs):
        o = self.o
        self._build()
        batches = self._batches()
        steps = len(batches)
        loop = Loop(folder, name="tanda generator", options=self.options(), allowed_changes=(),
                    epochs=o.tanda_epochs, steps_per_epoch=steps, checkpoint_every=self.args.checkpoint_every,
                    resume="auto", progress=self.args.progress, show=("d_loss", "g_cost"))
        loop.register("generator_net", self.generator_net)
        loop.register("discriminator", self.discriminator)
        loop.register("generator_optimizer", self.g_opt)
        loop.register("discriminator_optimizer", self.d_opt)
        loop.register("search_rng", self.rng, per_rank=True)
        if hasattr(batches, "unreadable"):  # a folder dataset: the files --skip-unreadable left out so far
            loop.register("unreadable_images", batches, per_rank=True)
        try:
            for epoch in loop.epochs_left():
                stream = batches.epoch(epoch, loop.step_in_epoch)  # resumed mid-pass: from the saved step on
                for _ in loop.steps():
                    loop.meters.add(**self.step(next(stream)[0]))
                stream.close()
                loop.end_epoch()
                loop.log("TANDA generator pass {epoch}: D loss {d_loss:.4f}, generator cost {g_cost:.4f}, "
                         "D fooled {d_fooled:.3f}, entropy/action {entropy:.3f}".format(**loop.history[-1]))
        finally:
            batches.close()  # a folder dataset's workers stop before the classifier stage starts its own
        # every rank uses rank 0's generator (CUDA kernels may differ in their last bits between ranks)
        state = dist.broadcast_object({k: v.cpu() for k, v in self.generator_net.state_dict().items()})
        path = os.path.join(folder, GENERATOR_FILE)
        if dist.rank_and_world()[0] == 0:
            save_artifact(KIND, {"generator": state}, path,
                          meta={"seq_len": self.T, "num_ops": NUM_OPS, "num_bins": self.num_bins,
                                "dataset": self.args.dataset, "channels": self.data.channels,
                                "image_size": list(self.data.image_size), "options": self.options()})
        dist.barrier()
        last = loop.history[-1] if loop.history else {}
        return StageResult(artifacts={"generator": path}, metrics={k: v for k, v in last.items() if k != "epoch"},
                           seconds=loop.seconds)
