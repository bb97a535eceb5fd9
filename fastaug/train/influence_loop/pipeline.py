"""Stages 1-4 of the loop: run the ones asked for, reuse the finished ones, continue an interrupted one.

Folders of a run ``RUN`` (``--output-dir``)::

    RUN/stage1_classifier/   a `fastaug train --augment standard` run (F), plus stage.json
    RUN/stage2_gan/          augmenter.pt (G pretrained; E untouched), critics.pt (the discriminators),
                             metrics.jsonl (GAN losses),
                             samples.png, checkpoint.pt, stage.json
    RUN/stage3_influence/    influence.pt (features, s_val), validation.pt, metrics.jsonl, stage.json
    RUN/stage4_augmenter/    metrics.jsonl (mean influence, predicted vs refit validation loss),
                             checkpoint.pt, stage.json
    RUN/augmenter.pt         E and G after stage 4 (what stage 5 samples from)
    RUN/figure4_tau_interpolation.png, RUN/learned_augmentations.png
    RUN/ (args.json, metrics.jsonl, checkpoint.pt, summary.json, curves.png)   stage 5, the engine's run
    RUN/stages.json          seconds and key metrics of every stage
"""
import os
import time

import torch

from ..checkpoint import atomic_save
from ..rng import capture_rng, derive_seed, restore_rng
from .augmenter import Augmenter
from .options import DEPENDS, STAGE_DIRS, stage_options, use_appearance
from .stages import StageDir, StageError

__all__ = ["run_stages", "stage_dirs", "build_augmenter", "figure_images"]

AUGMENTER_FILE = "augmenter.pt"
CRITICS_FILE = "critics.pt"
FIGURE4 = "figure4_tau_interpolation.png"
FIGURE3 = "learned_augmentations.png"


def stage_dirs(args, root):
    """{stage: StageDir} of stages 1-4 of the run in ``root``."""
    return {k: StageDir(root, STAGE_DIRS[k], k, stage_options(args, k)) for k in STAGE_DIRS}


def build_augmenter(args, info, device):
    """A fresh Augmenter for the run's images, initialised from a seed derived from ``--seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(args.seed, "augmenter-init"))
        H, W = info["image_size"]
        aug = Augmenter(info["channels"], H, W, tau_dim=args.tau_dim, dropout=args.tau_dropout,
                        appearance=use_appearance(args, info["channels"]), smooth=args.transform_smooth,
                        mode=args.transform_mode)
    return aug.to(device)


def figure_images(data, count=4):
    """``count`` training images of different classes (the first image of each of the first classes),
    as float (count, C, H, W)."""
    picks = []
    for c in range(data.num_classes):
        idx = (data.labels == c).nonzero()
        if idx.numel():
            picks.append(int(idx[0]))
        if len(picks) == count:
            break
    return data.images[torch.tensor(picks, device=data.images.device)].float() / 255.0


class _Run:
    """What the stages share: arguments, data, device, folders, the frozen F (loaded once)."""

    def __init__(self, args, trainer, log):
        self.args, self.log, self.device = args, log, trainer.device
        self.root = trainer.output_dir
        self.train, self.val, self.test = trainer.train_data, trainer.val_data, trainer.test_data
        self.info = trainer.info
        self.dirs = stage_dirs(args, self.root)
        self._model = None
        from .method import baseline_of

        self.baseline = baseline_of(args, trainer)

    @property
    def model(self):
        if self._model is None:
            from .classifier import load_classifier

            self._model = load_classifier(self.dirs[1], self.args, self.train, self.device)
        return self._model

    # ---- the stages ----------------------------------------------------------------------------
    def stage1(self, d):
        from .classifier import train_classifier

        tick = time.perf_counter()
        summary = train_classifier(d, self.args, (self.train, self.val, self.test), self.log)
        # an interrupted stage 1 resumes its engine run: its epochs' times (checkpointed) count them all
        seconds = max(time.perf_counter() - tick, summary.get("total_seconds") or 0.0)
        return {"seconds": seconds, "train_seconds": summary.get("train_seconds"),
                "final_test_acc": summary.get("final_test_acc"), "final_test_loss": summary.get("final_test_loss")}

    def critics(self):
        from .gan import Critics

        return Critics(self.model, self.info["channels"], *self.info["image_size"], self.args, self.device)

    def stage2(self, d):
        from .gan import train_gan

        aug, critics = build_augmenter(self.args, self.info, self.device), self.critics()
        crop_flip = self.baseline.crop_flip
        metrics = train_gan(d, self.model, aug, critics, self.train, lambda x, g: crop_flip(x, g), self.args,
                            self.device, self.args.progress, self.log)
        aug.save(d.file(AUGMENTER_FILE))
        atomic_save({"critics": critics.state_dict(), "optimizer": critics.optimizer.state_dict()},
                    d.file(CRITICS_FILE))
        self._gan_figure(aug, d.file("samples.png"))
        return metrics

    def stage3(self, d):
        from .classifier import fit_influence

        return fit_influence(d, self.model, self.train, self.val, self.args, self.device, self.args.progress)

    def stage4(self, d):
        from .augment_stage import train_augmenter
        from .classifier import load_influence

        aug = Augmenter.load(self.dirs[2].file(AUGMENTER_FILE), self.device)  # G pretrained, E as initialised
        critics = self.critics()
        state = torch.load(self.dirs[2].file(CRITICS_FILE), map_location=self.device, weights_only=True)
        critics.load_state_dict(state["critics"])
        critics.optimizer.load_state_dict(state["optimizer"])
        influence, val = load_influence(self.dirs[3], self.model, self.device)
        metrics = train_augmenter(d, aug, critics, influence, self.train, self.baseline, val, self.args, self.device,
                                  self.args.progress, self.log)
        aug.save(os.path.join(self.root, AUGMENTER_FILE))
        self._figures(aug)
        return metrics

    # ---- figures -------------------------------------------------------------------------------
    def _gan_figure(self, aug, path):
        from .augmenter import random_codes
        from .figures import gan_samples_grid

        g = torch.Generator().manual_seed(derive_seed(self.args.seed, "figures"))
        x = figure_images(self.train, 8).to(self.device)
        with torch.no_grad():
            codes = random_codes(x.shape[0], aug.tau_dim, g, self.device) * aug.dropout_mask(x.shape[0], g, self.device)
            fake = aug(x, codes=codes)
        gan_samples_grid(path, self.baseline.crop_flip(x, g), fake)

    def _figures(self, aug):
        from .figures import dropout_samples_grid, tau_interpolation_grid

        g = torch.Generator().manual_seed(derive_seed(self.args.seed, "figures"))
        x = figure_images(self.train, 3).to(self.device)
        aug.eval()
        tau_interpolation_grid(os.path.join(self.root, FIGURE4), aug, x, g)
        dropout_samples_grid(os.path.join(self.root, FIGURE3), aug, figure_images(self.train, 6).to(self.device), g)


def run_stages(args, trainer, log=print):
    """Run or reuse stages 1-4 as ``--stages`` asks; returns {stage: its stage.json record}.

    A finished stage (``stage.json`` with the same options) is reused, never recomputed; a stage with
    a checkpoint continues from it; a stage that a requested later stage needs but that has not
    finished and is not requested raises :class:`StageError`. The global random state is restored on
    return, so stage 5 starts the same whether stages 1-4 ran now or earlier.
    """
    run = _Run(args, trainer, log)
    wanted = set(args.stages)
    records = {}
    rng = capture_rng({})
    try:
        for k, d in run.dirs.items():
            record = d.finished()
            if record is not None:
                log(f"stage {k} ({STAGE_DIRS[k]}): finished earlier, reused")
                records[k] = record
                continue
            if k not in wanted:
                needing = sorted(j for j in wanted if k in DEPENDS[j] and j != k)
                if needing:
                    raise StageError(f"stage {needing[0]} needs stage {k}, which has not finished in {d.path}: "
                                     f"add {k} to --stages")
                continue
            if trainer.dist.world > 1:
                raise StageError("stages 1-4 run in one process: run them without torchrun (--stages 1 2 3 4), "
                                 "then stage 5 under torchrun (--stages 5)")
            log(f"stage {k} ({STAGE_DIRS[k]}) ...")
            os.makedirs(d.path, exist_ok=True)
            tick = time.perf_counter()
            metrics = getattr(run, f"stage{k}")(d)
            seconds = metrics.pop("seconds", time.perf_counter() - tick)
            records[k] = d.finish(seconds, metrics)
            log(f"stage {k} done in {seconds:.1f} s")
    finally:
        restore_rng(rng, {})
    return records
