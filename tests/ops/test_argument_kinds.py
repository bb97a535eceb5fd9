"""Arguments of a kind the spec's samples do not use (tests/ops/opinfo.py): tensors of another layout,
options of another type. Each is refused in one sentence where grid_sample refuses it, or taken as
torch takes it, never converted into something else silently."""
import numpy as np
import pytest
import torch

import fastaug
from fastaug import reference
from opinfo import seeded

X = seeded((2, 3, 5, 6))
FLOW = seeded((2, 2, 5, 6), seed=1, scale=3.0, normal=True)
ZW, ZB = torch.zeros(2, 4, 5, 6, dtype=X.dtype), torch.zeros(2, 2, 5, 6, dtype=X.dtype)
CW, CB = torch.zeros(2, 9, 5, 6, dtype=X.dtype), torch.zeros(2, 3, 5, 6, dtype=X.dtype)
PARAMS = torch.zeros(2, 18, 5, 6, dtype=X.dtype)


@pytest.mark.parametrize("value", ["False", "True", 0, 1, np.bool_(False)])
def test_warp_refuses_an_align_corners_that_is_not_a_bool(value):
    # bool("False") is True: the reflection axes moved without a word. grid_sample refuses these too.
    with pytest.raises(TypeError, match=r"align_corners must be a bool"):
        fastaug.warp(X, FLOW, padding_mode="reflection", align_corners=value)
    with pytest.raises(TypeError, match=r"align_corners must be a bool"):
        fastaug.nn.Warp(padding_mode="reflection", align_corners=value)


def test_warp_align_corners_none_is_false_as_in_grid_sample():
    out = fastaug.warp(X, FLOW, padding_mode="reflection", align_corners=None)
    torch.testing.assert_close(out, reference.warp(X, FLOW, "reflection", False))
    assert fastaug.nn.Warp(align_corners=None).align_corners is False


SPARSE_CALLS = {
    "warp x": lambda f: fastaug.warp(f(X), FLOW),
    "warp flow": lambda f: fastaug.warp(X, f(FLOW)),
    "affine_flow_warp s_b": lambda f: fastaug.affine_flow_warp(X, ZW, f(ZB)),
    "appearance c_w": lambda f: fastaug.appearance(X, f(CW), CB),
    "transform params": lambda f: fastaug.transform(X, f(PARAMS)),
}


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")
@pytest.mark.parametrize("call", SPARSE_CALLS, ids=list(SPARSE_CALLS))
@pytest.mark.parametrize("kind", ["sparse_coo", "nested"])
def test_a_tensor_that_is_not_dense_is_refused_in_one_sentence(call, kind):
    # Was the dispatcher's 50-line "Could not run 'fastaug::warp' with arguments from the 'SparseCPU'
    # backend" (a NotImplementedError), or "Internal error: NestedTensorImpl doesn't support sizes".
    to = (lambda t: t.to_sparse()) if kind == "sparse_coo" else (lambda t: torch.nested.nested_tensor(list(t)))
    with pytest.raises(TypeError, match=rf"must be a dense \(strided\) tensor, got a {kind} tensor") as info:
        SPARSE_CALLS[call](to)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", [["zeros"], {"zeros": 0}])
def test_an_unhashable_mode_gets_the_modes_sentence(bad):
    # Was "TypeError: unhashable type: 'list'", from the dictionary lookup of the mode.
    with pytest.raises(ValueError, match=r"padding_mode must be one of \['border', 'reflection', 'zeros'\]"):
        fastaug.warp(X, FLOW, padding_mode=bad)
    with pytest.raises(ValueError, match=r"padding_mode must be one of"):
        fastaug.transform(X, PARAMS, padding_mode=bad)
    with pytest.raises(ValueError, match=r"mode must be one of \['parallel', 'serial'\]"):
        fastaug.transform(X, PARAMS, mode=bad)
    with pytest.raises(ValueError, match=r"padding_mode must be one of"):
        fastaug.nn.Warp(padding_mode=bad)
    with pytest.raises(ValueError, match=r"mode must be one of"):
        fastaug.nn.Transform(mode=bad)


def test_a_numpy_integer_smooth_is_taken_as_torch_takes_integer_arguments():
    # Was "TypeError: smooth must be an int (box window size), got int64" (avg_pool2d takes it).
    k = np.int64(3)
    s_w = seeded((2, 4, 5, 6), seed=2, scale=0.3, normal=True)
    s_b = seeded((2, 2, 5, 6), seed=3, scale=0.3, normal=True)
    torch.testing.assert_close(fastaug.affine_flow_warp(X, s_w, s_b, smooth=k),
                               reference.affine_flow_warp(X, s_w, s_b, smooth=3))
    params = torch.cat([s_w, s_b, seeded((2, 12, 5, 6), seed=4, scale=0.2, normal=True)], 1)
    torch.testing.assert_close(fastaug.transform(X, params, smooth=k), reference.transform(X, params, smooth=3))
    torch.testing.assert_close(fastaug.appearance(X, params[:, 6:15], params[:, 15:], smooth=k),
                               reference.appearance(X, params[:, 6:15], params[:, 15:], smooth=3))
    layer = fastaug.nn.Transform(smooth=k)
    assert type(layer.smooth) is int and repr(layer) == "Transform(smooth=3, mode='parallel', padding_mode='zeros')"
    for bad in (True, np.bool_(True), 3.0, torch.tensor(3)):
        with pytest.raises(TypeError, match=r"smooth must be an int"):
            fastaug.affine_flow_warp(X, s_w, s_b, smooth=bad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_non_finite_coordinates_sample_what_design_md_says(dtype):
    # docs/design.md K1 said "non-finite or far-away coordinates sample zero": with "border" an infinite
    # or far-away coordinate samples the border pixel (grid_sample's clip), with "reflection" a far-away one
    # the reflected pixel.
    x = torch.arange(1.0, 10.0, dtype=dtype).view(1, 1, 3, 3)
    values = (float("nan"), float("inf"), -float("inf"), 1e4, -1e4 - 0.5)
    got = {}
    for pm in ("zeros", "border", "reflection"):
        flow = torch.zeros(len(values), 2, 3, 3, dtype=dtype)
        flow[:, 0, 1, 1] = torch.tensor(values, dtype=dtype)
        got[pm] = fastaug.warp(x.expand(len(values), 1, 3, 3), flow, padding_mode=pm)[:, 0, 1, 1].tolist()
        finite = slice(3, None)  # far away: grid_sample's value
        torch.testing.assert_close(torch.tensor(got[pm][finite], dtype=dtype),
                                   reference.warp(x.expand(2, 1, 3, 3), flow[finite], pm)[:, 0, 1, 1])
    assert got["zeros"][:4] == [0, 0, 0, 0]
    assert got["border"][:4] == [0, 6, 4, 6]
    assert got["reflection"][:4] == [0, 0, 0, 4]  # 1 + 1e4 reflected about the edges -1/2 and 5/2: column 0


def test_zero_parameters_on_an_image_with_non_finite_pixels_spread_them_as_the_reference():
    # design.md K2 and the README said "zero parameters give back x bit for bit" without the finite x it
    # needs: 0 * inf in a zero-weight corner (or colour weight) is NaN, in the kernels as in grid_sample.
    x = seeded((2, 3, 5, 6), normal=True)
    x[0, 0, 0, 0], x[0, 1, 2, 3], x[1, 2, 4, 5] = -0.0, float("inf"), float("nan")
    zeros = lambda k: torch.zeros(2, k, 5, 6, dtype=x.dtype)  # noqa: E731
    cases = [(fastaug.warp(x, zeros(2)), reference.warp(x, zeros(2))),
             (fastaug.affine_flow_warp(x, zeros(4), zeros(2)), reference.affine_flow_warp(x, zeros(4), zeros(2))),
             (fastaug.appearance(x, zeros(9), zeros(3)), reference.appearance(x, zeros(9), zeros(3))),
             (fastaug.transform(x, zeros(18), mode="serial"), reference.transform(x, zeros(18), mode="serial"))]
    for out, ref in cases:
        assert torch.equal(out.isnan(), ref.isnan()) and out.isnan().sum() > 2
        torch.testing.assert_close(out, ref, equal_nan=True)
    finite = torch.where(torch.isfinite(x), x, 0.0)
    assert torch.equal(fastaug.transform(finite, zeros(18)), finite)


def test_last_layer_hvp_takes_real_numbers_for_damping_and_scale():
    # float() took a bool (damping=True was 1.0) and a string (scale="2" was 2.0); a non-finite scale got
    # the kernel's RuntimeError where a non-finite damping got the ValueError.
    from fastaug.influence import LastLayerHessian
    from oracles.influence import reference_hvp
    h, v = seeded((5, 3), seed=1, normal=True), seeded((2, 4), seed=2, normal=True)
    p = torch.softmax(seeded((5, 2), seed=3, normal=True), 1)
    for damping, scale in ((np.float32(0.5), 2), (torch.tensor(0.5), np.float64(2.0)), (0.5, 2.0)):
        torch.testing.assert_close(fastaug.last_layer_hvp(h, p, v, damping=damping, scale=scale),
                                   reference_hvp(h, p, v, damping=0.5, scale=2.0))
    for bad in (True, "0.1", torch.tensor([0.1, 0.2]), torch.tensor(True)):
        with pytest.raises(TypeError, match=r"damping must be a real number"):
            fastaug.last_layer_hvp(h, p, v, damping=bad)
        with pytest.raises(TypeError, match=r"scale must be a real number"):
            fastaug.last_layer_hvp(h, p, v, scale=bad)
    with pytest.raises(TypeError, match=r"damping must be a real number, got bool"):
        LastLayerHessian(h, p, damping=True)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^scale must be a finite number"):
            fastaug.last_layer_hvp(h, p, v, scale=bad)


def test_apply_ops_takes_a_numpy_integer_fill_as_the_same_int():
    """``fill=np.int64(5)`` is the fill 5 (numpy integers are integers, as for ``smooth``); a bool or a
    float is still refused."""
    x = (seeded((3, 3, 9, 9)) * 255).to(torch.uint8)
    op = torch.tensor([2, 15, 0])  # TranslateX (fills), Cutout (fills), ShearX (fills)
    mag = torch.tensor([0.9, 0.8, 1.0])
    center = torch.tensor([[4, 4], [2, 6], [0, 0]])
    want = fastaug.apply_ops(x, op, mag, fill=5, center=center)
    for fill in (np.int64(5), np.uint8(5), np.int32(5)):
        assert torch.equal(fastaug.apply_ops(x, op, mag, fill=fill, center=center), want)
    assert not torch.equal(fastaug.apply_ops(x, op, mag, fill=6, center=center), want)
    for bad in (True, np.bool_(True), 5.0):
        with pytest.raises(TypeError, match="fill must be an int"):
            fastaug.apply_ops(x, op, mag, fill=bad, center=center)
    with pytest.raises(ValueError, match="fill must be in"):
        fastaug.apply_ops(x, op, mag, fill=np.int64(256), center=center)
