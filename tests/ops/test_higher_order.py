"""Second and higher derivatives of the image ops (fastaug/ops/_higher_order.py) against the grid_sample
references, finite differences and gradgradcheck; the ops and modes that are refused raise one sentence
(second order of apply_ops and influence_score, forward mode of every op)."""
import pytest
import torch
import torch.nn.functional as F

import fastaug
from fastaug import reference

PADDING = ["zeros", "border", "reflection"]


def rand(shape, device, seed, scale=1.0, low=None):
    """float64 normal(0, scale) values, or uniform in [0, 1) with ``low=0``, from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(shape, generator=g, dtype=torch.float64) if low == 0 else \
        torch.randn(shape, generator=g, dtype=torch.float64) * scale
    return t.to(device)


# ---- each op, its reference, and tiny float64 inputs (x first, then the maps) -----------------------

def warp_case(device, padding_mode="zeros", align_corners=False, N=1, C=2, H=4, W=5):
    kw = dict(padding_mode=padding_mode, align_corners=align_corners)
    inputs = [rand((N, C, H, W), device, 0, low=0), rand((N, 2, H, W), device, 1, scale=1.5)]
    return (lambda x, flow: fastaug.warp(x, flow, **kw)), (lambda x, flow: reference.warp(x, flow, **kw)), inputs


def affine_case(device, padding_mode="zeros", smooth=2, N=1, C=2, H=4, W=5):
    kw = dict(smooth=smooth, padding_mode=padding_mode)
    inputs = [rand((N, C, H, W), device, 0, low=0), rand((N, 4, H, W), device, 1, scale=0.3),
              rand((N, 2, H, W), device, 2, scale=0.3)]
    return ((lambda x, s_w, s_b: fastaug.affine_flow_warp(x, s_w, s_b, **kw)),
            (lambda x, s_w, s_b: reference.affine_flow_warp(x, s_w, s_b, **kw)), inputs)


def appearance_case(device, smooth=2, N=1, C=3, H=4, W=4):
    inputs = [rand((N, C, H, W), device, 0, low=0), rand((N, C * C, H, W), device, 1, scale=0.3),
              rand((N, C, H, W), device, 2, scale=0.3)]
    return ((lambda x, c_w, c_b: fastaug.appearance(x, c_w, c_b, smooth=smooth)),
            (lambda x, c_w, c_b: reference.appearance(x, c_w, c_b, smooth=smooth)), inputs)


def transform_case(device, mode="parallel", padding_mode="zeros", smooth=2, N=1, C=1, H=4, W=4):
    kw = dict(smooth=smooth, mode=mode, padding_mode=padding_mode)
    inputs = [rand((N, C, H, W), device, 0, low=0), rand((N, 6 + C * C + C, H, W), device, 1, scale=0.3)]
    return ((lambda x, params: fastaug.transform(x, params, **kw)),
            (lambda x, params: reference.transform(x, params, **kw)), inputs)


CASES = {"warp": warp_case, "affine_flow_warp": affine_case, "appearance": appearance_case,
         "transform": transform_case}


def gradgradcheck_inputs(fn, inputs, differentiable):
    """gradgradcheck of fn with respect to the inputs flagged in ``differentiable`` (the others are
    held constant, which exercises the kernels' need_x_grad=False path when x is constant)."""
    leaves = [t.clone().requires_grad_(d) for t, d in zip(inputs, differentiable)]
    # On CUDA the image gradients (ours and grid_sample's) are scatters with float atomics, whose
    # float64 sums may differ in the last bits between runs.
    nondet = 1e-12 if inputs[0].device.type == "cuda" else 0.0
    assert torch.autograd.gradgradcheck(fn, leaves, nondet_tol=nondet)


# ---- gradgradcheck of every differentiable input ------------------------------------------------------

@pytest.mark.parametrize("padding_mode", PADDING)
@pytest.mark.parametrize("align_corners", [False, True])
def test_warp_gradgradcheck(device, padding_mode, align_corners):
    fn, _, inputs = warp_case(device, padding_mode, align_corners)
    gradgradcheck_inputs(fn, inputs, [True, True])


@pytest.mark.parametrize("H,W", [(1, 4), (3, 1)])
def test_warp_gradgradcheck_one_pixel_axis(device, H, W):
    """A 1-pixel axis with reflection about pixel centres: every coordinate reflects onto that centre."""
    fn, _, inputs = warp_case(device, "reflection", True, H=H, W=W)
    gradgradcheck_inputs(fn, inputs, [True, True])


@pytest.mark.parametrize("padding_mode", PADDING)
def test_affine_flow_warp_gradgradcheck(device, padding_mode):
    fn, _, inputs = affine_case(device, padding_mode)
    gradgradcheck_inputs(fn, inputs, [True, True, True])


@pytest.mark.parametrize("C", [1, 3])
def test_appearance_gradgradcheck(device, C):
    fn, _, inputs = appearance_case(device, C=C, H=3, W=4)
    gradgradcheck_inputs(fn, inputs, [True, True, True])


@pytest.mark.parametrize("mode", ["parallel", "serial"])
@pytest.mark.parametrize("padding_mode", PADDING)
def test_transform_gradgradcheck(device, mode, padding_mode):
    fn, _, inputs = transform_case(device, mode, padding_mode)
    gradgradcheck_inputs(fn, inputs, [True, True])


def test_transform_gradgradcheck_rgb_unsmoothed(device):
    fn, _, inputs = transform_case(device, "serial", "reflection", smooth=1, C=3, H=3, W=3)
    gradgradcheck_inputs(fn, inputs, [True, True])


@pytest.mark.parametrize("op", sorted(CASES))
def test_gradgradcheck_with_constant_image_or_maps(device, op):
    """x constant (the backward kernels skip grad_x: need_x_grad=False) and, separately, the maps constant."""
    fn, _, inputs = CASES[op](device)
    gradgradcheck_inputs(fn, inputs, [False] + [True] * (len(inputs) - 1))
    gradgradcheck_inputs(fn, inputs, [True] + [False] * (len(inputs) - 1))


@pytest.mark.parametrize("op", sorted(CASES))
def test_penalty_with_constant_maps_runs_the_kernel_exactly(device, op, monkeypatch):
    """A gradient penalty in x with constant maps: grad_x = A^T grad_out is linear in grad_out, so its
    derivative is A, the fused forward kernel without its bias; exact, and the reference is not run."""
    fn, ref, (x, *maps) = CASES[op](device)
    x = x.requires_grad_()
    w = rand(x.shape, device, 7)

    def penalty(f):  # sin makes grad_out depend on x, so the penalty has a second-order term
        gx, = torch.autograd.grad(torch.sin(f(x, *maps) * w).sum(), x, create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum(), x)[0]

    expected = penalty(ref)

    def no_reference(*args, **kwargs):
        raise AssertionError("the reference ran")

    monkeypatch.setattr(reference, op, no_reference)
    torch.testing.assert_close(penalty(fn), expected, atol=1e-10, rtol=1e-10)


SPECIAL = [float("nan"), float("inf"), -float("inf"), 1e4 + 0.3, -3e38]  # -3e38: 2 * x overflows in float32


def _special_flow(padding_mode, dtype):
    """A flow with one special value per column of a 3x5 image (row 1), and what stands for it: a finite
    flow that the kernels sample the same way, and a mask of the pixels that sample zero whatever x is."""
    flow = rand((1, 2, 3, 5), "cpu", 1, scale=0.7).to(dtype)
    same, keep = flow.clone(), torch.ones(1, 1, 3, 5, dtype=dtype)
    for j, v in enumerate(SPECIAL):
        flow[0, j % 2, 1, j] = v
        if v != v or (abs(v) == float("inf") and padding_mode != "border"):
            same[0, j % 2, 1, j], keep[0, 0, 1, j] = 0.0, 0.0  # samples zero: leave the pixel out
        elif padding_mode == "reflection":
            same[0, j % 2, 1, j] = v if abs(v) < 1e5 else 0.0
            keep[0, 0, 1, j] = float(abs(v) < 1e5)  # a reflected 3e38 is ill-conditioned: left out
        else:
            same[0, j % 2, 1, j] = 50.0 if v > 0 else -50.0  # as far outside: zero / the border pixel
    return flow, same, keep


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("padding_mode", PADDING)
def test_second_order_with_non_finite_or_huge_flows_is_the_kernels_and_does_not_crash(padding_mode, dtype):
    # The second order ran the grid_sample reference on the raw coordinates: grid_sample's CPU backward
    # crashed the process (SIGSEGV) on a NaN coordinate ("border", "reflection") or an infinite one
    # ("reflection", and any float32 one whose normalisation overflows), and gave NaN with "zeros" where
    # the kernels' first derivative is 0.
    x = rand((1, 2, 3, 5), "cpu", 0, low=0).to(dtype)
    flow, same, keep = _special_flow(padding_mode, dtype)
    results = []
    for f in (flow, same):
        xl, fl = x.clone().requires_grad_(), f.clone().requires_grad_()
        loss = (keep * fastaug.warp(xl, fl, padding_mode=padding_mode).pow(2)).sum()
        gx, gf = torch.autograd.grad(loss, (xl, fl), create_graph=True)
        hx, hf = torch.autograd.grad(gx.pow(2).sum() + gf.pow(2).sum() + (gx * gf[:, :1]).sum(), (xl, fl))
        results.append((gx, gf, hx, hf))
    for got, expected in zip(*results):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("padding_mode", PADDING)
@pytest.mark.parametrize("align_corners", [False, True])
def test_the_kernel_coordinates_reference_is_the_kernel_on_non_finite_and_far_flows(padding_mode, align_corners):
    x = rand((2, 2, 3, 5), "cpu", 0, low=0)
    flow, _, _ = _special_flow(padding_mode, torch.float64)
    flow = torch.cat([flow, rand((1, 2, 3, 5), "cpu", 5, scale=40.0)])
    if padding_mode == "reflection":
        flow[0, 0, 1, 4] = -300.7  # far, but well-conditioned (not -3e38)
    xl, fl = x.clone().requires_grad_(), flow.clone().requires_grad_()
    out = fastaug.warp(xl, fl, padding_mode=padding_mode, align_corners=align_corners)
    xr, fr = x.clone().requires_grad_(), flow.clone().requires_grad_()
    ref = reference.warp(xr, fr, padding_mode, align_corners, kernel_coordinates=True)
    torch.testing.assert_close(out, ref)
    go = rand(out.shape, "cpu", 7)
    for a, b in zip(torch.autograd.grad(out, (xl, fl), go), torch.autograd.grad(ref, (xr, fr), go)):
        torch.testing.assert_close(a, b)
    finite = torch.isfinite(flow).all(1, keepdim=True) & (flow.abs() < 1e5).all(1, keepdim=True)
    plain = reference.warp(x, torch.where(finite, flow, 0.0), padding_mode, align_corners)
    torch.testing.assert_close(torch.where(finite, ref, 0.0), torch.where(finite, plain, 0.0))  # else grid_sample's


@pytest.mark.parametrize("padding_mode", PADDING)
@pytest.mark.parametrize("op", ["affine_flow_warp", "transform"])
def test_second_order_of_the_learned_transformation_with_a_nan_or_infinite_bias_does_not_crash(op, padding_mode):
    # The same crash through reference.affine_flow_warp / transform (a NaN or infinite s_b: eq. 20's
    # source point is not finite); smooth=1 keeps the special value at its pixel.
    C = 1
    x = rand((1, C, 3, 5), "cpu", 0, low=0).requires_grad_()
    params = rand((1, 6 + C * C + C, 3, 5), "cpu", 1, scale=0.2)
    params[0, 4, 1, 1], params[0, 5, 1, 3], params[0, 4, 2, 2] = float("nan"), float("inf"), -1e300
    params.requires_grad_()
    if op == "affine_flow_warp":
        out = fastaug.affine_flow_warp(x, params[:, :4], params[:, 4:6], smooth=1, padding_mode=padding_mode)
    else:
        out = fastaug.transform(x, params, smooth=1, mode="serial", padding_mode=padding_mode)
    gx, gp = torch.autograd.grad(out.pow(2).sum(), (x, params), create_graph=True)
    hx, hp = torch.autograd.grad(gx.pow(2).sum() + gp.pow(2).sum(), (x, params))
    assert all(torch.isfinite(t).all() for t in (out, gx, gp, hx, hp))


@pytest.mark.parametrize("op", sorted(CASES))
def test_second_order_of_an_empty_batch(device, op):
    fn, _, inputs = CASES[op](device)
    x, m = [t[:0].clone().requires_grad_() for t in inputs[:2]]
    gm, = torch.autograd.grad(fn(x, m, *[t[:0] for t in inputs[2:]]).pow(2).sum(), m, create_graph=True)
    hx, = torch.autograd.grad(gm.sum(), x, allow_unused=True, materialize_grads=True)
    assert hx.shape == x.shape


@pytest.mark.parametrize("op", sorted(CASES))
@pytest.mark.parametrize("empty", ["H", "W"])
def test_second_order_of_an_empty_image_is_zero(device, op, empty):
    # First order returned empty gradients, but the second order ran the grid_sample / avg_pool2d
    # reference, which refuses an empty H or W: "grid_sampler(): expected input to have non-empty
    # spatial dimensions", from an op the caller never called.
    fn, _, inputs = CASES[op](device)
    leaves = [(t[:, :, :0] if empty == "H" else t[..., :0]).clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    assert out.shape == leaves[0].shape
    first = torch.autograd.grad(out.pow(2).sum(), leaves, create_graph=True)
    second = torch.autograd.grad(sum(g.pow(2).sum() for g in first) + first[0].sum(), leaves,
                                 allow_unused=True, materialize_grads=True)
    assert [g.shape for g in second] == [t.shape for t in leaves]


# ---- the issue's example ---------------------------------------------------------------------------

def test_issue_example_mixed_second_derivative_matches_grid_sample(device):
    """d/dx of d(sum y^2)/dflow for y = warp(x, flow), 2x1x6x6 float64: was 0, grid_sample's is not."""
    x0 = rand((2, 1, 6, 6), device, 0, low=0)
    flow0 = rand((2, 2, 6, 6), device, 1, scale=1.5)

    def mixed(warp):
        x, flow = x0.clone().requires_grad_(), flow0.clone().requires_grad_()
        gflow, = torch.autograd.grad(warp(x, flow).pow(2).sum(), flow, create_graph=True)
        hx, = torch.autograd.grad(gflow.sum(), x)
        return hx

    ours, ref = mixed(fastaug.warp), mixed(reference.warp)
    assert ref.abs().sum() > 1  # the reference's term is far from zero, so a silent zero fails below
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)


# ---- Hessian-vector products through a small model ---------------------------------------------------

class ConvOpConv(torch.nn.Module):
    """conv -> op -> conv: one conv makes the image the op transforms, another predicts the op's maps
    from the input, a last conv reads the result. ``op(image, maps)``; maps split by ``map_channels``."""

    def __init__(self, op, channels, map_channels):
        super().__init__()
        self.op, self.map_channels = op, map_channels
        self.to_image = torch.nn.Conv2d(channels, channels, 3, padding=1, dtype=torch.float64)
        self.to_maps = torch.nn.Conv2d(channels, sum(map_channels), 3, padding=1, dtype=torch.float64)
        self.head = torch.nn.Conv2d(channels, 2, 3, padding=1, dtype=torch.float64)
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)

    def forward(self, x):
        maps = torch.split(self.to_maps(x), self.map_channels, dim=1)
        return self.head(self.op(torch.sigmoid(self.to_image(x)), *maps))


MODELS = {  # op name -> (fastaug op, reference op, image channels, map channels)
    "warp": (fastaug.warp, reference.warp, 2, [2]),
    "affine_flow_warp": (lambda x, s_w, s_b: fastaug.affine_flow_warp(x, s_w, s_b, smooth=2),
                         lambda x, s_w, s_b: reference.affine_flow_warp(x, s_w, s_b, smooth=2), 2, [4, 2]),
    "appearance": (lambda x, c_w, c_b: fastaug.appearance(x, c_w, c_b, smooth=2),
                   lambda x, c_w, c_b: reference.appearance(x, c_w, c_b, smooth=2), 3, [9, 3]),
    "transform": (lambda x, p: fastaug.transform(x, p, smooth=2, mode="serial", padding_mode="border"),
                  lambda x, p: reference.transform(x, p, smooth=2, mode="serial", padding_mode="border"), 3, [18]),
}


def loss_and_params(model, x, target):
    params = list(model.parameters())
    return (lambda: F.mse_loss(model(x), target)), params


def hvp(model, x, target, v):
    """Hessian of the loss w.r.t. all parameters times v, by double backward."""
    loss, params = loss_and_params(model, x, target)
    grads = torch.autograd.grad(loss(), params, create_graph=True)
    return torch.autograd.grad(sum((g * d).sum() for g, d in zip(grads, v)), params)


def finite_difference_hvp(model, x, target, v, eps=1e-5):
    """(grad(theta + eps v) - grad(theta - eps v)) / (2 eps), first-order gradients only."""
    loss, params = loss_and_params(model, x, target)
    out = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(params, v):
                p.add_(sign * eps * d)
        out.append(torch.autograd.grad(loss(), params))
        with torch.no_grad():
            for p, d in zip(params, v):
                p.sub_(sign * eps * d)
    return [(a - b) / (2 * eps) for a, b in zip(*out)]


@pytest.mark.parametrize("op", sorted(MODELS))
def test_hessian_vector_product_through_a_model(device, op):
    ours, ref_op, C, map_channels = MODELS[op]
    model = ConvOpConv(ours, C, map_channels).to(device)
    ref_model = ConvOpConv(ref_op, C, map_channels).to(device)  # same seeded weights
    x, target = rand((2, C, 5, 6), device, 4, low=0), rand((2, 2, 5, 6), device, 5)
    g = torch.Generator().manual_seed(6)
    v = [torch.randn(p.shape, generator=g, dtype=torch.float64).to(device) for p in model.parameters()]

    got = hvp(model, x, target, v)
    assert sum(t.abs().sum() for t in got) > 0
    for a, b in zip(got, hvp(ref_model, x, target, v)):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)
    for a, b in zip(got, finite_difference_hvp(model, x, target, v)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


# ---- higher orders, and the refusals: one sentence, never a silent zero ---------------------------

@pytest.mark.parametrize("op", sorted(CASES))
def test_third_order_matches_reference(device, op):
    """The second-order results stay attached to the graph: a third derivative is the reference's."""
    fn, ref, inputs = CASES[op](device)

    def third(f):
        x, m = inputs[0].clone().requires_grad_(), inputs[1].clone().requires_grad_()
        gm, = torch.autograd.grad(f(x, m, *inputs[2:]).pow(2).sum(), m, create_graph=True)
        hx, = torch.autograd.grad(gm.pow(2).sum(), x, create_graph=True)
        return torch.autograd.grad(hx.pow(2).sum(), (x, m))

    got = third(fn)
    assert sum(t.abs().sum() for t in got) > 0
    for a, b in zip(got, third(ref)):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-8)


@pytest.mark.parametrize("op", sorted(CASES))
def test_autograd_functional_hvp_matches_reference(device, op):
    """torch.autograd.functional.hvp differentiates the double backward in its cotangent (the
    "double-backward trick"), which needs the second-order results attached to the graph."""
    fn, ref, inputs = CASES[op](device)
    v = [rand(t.shape, device, 10 + i) for i, t in enumerate(inputs)]
    got = torch.autograd.functional.hvp(lambda *t: fn(*t).pow(2).sum(), tuple(inputs), tuple(v))[1]
    expected = torch.autograd.functional.hvp(lambda *t: ref(*t).pow(2).sum(), tuple(inputs), tuple(v))[1]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)


def test_apply_ops_double_backward_raises(device):
    x = rand((2, 3, 6, 6), device, 0, low=0).requires_grad_()
    op = torch.tensor([4, 13], device=device)  # Rotate, Sharpness: both differentiable once
    g, = torch.autograd.grad(fastaug.apply_ops(x, op, 0.7).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="apply_ops is differentiable once"):
        torch.autograd.grad(g.sum(), x)


def test_influence_score_double_backward_raises(device):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(4, 3, generator=g, dtype=torch.float64).to(device).requires_grad_()
    W = torch.randn(5, 3, generator=g, dtype=torch.float64).to(device)
    s = torch.randn(5, 4, generator=g, dtype=torch.float64).to(device)
    target = torch.tensor([0, 4, 2, 1], device=device)
    gh, = torch.autograd.grad(fastaug.influence_score(h, h @ W.t(), target, s).sum(), h, create_graph=True)
    with pytest.raises(RuntimeError, match="influence_score is differentiable once"):
        torch.autograd.grad(gh.pow(2).sum(), h)


@pytest.mark.parametrize("op", sorted(CASES) + ["apply_ops", "influence_score", "last_layer_hvp"])
def test_forward_mode_raises(device, op):
    """No op has a forward-mode formula; PyTorch would drop the tangent and return zeros."""
    if op in CASES:
        fn, _, inputs = CASES[op](device)
    elif op == "apply_ops":
        fn, inputs = (lambda x: fastaug.apply_ops(x, torch.tensor([4], device=device), 0.5)), [
            rand((1, 3, 4, 4), device, 0, low=0)]
    else:
        h, p = rand((4, 3), device, 0), torch.softmax(rand((4, 5), device, 1), 1)
        target, s = torch.tensor([0, 4, 2, 1], device=device), rand((5, 4), device, 2)
        fn, inputs = ((lambda h: fastaug.influence_score(h, p.log(), target, s)) if op == "influence_score"
                      else (lambda h: fastaug.last_layer_hvp(h, p, s))), [h]
    with pytest.raises(RuntimeError, match=f"fastaug.{op} does not support forward-mode differentiation"):
        torch.func.jvp(fn, tuple(inputs), tuple(torch.ones_like(t) for t in inputs))


def test_last_layer_hvp_second_order_in_v(device):
    """Linear in v with the op as its own backward: gradgradcheck holds in v."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(4, 3, generator=g, dtype=torch.float64).to(device)
    p = torch.softmax(torch.randn(4, 2, generator=g, dtype=torch.float64), 1).to(device)
    v = torch.randn(2, 4, generator=g, dtype=torch.float64).to(device).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda v: fastaug.last_layer_hvp(h, p, v, damping=0.1), (v,))


# ---- the first-order path is unchanged: opcheck and torch.compile ------------------------------------------

RAW = {  # op name -> raw op and its static arguments
    "warp": (torch.ops.fastaug.warp.default, (2, True)),
    "affine_flow_warp": (torch.ops.fastaug.affine_flow_warp.default, (2, 1)),
    "appearance": (torch.ops.fastaug.appearance.default, (2,)),
    "transform": (torch.ops.fastaug.transform.default, (2, 1, 2)),
}


@pytest.mark.parametrize("op", sorted(CASES))
def test_opcheck_with_requires_grad_inputs(device, op):
    _, _, inputs = CASES[op](device)
    raw, static = RAW[op]
    torch.library.opcheck(raw, (*[t.requires_grad_() for t in inputs], *static))


@pytest.mark.parametrize("op,need_x_grad", [("warp", True), ("affine_flow_warp", False), ("appearance", True),
                                             ("transform", False)])
def test_opcheck_backward_ops_with_requires_grad_inputs(device, op, need_x_grad):
    """The backward ops with their new autograd formulas pass opcheck (autograd registration, fake
    kernels, AOT dispatch of their own backward); need_x_grad alternates to keep it quick."""
    _, _, inputs = CASES[op](device)
    raw, static = RAW[op]
    backward = getattr(torch.ops.fastaug, f"{op}_backward").default
    grad_out = rand(inputs[0].shape, device, 9).requires_grad_()
    torch.library.opcheck(backward, (grad_out, *[t.requires_grad_() for t in inputs], *static, need_x_grad))


@pytest.mark.parametrize("op", sorted(CASES))
def test_compiled_first_order_gradients_equal_eager(device, op):
    fn, _, inputs = CASES[op](device)
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    leaves = [t.clone().requires_grad_() for t in inputs]
    eager = torch.autograd.grad(fn(*leaves).pow(2).sum(), leaves)
    traced = torch.autograd.grad(compiled(*leaves).pow(2).sum(), leaves)
    for a, b in zip(traced, eager):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
