"""The fill of apply_ops' geometric ops and Cutout: exactly ``fill / 255`` in the image's dtype, one value
on CPU and CUDA (csrc/policy/policy.h, ``fill_value``).

A float64 image must get the double quotient ``fill / 255`` itself: rounding it through float32 first
(what the CUDA kernels once did) moves it by ~1e-9, which every tolerance of the parity tests hides, so
these tests compare with ``==``. Each image of the batch is a constant 0.25 (never a fill value) that
one op moves or cuts, so every pixel that is not 0.25 afterwards is fill.
"""
import math

import pytest
import torch

import fastaug
from fastaug.ops.policy import OP_IDS

H, W = 12, 17
BACKGROUND = 0.25  # exact in every dtype, and k / 255 for no integer k
# Fills whose float32 rounding changes the float64 value (checked below, so the tests can fail).
FILLS = [1, 37, 128, 200, 254]
OPS = ["TranslateX", "TranslateY", "ShearX", "Rotate", "Cutout"]


def _expected_fill(fill, dtype):
    """fill / 255 in double, rounded once to dtype (uint8 images are filled with fill itself)."""
    if dtype == torch.uint8:
        return torch.tensor(fill, dtype=torch.uint8)
    return (torch.tensor(fill, dtype=torch.float64) / 255).to(dtype)


def _run(fill, dtype, device):
    """One image per op in OPS, all at magnitude 1 and sign +1, Cutout centred in the image."""
    N = len(OPS)
    bg = 64 if dtype == torch.uint8 else BACKGROUND
    x = torch.full((N, 3, H, W), bg, dtype=dtype, device=device)
    op = torch.tensor([OP_IDS[name] for name in OPS], device=device)
    mag = torch.ones(N, device=device)
    center = torch.tensor([[H // 2, W // 2]] * N, device=device)
    return fastaug.apply_ops(x, op, mag, fill=fill, center=center), bg


def _translate_x_fill_columns():
    """Output columns of TranslateX at m = 1, s = +1 that read outside the image, by Pillow's rule for
    translations: source column floor(v + 0.5 + x) with v = (150/331) W (fastaug.apply_ops docs)."""
    v = 150.0 / 331.0 * W
    return sum(1 for col in range(W) if not 0 <= math.floor(v + 0.5 + col) < W)


def test_fills_differ_under_float32_rounding():
    """The premise of the float64 tests: each chosen fill / 255 is not a float32 number."""
    for fill in FILLS:
        exact = torch.tensor(fill, dtype=torch.float64) / 255
        assert exact.float().double() != exact, fill


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.uint8])
@pytest.mark.parametrize("fill", FILLS)
def test_fill_is_fill_over_255_in_the_image_dtype(fill, dtype):
    out, bg = _run(fill, dtype, "cpu")
    want = _expected_fill(fill, dtype)
    for n, name in enumerate(OPS):
        filled = out[n][out[n] != bg]
        assert filled.numel() > 0, f"{name} wrote no fill"
        assert torch.all(filled == want), f"{name}: fill {filled.unique().tolist()} != {want.item()!r}"
    n_fill = int((out[OPS.index("TranslateX")] != bg).sum())
    assert n_fill == 3 * H * _translate_x_fill_columns()


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.uint8])
@pytest.mark.parametrize("fill", FILLS)
def test_cuda_fill_matches_cpu_exactly(fill, dtype):
    out_gpu, bg = _run(fill, dtype, "cuda")
    out_gpu = out_gpu.cpu()
    want = _expected_fill(fill, dtype)
    for n, name in enumerate(OPS):
        filled = out_gpu[n][out_gpu[n] != bg]
        assert filled.numel() > 0, f"{name} wrote no fill on CUDA"
        assert torch.all(filled == want), f"{name}: CUDA fill {filled.unique().tolist()} != {want.item()!r}"
    if dtype in (torch.float64, torch.float32, torch.uint8):  # the CPU kernels take these dtypes
        out_cpu, _ = _run(fill, dtype, "cpu")
        assert torch.equal(out_gpu, out_cpu)
