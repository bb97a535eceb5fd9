"""Model patching family: one stage-1 step (CycleGAN) and one stage-2 step (camel), each against a reference.

* stage 1: one :func:`fastaug.train.patching.translation.translation_step` (generators then
  discriminators of the shared MNIST CycleGAN, batch 25 per domain) with our default U-Net width 16,
  against the same step at the authors' width 32 (docs/model_patching.md): the ratio is what the
  narrower default saves;
* stage 2: one camel step (x, F(x), G(x) in one forward, class-conditional group DRO + consistency,
  SGD) against one ERM step on the same 100 images: speed-up < 1 is camel's cost (3x the images).

Data: 1,000 random 28x28 digits-like images in two classes x two subgroups (no dataset load), so the
benchmark measures the steps alone.
"""
import types

import torch

from fastaug.data.subgroups import GroupedImageData
from fastaug.models import build_model
from fastaug.train.loop import optimizer_step
from fastaug.train.patching.config import PatchConfig, TranslationConfig
from fastaug.train.patching.methods import gather_batch, patch_method_class
from fastaug.train.patching.translation import build_translation_parts, translation_step

from .harness import compare


def _data(n, device):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 2
    subgroup = (torch.arange(n) // 2) % 2
    return GroupedImageData(images, labels, ("even", "odd"), "bench", hflip=False, mean=(0.13,), std=(0.31,),
                            subgroup=subgroup, subgroups=(("clean", "zigzag"),) * 2).to(device)


def _stage1(data, device, width, batch):
    cfg = TranslationConfig(gan_width=width, gan_batch_size=batch).resolved()
    translator, opts, pools = build_translation_parts(cfg, data, device)
    counter = types.SimpleNamespace(step=0)

    def step():
        translation_step(translator, opts, pools, data, counter.step, cfg)
        counter.step += 1
    return step


def _stage2(data, device, method, batch):
    cfg = PatchConfig()
    model = build_model(cfg.model, 2, 1, mean=data.mean, std=data.std).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    translations = data.images.cpu()[:, None].repeat(1, 2, 1, 1, 1)  # stand-ins for F(x), G(x)
    # the method as the engine builds it, from what it reads of the trainer
    engine = types.SimpleNamespace(train_data=data, device=torch.device(device),
                                   args=types.SimpleNamespace(label_smoothing=0.0))
    objective = patch_method_class(method)(cfg, engine, translations=translations)
    idx = torch.arange(batch, device=data.images.device)

    def step():
        b = gather_batch(data, idx, objective.translations, device)
        loss, _ = objective.loss(model, b)
        optimizer_step(loss, opt)
    return step


def run(device, quick=False):
    t = 0.2 if quick else 3.0
    batch1, batch2 = (4, 8) if quick else (25, 100)
    data = _data(64 if quick else 1000, device)
    ours_w, authors_w = (4, 8) if quick else (16, 32)
    rows = compare("patching", f"stage 1 CycleGAN step (shared, U-Net width {ours_w})", f"N=2x{batch1} 1x28x28",
                   device, _stage1(data, device, ours_w, batch1),
                   {f"same step at width {authors_w} (the authors' 32 when not --quick)":
                    _stage1(data, device, authors_w, batch1)}, min_run_time=t, rounds=2)
    rows += compare("patching", "stage 2 camel step (x, F(x), G(x); DRO + consistency)", f"N={batch2} 1x28x28",
                    device, _stage2(data, device, "camel", batch2),
                    {"ERM step on the same images": _stage2(data, device, "erm", batch2)}, min_run_time=t, rounds=2,
                    note="speed-up < 1 = camel's cost over ERM (three images per image)")
    return rows
