"""The image ops on shapes and settings drawn at random, against their readable references.

The spec samples (tests/ops/opinfo.py) are chosen by hand; the fast CPU copies (csrc/common/cpu_kernels.h)
have vector bodies, masked tails, blocks of rows and border paths whose edges fall at widths and heights
nobody chose. Here every case draws its own: batch 1-4, grey or RGB, heights and widths around the
vector widths (1, 7-9, 15-17, 31-33, 63-65) or anything up to 120, every padding mode, align_corners,
smoothing windows up to the image size, flows from none to 20 px (whole-pixel shifts included), and
contiguous, channels-last or strided inputs. Output and every gradient must match fastaug.reference
(F.pad + avg_pool2d, grid_sample, einsum) evaluated by autograd, in float64.

One exception, by construction: where a flow puts samples exactly on pixel centres (no flow, or
whole-pixel shifts), the bilinear sample is not differentiable in the flow (its one-sided derivatives
differ), and the reference's normalised grid lands on either side of the kink after rounding; the
flow's gradient is then not compared (the output and the image's gradient still are).
"""
import random

import pytest
import torch

import fastaug
from fastaug import reference
from opinfo import strided

PADDINGS = ("zeros", "border", "reflection")
CASES_PER_GROUP, GROUPS = 25, 8


def _size(rng):
    return rng.choice([1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, rng.randint(1, 120)])


def _layout(t, rng):
    """The same values, contiguous, channels-last or every other element of a wider tensor."""
    r = rng.random()
    if r < 0.3:
        return t.contiguous(memory_format=torch.channels_last)
    return strided(t) if r < 0.5 else t


def _case(seed, device):
    """(description, fastaug call, reference call, inputs, names of the inputs whose gradient is compared)."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    N, C, H, W = rng.randint(1, 4), rng.choice([1, 3]), _size(rng), _size(rng)

    def draw(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(device)

    x = torch.rand(N, C, H, W, generator=g, dtype=torch.float64).to(device)
    k = rng.choice([1, 2, 3, 4, 5, 8, 9, min(64, max(H, W) + 3)])
    pm = rng.choice(PADDINGS)
    kind = rng.choice(["warp", "affine_flow_warp", "appearance", "transform"])
    if kind == "warp":
        ac, scale, whole = rng.random() < 0.5, rng.choice([0.0, 0.4, 3.0, 20.0]), rng.random() < 0.3
        flow = draw(N, 2, H, W, scale=scale)
        flow = flow.round() if whole else flow
        on_centres = whole or scale == 0.0
        return (f"warp {N}x{C}x{H}x{W} padding={pm} align_corners={ac} flow {scale} px{' whole' if whole else ''}",
                lambda a, f: fastaug.warp(a, f, padding_mode=pm, align_corners=ac),
                lambda a, f: reference.warp(a, f, padding_mode=pm, align_corners=ac),
                [x, flow], 1 if on_centres else 2)
    if kind == "affine_flow_warp":
        return (f"affine_flow_warp {N}x{C}x{H}x{W} smooth={k} padding={pm}",
                lambda a, w, b: fastaug.affine_flow_warp(a, w, b, smooth=k, padding_mode=pm),
                lambda a, w, b: reference.affine_flow_warp(a, w, b, smooth=k, padding_mode=pm),
                [x, draw(N, 4, H, W, scale=0.3), draw(N, 2, H, W, scale=0.3)], 3)
    if kind == "appearance":
        return (f"appearance {N}x{C}x{H}x{W} smooth={k}",
                lambda a, w, b: fastaug.appearance(a, w, b, smooth=k),
                lambda a, w, b: reference.appearance(a, w, b, smooth=k),
                [x, draw(N, C * C, H, W, scale=0.3), draw(N, C, H, W, scale=0.3)], 3)
    mode = rng.choice(["parallel", "serial"])
    return (f"transform {N}x{C}x{H}x{W} smooth={k} mode={mode} padding={pm}",
            lambda a, p: fastaug.transform(a, p, smooth=k, mode=mode, padding_mode=pm),
            lambda a, p: reference.transform(a, p, smooth=k, mode=mode, padding_mode=pm),
            [x, draw(N, 6 + C * C + C, H, W, scale=0.3)], 2)


@pytest.mark.parametrize("group", range(GROUPS))
def test_random_shapes_match_the_reference(group, device):
    for i in range(CASES_PER_GROUP):
        seed = 1000 * group + i
        rng = random.Random(seed + 7)
        name, ours, ref, inputs, compared = _case(seed, device)
        ins = [_layout(t, rng).requires_grad_() for t in inputs]
        refs = [t.detach().clone().requires_grad_() for t in inputs]
        out, expected = ours(*ins), ref(*refs)
        go = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype).to(device)
        got = (out,) + torch.autograd.grad(out, ins[:compared], go)
        want = (expected,) + torch.autograd.grad(expected, refs[:compared], go)
        for what, a, b in zip(["output"] + [f"gradient {j}" for j in range(compared)], got, want):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=lambda m: f"case {seed} ({name}), {what}: {m}")
