"""The ops under torch.autocast (fastaug/ops/_autocast.py): half-precision and float32 inputs mixed
run in float32 and equal the op on the float32 inputs; outside autocast mixed dtypes keep their error."""
import pytest
import torch
import torch.nn.functional as F

import fastaug
from fastaug import reference

# The autocast dtype per device: bfloat16 is what CPU autocast supports well; float16 on CUDA.
LOW = {"cpu": torch.bfloat16, "cuda": torch.float16}


def rand(shape, device, seed, scale=1.0, low=None):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(shape, generator=g) if low == 0 else torch.randn(shape, generator=g) * scale
    return t.to(device)


def image_op_cases(device):
    """op name -> (fn, float32 inputs): x first, then the maps."""
    x3, x2 = rand((2, 3, 5, 6), device, 0, low=0), rand((2, 2, 5, 6), device, 0, low=0)
    return {
        "warp": (lambda x, f: fastaug.warp(x, f, padding_mode="reflection"),
                 [x2, rand((2, 2, 5, 6), device, 1, scale=1.5)]),
        "affine_flow_warp": (lambda x, a, b: fastaug.affine_flow_warp(x, a, b, smooth=3),
                             [x2, rand((2, 4, 5, 6), device, 2, 0.3), rand((2, 2, 5, 6), device, 3, 0.3)]),
        "appearance": (lambda x, a, b: fastaug.appearance(x, a, b, smooth=2),
                       [x3, rand((2, 9, 5, 6), device, 4, 0.3), rand((2, 3, 5, 6), device, 5, 0.3)]),
        "transform": (lambda x, p: fastaug.transform(x, p, mode="serial"), [x3, rand((2, 18, 5, 6), device, 6, 0.3)]),
    }


def influence_inputs(device):
    h, z = rand((4, 3), device, 0), rand((4, 5), device, 1)
    return h, z, torch.softmax(z, 1), torch.tensor([0, 4, 2, 1], device=device), rand((5, 4), device, 2)


def halve_every_other(inputs, low):
    """Mixed dtypes: inputs 0, 2, 4, ... in the autocast dtype, the others float32."""
    return [t.to(low) if i % 2 == 0 else t for i, t in enumerate(inputs)]


def as_float32(inputs):
    return [t.float() for t in inputs]


IMAGE_OPS = ["warp", "affine_flow_warp", "appearance", "transform"]


def assert_same_gradient(a, b):
    """Bit-identical on CPU; on CUDA the warping ops' image gradient is a scatter with float atomics (as
    grid_sample's), whose last bits vary between runs, so there within the dtype's default tolerance."""
    if a.device.type == "cpu":
        assert torch.equal(a, b)
    else:
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("op", IMAGE_OPS)
@pytest.mark.parametrize("first_low", [True, False])
def test_image_ops_run_in_float32_under_autocast(device, op, first_low):
    fn, inputs = image_op_cases(device)[op]
    low = LOW[device]
    # x in the autocast dtype and the maps mixed, or x float32 and every map in the autocast dtype
    mixed = halve_every_other(inputs, low) if first_low else [inputs[0]] + [t.to(low) for t in inputs[1:]]
    with torch.autocast(device, dtype=low):
        out = fn(*mixed)
    assert out.dtype == torch.float32
    assert torch.equal(out, fn(*as_float32(mixed)))


@pytest.mark.parametrize("op", IMAGE_OPS)
def test_raw_ops_follow_the_same_rule(device, op):
    """Direct torch.ops.fastaug calls go through the registered Autocast kernel."""
    raw = {"warp": (torch.ops.fastaug.warp, (2, False)),
           "affine_flow_warp": (torch.ops.fastaug.affine_flow_warp, (3, 0)),
           "appearance": (torch.ops.fastaug.appearance, (2,)),
           "transform": (torch.ops.fastaug.transform, (4, 1, 0))}
    fn, static = raw[op]
    _, inputs = image_op_cases(device)[op]
    mixed = halve_every_other(inputs, LOW[device])
    with torch.autocast(device, dtype=LOW[device]):
        out = fn(*mixed, *static)
    assert out.dtype == torch.float32
    assert torch.equal(out, fn(*as_float32(mixed), *static))


@pytest.mark.parametrize("op", IMAGE_OPS)
def test_gradients_flow_back_to_half_precision_inputs(device, op):
    fn, inputs = image_op_cases(device)[op]
    low = LOW[device]
    mixed = [t.requires_grad_() for t in halve_every_other(inputs, low)]
    with torch.autocast(device, dtype=low):
        out = fn(*mixed)
    grads = torch.autograd.grad(out.pow(2).sum(), mixed)
    leaves = [t.detach().float().requires_grad_() for t in mixed]
    expected = torch.autograd.grad(fn(*leaves).pow(2).sum(), leaves)
    for g, e, t in zip(grads, expected, mixed):
        assert g.dtype == t.dtype  # the cast's backward returns each gradient in its input's dtype
        assert_same_gradient(g, e.to(t.dtype))


def test_warp_of_a_conv_predicted_flow(device):
    """The issue's model: warp(x, conv(x)) under autocast, against grid_sample (reference.warp) under autocast."""
    low = LOW[device]
    conv = torch.nn.Conv2d(2, 2, 3, padding=1).to(device)
    x = rand((2, 2, 8, 8), device, 0, low=0)
    losses, grads = [], []
    for warp in (fastaug.warp, reference.warp):
        with torch.autocast(device, dtype=low):
            out = warp(x, conv(x))
            loss = out.pow(2).mean()
        assert out.dtype == torch.float32
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, conv.weight)[0])
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(losses[0], losses[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-3)


def test_apply_ops_under_autocast(device):
    low = LOW[device]
    x = rand((2, 3, 6, 6), device, 0, low=0)
    op, mag = torch.tensor([4, 13], device=device), torch.tensor([0.6, 0.8], device=device)
    with torch.autocast(device, dtype=low):
        out = fastaug.apply_ops(x.to(low), op, mag)
        out8 = fastaug.apply_ops((x * 255).to(torch.uint8), op, mag)
    assert out.dtype == torch.float32 and out8.dtype == torch.uint8  # integer images are untouched
    assert torch.equal(out, fastaug.apply_ops(x.to(low).float(), op, mag))
    assert torch.equal(out8, fastaug.apply_ops((x * 255).to(torch.uint8), op, mag))


def test_influence_ops_under_autocast(device):
    low = LOW[device]
    h, z, p, target, s = influence_inputs(device)
    v = rand((5, 4), device, 3)
    with torch.autocast(device, dtype=low):
        score = fastaug.influence_score(h.to(low), z, target, s.to(low))
        aug = fastaug.influence_aug(h, z.to(low), h.to(low), z, target, s)
        hv = fastaug.last_layer_hvp(h.to(low), p, v.to(low), weight=torch.ones(4, device=device, dtype=low))
    assert score.dtype == aug.dtype == hv.dtype == torch.float32
    f = lambda t: t.to(low).float()  # noqa: E731 -- the value each input has after the cast
    assert torch.equal(score, fastaug.influence_score(f(h), z, target, f(s)))
    assert torch.equal(aug, fastaug.influence_aug(h, f(z), f(h), z, target, s))
    assert torch.equal(hv, fastaug.last_layer_hvp(f(h), p, f(v), weight=torch.ones(4, device=device)))


def test_float64_is_left_alone(device):
    """As PyTorch's float32 autocast rule: float64 tensors are not cast, so all-float64 stays float64,
    and float64 mixed with a half-precision map fails as grid_sample does (with fastaug's sentence)."""
    fn, inputs = image_op_cases(device)["warp"]
    x, flow = [t.double() for t in inputs]
    with torch.autocast(device, dtype=LOW[device]):
        out = fn(x, flow)
        assert out.dtype == torch.float64
        with pytest.raises(TypeError, match="flow must have the dtype of x .* leaves float64 alone"):
            fn(x, flow.to(LOW[device]))
    assert torch.equal(out, fn(x, flow))


@pytest.mark.parametrize("op", IMAGE_OPS)
def test_mixed_dtypes_outside_autocast_still_raise(device, op):
    fn, inputs = image_op_cases(device)[op]
    with pytest.raises(TypeError, match="must have the dtype of x"):
        fn(inputs[0], *[t.double() for t in inputs[1:]])
    if device == "cpu":
        with pytest.raises(TypeError, match="supported on CUDA only"):
            fn(*[t.bfloat16() for t in inputs])


def test_influence_mixed_dtypes_outside_autocast_still_raise():
    h, z, p, target, s = influence_inputs("cpu")
    with pytest.raises(TypeError, match="share one dtype on CPU"):
        fastaug.influence_score(h, z.double(), target, s)
    with pytest.raises(TypeError, match="must have the dtype of h"):
        fastaug.last_layer_hvp(h, p.double(), s)


@pytest.mark.parametrize("op", IMAGE_OPS)
def test_compiled_under_autocast(device, op):
    fn, inputs = image_op_cases(device)[op]
    low = LOW[device]

    def step(*args):
        with torch.autocast(device, dtype=low):
            return fn(*args)

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    mixed = [t.requires_grad_() for t in halve_every_other(inputs, low)]
    out, eager = compiled(*mixed), step(*mixed)
    assert out.dtype == torch.float32
    assert torch.equal(out, eager)
    for a, b in zip(torch.autograd.grad(out.sum(), mixed), torch.autograd.grad(eager.sum(), mixed)):
        assert_same_gradient(a, b)


def test_compiled_conv_warp_model_under_autocast():
    """A conv predicting the flow, compiled whole with autocast inside (aot_eager)."""
    conv = torch.nn.Conv2d(2, 2, 3, padding=1)
    x = rand((2, 2, 8, 8), "cpu", 0, low=0)

    def model(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return F.mse_loss(fastaug.warp(x, conv(x)), x)

    torch._dynamo.reset()
    loss = torch.compile(model, fullgraph=True, backend="aot_eager")(x)
    torch.testing.assert_close(loss, model(x), atol=1e-6, rtol=1e-5)
    assert torch.autograd.grad(loss, conv.weight)[0].abs().sum() > 0


@pytest.mark.parametrize("op", IMAGE_OPS + ["influence_score"])
def test_backward_inside_the_autocast_region_stays_float32(device, op):
    """float32 inputs, forward and backward both inside autocast: bit-identical to no autocast (the
    backward ops carry the rule too, so the influence kernels' GEMMs do not drop to half precision)."""
    if op == "influence_score":
        h, z, _, target, s = influence_inputs(device)
        fn, inputs = (lambda h, z, s: fastaug.influence_score(h, z, target, s)), [h, z, s]
    else:
        fn, inputs = image_op_cases(device)[op]
    leaves = [t.clone().requires_grad_() for t in inputs]
    with torch.autocast(device, dtype=LOW[device]):
        grads = torch.autograd.grad(fn(*leaves).pow(2).sum(), leaves)
    expected = torch.autograd.grad(fn(*leaves).pow(2).sum(), leaves)
    for g, e in zip(grads, expected):
        assert g.dtype == torch.float32
        assert_same_gradient(g, e)
