"""fastaug.apply_ops: Pillow parity per op, identities, chains, float vs uint8, gradients, errors.

Pillow is the oracle (docs/design.md K3; tests/oracles/pillow_policy.py). Images are real photos from scikit-image, resized small, and
random images, in RGB and grey. Kept small so the whole file runs in seconds.
"""
import numpy as np
import pytest
import torch

import fastaug
from fastaug.ops.policy import OP_IDS, OP_NAMES

pytest.importorskip("PIL", reason="Pillow is the oracle of the policy ops (pip install pillow)")
skdata = pytest.importorskip("skimage.data", reason="the test photos come from scikit-image")
from PIL import Image  # noqa: E402
from oracles.pillow_policy import EXACT, pillow_op  # noqa: E402

FILL = 128


def _photos():
    """Four RGB uint8 HWC images: two real photos (48x40) and two random ones."""
    rng = np.random.RandomState(0)
    astro = np.asarray(Image.fromarray(skdata.astronaut()).resize((40, 48), Image.BILINEAR))
    cat = np.asarray(Image.fromarray(skdata.chelsea()).resize((40, 48), Image.BILINEAR))
    noise = rng.randint(0, 256, (48, 40, 3), dtype=np.uint8)
    low = rng.randint(60, 140, (48, 40, 3), dtype=np.uint8)  # narrow range: AutoContrast/Equalize matter
    return [astro, cat, noise, low]


PHOTOS = _photos()


def _batch(grey):
    imgs = [np.asarray(Image.fromarray(a).convert("L"))[..., None] if grey else a for a in PHOTOS]
    imgs = imgs + [np.ascontiguousarray(np.flip(a, 0)) for a in imgs]  # 8 images
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous(), imgs


def _params(name, N, seed):
    g = torch.Generator().manual_seed(seed)
    mag = torch.rand(N, generator=g)
    mag[:3] = torch.tensor([1.0, 0.5, 1.0 / 9])
    sign = torch.where(torch.rand(N, generator=g) < 0.5, -1.0, 1.0)
    partner = torch.randint(0, N, (N,), generator=g)
    center = torch.stack([torch.randint(-4, 52, (N,), generator=g), torch.randint(-4, 44, (N,), generator=g)], 1)
    op = torch.full((N,), OP_IDS[name], dtype=torch.int64)
    return op, mag, sign, partner, center


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize("name", OP_NAMES)
def test_pillow_parity(name, grey):
    x, imgs = _batch(grey)
    N = x.shape[0]
    op, mag, sign, partner, center = _params(name, N, seed=OP_IDS[name])
    out = fastaug.apply_ops(x, op, mag, sign, partner, fill=FILL, center=center)
    tol = 0 if name in EXACT else 1
    for n in range(N):
        ref = pillow_op(name, imgs[n], mag[n].item(), sign[n].item(), imgs[partner[n]], center[n].tolist())
        got = out[n].permute(1, 2, 0).numpy()
        diff = np.abs(got.astype(int) - ref.astype(int))
        assert diff.max() <= tol, f"{name} image {n} m={mag[n].item():.4f} s={sign[n].item()}: max diff {diff.max()}"


def test_rotation_many_angles():
    """Rotation parity over many angles (fixed point + Python matrix rounding reproduced)."""
    x, imgs = _batch(False)
    N = x.shape[0]
    for seed in range(3):
        g = torch.Generator().manual_seed(100 + seed)
        mag = torch.rand(N, generator=g)
        sign = torch.where(torch.rand(N, generator=g) < 0.5, -1.0, 1.0)
        out = fastaug.apply_ops(x, torch.full((N,), OP_IDS["Rotate"]), mag, sign)
        for n in range(N):
            ref = pillow_op("Rotate", imgs[n], mag[n].item(), sign[n].item())
            assert np.array_equal(out[n].permute(1, 2, 0).numpy(), ref)


@pytest.mark.parametrize("name", [n for n in OP_NAMES if n not in ("AutoContrast", "Invert", "Equalize")])
def test_magnitude_zero_is_identity(name, device):
    x, _ = _batch(False)
    x = x.to(device)
    N = x.shape[0]
    op = torch.full((N,), OP_IDS[name], device=device)
    sign = torch.tensor([1.0, -1.0] * (N // 2), device=device)
    assert torch.equal(fastaug.apply_ops(x, op, torch.zeros(N, device=device), sign), x)
    xf = x.double() / 255
    torch.testing.assert_close(fastaug.apply_ops(xf, op, torch.zeros(N, device=device), sign), xf, atol=1e-6, rtol=0)


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
def test_float_matches_uint8(grey, device):
    """Every op, float image = uint8 / 255: within 1/255 of the uint8 result."""
    x, _ = _batch(grey)
    x = x.to(device)
    N = x.shape[0]
    g = torch.Generator().manual_seed(7)
    for name in OP_NAMES:
        op = torch.full((N,), OP_IDS[name], device=device)
        mag = torch.rand(N, generator=g).to(device)
        sign = torch.where(torch.rand(N, generator=g) < 0.5, -1.0, 1.0).to(device)
        out8 = fastaug.apply_ops(x, op, mag, sign).double()
        for dtype in (torch.float32, torch.float64):
            outf = fastaug.apply_ops(x.to(dtype) / 255, op, mag, sign).double() * 255
            err = (outf - out8).abs().max().item()
            assert err <= 1.0 + 1e-3, f"{name} {dtype}: {err}"


def test_mixed_ops_batch_equals_per_op_calls(device):
    """One call with a different op per image equals per-image calls."""
    x, _ = _batch(False)
    x = torch.cat([x, x.flip(3)]).to(device)  # 16 images: every op once
    N = x.shape[0]
    g = torch.Generator().manual_seed(3)
    op = torch.randperm(16, generator=g).to(device)
    mag = torch.rand(N, generator=g).to(device)
    sign = torch.where(torch.rand(N, generator=g) < 0.5, -1.0, 1.0).to(device)
    partner = torch.randint(0, N, (N,), generator=g).to(device)
    center = torch.randint(0, 40, (N, 2), generator=g).to(device)
    out = fastaug.apply_ops(x, op, mag, sign, partner, center=center)
    for n in range(N):
        same = torch.full((N,), int(op[n]), device=device)
        ref = fastaug.apply_ops(x, same, mag, sign, partner, center=center)[n]
        assert torch.equal(out[n], ref), OP_NAMES[int(op[n])]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_chain_equals_sequential_steps(dtype, device):
    x, _ = _batch(False)
    x = x.to(device)
    if dtype != torch.uint8:
        x = x.to(dtype) / 255
    N, L = x.shape[0], 3
    g = torch.Generator().manual_seed(11)
    op = torch.randint(-1, 16, (N, L), generator=g).to(device)
    mag = torch.rand(N, L, generator=g).to(device)
    sign = torch.where(torch.rand(N, L, generator=g) < 0.5, -1.0, 1.0).to(device)
    partner = torch.randint(0, N, (N, L), generator=g).to(device)
    center = torch.randint(0, 40, (N, L, 2), generator=g).to(device)
    out = fastaug.apply_ops(x, op, mag, sign, partner, center=center)
    ref = x
    for l in range(L):
        ref = torch.ops.fastaug.apply_ops(ref, x, op[:, l:l + 1], mag[:, l:l + 1], sign[:, l:l + 1],
                                          partner[:, l:l + 1], center[:, l:l + 1], 128)
    assert torch.equal(out, ref)


def test_non_contiguous_and_empty(device):
    x, _ = _batch(False)
    x = x.to(device)
    N = x.shape[0]
    op = torch.arange(N, device=device)
    mag = torch.full((N,), 0.7, device=device)
    xt = x.transpose(2, 3).contiguous().transpose(2, 3)  # same values, other strides
    assert not xt.is_contiguous()
    assert torch.equal(fastaug.apply_ops(xt, op, mag), fastaug.apply_ops(x, op, mag))
    empty = torch.zeros(0, 3, 8, 8, dtype=torch.uint8, device=device)
    assert fastaug.apply_ops(empty, torch.zeros(0, dtype=torch.int64, device=device), 0.5).shape == empty.shape


# ---- gradients --------------------------------------------------------------------------------------

DIFFERENTIABLE = [n for n in OP_NAMES if n not in ("AutoContrast", "Equalize", "Posterize")]


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradcheck(name, device):
    g = torch.Generator().manual_seed(OP_IDS[name])
    N, C, H, W = 3, 3, 7, 6
    # Pixel values away from the 8-bit level boundaries (Solarize's threshold compares levels).
    x = ((torch.randint(0, 255, (N, C, H, W), generator=g).double() + 0.3) / 255).to(device).requires_grad_()
    op = torch.full((N,), OP_IDS[name], device=device)
    mag = torch.tensor([1.0, 0.6, 0.3], device=device)
    sign = torch.tensor([1.0, -1.0, 1.0], device=device)
    partner = torch.tensor([1, 1, 0], device=device)
    center = torch.tensor([[3, 3], [0, 5], [6, 1]], device=device)
    torch.autograd.gradcheck(lambda t: fastaug.apply_ops(t, op, mag, sign, partner, center=center), (x,),
                             fast_mode=True)


def test_gradcheck_chain(device):
    g = torch.Generator().manual_seed(5)
    x = ((torch.randint(0, 255, (3, 3, 6, 7), generator=g).double() + 0.3) / 255).to(device).requires_grad_()
    op = torch.tensor([[0, 10], [15, 4], [13, 15]], device=device)
    mag = torch.tensor([[0.5, 0.4], [0.8, 0.9], [0.7, 0.2]], device=device)
    torch.autograd.gradcheck(lambda t: fastaug.apply_ops(t, op, mag, partner=torch.tensor(
        [[2, 2], [0, 0], [1, 0]], device=device)), (x,), fast_mode=True)


def test_non_differentiable_ops_give_zero_grad():
    x = torch.rand(3, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    op = torch.tensor([OP_IDS["AutoContrast"], OP_IDS["Equalize"], OP_IDS["Posterize"]])
    fastaug.apply_ops(x, op, torch.full((3,), 0.5)).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


# ---- registration: opcheck, torch.compile -----------------------------------------------------------

def _raw_args(x, N, L=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    dev = x.device
    return (x, x, torch.randint(-1, 16, (N, L), generator=g).to(dev), torch.rand(N, L, generator=g).to(dev),
            torch.where(torch.rand(N, L, generator=g) < 0.5, -1.0, 1.0).to(dev),
            torch.randint(0, N, (N, L), generator=g).to(dev), torch.randint(0, 8, (N, L, 2), generator=g).to(dev), 128)


def test_opcheck(device):
    x8 = torch.randint(0, 256, (4, 3, 9, 8), dtype=torch.uint8, device=device)
    torch.library.opcheck(torch.ops.fastaug.apply_ops.default, _raw_args(x8, 4, L=2))
    xf = torch.rand(4, 3, 9, 8, dtype=torch.float64, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.fastaug.apply_ops.default, _raw_args(xf, 4, L=1, seed=1))


def test_torch_compile_fullgraph(device):
    x = torch.randint(0, 256, (6, 3, 10, 12), dtype=torch.uint8, device=device)
    op = torch.tensor([[0, 5], [4, 7], [10, 14], [15, 2], [13, 8], [9, 11]], device=device)
    mag = torch.rand(6, 2, device=device)

    def f(x, op, mag):
        return fastaug.apply_ops(x, op, mag, fill=0)

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x, op, mag), f(x, op, mag))


# ---- bad input --------------------------------------------------------------------------------------

def _ok(N=4):
    return torch.randint(0, 256, (N, 3, 8, 8), dtype=torch.uint8), torch.zeros(N, dtype=torch.int64), torch.zeros(N)


@pytest.mark.parametrize("mutate, exc, word", [
    (lambda x, op, m: (x, op + 16, m), ValueError, "op"),
    (lambda x, op, m: (x, op - 2, m), ValueError, "op"),
    (lambda x, op, m: (x, op, m + 1.5), ValueError, "magnitude"),
    (lambda x, op, m: (x, op, m - 0.1), ValueError, "magnitude"),
    (lambda x, op, m: (x.int(), op, m), TypeError, "x"),
    (lambda x, op, m: (x[:, :2], op, m), ValueError, "channels"),
    (lambda x, op, m: (torch.cat([x, x[:, :1]], 1), op, m), ValueError, "channels"),
    (lambda x, op, m: (x[0], op, m), ValueError, "x"),
    (lambda x, op, m: (x, op[:3], m), ValueError, "op"),
    (lambda x, op, m: (x, op, m[:3]), ValueError, "magnitude"),
    (lambda x, op, m: (x, op.float(), m), TypeError, "op"),
    (lambda x, op, m: ("img", op, m), TypeError, "x"),
])
def test_bad_input(mutate, exc, word):
    x, op, m = mutate(*_ok())
    with pytest.raises(exc, match=word):
        fastaug.apply_ops(x, op, m)


def test_bad_partner_sign_center_fill():
    x, op, m = _ok()
    with pytest.raises(ValueError, match="partner"):
        fastaug.apply_ops(x, op + 15, m, partner=torch.tensor([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="partner"):
        fastaug.apply_ops(x, op, m, partner=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="partner"):
        fastaug.apply_ops(x, op, m, partner=torch.zeros(4))
    with pytest.raises(ValueError, match="sign"):
        fastaug.apply_ops(x, op, m, sign=torch.ones(5))
    with pytest.raises(ValueError, match="center"):
        fastaug.apply_ops(x, op, m, center=torch.zeros(4, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="fill"):
        fastaug.apply_ops(x, op, m, fill=300)
    with pytest.raises(TypeError, match="fill"):
        fastaug.apply_ops(x, op, m, fill=0.5)


def test_raw_op_rejects_bad_values_on_cpu():
    x, op, m = _ok()
    args = list(_raw_args(x, 4))
    args[2] = torch.full((4, 1), 16)
    with pytest.raises(RuntimeError, match="op ids"):
        torch.ops.fastaug.apply_ops(*args)


# ---- CUDA ---------------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype):
    x, _ = _batch(False)
    x = torch.cat([x, x.flip(2)])
    if dtype != torch.uint8:
        x = x.to(dtype) / 255
    args = _raw_args(x, x.shape[0], L=3, seed=9)
    out_cpu = torch.ops.fastaug.apply_ops(*args)
    out_gpu = torch.ops.fastaug.apply_ops(*[a.cuda() if isinstance(a, torch.Tensor) else a for a in args])
    if dtype == torch.uint8:
        assert torch.equal(out_gpu.cpu(), out_cpu)
    else:
        torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=1e-5, rtol=0)


@pytest.mark.cuda
def test_cuda_backward_matches_cpu():
    g = torch.Generator().manual_seed(2)
    x = ((torch.randint(0, 255, (16, 3, 9, 11), generator=g).double() + 0.3) / 255)
    op = torch.arange(16)
    mag = torch.rand(16, generator=g)
    grad = torch.randn(16, 3, 9, 11, generator=g, dtype=torch.float64)
    res = []
    for dev in ("cpu", "cuda"):
        xd = x.detach().to(dev).requires_grad_()  # a fresh leaf on each device
        fastaug.apply_ops(xd, op.to(dev), mag.to(dev)).backward(grad.to(dev))
        res.append(xd.grad.cpu())
    torch.testing.assert_close(res[1], res[0], atol=1e-10, rtol=0)


@pytest.mark.cuda
def test_cuda_half():
    x = torch.rand(8, 3, 16, 16, device="cuda")
    # Ops without 8-bit quantisation (a half-precision pixel may round to the next level).
    op = torch.tensor([0, 2, 4, 6, 10, 11, 12, 13], device="cuda")
    mag = torch.rand(8, device="cuda")
    ref = fastaug.apply_ops(x, op, mag)
    for dt in (torch.float16, torch.bfloat16):
        out = fastaug.apply_ops(x.to(dt), op, mag)
        assert out.dtype == dt
        torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=0)
