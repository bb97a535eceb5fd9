"""What only fastaug.warp and fastaug.affine_flow_warp have: flows far outside the image, identities,
the constant-parameter case as affine_grid, which gradients are computed, determinism, CUDA-only sizes.
Parity with the grid_sample references, gradcheck, layouts, compile, export and bad arguments for every
op: the spec-driven files (tests/ops/opinfo.py, test_spec_*.py)."""
import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

import fastaug
from fastaug import reference
from fastaug.ops import _validate
from opinfo import PADDING, WARP, seeded


@pytest.mark.parametrize("padding_mode", PADDING)
def test_warp_far_outside_the_image(device, padding_mode):
    x = seeded((2, 3, 6, 5), device, normal=True)
    flow = seeded((2, 2, 6, 5), device, seed=3, normal=True) * 1e4
    flow[0, 0, 0, 0] = 1e30
    flow[1, 1, 2, 2] = -1e30
    out = fastaug.warp(x, flow, padding_mode=padding_mode)
    assert torch.isfinite(out).all()
    ref = reference.warp(x, flow, padding_mode)
    if padding_mode == "reflection":
        # Reflecting 1e30 pixels is ill-conditioned (grid_sample's normalisation alone moves it by
        # ~1e14 pixels): only require a finite sample from inside the image there.
        assert ((out[0, :, 0, 0] >= x[0].amin((1, 2))) & (out[0, :, 0, 0] <= x[0].amax((1, 2)))).all()
        out[0, :, 0, 0] = ref[0, :, 0, 0]
        out[1, :, 2, 2] = ref[1, :, 2, 2]
    torch.testing.assert_close(out, ref, **WARP.tol[torch.float64])


def test_affine_flow_warp_far_outside(device):
    x = seeded((2, 3, 8, 8), device, normal=True)
    s_w, s_b = seeded((2, 4, 8, 8), device, seed=1, normal=True), seeded((2, 2, 8, 8), device, seed=2, normal=True) * 1e6
    out = fastaug.affine_flow_warp(x, s_w, s_b)
    torch.testing.assert_close(out, reference.affine_flow_warp(x, s_w, s_b), **WARP.tol[torch.float64])


def test_zero_flow_and_zero_params_give_back_x(device):
    x = seeded((2, 3, 9, 11), device, normal=True)
    assert torch.equal(fastaug.warp(x, torch.zeros(2, 2, 9, 11, dtype=x.dtype, device=device)), x)
    zw, zb = torch.zeros(2, 4, 9, 11, dtype=x.dtype, device=device), torch.zeros(2, 2, 9, 11, dtype=x.dtype, device=device)
    for k in (1, 4):
        assert torch.equal(fastaug.affine_flow_warp(x, zw, zb, smooth=k), x)


def test_constant_params_are_a_global_affine_map(device):
    """Spatially constant s_w, s_b: one affine map about the image centre, i.e. affine_grid."""
    x = seeded((2, 3, 12, 10), device, normal=True)
    A = torch.tensor([[[0.1, -0.2], [0.15, 0.05]], [[-0.1, 0.0], [0.3, 0.2]]], dtype=x.dtype, device=device)
    t = torch.tensor([[0.1, -0.05], [0.0, 0.2]], dtype=x.dtype, device=device)
    s_w = A.reshape(2, 4, 1, 1).expand(2, 4, 12, 10)
    s_b = t.reshape(2, 2, 1, 1).expand(2, 2, 12, 10)
    theta = torch.cat([torch.eye(2, dtype=x.dtype, device=device) + A, t[:, :, None]], dim=2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    ref = F.grid_sample(x, grid, align_corners=False)
    torch.testing.assert_close(fastaug.affine_flow_warp(x, s_w, s_b), ref, **WARP.tol[torch.float64])


def test_x_gradient_only_when_required():
    x = seeded((1, 2, 5, 5), normal=True)
    s_w = seeded((1, 4, 5, 5), scale=0.2, seed=1, normal=True).requires_grad_()
    s_b = seeded((1, 2, 5, 5), scale=0.2, seed=2, normal=True)
    gx, g_sw, g_sb = torch.ops.fastaug.affine_flow_warp_backward(torch.ones_like(x), x, s_w, s_b, 4, 0, False)
    assert gx.numel() == 0 and g_sw.shape == s_w.shape
    fastaug.affine_flow_warp(x, s_w, s_b).sum().backward()
    assert x.grad is None and s_w.grad is not None


def test_parameter_gradients_are_deterministic(device):
    x = seeded((3, 3, 20, 24), device, torch.float32, normal=True)
    s_w = seeded((3, 4, 20, 24), device, torch.float32, 1, 0.3, normal=True).requires_grad_()
    s_b = seeded((3, 2, 20, 24), device, torch.float32, 2, 0.3, normal=True).requires_grad_()
    grads = [torch.autograd.grad(fastaug.affine_flow_warp(x, s_w, s_b).square().sum(), (s_w, s_b)) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_cuda_tensor_in_cpu_only_build_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_validate, "HAS_CUDA_KERNELS", False)
    with FakeTensorMode():
        x, flow = torch.empty(1, 3, 4, 4, device="cuda"), torch.empty(1, 2, 4, 4, device="cuda")
        with pytest.raises(RuntimeError, match="no CUDA kernels .* built CPU-only"):
            fastaug.warp(x, flow)


# ---- CUDA only ----------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("smooth", [5, 11])  # 11: the tiled (shared-memory) box filter for wide windows
def test_cuda_matches_cpu_including_gradients(smooth):
    x = seeded((2, 3, 37, 70), normal=True).requires_grad_()
    s_w = seeded((2, 4, 37, 70), scale=0.3, seed=1, normal=True).requires_grad_()
    s_b = seeded((2, 2, 37, 70), scale=0.3, seed=2, normal=True).requires_grad_()
    g = seeded((2, 3, 37, 70), seed=3, normal=True)
    cpu = torch.autograd.grad(fastaug.affine_flow_warp(x, s_w, s_b, smooth=smooth), (x, s_w, s_b), g)
    inputs = [t.detach().cuda().requires_grad_() for t in (x, s_w, s_b)]
    gpu = torch.autograd.grad(fastaug.affine_flow_warp(*inputs, smooth=smooth), inputs, g.cuda())
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, atol=1e-10, rtol=1e-10)


@pytest.mark.cuda
def test_more_than_2_31_elements_indexed_correctly():
    N, C, H, W = 1, 2, 32768, 32769  # 2^31 + 65536 elements (4 GiB in float16)
    x = torch.empty(N, C, H, W, dtype=torch.float16, device="cuda")
    x[:, 0] = 1.0
    x[:, 1, :-8] = 0.0
    x[:, 1, -8:] = torch.arange(W, device="cuda", dtype=torch.float16) % 7  # only the tail rows
    flow = torch.zeros(N, 2, H, W, dtype=torch.float16, device="cuda")
    flow[:, 0] = 1.0  # sample one pixel to the right: past 2^31 the column shift must still be exact
    out = fastaug.warp(x, flow)
    expected_tail = torch.cat([x[0, 1, -8:, 1:], torch.zeros(8, 1, device="cuda", dtype=x.dtype)], 1)
    assert torch.equal(out[0, 1, -8:], expected_tail)
    assert torch.equal(out[0, 0, -1, :-1], torch.ones(W - 1, device="cuda", dtype=x.dtype))


@pytest.fixture
def deterministic():
    before, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before, warn_only=warn)


def _warping_calls(device):
    x = seeded((2, 3, 9, 11), device, torch.float32, normal=True)
    flow = seeded((2, 2, 9, 11), device, torch.float32, 1, 2.0, normal=True)
    s_w = seeded((2, 4, 9, 11), device, torch.float32, 2, 0.3, normal=True)
    s_b = seeded((2, 2, 9, 11), device, torch.float32, 3, 0.3, normal=True)
    params = seeded((2, 18, 9, 11), device, torch.float32, 4, 0.1, normal=True)
    return {"warp": (lambda a, b: fastaug.warp(a, b[0]), x, (flow,)),
            "affine_flow_warp": (lambda a, b: fastaug.affine_flow_warp(a, *b), x, (s_w, s_b)),
            "transform": (lambda a, b: fastaug.transform(a, b[0]), x, (params,))}


@pytest.mark.parametrize("op", ["warp", "affine_flow_warp", "transform"])
def test_deterministic_mode_on_cpu_runs_every_gradient_the_same(deterministic, op):
    """The CPU backwards are deterministic: deterministic mode lets them run, and they repeat bit for bit."""
    fn, x, params = _warping_calls("cpu")[op]
    x = x.requires_grad_()
    params = tuple(p.requires_grad_() for p in params)
    runs = [torch.autograd.grad(fn(x, params).square().sum(), (x, *params)) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.cuda
@pytest.mark.parametrize("op", ["warp", "affine_flow_warp", "transform"])
def test_cuda_deterministic_mode_refuses_the_scattered_x_gradient_only(deterministic, op):
    """On CUDA the gradient for x is a scatter with float atomics: deterministic mode raises there, as
    grid_sample's CUDA backward does; the parameters' gradients (a gather) still run."""
    fn, x, params = _warping_calls("cuda")[op]
    params = tuple(p.requires_grad_() for p in params)
    torch.autograd.grad(fn(x, params).square().sum(), params)  # no x gradient: allowed
    x = x.requires_grad_()
    with pytest.raises(RuntimeError, match=f"{op}_backward_cuda.*does not have a deterministic implementation"):
        torch.autograd.grad(fn(x, params).square().sum(), x)
