"""fastaug.warp and fastaug.affine_flow_warp against readable grid_sample references."""
import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

import fastaug
from fastaug import reference
from fastaug.ops import _validate

PADDING = ["zeros", "border", "reflection"]


# ---- readable references: the same maths through grid_sample (fastaug/reference.py) -----------------

reference_warp = reference.warp
reference_affine_flow_warp = reference.affine_flow_warp


def make(shape, dtype=torch.float64, device="cpu", scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(device=device, dtype=dtype)


def image(shape, dtype=torch.float64, device="cpu", seed=0):
    """A random image in [0, 1], the range images have (float32 tolerances assume it)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


TOL = {torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=1e-5, rtol=1e-5)}


def exact(reference, *tensors, **kwargs):
    """The reference evaluated in float64 on the (possibly float32) inputs, cast back.

    grid_sample's own float32 normalise/unnormalise round trip can be off by more than 1e-5 at large
    coordinates; comparing with the float64 evaluation measures our error, not the reference's.
    """
    return reference(*(t.double() for t in tensors), **kwargs).to(tensors[0].dtype)

SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (3, 1, 16, 9), (1, 4, 13, 32), (2, 2, 33, 40)]


# ---- parity ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("padding_mode", PADDING)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_warp_matches_grid_sample(device, dtype, padding_mode, align_corners, shape):
    N, C, H, W = shape
    if align_corners and (H == 1 or W == 1):
        pytest.skip("grid_sample's align_corners=True grid cannot express a 1-pixel axis")
    x = image(shape, dtype, device)
    flow = make((N, 2, H, W), dtype, device, scale=0.4 * max(H, W), seed=1)
    out = fastaug.warp(x, flow, padding_mode=padding_mode, align_corners=align_corners)
    torch.testing.assert_close(out, exact(reference_warp, x, flow, padding_mode=padding_mode, align_corners=align_corners),
                               **TOL[dtype])


@pytest.mark.parametrize("padding_mode", PADDING)
def test_warp_far_outside_the_image(device, padding_mode):
    x = make((2, 3, 6, 5), device=device)
    flow = make((2, 2, 6, 5), device=device, seed=3) * 1e4
    flow[0, 0, 0, 0] = 1e30
    flow[1, 1, 2, 2] = -1e30
    out = fastaug.warp(x, flow, padding_mode=padding_mode)
    assert torch.isfinite(out).all()
    ref = reference_warp(x, flow, padding_mode)
    if padding_mode == "reflection":
        # Reflecting 1e30 pixels is ill-conditioned (grid_sample's normalisation alone moves it by
        # ~1e14 pixels): only require a finite sample from inside the image there.
        assert ((out[0, :, 0, 0] >= x[0].amin((1, 2))) & (out[0, :, 0, 0] <= x[0].amax((1, 2)))).all()
        out[0, :, 0, 0] = ref[0, :, 0, 0]
        out[1, :, 2, 2] = ref[1, :, 2, 2]
    torch.testing.assert_close(out, ref, **TOL[torch.float64])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("padding_mode", PADDING)
@pytest.mark.parametrize("smooth", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (3, 1, 16, 9), (2, 3, 33, 40)])
def test_affine_flow_warp_matches_reference(device, dtype, padding_mode, smooth, shape):
    N, C, H, W = shape
    x = image(shape, dtype, device)
    s_w = make((N, 4, H, W), dtype, device, scale=0.3, seed=1)
    s_b = make((N, 2, H, W), dtype, device, scale=0.3, seed=2)
    out = fastaug.affine_flow_warp(x, s_w, s_b, smooth=smooth, padding_mode=padding_mode)
    ref = exact(reference_affine_flow_warp, x, s_w, s_b, smooth=smooth, padding_mode=padding_mode)
    torch.testing.assert_close(out, ref, **TOL[dtype])


def test_affine_flow_warp_far_outside(device):
    x = make((2, 3, 8, 8), device=device)
    s_w, s_b = make((2, 4, 8, 8), device=device, seed=1), make((2, 2, 8, 8), device=device, seed=2) * 1e6
    out = fastaug.affine_flow_warp(x, s_w, s_b)
    torch.testing.assert_close(out, reference_affine_flow_warp(x, s_w, s_b), **TOL[torch.float64])


def test_zero_flow_and_zero_params_give_back_x(device):
    x = make((2, 3, 9, 11), device=device)
    assert torch.equal(fastaug.warp(x, torch.zeros(2, 2, 9, 11, dtype=x.dtype, device=device)), x)
    zw, zb = torch.zeros(2, 4, 9, 11, dtype=x.dtype, device=device), torch.zeros(2, 2, 9, 11, dtype=x.dtype, device=device)
    for k in (1, 4):
        assert torch.equal(fastaug.affine_flow_warp(x, zw, zb, smooth=k), x)


def test_constant_params_are_a_global_affine_map(device):
    """Spatially constant s_w, s_b: one affine map about the image centre, i.e. affine_grid."""
    x = make((2, 3, 12, 10), device=device)
    A = torch.tensor([[[0.1, -0.2], [0.15, 0.05]], [[-0.1, 0.0], [0.3, 0.2]]], dtype=x.dtype, device=device)
    t = torch.tensor([[0.1, -0.05], [0.0, 0.2]], dtype=x.dtype, device=device)
    s_w = A.reshape(2, 4, 1, 1).expand(2, 4, 12, 10)
    s_b = t.reshape(2, 2, 1, 1).expand(2, 2, 12, 10)
    theta = torch.cat([torch.eye(2, dtype=x.dtype, device=device) + A, t[:, :, None]], dim=2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    ref = F.grid_sample(x, grid, align_corners=False)
    torch.testing.assert_close(fastaug.affine_flow_warp(x, s_w, s_b), ref, **TOL[torch.float64])


# ---- layouts and empty batches ------------------------------------------------------------------

def test_non_contiguous_and_channels_last(device):
    base = make((2, 3, 10, 14), device=device)
    x_cl = base.to(memory_format=torch.channels_last)
    x_slice = make((2, 3, 10, 28), device=device)[..., ::2]
    flow = make((2, 2, 10, 14), device=device, scale=3, seed=1)
    flow_t = flow.transpose(2, 3).contiguous().transpose(2, 3)
    s_w = make((2, 4, 10, 14), device=device, scale=0.2, seed=2).to(memory_format=torch.channels_last)
    s_b = make((2, 2, 14, 10), device=device, scale=0.2, seed=3).transpose(2, 3)
    for x in (x_cl, x_slice):
        assert not x.is_contiguous()
        torch.testing.assert_close(fastaug.warp(x, flow_t), fastaug.warp(x.contiguous(), flow), rtol=0, atol=0)
        torch.testing.assert_close(fastaug.affine_flow_warp(x, s_w, s_b),
                                   fastaug.affine_flow_warp(x.contiguous(), s_w.contiguous(), s_b.contiguous()),
                                   rtol=0, atol=0)


def test_empty_batch(device):
    x = torch.zeros(0, 3, 8, 8, dtype=torch.float64, device=device, requires_grad=True)
    flow = torch.zeros(0, 2, 8, 8, dtype=torch.float64, device=device, requires_grad=True)
    out = fastaug.warp(x, flow)
    assert out.shape == (0, 3, 8, 8)
    out.sum().backward()
    assert flow.grad.shape == flow.shape and x.grad.shape == x.shape
    s_w = torch.zeros(0, 4, 8, 8, dtype=torch.float64, device=device, requires_grad=True)
    s_b = torch.zeros(0, 2, 8, 8, dtype=torch.float64, device=device)
    out = fastaug.affine_flow_warp(x, s_w, s_b)
    assert out.shape == (0, 3, 8, 8)
    out.sum().backward()
    assert s_w.grad.shape == s_w.shape


# ---- gradients ------------------------------------------------------------------------------------

@pytest.mark.parametrize("padding_mode", PADDING)
@pytest.mark.parametrize("align_corners", [False, True])
def test_warp_gradcheck(device, padding_mode, align_corners):
    x = make((2, 1, 4, 5), device=device).requires_grad_()
    flow = make((2, 2, 4, 5), device=device, scale=2.5, seed=1).requires_grad_()
    fn = lambda a, b: fastaug.warp(a, b, padding_mode=padding_mode, align_corners=align_corners)  # noqa: E731
    # CUDA: the gradient for x is an atomic scatter (as grid_sample's), last bits may vary.
    assert torch.autograd.gradcheck(fn, (x, flow), nondet_tol=1e-12 if device == "cuda" else 0.0)


@pytest.mark.parametrize("padding_mode", PADDING)
@pytest.mark.parametrize("smooth", [1, 2, 4, 5])
def test_affine_flow_warp_gradcheck(device, padding_mode, smooth):
    x = make((1, 2, 5, 6), device=device).requires_grad_()
    s_w = make((1, 4, 5, 6), device=device, scale=0.3, seed=1).requires_grad_()
    s_b = make((1, 2, 5, 6), device=device, scale=0.3, seed=2).requires_grad_()
    fn = lambda a, b, c: fastaug.affine_flow_warp(a, b, c, smooth=smooth, padding_mode=padding_mode)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, s_w, s_b), nondet_tol=1e-12 if device == "cuda" else 0.0)


def test_gradients_match_reference_autograd(device):
    """Same gradients as autograd through the grid_sample reference, float32 included."""
    for dtype in (torch.float64, torch.float32):
        x = image((2, 3, 12, 9), dtype, device).requires_grad_()
        s_w = make((2, 4, 12, 9), dtype, device, scale=0.3, seed=1).requires_grad_()
        s_b = make((2, 2, 12, 9), dtype, device, scale=0.3, seed=2).requires_grad_()
        g = make((2, 3, 12, 9), dtype, device, seed=4)
        ours = torch.autograd.grad(fastaug.affine_flow_warp(x, s_w, s_b, padding_mode="reflection"), (x, s_w, s_b), g)
        ref = torch.autograd.grad(reference_affine_flow_warp(x, s_w, s_b, 4, "reflection"), (x, s_w, s_b), g)
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a, b, **TOL[dtype])


def test_x_gradient_only_when_required():
    x = make((1, 2, 5, 5))
    s_w = make((1, 4, 5, 5), scale=0.2, seed=1).requires_grad_()
    s_b = make((1, 2, 5, 5), scale=0.2, seed=2)
    gx, g_sw, g_sb = torch.ops.fastaug.affine_flow_warp_backward(torch.ones_like(x), x, s_w, s_b, 4, 0, False)
    assert gx.numel() == 0 and g_sw.shape == s_w.shape
    fastaug.affine_flow_warp(x, s_w, s_b).sum().backward()
    assert x.grad is None and s_w.grad is not None


def test_parameter_gradients_are_deterministic(device):
    x = make((3, 3, 20, 24), torch.float32, device)
    s_w = make((3, 4, 20, 24), torch.float32, device, scale=0.3, seed=1).requires_grad_()
    s_b = make((3, 2, 20, 24), torch.float32, device, scale=0.3, seed=2).requires_grad_()
    grads = [torch.autograd.grad(fastaug.affine_flow_warp(x, s_w, s_b).square().sum(), (s_w, s_b)) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*grads))


# ---- torch.library integration -----------------------------------------------------------------

def test_opcheck(device):
    x = make((2, 3, 6, 5), device=device).requires_grad_()
    flow = make((2, 2, 6, 5), device=device, scale=2, seed=1).requires_grad_()
    s_w = make((2, 4, 6, 5), device=device, scale=0.2, seed=2).requires_grad_()
    s_b = make((2, 2, 6, 5), device=device, scale=0.2, seed=3).requires_grad_()
    torch.library.opcheck(torch.ops.fastaug.warp.default, (x, flow, 2, True))
    torch.library.opcheck(torch.ops.fastaug.affine_flow_warp.default, (x, s_w, s_b, 3, 1))
    g = torch.randn(2, 3, 6, 5, dtype=torch.float64, device=device)
    torch.library.opcheck(torch.ops.fastaug.warp_backward.default, (g, x.detach(), flow.detach(), 0, False, True))
    torch.library.opcheck(torch.ops.fastaug.affine_flow_warp_backward.default,
                          (g, x.detach(), s_w.detach(), s_b.detach(), 4, 0, False))


def test_torch_compile_fullgraph_matches_eager(device):
    def step(x, flow, s_w, s_b):
        y = fastaug.warp(x, flow, padding_mode="border")
        return fastaug.affine_flow_warp(y, s_w, s_b, smooth=3)

    x = make((2, 3, 8, 9), torch.float32, device)
    flow = make((2, 2, 8, 9), torch.float32, device, scale=2, seed=1).requires_grad_()
    s_w = make((2, 4, 8, 9), torch.float32, device, scale=0.2, seed=2).requires_grad_()
    s_b = make((2, 2, 8, 9), torch.float32, device, scale=0.2, seed=3).requires_grad_()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    eager_out, out = step(x, flow, s_w, s_b), compiled(x, flow, s_w, s_b)
    torch.testing.assert_close(out, eager_out)
    g_eager = torch.autograd.grad(eager_out.sum(), (flow, s_w, s_b))
    g_comp = torch.autograd.grad(out.sum(), (flow, s_w, s_b))
    for a, b in zip(g_comp, g_eager):
        torch.testing.assert_close(a, b)


# ---- bad input ----------------------------------------------------------------------------------

def _inputs():
    x = torch.zeros(2, 3, 8, 8)
    return x, torch.zeros(2, 2, 8, 8), torch.zeros(2, 4, 8, 8), torch.zeros(2, 2, 8, 8)


@pytest.mark.parametrize("case, exc, match", [
    (lambda x, f, w, b: fastaug.warp(x[0], f), ValueError, r"x must have shape \(N, C, H, W\)"),
    (lambda x, f, w, b: fastaug.warp(x, f[:1]), ValueError, r"flow .* must have shape \(2, 2, 8, 8\)"),
    (lambda x, f, w, b: fastaug.warp(x, f[:, :1]), ValueError, r"flow .* must have shape"),
    (lambda x, f, w, b: fastaug.warp(x, f[..., :7]), ValueError, r"flow .* got \(2, 2, 8, 7\)"),
    (lambda x, f, w, b: fastaug.warp(x.to(torch.uint8), f), TypeError, r"x must be a floating-point tensor"),
    (lambda x, f, w, b: fastaug.warp(x, f.long()), TypeError, r"flow must have the dtype of x"),
    (lambda x, f, w, b: fastaug.warp(x.half(), f.half()), TypeError, r"float16 is supported on CUDA only"),
    (lambda x, f, w, b: fastaug.warp(x, f.to("meta")), ValueError, r"flow must be on the device of x"),
    (lambda x, f, w, b: fastaug.warp(x, f, padding_mode="wrap"), ValueError, r"padding_mode must be one of"),
    (lambda x, f, w, b: fastaug.warp(x.numpy(), f), TypeError, r"x must be a torch.Tensor"),
    (lambda x, f, w, b: fastaug.affine_flow_warp(x, b, w), ValueError, r"s_w .* must have shape \(2, 4, 8, 8\)"),
    (lambda x, f, w, b: fastaug.affine_flow_warp(x, w, w), ValueError, r"s_b .* must have shape \(2, 2, 8, 8\)"),
    (lambda x, f, w, b: fastaug.affine_flow_warp(x, w, b, smooth=0), ValueError, r"smooth must be in \[1, 64\]"),
    (lambda x, f, w, b: fastaug.affine_flow_warp(x, w, b, smooth=2.0), TypeError, r"smooth must be an int"),
    (lambda x, f, w, b: fastaug.affine_flow_warp(x, w.double(), b), TypeError, r"s_w must have the dtype of x"),
])
def test_bad_input_names_the_argument(case, exc, match):
    with pytest.raises(exc, match=match):
        case(*_inputs())


def test_direct_op_calls_are_checked_in_cpp():
    """torch.ops.fastaug.* bypasses the Python checks; C++ must still refuse out-of-bounds shapes."""
    x, f, w, b = _inputs()
    with pytest.raises(RuntimeError, match="flow must have shape"):
        torch.ops.fastaug.warp(x, f[..., :4], 0, False)
    with pytest.raises(RuntimeError, match="smooth must be in"):
        torch.ops.fastaug.affine_flow_warp(x, w, b, 0, 0)
    with pytest.raises(RuntimeError, match="padding_mode must be"):
        torch.ops.fastaug.warp(x, f, 7, False)


def test_cuda_tensor_in_cpu_only_build_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_validate, "HAS_CUDA_KERNELS", False)
    with FakeTensorMode():
        x, flow = torch.empty(1, 3, 4, 4, device="cuda"), torch.empty(1, 2, 4, 4, device="cuda")
        with pytest.raises(RuntimeError, match="no CUDA kernels .* built CPU-only"):
            fastaug.warp(x, flow)


# ---- CUDA only ----------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_on_cuda(dtype):
    x = make((2, 3, 32, 40), torch.float32, "cuda")
    s_w, s_b = make((2, 4, 32, 40), torch.float32, "cuda", 0.2, 1), make((2, 2, 32, 40), torch.float32, "cuda", 0.2, 2)
    ref = fastaug.affine_flow_warp(x, s_w, s_b)
    out = fastaug.affine_flow_warp(x.to(dtype), s_w.to(dtype), s_b.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, atol=5e-2, rtol=5e-2)
    flow = make((2, 2, 32, 40), torch.float32, "cuda", 3, 3)
    torch.testing.assert_close(fastaug.warp(x.to(dtype), flow.to(dtype)).float(), fastaug.warp(x, flow),
                               atol=5e-2, rtol=5e-2)


@pytest.mark.cuda
@pytest.mark.parametrize("smooth", [5, 11])  # 11: the tiled (shared-memory) box filter for wide windows
def test_cuda_matches_cpu_including_gradients(smooth):
    x = make((2, 3, 37, 70)).requires_grad_()
    s_w = make((2, 4, 37, 70), scale=0.3, seed=1).requires_grad_()
    s_b = make((2, 2, 37, 70), scale=0.3, seed=2).requires_grad_()
    g = make((2, 3, 37, 70), seed=3)
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
