"""End-to-end training throughput: augmentation on the device, batched (ours) vs per image in DataLoader workers.

One training step = get a batch of N images, augment it (random crop + flip where the dataset allows
it + RandAugment(2, 9)), forward, backward, optimiser step. Ours is fastaug's engine step
(``fastaug.train.Trainer``: the dataset lives on the device, the batch is gathered by index and
augmented with one ``apply_ops`` call); the baseline is the pipeline a user writes today: a
``DataLoader`` whose workers run torchvision v2 ``RandomCrop``/``RandomHorizontalFlip``/``RandAugment``
per image on uint8 tensors, then the same model and optimiser. Both are timed in the same run,
in interleaved rounds (steps per second, medians).

Rows: (allconv, 1x28x28) and (resnet20, 3x32x32) on CPU; resnet20 and wrn28_10 at 3x32x32
on CUDA. Targets: ours faster end to end than the per-image pipeline in every row (>= 2x on CUDA),
and augmentation at most 5 % of our step (written in the row's note with PASS/MISS). A third case
times the uncertainty method (K = 4 candidates, one selection forward pass) against the randaugment
step: its cost per step (a "speed-up" below 1 is the price of the extra forward pass).
"""
import itertools
import os
import time

import torch

from .harness import compare

# torchvision's per-image pipeline runs in worker processes; one worker per core is what users do.
_WORKERS = min(4, os.cpu_count() or 1)


def _synthetic(n, c, h, w, classes=10, seed=0):
    from fastaug.data import ImageData

    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8),
                     torch.randint(0, classes, (n,), generator=g), tuple(map(str, range(classes))), "synthetic",
                     hflip=c == 3, mean=(0.5,) * c, std=(0.5,) * c)


def _trainer(model, data, device, batch, augment, out):
    from fastaug.train import Trainer, default_args

    args = default_args(model=model, augment=augment, batch_size=batch, epochs=1, device=device, output_dir=out,
                        progress=False, cutout=0, dataset="cifar10" if data.channels == 3 else "mnist5k")
    return Trainer(args, data=(data, None, data))


def _cycle(trainer):
    return itertools.chain.from_iterable(trainer.train_batches.epoch(e) for e in itertools.count())


def _our_step(trainer):
    """One training step as the engine runs it: the method's batch, then ``Trainer.train_step`` (forward,
    loss, and the loop primitive's ``optimizer_step``)."""
    batches = _cycle(trainer)

    def step():
        x, y = next(batches)
        trainer.train_step(trainer.method.augment(x, y, trainer))
    return step


def _augment_share(trainer, device, steps):
    """Fraction of our step spent in ``Method.augment`` (synchronised timing over ``steps`` steps)."""
    batches = _cycle(trainer)
    aug = total = 0.0
    for i in range(steps + 2):
        x, y = next(batches)
        trainer.sync()
        t0 = time.perf_counter()
        b = trainer.method.augment(x, y, trainer)
        trainer.sync()
        t1 = time.perf_counter()
        trainer.train_step(b)
        trainer.sync()
        if i >= 2:  # warm-up
            aug, total = aug + t1 - t0, total + time.perf_counter() - t0
    return aug / total


class _PerImage(torch.utils.data.Dataset):
    """uint8 images through a torchvision v2 transform, one image per __getitem__ (the baseline)."""

    def __init__(self, data, transform):
        self.x, self.y, self.t = data.images, data.labels, transform

    def __len__(self):
        return self.x.shape[0]

    def __getitem__(self, i):
        return self.t(self.x[i]), self.y[i]


def _baseline_step(trainer, data, device, batch):
    from torchvision.transforms import v2

    H = data.image_size[0]
    tf = [v2.RandomCrop(H, padding=trainer.args.crop_padding)]
    if data.hflip:
        tf.append(v2.RandomHorizontalFlip())
    tf.append(v2.RandAugment(num_ops=2, magnitude=9))
    loader = torch.utils.data.DataLoader(_PerImage(data, v2.Compose(tf)), batch_size=batch, shuffle=True,
                                         num_workers=_WORKERS, persistent_workers=True, drop_last=True,
                                         pin_memory=device == "cuda")
    batches = itertools.chain.from_iterable(loader for _ in itertools.count())
    model, opt = trainer.module, trainer.optimizer
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True).float().div_(255), y.to(device, non_blocking=True)
        loss = lossf(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step, loader


def run(device, quick=False):
    import tempfile

    cases = {"cpu": [("allconv", (1, 28, 28), 128), ("resnet20", (3, 32, 32), 128)],
             "cuda": [("resnet20", (3, 32, 32), 128), ("wrn28_10", (3, 32, 32), 128)]}[device]
    if quick:
        cases = [("allconv", (1, 28, 28), 16)]
    t = 0.2 if quick else (6.0 if device == "cpu" else 3.0)
    rows = []
    for model, (c, h, w), batch in cases:
        data = _synthetic(64 if quick else 4096, c, h, w)
        size = f"N={batch} {c}x{h}x{w}"
        with tempfile.TemporaryDirectory() as out:
            ra = _trainer(model, data, device, batch, "randaugment", os.path.join(out, "ra"))
            share = _augment_share(ra, device, 3 if quick else 20)
            note = f"augment {100 * share:.1f} % of our step (target <= 5 %: {'PASS' if share <= 0.05 else 'MISS'})"
            base, loader = _baseline_step(ra, data, device, batch)
            rows += compare("train", f"{model} train step, crop/flip + RandAugment(2, 9)", size, device,
                            _our_step(ra), {f"torchvision v2 per image, {_WORKERS} DataLoader workers": base},
                            target=1.0 if device == "cpu" else 2.0, min_run_time=t, note=note, rounds=2)
            del loader
            unc = _trainer(model, data, device, batch, "uncertainty", os.path.join(out, "unc"))
            rows += compare("train", f"{model} train step, uncertainty K=4 (keep 1)", size, device, _our_step(unc),
                            {"fastaug randaugment step": _our_step(ra)}, min_run_time=t, rounds=2,
                            note="speed-up < 1 = the cost of the K*N selection forward pass")
    return rows
