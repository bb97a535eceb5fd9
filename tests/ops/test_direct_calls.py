"""Every registered op, called directly (``torch.ops.fastaug.*``, no Python checks in front), with each
argument in turn wrong: a clear error naming it, or a correct result; never a crash.

Each op family's spec (``OpInfo.direct`` in tests/ops/opinfo.py) states each registered op's contract
independently of the code: the symbolic shape and the dtype of every tensor argument, valid and invalid
values of the other arguments. Together they must cover
every op registered in the ``fastaug`` namespace (``test_every_registered_op_is_covered``), so a new op
cannot be forgotten. Each case also runs on fake tensors, where the fake kernels must refuse the same
shapes, dtypes and devices (``torch._check``).

"Device" mutations move one argument to another device: CUDA when a GPU is present, otherwise the
meta device, which exercises the fake kernels' device checks.
"""
import re

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from opinfo import DIRECT, DIRECT_SIZES, HAS_CUDA, call_direct, direct_args, symbols

HUGE = 2 ** 44  # a size no allocation can satisfy (more bytes than any address space)
PRIMARY = {name: ("h" if "h" in spec["tensors"] else "x") for name, spec in DIRECT.items()}


def _outputs(out):
    return out if isinstance(out, (tuple, list)) else (out,)


def _expect_error(name, args, arg, fake_too=True):
    """The op must refuse args with a RuntimeError that names `arg` (or the argument it is compared
    with: the primary one, or op for the policy parameters); so must its fake kernel, on fake copies."""
    names = {arg, PRIMARY[name]} | ({"op"} if name.startswith("apply_ops") else set())
    pattern = "|".join(rf"\b{re.escape(n)}\b" for n in names)
    with pytest.raises(RuntimeError, match=pattern):
        call_direct(name, args)
    if fake_too:
        with pytest.raises(RuntimeError):
            with FakeTensorMode(allow_non_fake_inputs=True) as mode:
                call_direct(name, {k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v for k, v in args.items()})


def test_every_registered_op_is_covered():
    registered = {op.split("::", 1)[1] for op in torch._C._dispatch_get_all_op_names() if op.startswith("fastaug::")}
    assert registered == set(DIRECT), f"ops without a direct-call contract here: {sorted(registered - set(DIRECT))}"


@pytest.mark.parametrize("name", DIRECT)
def test_valid_call_and_its_fake_agree(name):
    args = direct_args(name)
    out = _outputs(call_direct(name, args))
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = _outputs(call_direct(name, {k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v
                                    for k, v in args.items()}))
    assert [tuple(o.shape) for o in out] == [tuple(f.shape) for f in fake]
    assert [o.dtype for o in out] == [f.dtype for f in fake]


def _tensor_args(name):
    return [(name, arg) for arg in DIRECT[name]["tensors"]]


ALL_TENSOR_ARGS = [pair for name in DIRECT for pair in _tensor_args(name)]


@pytest.mark.parametrize("name,arg", ALL_TENSOR_ARGS)
def test_wrong_rank(name, arg):
    for change in (lambda t: t.unsqueeze(0), lambda t: t.select(-1, 0)):
        args = direct_args(name)
        args[arg] = change(args[arg])
        _expect_error(name, args, arg)


@pytest.mark.parametrize("name,arg", ALL_TENSOR_ARGS)
def test_wrong_size(name, arg):
    """Every dimension whose size another argument (or the op) fixes: one more is refused."""
    spec = DIRECT[name]
    shape = spec["tensors"][arg][0]
    others = [s for a, (sh, _, _) in spec["tensors"].items() if a != arg for s in sh]
    other_symbols = set().union(*(symbols(s) for s in others))
    for d, sym in enumerate(shape):
        tied = isinstance(sym, int) or bool(symbols(sym) & other_symbols) or (sym == "C" and spec.get("colour"))
        if not tied:
            continue
        args = direct_args(name)
        t = args[arg]
        args[arg] = torch.cat([t, t.narrow(d, 0, 1)], d)  # one more along d, same dtype and device
        _expect_error(name, args, arg)


@pytest.mark.parametrize("name,arg", ALL_TENSOR_ARGS)
def test_wrong_dtype(name, arg):
    args = direct_args(name)
    t = args[arg]
    wrong = [torch.int32, torch.bool, torch.complex64] + ([torch.float32] if t.is_floating_point() else [])
    if t.dtype == torch.float32:
        wrong = [torch.float64, torch.int64]
    for dt in wrong:
        args = direct_args(name)
        args[arg] = args[arg].to(dt)
        if name.startswith("influence_score") and arg in ("logits", "s") and dt.is_floating_point:
            continue  # mixed floating dtypes: refused on CPU (checked below), accepted on CUDA
        _expect_error(name, args, arg)


def test_influence_score_mixed_dtypes_on_cpu():
    for name in ("influence_score", "influence_score_backward"):
        for arg in ("logits", "s"):
            args = direct_args(name)
            args[arg] = args[arg].float()
            _expect_error(name, args, arg)


@pytest.mark.parametrize("name,arg", ALL_TENSOR_ARGS)
def test_wrong_device(name, arg):
    other = "cuda" if HAS_CUDA else "meta"
    args = direct_args(name)
    args[arg] = args[arg].to(other)
    with pytest.raises(RuntimeError, match=rf"\b({re.escape(arg)}|{PRIMARY[name]})\b"):
        call_direct(name, args)
        if HAS_CUDA:
            torch.cuda.synchronize()


@pytest.mark.parametrize("name,arg", ALL_TENSOR_ARGS)
def test_non_contiguous_gives_the_same_result(name, arg):
    args = direct_args(name)
    ref = _outputs(call_direct(name, args))
    t = args[arg]
    # Same values, other strides: every other element of a twice-as-long last dimension.
    wide = torch.stack([t, torch.zeros_like(t)], -1).flatten(-2)
    args[arg] = wide[..., ::2]
    assert torch.equal(args[arg], t) and (not args[arg].is_contiguous() or t.numel() <= 1)
    out = _outputs(call_direct(name, args))
    for a, b in zip(out, ref):
        assert torch.equal(a, b), name


EMPTIES = [(name, sym) for name in DIRECT for sym in sorted({s for sh, _, _ in DIRECT[name]["tensors"].values()
                                                            for x in sh for s in symbols(x)})
           if not (sym == "C" and DIRECT[name].get("colour"))]


@pytest.mark.parametrize("name,sym", EMPTIES)
def test_empty_sizes(name, sym):
    """A size of 0 everywhere it appears: the op returns outputs of the shapes its fake kernel gives
    (or, with no classes at all, refuses the labels that cannot exist)."""
    args = direct_args(name, {sym: 0})
    if name.startswith("influence_score") and sym == "Q":
        with pytest.raises(RuntimeError, match="target"):
            call_direct(name, args)
        return
    out = _outputs(call_direct(name, args))
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = _outputs(call_direct(name, {k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v
                                    for k, v in args.items()}))
    assert [tuple(o.shape) for o in out] == [tuple(f.shape) for f in fake]


def _huge(name, sym, huge):
    """Valid args with size `sym` = huge, as stride-0 expansions (no memory)."""
    args = direct_args(name, {sym: 1})
    spec = DIRECT[name]
    for arg, (shape, _, _) in spec["tensors"].items():
        t = args[arg]
        args[arg] = t.expand(*[huge if s == sym else -1 for s in shape])
    return args


@pytest.mark.parametrize("name", DIRECT)
def test_huge_sizes_fail_cleanly(name):
    """Batch sizes no memory can hold, and (image ops) planes beyond 32-bit indexing: a RuntimeError
    before any kernel runs (an allocation failure or a size check), never a crash."""
    syms = ["N"] + (["H"] if "H" in DIRECT_SIZES and any("H" in sh for sh, _, _ in DIRECT[name]["tensors"].values()) else [])
    for sym in syms:
        args = _huge(name, sym, HUGE)
        with pytest.raises(RuntimeError):
            call_direct(name, args)
    if "H" in syms:
        # H * W = 2^44 pixels: refused by the 32-bit plane checks, or an allocation beyond any address space.
        args = direct_args(name, {"H": 1, "W": 1})
        for arg, (shape, _, _) in DIRECT[name]["tensors"].items():
            args[arg] = args[arg].expand(*[2 ** 22 if s in ("H", "W") else -1 for s in shape])
        with pytest.raises(RuntimeError):
            call_direct(name, args)


@pytest.mark.parametrize("name", [n for n in DIRECT if DIRECT[n]["scalars"]])
def test_bad_scalar_arguments(name):
    for arg, (_, bad_values) in DIRECT[name]["scalars"].items():
        for bad in bad_values:
            args = direct_args(name)
            args[arg] = bad
            with pytest.raises(RuntimeError, match=arg):
                call_direct(name, args)


@pytest.mark.parametrize("name", ["apply_ops", "apply_ops_backward"])
def test_policy_values_out_of_range(name):
    """Op ids, magnitudes and partner indices out of range: refused on CPU (the CUDA kernels clamp
    every index they read instead)."""
    for arg, bad in (("op", 16), ("op", -2), ("magnitude", 1.5), ("partner", DIRECT_SIZES["N"]), ("partner", -1),
                     ("sign", float("nan"))):
        args = direct_args(name)
        args[arg] = torch.full_like(args[arg], bad)
        with pytest.raises(RuntimeError, match=arg if arg != "op" else "op ids"):
            call_direct(name, args)


def test_uint8_and_float_images_of_apply_ops():
    """apply_ops takes uint8 or floating images; its backward only floating ones."""
    args = direct_args("apply_ops", image_dtype=torch.uint8)
    assert call_direct("apply_ops", args).dtype == torch.uint8
    args = direct_args("apply_ops_backward")
    args["x"] = args["pairs"] = (args["x"] * 255).to(torch.uint8)
    args["grad_out"] = args["grad_out"].to(torch.uint8)
    with pytest.raises(RuntimeError, match="x"):
        call_direct("apply_ops_backward", args)


@pytest.mark.parametrize("name", ["influence_score", "influence_score_backward"])
def test_labels_out_of_range(name):
    """Class labels outside [0, Q): refused by the C++ check behind the op."""
    for bad in (DIRECT_SIZES["Q"], -1):
        args = direct_args(name)
        args["target"] = torch.full_like(args["target"], bad)
        with pytest.raises(RuntimeError, match="class labels"):
            call_direct(name, args)
