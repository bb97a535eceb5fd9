"""Every registered op, called directly (``torch.ops.fastaug.*``, no Python checks in front), with each
argument in turn wrong: a clear error naming it, or a correct result; never a crash.

The table ``SPECS`` states each op's contract independently of the code: the symbolic shape and the
dtype of every tensor argument, valid and invalid values of the other arguments. It must cover every
op registered in the ``fastaug`` namespace (``test_every_registered_op_is_covered``), so a new op
cannot be forgotten. Each case also runs on fake tensors, where the fake kernels must refuse the same
shapes, dtypes and devices (``torch._check``).

"Device" mutations move one argument to another device: CUDA when a GPU is present, otherwise the
meta device, which exercises the fake kernels' device checks.
"""
import re

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import fastaug

HAS_CUDA = bool(fastaug.build_info()["cuda"]) and torch.cuda.is_available()

SIZES = dict(N=3, C=3, H=5, W=6, L=2, D=4, K=2, Q=5)
HUGE = 2 ** 44  # a size no allocation can satisfy (more bytes than any address space)

F = "float"  # dtype rules: "float" = the op's floating dtype (float64 here); "like:<arg>" = that argument's
U8F = "image"  # uint8 or float image (apply_ops)


def _t(shape, dtype, seed, kind="rand"):
    g = torch.Generator().manual_seed(seed)
    if kind == "op":
        return torch.randint(-1, 16, shape, generator=g)
    if kind == "index":
        return torch.randint(0, SIZES["N"], shape, generator=g)
    if kind == "label":
        return torch.randint(0, SIZES["Q"], shape, generator=g)
    if kind == "center":
        return torch.randint(-1, 7, shape, generator=g)
    if kind == "sign":
        return torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0).to(dtype)
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * (1 if kind == "unit" else 0.4)).to(dtype)


# op name -> (tensor args: name -> (shape symbols, dtype, value kind)), (other args: name -> (valid, invalid
# values)), argument order, primary argument (the one the others are compared with).
IMG = ("N", "C", "H", "W")
SPECS = {
    "warp": dict(tensors={"x": (IMG, F, "unit"), "flow": (("N", 2, "H", "W"), F, "rand")},
                 scalars={"padding_mode": (2, [-1, 3]), "align_corners": (True, [])},
                 order=["x", "flow", "padding_mode", "align_corners"]),
    "warp_backward": dict(tensors={"grad_out": (IMG, F, "rand"), "x": (IMG, F, "unit"),
                                   "flow": (("N", 2, "H", "W"), F, "rand")},
                          scalars={"padding_mode": (0, [3]), "align_corners": (False, []), "need_x_grad": (True, [])},
                          order=["grad_out", "x", "flow", "padding_mode", "align_corners", "need_x_grad"]),
    "affine_flow_warp": dict(tensors={"x": (IMG, F, "unit"), "s_w": (("N", 4, "H", "W"), F, "rand"),
                                      "s_b": (("N", 2, "H", "W"), F, "rand")},
                             scalars={"smooth": (3, [0, 65]), "padding_mode": (1, [5])},
                             order=["x", "s_w", "s_b", "smooth", "padding_mode"]),
    "affine_flow_warp_backward": dict(
        tensors={"grad_out": (IMG, F, "rand"), "x": (IMG, F, "unit"), "s_w": (("N", 4, "H", "W"), F, "rand"),
                 "s_b": (("N", 2, "H", "W"), F, "rand")},
        scalars={"smooth": (4, [0, 100]), "padding_mode": (2, [-2]), "need_x_grad": (True, [])},
        order=["grad_out", "x", "s_w", "s_b", "smooth", "padding_mode", "need_x_grad"]),
    "appearance": dict(tensors={"x": (IMG, F, "unit"), "c_w": (("N", "C*C", "H", "W"), F, "rand"),
                                "c_b": (IMG, F, "rand")},
                       scalars={"smooth": (2, [-1, 65])}, order=["x", "c_w", "c_b", "smooth"], colour=True),
    "appearance_backward": dict(
        tensors={"grad_out": (IMG, F, "rand"), "x": (IMG, F, "unit"), "c_w": (("N", "C*C", "H", "W"), F, "rand"),
                 "c_b": (IMG, F, "rand")},
        scalars={"smooth": (4, [0]), "need_x_grad": (True, [])},
        order=["grad_out", "x", "c_w", "c_b", "smooth", "need_x_grad"], colour=True),
    "transform": dict(tensors={"x": (IMG, F, "unit"), "params": (("N", "6+C*C+C", "H", "W"), F, "rand")},
                      scalars={"smooth": (4, [0, 65]), "mode": (1, [2, -1]), "padding_mode": (0, [3])},
                      order=["x", "params", "smooth", "mode", "padding_mode"], colour=True),
    "transform_backward": dict(
        tensors={"grad_out": (IMG, F, "rand"), "x": (IMG, F, "unit"),
                 "params": (("N", "6+C*C+C", "H", "W"), F, "rand")},
        scalars={"smooth": (3, [0]), "mode": (0, [7]), "padding_mode": (2, [3]), "need_x_grad": (True, [])},
        order=["grad_out", "x", "params", "smooth", "mode", "padding_mode", "need_x_grad"], colour=True),
    "apply_ops": dict(
        tensors={"x": (IMG, U8F, "unit"), "pairs": (IMG, U8F, "unit"), "op": (("N", "L"), torch.int64, "op"),
                 "magnitude": (("N", "L"), torch.float32, "unit"), "sign": (("N", "L"), torch.float32, "sign"),
                 "partner": (("N", "L"), torch.int64, "index"), "center": (("N", "L", 2), torch.int64, "center")},
        scalars={"fill": (128, [-1, 256])},
        order=["x", "pairs", "op", "magnitude", "sign", "partner", "center", "fill"], colour=True),
    "apply_ops_backward": dict(
        tensors={"grad_out": (IMG, F, "rand"), "x": (IMG, F, "unit"), "pairs": (IMG, F, "unit"),
                 "op": (("N", 1), torch.int64, "op"), "magnitude": (("N", 1), torch.float32, "unit"),
                 "sign": (("N", 1), torch.float32, "sign"), "partner": (("N", 1), torch.int64, "index"),
                 "center": (("N", 1, 2), torch.int64, "center")},
        scalars={"fill": (0, [300]), "need_pairs_grad": (True, [])},
        order=["grad_out", "x", "pairs", "op", "magnitude", "sign", "partner", "center", "fill", "need_pairs_grad"],
        colour=True),
    "last_layer_hvp": dict(
        tensors={"h": (("N", "D"), F, "rand"), "p": (("N", "Q"), F, "unit"), "v": (("K", "Q", "D+1"), F, "rand"),
                 "weight": (("N",), F, "unit")},
        scalars={"scale": (0.5, [float("nan"), float("inf")]), "damping": (0.1, [-1.0, float("inf")])},
        order=["h", "p", "v", "weight", "scale", "damping"]),
    "influence_score": dict(
        tensors={"h": (("N", "D"), F, "rand"), "logits": (("N", "Q"), F, "rand"),
                 "target": (("N",), torch.int64, "label"), "s": (("Q", "D+1"), F, "rand")},
        scalars={}, order=["h", "logits", "target", "s"]),
    "influence_score_backward": dict(
        tensors={"grad": (("N",), F, "rand"), "h": (("N", "D"), F, "rand"), "logits": (("N", "Q"), F, "rand"),
                 "target": (("N",), torch.int64, "label"), "s": (("Q", "D+1"), F, "rand")},
        scalars={}, order=["grad", "h", "logits", "target", "s"]),
}
PRIMARY = {name: ("h" if "h" in spec["tensors"] else "x") for name, spec in SPECS.items()}


def _size(sym, sizes):
    if isinstance(sym, int):
        return sym
    return int(eval(sym, {}, dict(sizes)))  # "C*C", "D+1", "6+C*C+C": arithmetic on the sizes


def _symbols(sym):
    return set(re.findall(r"[A-Z]", sym)) if isinstance(sym, str) else set()


def make_args(name, sizes=None, dtype=torch.float64, image_dtype=None):
    """Valid arguments of op `name`, as a dict in schema order."""
    spec = SPECS[name]
    sizes = dict(SIZES, **(sizes or {}))
    args = {}
    for i, arg in enumerate(spec["order"]):
        if arg in spec["tensors"]:
            shape, rule, kind = spec["tensors"][arg]
            dt = dtype if rule == F else (image_dtype or dtype) if rule == U8F else rule
            args[arg] = _t(tuple(_size(s, sizes) for s in shape), dt, seed=i, kind=kind)
        else:
            args[arg] = spec["scalars"][arg][0]
    return args


def call(name, args):
    return getattr(torch.ops.fastaug, name)(*args.values())


def _outputs(out):
    return out if isinstance(out, (tuple, list)) else (out,)


def _expect_error(name, args, arg, fake_too=True):
    """The op must refuse args with a RuntimeError that names `arg` (or the argument it is compared
    with: the primary one, or op for the policy parameters); so must its fake kernel, on fake copies."""
    names = {arg, PRIMARY[name]} | ({"op"} if name.startswith("apply_ops") else set())
    pattern = "|".join(rf"\b{re.escape(n)}\b" for n in names)
    with pytest.raises(RuntimeError, match=pattern):
        call(name, args)
    if fake_too:
        with pytest.raises(RuntimeError):
            with FakeTensorMode(allow_non_fake_inputs=True) as mode:
                call(name, {k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v for k, v in args.items()})


def test_every_registered_op_is_covered():
    registered = {op.split("::", 1)[1] for op in torch._C._dispatch_get_all_op_names() if op.startswith("fastaug::")}
    assert registered == set(SPECS), f"ops without a direct-call contract here: {sorted(registered - set(SPECS))}"


@pytest.mark.parametrize("name", SPECS)
def test_valid_call_and_its_fake_agree(name):
    args = make_args(name)
    out = _outputs(call(name, args))
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = _outputs(call(name, {k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v
                                    for k, v in args.items()}))
    assert [tuple(o.shape) for o in out] == [tuple(f.shape) for f in fake]
    assert [o.dtype for o in out] == [f.dtype for f in fake]


def _tensor_args(name):
    return [(name, arg) for arg in SPECS[name]["tensors"]]


ALL_TENSOR_ARGS = [pair for name in SPECS for pair in _tensor_args(name)]


@pytest.mark.parametrize("name,arg", ALL_TENSOR_ARGS)
def test_wrong_rank(name, arg):
    for change in (lambda t: t.unsqueeze(0), lambda t: t.select(-1, 0)):
        args = make_args(name)
        args[arg] = change(args[arg])
        _expect_error(name, args, arg)


@pytest.mark.parametrize("name,arg", ALL_TENSOR_ARGS)
def test_wrong_size(name, arg):
    """Every dimension whose size another argument (or the op) fixes: one more is refused."""
    spec = SPECS[name]
    shape = spec["tensors"][arg][0]
    others = [s for a, (sh, _, _) in spec["tensors"].items() if a != arg for s in sh]
    other_symbols = set().union(*(_symbols(s) for s in others))
    for d, sym in enumerate(shape):
        tied = isinstance(sym, int) or bool(_symbols(sym) & other_symbols) or (sym == "C" and spec.get("colour"))
        if not tied:
            continue
        args = make_args(name)
        t = args[arg]
        args[arg] = torch.cat([t, t.narrow(d, 0, 1)], d)  # one more along d, same dtype and device
        _expect_error(name, args, arg)


@pytest.mark.parametrize("name,arg", ALL_TENSOR_ARGS)
def test_wrong_dtype(name, arg):
    args = make_args(name)
    t = args[arg]
    wrong = [torch.int32, torch.bool, torch.complex64] + ([torch.float32] if t.is_floating_point() else [])
    if t.dtype == torch.float32:
        wrong = [torch.float64, torch.int64]
    for dt in wrong:
        args = make_args(name)
        args[arg] = args[arg].to(dt)
        if name.startswith("influence_score") and arg in ("logits", "s") and dt.is_floating_point:
            continue  # mixed floating dtypes: refused on CPU (checked below), accepted on CUDA
        _expect_error(name, args, arg)


def test_influence_score_mixed_dtypes_on_cpu():
    for name in ("influence_score", "influence_score_backward"):
        for arg in ("logits", "s"):
            args = make_args(name)
            args[arg] = args[arg].float()
            _expect_error(name, args, arg)


@pytest.mark.parametrize("name,arg", ALL_TENSOR_ARGS)
def test_wrong_device(name, arg):
    other = "cuda" if HAS_CUDA else "meta"
    args = make_args(name)
    args[arg] = args[arg].to(other)
    with pytest.raises(RuntimeError, match=rf"\b({re.escape(arg)}|{PRIMARY[name]})\b"):
        call(name, args)
        if HAS_CUDA:
            torch.cuda.synchronize()


@pytest.mark.parametrize("name,arg", ALL_TENSOR_ARGS)
def test_non_contiguous_gives_the_same_result(name, arg):
    args = make_args(name)
    ref = _outputs(call(name, args))
    t = args[arg]
    # Same values, other strides: every other element of a twice-as-long last dimension.
    wide = torch.stack([t, torch.zeros_like(t)], -1).flatten(-2)
    args[arg] = wide[..., ::2]
    assert torch.equal(args[arg], t) and (not args[arg].is_contiguous() or t.numel() <= 1)
    out = _outputs(call(name, args))
    for a, b in zip(out, ref):
        assert torch.equal(a, b), name


EMPTIES = [(name, sym) for name in SPECS for sym in sorted({s for sh, _, _ in SPECS[name]["tensors"].values()
                                                            for x in sh for s in _symbols(x)})
           if not (sym == "C" and SPECS[name].get("colour"))]


@pytest.mark.parametrize("name,sym", EMPTIES)
def test_empty_sizes(name, sym):
    """A size of 0 everywhere it appears: the op returns outputs of the shapes its fake kernel gives
    (or, with no classes at all, refuses the labels that cannot exist)."""
    args = make_args(name, {sym: 0})
    if name.startswith("influence_score") and sym == "Q":
        with pytest.raises(RuntimeError, match="target"):
            call(name, args)
        return
    out = _outputs(call(name, args))
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = _outputs(call(name, {k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v
                                    for k, v in args.items()}))
    assert [tuple(o.shape) for o in out] == [tuple(f.shape) for f in fake]


def _huge(name, sym, huge):
    """Valid args with size `sym` = huge, as stride-0 expansions (no memory)."""
    args = make_args(name, {sym: 1})
    spec = SPECS[name]
    for arg, (shape, _, _) in spec["tensors"].items():
        t = args[arg]
        args[arg] = t.expand(*[huge if s == sym else -1 for s in shape])
    return args


@pytest.mark.parametrize("name", SPECS)
def test_huge_sizes_fail_cleanly(name):
    """Batch sizes no memory can hold, and (image ops) planes beyond 32-bit indexing: a RuntimeError
    before any kernel runs (an allocation failure or a size check), never a crash."""
    syms = ["N"] + (["H"] if "H" in SIZES and any("H" in sh for sh, _, _ in SPECS[name]["tensors"].values()) else [])
    for sym in syms:
        args = _huge(name, sym, HUGE)
        with pytest.raises(RuntimeError):
            call(name, args)
    if "H" in syms:
        # H * W = 2^44 pixels: refused by the 32-bit plane checks, or an allocation beyond any address space.
        args = make_args(name, {"H": 1, "W": 1})
        for arg, (shape, _, _) in SPECS[name]["tensors"].items():
            args[arg] = args[arg].expand(*[2 ** 22 if s in ("H", "W") else -1 for s in shape])
        with pytest.raises(RuntimeError):
            call(name, args)


@pytest.mark.parametrize("name", [n for n in SPECS if SPECS[n]["scalars"]])
def test_bad_scalar_arguments(name):
    for arg, (_, bad_values) in SPECS[name]["scalars"].items():
        for bad in bad_values:
            args = make_args(name)
            args[arg] = bad
            with pytest.raises(RuntimeError, match=arg):
                call(name, args)


@pytest.mark.parametrize("name", ["apply_ops", "apply_ops_backward"])
def test_policy_values_out_of_range(name):
    """Op ids, magnitudes and partner indices out of range: refused on CPU (the CUDA kernels clamp
    every index they read instead)."""
    for arg, bad in (("op", 16), ("op", -2), ("magnitude", 1.5), ("partner", SIZES["N"]), ("partner", -1)):
        args = make_args(name)
        args[arg] = torch.full_like(args[arg], bad)
        with pytest.raises(RuntimeError, match=arg if arg != "op" else "op ids"):
            call(name, args)


def test_uint8_and_float_images_of_apply_ops():
    """apply_ops takes uint8 or floating images; its backward only floating ones."""
    args = make_args("apply_ops", image_dtype=torch.uint8)
    assert call("apply_ops", args).dtype == torch.uint8
    args = make_args("apply_ops_backward")
    args["x"] = args["pairs"] = (args["x"] * 255).to(torch.uint8)
    args["grad_out"] = args["grad_out"].to(torch.uint8)
    with pytest.raises(RuntimeError, match="x"):
        call("apply_ops_backward", args)
