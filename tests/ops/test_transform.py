"""fastaug.appearance and fastaug.transform (docs/design.md K2) against the readable pure-PyTorch
reference of fastaug/reference.py (box smoothing by pad + avg_pool2d, grid_sample, einsum)."""
import pytest
import torch
import torch.nn.functional as F

import fastaug
from fastaug import reference
from fastaug.ops.transform import num_params

# ---- reference: the seed's transformation written with stock PyTorch ops (fastaug.reference) -------

appearance_ref = reference.appearance
transform_ref = reference.transform


# ---- helpers --------------------------------------------------------------------------------------

TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-5)}


def make(N, C, H, W, device, dtype=torch.float64, scale=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(N, C, H, W, generator=g, dtype=torch.float64)
    params = torch.randn(N, num_params(C), H, W, generator=g, dtype=torch.float64) * scale
    return x.to(device, dtype), params.to(device, dtype)


def split(params, C):
    return params[:, 6:6 + C * C], params[:, 6 + C * C:]


# ---- forward parity -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C", [3, 1])
@pytest.mark.parametrize("k", [4, 3, 1])
def test_appearance_matches_reference(device, dtype, C, k):
    x, params = make(2, C, 11, 13, device, dtype)
    c_w, c_b = (t.contiguous() for t in split(params, C))
    torch.testing.assert_close(fastaug.appearance(x, c_w, c_b, smooth=k), appearance_ref(x, c_w, c_b, k),
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C", [3, 1])
@pytest.mark.parametrize("mode", ["parallel", "serial"])
@pytest.mark.parametrize("padding_mode,k", [("zeros", 4), ("border", 3), ("reflection", 2), ("zeros", 1)])
def test_transform_matches_reference(device, dtype, C, mode, padding_mode, k):
    x, params = make(2, C, 10, 12, device, dtype, scale=0.4)
    out = fastaug.transform(x, params, smooth=k, mode=mode, padding_mode=padding_mode)
    torch.testing.assert_close(out, transform_ref(x, params, k, mode, padding_mode), **TOL[dtype])


@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_transform_spatial_half_is_affine_flow_warp(mode):
    """With zero colour parameters, transform is exactly the (already tested) affine_flow_warp."""
    x, params = make(2, 3, 9, 8, "cpu", scale=0.3)
    params[:, 6:] = 0
    ref = fastaug.affine_flow_warp(x, params[:, :4].contiguous(), params[:, 4:6].contiguous(), smooth=4)
    torch.testing.assert_close(fastaug.transform(x, params, mode=mode), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("C", [3, 1])
def test_zero_params_give_back_x_exactly(device, C):
    for H, W in [(7, 13), (28, 28), (10, 224)]:
        x = torch.rand(2, C, H, W, device=device)
        zeros = torch.zeros(2, num_params(C), H, W, device=device)
        for mode in ("parallel", "serial"):
            for padding_mode in ("zeros", "border", "reflection"):
                out = fastaug.transform(x, zeros, mode=mode, padding_mode=padding_mode)
                assert torch.equal(out, x), (H, W, mode, padding_mode)
        assert torch.equal(fastaug.appearance(x, *split(zeros, C)), x)


@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_global_average_params_are_affine_warp_plus_colour_matrix(device, mode):
    """Per-image constant maps (what global average pooling gives) = affine warp about the centre
    plus a global colour matrix (seed section 4.1: "reduced to the affine transformation")."""
    N, C, H, W = 3, 3, 12, 10
    g = torch.Generator().manual_seed(1)
    x = torch.rand(N, C, H, W, generator=g, dtype=torch.float64)
    s_w = torch.randn(N, 4, generator=g, dtype=torch.float64) * 0.2
    s_b = torch.randn(N, 2, generator=g, dtype=torch.float64) * 0.2
    M = torch.randn(N, 3, 3, generator=g, dtype=torch.float64) * 0.2
    b = torch.randn(N, 3, generator=g, dtype=torch.float64) * 0.1
    params = torch.cat([s_w, s_b, M.reshape(N, 9), b], 1)[:, :, None, None].expand(N, 18, H, W)
    theta = torch.stack([torch.stack([1 + s_w[:, 0], s_w[:, 1], s_b[:, 0]], 1),
                         torch.stack([s_w[:, 2], 1 + s_w[:, 3], s_b[:, 1]], 1)], 1)
    y = F.grid_sample(x, F.affine_grid(theta, (N, C, H, W), align_corners=False), align_corners=False)
    src = y if mode == "serial" else x
    expected = y + torch.einsum("nij,njhw->nihw", M, src) + b[:, :, None, None]
    out = fastaug.transform(x.to(device), params.to(device), mode=mode)
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-10, atol=1e-10)


# ---- gradients ------------------------------------------------------------------------------------

@pytest.mark.parametrize("C", [3, 1])
@pytest.mark.parametrize("mode,padding_mode,k", [("parallel", "zeros", 4), ("serial", "zeros", 3),
                                                 ("parallel", "border", 2), ("serial", "reflection", 4)])
def test_transform_gradcheck(device, C, mode, padding_mode, k):
    x, params = make(2, C, 4, 5, device, scale=0.3, seed=3)
    x.requires_grad_()
    params.requires_grad_()
    fn = lambda a, p: fastaug.transform(a, p, smooth=k, mode=mode, padding_mode=padding_mode)  # noqa: E731
    # The full Jacobian once per mode (RGB), the fast (random projection) check elsewhere: keeps it quick.
    fast = not (C == 3 and padding_mode == "zeros")
    # On CUDA the gradient for x is a scatter with atomics (as grid_sample's): float64 sums may
    # differ in the last bits between runs.
    nondet = 1e-12 if device == "cuda" else 0.0
    assert torch.autograd.gradcheck(fn, (x, params), eps=1e-6, atol=1e-6, fast_mode=fast, nondet_tol=nondet)


@pytest.mark.parametrize("C", [3, 1])
def test_appearance_gradcheck(device, C):
    x, params = make(2, C, 4, 5, device, seed=4)
    c_w, c_b = (t.contiguous().requires_grad_() for t in split(params, C))
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, w, b: fastaug.appearance(a, w, b, smooth=3), (x, c_w, c_b))


@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_transform_gradients_match_reference(device, mode):
    x, params = make(2, 3, 9, 11, device, scale=0.4, seed=5)
    grad = torch.randn_like(x)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    ps = [params.clone().requires_grad_() for _ in range(2)]
    fastaug.transform(xs[0], ps[0], mode=mode).backward(grad)
    transform_ref(xs[1], ps[1], 4, mode).backward(grad)
    torch.testing.assert_close(ps[0].grad, ps[1].grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-10, atol=1e-10)


def test_x_gradient_only_when_asked(device):
    x, params = make(2, 3, 6, 7, device)
    params.requires_grad_()
    fastaug.transform(x, params).sum().backward()
    assert x.grad is None and params.grad is not None
    gx, gp = torch.ops.fastaug.transform_backward(torch.ones_like(x), x, params.detach(), 4, 0, 0, False)
    assert gx.numel() == 0 and gp.shape == params.shape
    gx, gp2 = torch.ops.fastaug.transform_backward(torch.ones_like(x), x, params.detach(), 4, 0, 0, True)
    assert gx.shape == x.shape and torch.equal(gp, gp2)


# ---- torch.library / torch.compile --------------------------------------------------------------

def test_opcheck(device):
    x, params = make(2, 3, 6, 5, device, dtype=torch.float32)
    params.requires_grad_()
    torch.library.opcheck(torch.ops.fastaug.transform.default, (x, params, 4, 0, 0))
    torch.library.opcheck(torch.ops.fastaug.transform.default, (x.requires_grad_(), params, 3, 1, 2))
    c_w, c_b = (t.detach().contiguous().requires_grad_() for t in split(params, 3))
    torch.library.opcheck(torch.ops.fastaug.appearance.default, (x, c_w, c_b, 4))


def test_torch_compile_fullgraph_matches_eager():
    x, params = make(2, 3, 8, 8, "cpu", dtype=torch.float32)

    def step(x, params):
        out = fastaug.transform(x, params, mode="serial")
        out = out + fastaug.appearance(x, params[:, 6:15], params[:, 15:], smooth=2)
        return out.square().sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    p_e, p_c = params.clone().requires_grad_(), params.clone().requires_grad_()
    loss_e, loss_c = step(x, p_e), compiled(x, p_c)
    loss_e.backward()
    loss_c.backward()
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(p_c.grad, p_e.grad)


@pytest.mark.slow
def test_torch_compile_inductor_matches_eager():
    """The inductor backend (C++ codegen around the custom op) gives the eager result and gradient."""
    x, params = make(2, 3, 8, 8, "cpu", dtype=torch.float32)
    step = lambda x, p: fastaug.transform(x, p, mode="serial").square().sum()  # noqa: E731
    compiled = torch.compile(step, fullgraph=True)
    p_e, p_c = params.clone().requires_grad_(), params.clone().requires_grad_()
    loss_e, loss_c = step(x, p_e), compiled(x, p_c)
    loss_e.backward()
    loss_c.backward()
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(p_c.grad, p_e.grad)


# ---- layout, dtypes, empty batches, bad inputs --------------------------------------------------

def test_non_contiguous_and_channels_last(device):
    x, params = make(2, 3, 9, 10, device, dtype=torch.float32)
    ref = fastaug.transform(x, params, mode="serial")
    x_cl = x.to(memory_format=torch.channels_last)
    p_cl = params.to(memory_format=torch.channels_last)
    torch.testing.assert_close(fastaug.transform(x_cl, p_cl, mode="serial"), ref, rtol=0, atol=0)
    x_nc = torch.cat([x, x], 3)[..., ::2]  # strided view
    x_nc.copy_(x)
    assert not x_nc.is_contiguous()
    torch.testing.assert_close(fastaug.transform(x_nc, params, mode="serial"), ref, rtol=0, atol=0)
    c_w = params[:, 6:15]  # non-contiguous channel slice
    torch.testing.assert_close(fastaug.appearance(x_cl, c_w, params[:, 15:]),
                               fastaug.appearance(x, c_w.contiguous(), params[:, 15:].contiguous()), rtol=0, atol=0)


def test_empty_batch(device):
    x, params = make(0, 3, 5, 5, device)
    params.requires_grad_()
    out = fastaug.transform(x, params)
    assert out.shape == (0, 3, 5, 5)
    out.sum().backward()
    assert params.grad.shape == params.shape
    assert fastaug.appearance(x, *split(params.detach(), 3)).shape == (0, 3, 5, 5)


def test_bad_inputs():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="params"):
        fastaug.transform(x, torch.zeros(2, 8, 8, 8))  # grey map for an RGB image
    with pytest.raises(ValueError, match="params"):
        fastaug.transform(x[:, :1], torch.zeros(2, 18, 8, 8))  # RGB map for a grey image
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3 \\(RGB\\)"):
        fastaug.transform(torch.rand(2, 2, 8, 8), torch.zeros(2, 12, 8, 8))
    with pytest.raises(ValueError, match="mode"):
        fastaug.transform(x, torch.zeros(2, 18, 8, 8), mode="sideways")
    with pytest.raises(ValueError, match="padding_mode"):
        fastaug.transform(x, torch.zeros(2, 18, 8, 8), padding_mode="wrap")
    with pytest.raises(TypeError, match="params"):
        fastaug.transform(x, torch.zeros(2, 18, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="x"):
        fastaug.transform(x.half(), torch.zeros(2, 18, 8, 8).half())
    with pytest.raises(ValueError, match="smooth"):
        fastaug.transform(x, torch.zeros(2, 18, 8, 8), smooth=0)
    with pytest.raises(ValueError, match="c_w"):
        fastaug.appearance(x, torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="c_b"):
        fastaug.appearance(x, torch.zeros(2, 9, 8, 8), torch.zeros(2, 1, 8, 8))
    with pytest.raises(TypeError, match="x"):
        fastaug.appearance(x.long(), torch.zeros(2, 9, 8, 8), torch.zeros(2, 3, 8, 8))
    # The C++ entry points check too: a direct call can never read out of bounds.
    with pytest.raises(RuntimeError, match="params"):
        torch.ops.fastaug.transform(x, torch.zeros(2, 8, 8, 8), 4, 0, 0)
    with pytest.raises(RuntimeError, match="mode"):
        torch.ops.fastaug.transform(x, torch.zeros(2, 18, 8, 8), 4, 5, 0)
    with pytest.raises(RuntimeError, match="grad_out"):
        torch.ops.fastaug.appearance_backward(torch.zeros(1), x, torch.zeros(2, 9, 8, 8), torch.zeros(2, 3, 8, 8),
                                              4, True)


# ---- CUDA only ------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_cuda_parameter_gradients_are_deterministic(mode):
    x, params = make(4, 3, 64, 48, "cuda", dtype=torch.float32, scale=0.5)
    grad = torch.randn_like(x)
    results = []
    for _ in range(2):
        xr, p = x.clone().requires_grad_(), params.clone().requires_grad_()
        fastaug.transform(xr, p, mode=mode).backward(grad)
        results.append(p.grad)
    assert torch.equal(results[0], results[1])
    c_w, c_b = split(params, 3)
    outs = []
    for _ in range(2):
        w, b = c_w.clone().requires_grad_(), c_b.clone().requires_grad_()
        fastaug.appearance(x, w, b).backward(grad)
        outs.append((w.grad, b.grad))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_cuda_half_precision_matches_float32(dtype, mode):
    x, params = make(2, 3, 20, 24, "cuda", dtype=torch.float32, scale=0.3)
    # Reference: float32 on the same rounded inputs (the rounding of the parameters alone moves
    # sampling points by up to ~0.01 px, enough to cross a pixel edge where the flow gradient jumps).
    x, params = x.to(dtype).float(), params.to(dtype).float()
    ref = fastaug.transform(x, params, mode=mode)
    out = fastaug.transform(x.to(dtype), params.to(dtype), mode=mode)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)
    p = params.to(dtype).requires_grad_()
    fastaug.transform(x.to(dtype), p, mode=mode).sum().backward()
    p32 = params.clone().requires_grad_()
    fastaug.transform(x, p32, mode=mode).sum().backward()
    assert p.grad.dtype == dtype
    # Accumulation is float32 inside the kernels; the smoothed maps are rounded to the half type, so a
    # few sampling points still land across a pixel edge: compare the whole gradient, not each element.
    rel = (p.grad.float() - p32.grad).norm() / p32.grad.norm()
    assert rel < 0.1, f"relative error of the parameter gradient {rel:.3g}"
    assert (p.grad.float() - p32.grad).abs().le(5e-2).float().mean() > 0.97


@pytest.mark.cuda
@pytest.mark.parametrize("C,k", [(3, 5), (1, 5), (3, 11)])  # k=11: the tiled box filter for wide windows
def test_cuda_matches_cpu_larger(C, k):
    x, params = make(3, C, 37, 70, "cpu", scale=0.4)
    grad = torch.randn_like(x)
    res = {}
    for dev in ("cpu", "cuda"):
        for mode in ("parallel", "serial"):
            xr = x.detach().to(dev).requires_grad_()  # fresh leaves on each device
            p = params.detach().to(dev).requires_grad_()
            out = fastaug.transform(xr, p, mode=mode, smooth=k)
            out.backward(grad.to(dev))
            res[dev, mode] = (out.cpu(), xr.grad.cpu(), p.grad.cpu())
    for mode in ("parallel", "serial"):
        for a, b in zip(res["cpu", mode], res["cuda", mode]):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
