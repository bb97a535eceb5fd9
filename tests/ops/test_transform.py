"""What only fastaug.appearance and fastaug.transform have (docs/design.md K2): the spatial half is
affine_flow_warp, zero parameters give back x exactly, per-image constant parameters are an affine warp
plus a colour matrix, which gradients are computed, CUDA determinism and half precision. Parity with the
readable reference, gradcheck, layouts, compile, export and bad arguments for every op: the spec-driven
files (tests/ops/opinfo.py, test_spec_*.py)."""
import pytest
import torch
import torch.nn.functional as F

import fastaug
from fastaug.ops.transform import num_params
from opinfo import colour_half, transform_inputs


@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_transform_spatial_half_is_affine_flow_warp(mode):
    """With zero colour parameters, transform is exactly the (already tested) affine_flow_warp."""
    x, params = transform_inputs(2, 3, 9, 8, "cpu", scale=0.3)
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
        assert torch.equal(fastaug.appearance(x, *colour_half(zeros, C)), x)


@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_global_average_params_are_affine_warp_plus_colour_matrix(device, mode):
    """Per-image constant maps (what global average pooling gives) = affine warp about the centre
    plus a global colour matrix (the paper's section 4.1: "reduced to the affine transformation")."""
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


def test_x_gradient_only_when_asked(device):
    x, params = transform_inputs(2, 3, 6, 7, device)
    params.requires_grad_()
    fastaug.transform(x, params).sum().backward()
    assert x.grad is None and params.grad is not None
    gx, gp = torch.ops.fastaug.transform_backward(torch.ones_like(x), x, params.detach(), 4, 0, 0, False)
    assert gx.numel() == 0 and gp.shape == params.shape
    gx, gp2 = torch.ops.fastaug.transform_backward(torch.ones_like(x), x, params.detach(), 4, 0, 0, True)
    assert gx.shape == x.shape and torch.equal(gp, gp2)


# ---- CUDA only ------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_cuda_parameter_gradients_are_deterministic(mode):
    x, params = transform_inputs(4, 3, 64, 48, "cuda", dtype=torch.float32, scale=0.5)
    grad = torch.randn_like(x)
    results = []
    for _ in range(2):
        xr, p = x.clone().requires_grad_(), params.clone().requires_grad_()
        fastaug.transform(xr, p, mode=mode).backward(grad)
        results.append(p.grad)
    assert torch.equal(results[0], results[1])
    c_w, c_b = colour_half(params, 3)
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
    x, params = transform_inputs(2, 3, 20, 24, "cuda", dtype=torch.float32, scale=0.3)
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
    x, params = transform_inputs(3, C, 37, 70, "cpu", scale=0.4)
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
