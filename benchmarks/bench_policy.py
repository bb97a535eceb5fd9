"""Policy ops family: fastaug.apply_ops (a random op of the 16 per image) vs torchvision / kornia.

Baselines, in the same run:
* torchvision v2 ``AutoAugment`` called once per image: the only way to get per-image ops there;
* torchvision v2 ``AutoAugment`` called once on the whole batch (one sub-policy for all images);
* kornia's ``AutoAugment`` on a float batch, if kornia is installed (a benchmark extra);
* on CUDA, a device copy of the batch (the memory-bound floor).
Targets: CPU >= 20x the per-image loop at N=256 3x32x32 and >= 5x at N=64 3x224x224 (uint8);
CUDA >= 50x the per-image loop, faster than kornia, within 5x of a device copy (speed-up >= 0.2).
A second case times fastaug's AutoAugment module (a 2-op ImageNet sub-policy per image, one call).
"""
import torch

import fastaug
from fastaug.augment import AutoAugment

from .harness import compare


def _torchvision():
    try:
        from torchvision.transforms import v2
    except ImportError:  # pragma: no cover
        return None
    return v2


def _kornia():
    try:
        import kornia.augmentation.auto as kauto
    except Exception:  # not installed (a benchmark extra)
        return None
    return kauto


def run(device, quick=False):
    sizes = {"cpu": [(256, 3, 32, 32), (64, 3, 224, 224)], "cuda": [(256, 3, 224, 224)]}[device]
    if quick:
        sizes = [(16, 3, 32, 32)]
    t = 0.1 if quick else (1.0 if device == "cpu" else 0.5)
    v2, kauto = _torchvision(), _kornia()
    gen = torch.Generator().manual_seed(0)
    rows = []
    for N, C, H, W in sizes:
        size = f"N={N} {C}x{H}x{W} uint8"
        x = torch.randint(0, 256, (N, C, H, W), generator=gen, dtype=torch.uint8).to(device)
        op = torch.randint(0, 16, (N,), generator=gen).to(device)
        mag = torch.rand(N, generator=gen).to(device)
        sign = torch.where(torch.rand(N, generator=gen) < 0.5, -1.0, 1.0).to(device)
        partner = torch.randint(0, N, (N,), generator=gen).to(device)
        center = torch.stack([torch.randint(0, H, (N,), generator=gen), torch.randint(0, W, (N,), generator=gen)],
                             1).to(device)
        cpu = device == "cpu"
        per_image_target = (20 if (H, W) == (32, 32) else 5) if cpu else 50

        def ours():
            return fastaug.apply_ops(x, op, mag, sign, partner, center=center)

        baselines, targets = {}, {}
        if v2 is not None:
            tv = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
            baselines["torchvision v2 AutoAugment per image"] = lambda: [tv(x[i]) for i in range(N)]
            targets["torchvision v2 AutoAugment per image"] = per_image_target
            baselines["torchvision v2 AutoAugment whole batch (one op for all)"] = lambda: tv(x)
        if kauto is not None:
            ka = kauto.AutoAugment("imagenet").to(device)
            xf = x.float() / 255
            baselines["kornia AutoAugment (float batch)"] = lambda: ka(xf)
            if not cpu:
                targets["kornia AutoAugment (float batch)"] = 1.0
        if not cpu:
            dst = torch.empty_like(x)
            baselines["device copy of the batch"] = lambda: dst.copy_(x)
            targets["device copy of the batch"] = 0.2
        with torch.no_grad():
            rows += compare("policy", "apply_ops, random op of 16 per image", size, device, ours, baselines,
                            targets, t, note="" if kauto is not None else "kornia not installed: skipped")
            if v2 is not None:
                aa = AutoAugment("imagenet")
                g = torch.Generator().manual_seed(1)
                rows += compare("policy", "AutoAugment module, 2-op ImageNet sub-policy per image", size, device,
                                lambda: aa(x, generator=g),
                                {"torchvision v2 AutoAugment per image": baselines[
                                    "torchvision v2 AutoAugment per image"]}, None, t)
    return rows
