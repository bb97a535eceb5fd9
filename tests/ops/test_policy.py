"""What only fastaug.apply_ops has: Pillow parity of each op on real photos (exact where Pillow is
exact) on every CPU dispatch path, many rotation angles, magnitude 0 as the identity, float images against uint8 ones, a batch of
mixed ops against per-op calls, a chain against its steps, zero gradients of the non-differentiable ops,
CUDA half precision.

Pillow is the oracle (docs/design.md K3; tests/oracles/pillow_policy.py). Images are real photos from
scikit-image, resized small, and random images, in RGB and grey. Reference parity on random images,
gradcheck, layouts, compile, export and bad arguments: the spec-driven files (tests/ops/opinfo.py,
test_spec_*.py).
"""
import numpy as np
import pytest
import torch

import fastaug
from fastaug.ops.policy import OP_IDS, OP_NAMES
from opinfo import policy_params

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


# The CPU dispatch paths (tests/ops/test_policy_cpu_paths.py): the shared engine and the fast kernels
# at each instruction-set level.
CPU_PATHS = {"engine": {"FASTAUG_POLICY_CPU_ENGINE": "1"}, "default": {"FASTAUG_CPU_CAPABILITY": "default"},
             "avx2": {"FASTAUG_CPU_CAPABILITY": "avx2"}, "avx512": {"FASTAUG_CPU_CAPABILITY": "avx512"}}


@pytest.mark.parametrize("path", CPU_PATHS)
@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize("name", OP_NAMES)
def test_pillow_parity(name, grey, path, monkeypatch):
    for var in ("FASTAUG_POLICY_CPU_ENGINE", "FASTAUG_CPU_CAPABILITY"):
        monkeypatch.delenv(var, raising=False)
    for var, value in CPU_PATHS[path].items():
        monkeypatch.setenv(var, value)
    x, imgs = _batch(grey)
    N = x.shape[0]
    p = policy_params(N, 1, OP_IDS[name], "cpu", H=48, W=40, ops=torch.full((N, 1), OP_IDS[name]))
    out = fastaug.apply_ops(x, **p, fill=FILL)
    mag, sign = p["magnitude"][:, 0], p["sign"][:, 0]
    tol = 0 if name in EXACT else 1
    for n in range(N):
        ref = pillow_op(name, imgs[n], mag[n].item(), sign[n].item(), imgs[p["partner"][n, 0]],
                        p["center"][n, 0].tolist())
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


@pytest.mark.parametrize("side,m,k", [(5, 0.5, 1), (25, 0.5, 3), (10, 1, 2)])
def test_python_number_magnitude_and_cutout_side_rounds_half_up(side, m, k):
    """A Python float or int magnitude is that value for every image; the Cutout side is
    floor(0.2 min(H, W) m + 0.5) (0.5 -> 1 and 2.5 -> 3, where round-half-to-even gives 0 and 2)."""
    x = torch.full((2, 1, side, side), 7, dtype=torch.uint8)
    op = torch.full((2,), OP_IDS["Cutout"])
    out = fastaug.apply_ops(x, op, m, fill=0)
    assert torch.equal(out, fastaug.apply_ops(x, op, torch.full((2,), float(m)), fill=0))
    assert int((out[0] == 0).sum()) == k * k


# ---- gradients --------------------------------------------------------------------------------------

def test_non_differentiable_ops_give_zero_grad():
    x = torch.rand(3, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    op = torch.tensor([OP_IDS["AutoContrast"], OP_IDS["Equalize"], OP_IDS["Posterize"]])
    fastaug.apply_ops(x, op, torch.full((3,), 0.5)).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


# ---- CUDA ---------------------------------------------------------------------------------------------

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


def test_value_checks_under_vmap_and_meta():
    """Under vmap the Python value checks have no values to read and are skipped; the kernel's own
    checks still refuse a bad op id or partner. On meta tensors nothing is read and the shape comes back."""
    x = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8)
    op, m = torch.randint(0, 16, (2, 3)), torch.rand(2, 3)
    bad = op.clone()
    bad[1, 2] = 16
    with pytest.raises(RuntimeError, match="op ids must be in"):
        torch.vmap(fastaug.apply_ops)(x, bad, m)
    with pytest.raises(RuntimeError, match="partner"):
        torch.vmap(lambda a, b, c, p: fastaug.apply_ops(a, b, c, partner=p))(x, op, m, torch.full((2, 3), 5))
    with pytest.raises(ValueError, match="op ids must be in"):  # eagerly, the wrapper's sentence
        fastaug.apply_ops(x[1], bad[1], m[1])
    out = fastaug.apply_ops(x[0].to("meta"), bad[1].to("meta"), m[0].to("meta"))
    assert out.shape == x[0].shape and out.device.type == "meta"
