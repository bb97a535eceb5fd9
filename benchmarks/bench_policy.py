"""Policy ops family: fastaug.apply_ops (a random op of the 16 per image) vs a copy and torchvision / kornia.

``apply_ops`` is timed forward on uint8 and float32 batches, and backward only and forward+backward on
float32 (x requires grad), with the copy that moves the same bytes (forward: read the batch, write
the output, i.e. a copy of the batch; backward: grad_out and x read, the gradients of x and of the
SamplePairing partners written). Baselines, forward only, in the same run:

* torchvision v2 ``AutoAugment`` called once per image: the only way to get per-image ops there;
* torchvision v2 ``AutoAugment`` called once on the whole batch (one sub-policy for all images);
* kornia's ``AutoAugment`` on a float RGB batch, if kornia is installed (the ``bench`` extra). It draws one
  2-op sub-policy per call for the whole batch (each op's probability and magnitude per image), so it is
  also timed against fastaug's ``AutoAugment`` module, the nearest job (a sub-policy drawn per image).

Sizes: N=1 1x8x8 (the per-call fixed cost), N=64 1x28x28, N=256 3x32x32, N=64 3x224x224.
Targets: CPU uint8 >= 20x the per-image loop at 32x32 and >= 5x at 224x224, forward <= 8x the copy
at 32x32 and <= 4x at 224x224; CUDA >= 50x the per-image loop, faster than kornia, forward <= 5x a
device copy. A second case times fastaug's AutoAugment module (a 2-op ImageNet sub-policy per image,
one call) against the per-image loop.
"""
import torch

import fastaug
from fastaug.augment import AutoAugment

from .harness import KernelCall, compare, compare_kernel, nbytes

PER_IMAGE = "torchvision v2 AutoAugment per image"
WHOLE_BATCH = "torchvision v2 AutoAugment whole batch (one op for all)"
KORNIA = "kornia AutoAugment (float batch, one sub-policy per call)"

CPU_SIZES = [(1, 1, 8, 8), (64, 1, 28, 28), (256, 3, 32, 32), (64, 3, 224, 224)]
CUDA_SIZES = [(1, 1, 8, 8), (256, 3, 224, 224)]
QUICK_SIZES = [(1, 1, 8, 8), (16, 3, 32, 32)]


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


def _targets(device, H, dtype):
    """(speed-up targets per baseline, targets of ours alone: the forward against a copy of the batch)."""
    if device != "cpu":
        return {PER_IMAGE: {"fwd speed-up": 50}, KORNIA: {"fwd speed-up": 1.0}}, {"fwd/copy": 5}
    if dtype != torch.uint8 or H < 32:
        return {}, {}
    return {PER_IMAGE: {"fwd speed-up": 20 if H == 32 else 5}}, {"fwd/copy": 8 if H == 32 else 4}


def run(device, quick=False):
    sizes = QUICK_SIZES if quick else {"cpu": CPU_SIZES, "cuda": CUDA_SIZES}[device]
    t = 0.1 if quick else (1.0 if device == "cpu" else 0.5)
    rounds = 1 if quick else 3
    v2, kauto = _torchvision(), _kornia()
    gen = torch.Generator().manual_seed(0)
    rows = []
    for N, C, H, W in sizes:
        x8 = torch.randint(0, 256, (N, C, H, W), generator=gen, dtype=torch.uint8).to(device)
        op = torch.randint(0, 16, (N,), generator=gen).to(device)
        mag = torch.rand(N, generator=gen).to(device)
        sign = torch.where(torch.rand(N, generator=gen) < 0.5, -1.0, 1.0).to(device)
        partner = torch.randint(0, N, (N,), generator=gen).to(device)
        center = torch.stack([torch.randint(0, H, (N,), generator=gen), torch.randint(0, W, (N,), generator=gen)],
                             1).to(device)
        for x in (x8, (x8.float() / 255).requires_grad_()):
            size = f"N={N} {C}x{H}x{W} {str(x.dtype).replace('torch.', '')}"
            floating = x.is_floating_point()
            grad = torch.randn(x.shape, generator=gen).to(device) if floating else None
            ours = KernelCall(lambda: fastaug.apply_ops(x, op, mag, sign, partner, center=center),
                              (x,) if floating else (), grad)
            stocks = {}
            if v2 is not None:
                tv = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
                stocks[PER_IMAGE] = KernelCall(lambda: [tv(x[i]) for i in range(N)])
                stocks[WHOLE_BATCH] = KernelCall(lambda: tv(x))
            if kauto is not None and floating and C == 3:  # kornia's colour ops take RGB only
                ka = kauto.AutoAugment("imagenet").to(device)
                stocks[KORNIA] = KernelCall(lambda: ka(x))
            targets, own = _targets(device, H, x.dtype)
            rows += compare_kernel("policy", "apply_ops, random op of 16 per image", size, device, ours, stocks,
                                   bytes_fwd=2 * nbytes(x), bytes_bwd=4 * nbytes(x), targets=targets,
                                   own_targets=own, min_run_time=t, rounds=rounds,
                                   note="kornia not installed: skipped" if kauto is None else
                                   "" if C == 3 or not floating else "kornia's AutoAugment takes RGB only: no row")
        if v2 is not None and C == 3:
            aa = AutoAugment("imagenet")
            g = torch.Generator().manual_seed(1)
            tv = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
            with torch.no_grad():
                rows += compare("policy", "AutoAugment module, 2-op ImageNet sub-policy per image",
                                f"N={N} {C}x{H}x{W} uint8", device, lambda: aa(x8, generator=g),
                                {PER_IMAGE: lambda: [tv(x8[i]) for i in range(N)]}, None, t, rounds=rounds)
                if kauto is not None:  # kornia's AutoAugment's job: 2-op ImageNet sub-policies on a float batch
                    xf = x8.float() / 255
                    ka = kauto.AutoAugment("imagenet").to(device)
                    rows += compare("policy", "AutoAugment module, 2-op ImageNet sub-policy per image",
                                    f"N={N} {C}x{H}x{W} float32", device, lambda: aa(xf, generator=g),
                                    {KORNIA: lambda: ka(xf)}, None, t, rounds=rounds)
    return rows
