"""fastaug.nn layers: each equals its functional op, and works where users put modules
(torch.compile, torch.export, state_dict, autocast, double backward)."""
import pytest
import torch
from torch import nn

import fastaug
from fastaug import reference
from fastaug.nn import AffineFlowWarp, Appearance, Transform, Warp

N, H, W = 2, 6, 7


def _image(C, device, dtype=torch.float64):
    return torch.rand(N, C, H, W, device=device, dtype=dtype)


def _maps(K, device, dtype=torch.float64, scale=0.3):
    return scale * torch.randn(N, K, H, W, device=device, dtype=dtype)


def _head(c_in, c_out, dtype=torch.float64):
    return nn.Conv2d(c_in, c_out, 3, padding=1).to(dtype)


# layer -> (class, options that are also the op's and the reference's keywords, functional op,
#           reference, channels of each map the op takes for a C-channel image)
SPECS = {
    "Warp": (Warp, dict(padding_mode="border", align_corners=True), fastaug.warp, reference.warp,
             lambda C: [2]),
    "AffineFlowWarp": (AffineFlowWarp, dict(smooth=3, padding_mode="reflection"), fastaug.affine_flow_warp,
                       reference.affine_flow_warp, lambda C: [4, 2]),
    "Appearance": (Appearance, dict(smooth=2), fastaug.appearance, reference.appearance, lambda C: [C * C, C]),
    "Transform": (Transform, dict(smooth=2, mode="serial", padding_mode="border"), fastaug.transform,
                  reference.transform, lambda C: [6 + C * C + C]),
}
LAYERS = list(SPECS)


def _given_maps(name, C, device, dtype=torch.float64):
    # flows of ~1.5 pixels for Warp, ~0.3 normalised units / colour gains for the others
    scale = 1.5 if name == "Warp" else 0.3
    return [_maps(K, device, dtype, scale) for K in SPECS[name][4](C)]


def _split(name, out, C):
    """The head's one map cut into the op's arguments, written independently of the layers."""
    bounds = torch.tensor([0] + SPECS[name][4](C)).cumsum(0).tolist()
    return [out[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _layer(name, head=None):
    cls, options = SPECS[name][:2]
    return cls(head, **options)


def _op(name):
    op, options = SPECS[name][2], SPECS[name][1]
    return lambda x, *maps: op(x, *maps, **options)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("C", [1, 3])
def test_layer_with_given_maps_equals_the_op_and_the_reference(name, C, device):
    x, maps = _image(C, device), _given_maps(name, C, device)
    out = _layer(name)(x, *maps)
    assert torch.equal(out, _op(name)(x, *maps))  # the layer adds nothing to the op's maths
    torch.testing.assert_close(out, SPECS[name][3](x, *maps, **SPECS[name][1]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_with_head_equals_the_op_on_the_head_output_and_trains_the_head(name, device):
    C = 3
    K = sum(SPECS[name][4](C))
    head = _head(2 * C, K).to(device)
    layer = _layer(name, head)
    x, context = _image(C, device), _image(2 * C, device)
    out = layer(x, context=context)
    with torch.no_grad():
        expected = _op(name)(x, *_split(name, head(context), C))
    assert torch.equal(out, expected)
    out.square().sum().backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    # without context the head reads x itself
    layer_x = _layer(name, _head(C, K).to(device))
    with torch.no_grad():
        assert torch.equal(layer_x(x), _op(name)(x, *_split(name, layer_x.head(x), C)))


def test_extra_repr_shows_every_option():
    assert repr(Warp(padding_mode="reflection", align_corners=True)) == \
        "Warp(padding_mode='reflection', align_corners=True)"
    assert "smooth=5, padding_mode='border'" in repr(AffineFlowWarp(smooth=5, padding_mode="border"))
    assert repr(Appearance(smooth=1)) == "Appearance(smooth=1)"
    text = repr(Transform(nn.Conv2d(3, 18, 1), smooth=2, mode="serial"))
    assert "smooth=2, mode='serial', padding_mode='zeros'" in text and "(head): Conv2d(3, 18" in text


@pytest.mark.parametrize("make, match", [
    (lambda: Warp(padding_mode="wrap"), "padding_mode must be one of"),
    (lambda: AffineFlowWarp(smooth=0), r"smooth must be in \[1, 64\]"),
    (lambda: Appearance(smooth=2.0), "smooth must be an int"),
    (lambda: Transform(mode="both"), "mode must be one of"),
])
def test_bad_options_are_refused_at_construction(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_ambiguous_or_missing_maps_raise_one_sentence():
    x = _image(3, "cpu")
    with pytest.raises(ValueError, match="Warp has no head, so forward"):
        Warp()(x)
    with pytest.raises(ValueError, match="must not be given them too"):
        Warp(_head(3, 2))(x, _maps(2, "cpu"))
    with pytest.raises(ValueError, match="context is the head's input"):
        Warp()(x, _maps(2, "cpu"), context=x)
    with pytest.raises(ValueError, match="needs both s_w and s_b"):
        AffineFlowWarp()(x, _maps(4, "cpu"))
    with pytest.raises(ValueError, match=r"must return \(N, 12, H, W\) maps for a 3-channel image"):
        Appearance(_head(3, 9))(x)
    with pytest.raises(ValueError, match=r"flow \(displacement in pixels.*\) must have shape"):
        Warp(_head(3, 3))(x)  # a head with the wrong channel count: the op's own message


@pytest.mark.parametrize("layer", ["Warp", "AffineFlowWarp", "Appearance", "Transform"])
def test_an_image_that_is_not_a_batch_is_named_not_the_head(layer):
    """One (C, H, W) image: a Conv2d head takes it too, and its unbatched output was blamed ("Appearance's
    param_head must return (N, 30, H, W) maps for a 5-channel image" for a 3x5x6 image); a 1-D tensor or
    a list raised IndexError / AttributeError from Appearance's x.shape[1]."""
    k = {"Warp": 2, "AffineFlowWarp": 6, "Appearance": 12, "Transform": 18}[layer]
    make = {"Warp": Warp, "AffineFlowWarp": AffineFlowWarp, "Appearance": Appearance, "Transform": Transform}[layer]
    with_head = make(nn.Conv2d(3, k, 1))
    with pytest.raises(ValueError, match=r"^x must have shape \(N, C, H, W\), got \(3, 5, 6\)$"):
        with_head(torch.rand(3, 5, 6))
    with pytest.raises(ValueError, match=r"^x must have shape \(N, C, H, W\), got \(5,\)$"):
        make(lambda z: torch.zeros(1, k, 1, 5))(torch.rand(5))
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor, got list$"):
        make(lambda z: torch.zeros(1, k, 1, 1))([[[[0.5]]]])
    x = torch.rand(2, 3, 5, 6)  # a batch still works, and a wrong head output is still the head's
    assert with_head(x).shape == x.shape
    if layer in ("AffineFlowWarp", "Appearance"):
        with pytest.raises(ValueError, match=rf"{layer}'s param_head must return \(N, {k}, H, W\) maps"):
            make(nn.Conv2d(3, k + 1, 1))(x)


def test_a_layer_without_head_has_no_state_and_a_head_round_trips_through_state_dict(tmp_path):
    assert Warp().state_dict() == {}
    a = _layer("Transform", _head(3, 18))
    assert sorted(a.state_dict()) == ["head.bias", "head.weight"]
    torch.save(a.state_dict(), tmp_path / "t.pt")
    b = _layer("Transform", _head(3, 18))
    x = _image(3, "cpu")
    assert not torch.equal(a(x), b(x))
    b.load_state_dict(torch.load(tmp_path / "t.pt"))
    assert torch.equal(a(x), b(x))


def _compile_case(name):
    C = 3
    torch.manual_seed(1)
    return _layer(name, _head(C, sum(SPECS[name][4](C)), torch.float32)), _image(C, "cpu", torch.float32)


@pytest.mark.parametrize("name", LAYERS)
def test_torch_compile_fullgraph_matches_eager_forward_and_backward(name):
    layer, x = _compile_case(name)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_e, out_c = layer(x1), compiled(x2)
    torch.testing.assert_close(out_c, out_e, rtol=0, atol=0)
    g_e = torch.autograd.grad(out_e.square().sum(), [x1, layer.head.weight])
    g_c = torch.autograd.grad(out_c.square().sum(), [x2, layer.head.weight])
    for a, b in zip(g_c, g_e):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_torch_compile_inductor_warp_layer_matches_eager():
    layer, x = _compile_case("Warp")
    compiled = torch.compile(layer, fullgraph=True)  # inductor: the head becomes generated code
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
def test_torch_export_runs_the_fastaug_op_and_matches_eager(name):
    layer, x = _compile_case(name)
    exported = torch.export.export(layer, (x,))
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert any(t.startswith("fastaug.") for t in targets), targets  # the kernel, not a decomposition
    torch.testing.assert_close(exported.module()(x), layer(x), rtol=0, atol=0)


# ---- need the double backward and autocast of fastaug.ops (docs/design.md, the op layer) -----------

def test_warp_layer_under_cpu_autocast_runs_like_grid_sample():
    """A bfloat16 conv head under autocast feeds the warp; like grid_sample, the warp runs in float32."""
    torch.manual_seed(2)
    head = nn.Conv2d(3, 2, 3, padding=1)
    layer = Warp(head)
    x = torch.rand(N, 3, H, W)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        flow = head(x)
        expected = reference.warp(x, flow)  # grid_sample's own autocast rule decides its dtype
    assert out.dtype == expected.dtype
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_warp_layer_double_backward_matches_finite_differences():
    """A gradient penalty through the layer (gradgradcheck in float64 over x and the flow)."""
    x, flow = _image(1, "cpu").requires_grad_(), _maps(2, "cpu", scale=1.2).requires_grad_()
    layer = Warp(padding_mode="border")
    assert torch.autograd.gradgradcheck(lambda a, f: layer(a, f), (x, flow))


def test_transform_layer_with_the_learned_encoder_dropout_generator_head_is_learned_augment():
    """The class docstring's recipe for the paper's augmenter (it said "G as param_head", and
    Transform(G)(x) fails: G maps a code tau, not an image)."""
    from fastaug.augment.learned import LearnedAugment
    torch.manual_seed(3)
    learned = LearnedAugment(3, 16, dropout=0.5, init_scale=0.05).eval()
    layer = Transform(nn.Sequential(learned.encoder, learned.dropout, learned.generator)).eval()
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(layer(x), learned(x), rtol=0, atol=0)
    tau = learned.encoder(x)
    torch.testing.assert_close(Transform(learned.generator)(x, context=tau), learned(x, tau=tau), rtol=0, atol=0)
