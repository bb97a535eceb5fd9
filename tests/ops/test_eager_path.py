"""The public functions' eager path (fastaug/ops/_eager.py) against the registered ops it stands in for.

The public image ops and apply_ops call their kernels through an ``AutogradOp``: below the Autograd
key when no graph is needed (from C++: csrc/eager.cpp), through a graph node of the registered formula
when one is (the image ops' built in C++, csrc/eager_graph.h; apply_ops' a plain ``autograd.Function``).
Here: it is the path taken, it goes through the dispatcher, its
outputs and gradients are bit-identical to a direct call of the registered op
(``torch.library.register_autograd``'s path), and every context that needs the registered path
(torch.compile, vmap, autocast, dispatch modes, forward AD, __torch_function__ overrides, tracing)
turns it off.
"""
import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch._subclasses.fake_tensor import FakeTensorMode

import fastaug
from fastaug.ops import _eager
from opinfo import BY_NAME, requires_grad

EAGER = ["warp", "affine_flow_warp", "appearance", "transform", "apply_ops"]


def _raw_op(opinfo):
    return getattr(torch.ops.fastaug, opinfo.raw_name).default


def _grad_samples(opinfo):
    return [s for s in opinfo.grad_samples("cpu") if opinfo.raw_differentiable(s)]


@pytest.mark.parametrize("name", EAGER)
def test_gradients_equal_the_registered_ops(name):
    """Forward and first-order gradients through the eager graph node are bit-identical to those
    through the op's registered autograd (both run the same kernels and formula), whichever inputs
    require grad."""
    opinfo = BY_NAME[name]
    for sample in _grad_samples(opinfo):
        s = requires_grad(sample, opinfo.grad_inputs)
        leaves = [s.kwargs[n] for n in opinfo.grad_inputs]
        out = s.call(opinfo.op)
        if name == "apply_ops":
            assert type(out.grad_fn).__name__ == f"{opinfo.raw_name}_eagerBackward"
        else:  # the C++ node (csrc/eager_graph.h)
            assert "fastaug::eager::ImageOpGraph" in out.grad_fn.name(), out.grad_fn.name()
        raw = _raw_op(opinfo)(*opinfo.raw(s))
        assert "GeneratedBackwardFor" in type(raw.grad_fn).__name__
        assert torch.equal(out, raw)
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype)
        for a, b in zip(torch.autograd.grad(out, leaves, g), torch.autograd.grad(raw, leaves, g)):
            assert torch.equal(a, b), sample


@pytest.mark.parametrize("name", EAGER)
def test_no_graph_without_grad(name):
    """Without grad mode, or without an input that requires grad, the kernel is called below the
    Autograd key: no graph node, the output of the registered op."""
    opinfo = BY_NAME[name]
    sample = _grad_samples(opinfo)[0]
    expected = _raw_op(opinfo)(*opinfo.raw(sample))
    out = sample.call(opinfo.op)
    assert out.grad_fn is None and torch.equal(out, expected)
    with torch.no_grad():
        out = requires_grad(sample, opinfo.grad_inputs).call(opinfo.op)
    assert out.grad_fn is None and not out.requires_grad and torch.equal(out, expected)


@pytest.mark.parametrize("name", EAGER)
def test_the_eager_call_goes_through_the_dispatcher(name):
    """Below the Autograd key the eager path calls fastaug._C._eager_<op> (csrc/eager.cpp): the
    registered op through the dispatcher, from C++; so does the backward formula for the backward op
    (BackwardOp). The profiler records both, as for direct calls."""
    opinfo = BY_NAME[name]
    s = requires_grad(_grad_samples(opinfo)[0], opinfo.grad_inputs)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with torch.no_grad():
            s.call(opinfo.op)
    assert f"fastaug::{opinfo.raw_name}" in [e.name for e in prof.events()]
    out = s.call(opinfo.op)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        torch.autograd.grad(out, [s.kwargs[n] for n in opinfo.grad_inputs], torch.ones_like(out))
    assert f"fastaug::{opinfo.raw_name}_backward" in [e.name for e in prof.events()]


def test_the_eager_call_reaches_python_kernels_below_autograd():
    """The C++ entry releases the GIL around the dispatcher call, as torch's bindings do; a kernel
    registered from Python (the fake kernel, for meta tensors) takes it back and runs."""
    x, flow = torch.empty(2, 3, 5, 7, device="meta"), torch.empty(2, 2, 5, 7, device="meta")
    assert _eager.plain(x, flow)
    out = fastaug.warp(x, flow)
    assert out.device.type == "meta" and out.shape == (2, 3, 5, 7)


@pytest.mark.parametrize("name", ["warp", "transform"])
def test_create_graph_keeps_the_backward_differentiable(name):
    """The backward runs its op below the Autograd key only when no graph of the gradient is built:
    with create_graph the gradient has a graph (second order, tests/ops/test_higher_order.py), without
    it the gradient has none."""
    opinfo = BY_NAME[name]
    s = requires_grad(_grad_samples(opinfo)[0], opinfo.grad_inputs)
    leaves = [s.kwargs[n] for n in opinfo.grad_inputs]
    (g_graph,) = torch.autograd.grad(s.call(opinfo.op).sum(), leaves[-1:], create_graph=True)
    (g_plain,) = torch.autograd.grad(s.call(opinfo.op).sum(), leaves[-1:])
    assert g_graph.grad_fn is not None and g_plain.grad_fn is None
    assert torch.equal(g_graph.detach(), g_plain)


def test_a_refused_argument_raises_one_sentence():
    """The kernel's refusal sends the call to the checked path: the caller sees the public sentence,
    not chained to the kernel's RuntimeError."""
    x, flow = torch.rand(2, 3, 5, 7), torch.randn(2, 1, 5, 7)
    with pytest.raises(ValueError, match=r"flow .* must have shape \(2, 2, 5, 7\)") as info:
        fastaug.warp(x, flow)
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_plain_only_outside_the_contexts_that_need_the_registered_path():
    assert _eager.plain(torch.zeros(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _eager.plain()
    with FakeTensorMode():
        assert not _eager.plain()
    with fwAD.dual_level():
        assert not _eager.plain()
    seen = []
    torch.vmap(lambda t: seen.append(_eager.plain()) or t)(torch.zeros(2, 3))
    assert seen == [False]
    assert torch.compile(lambda t: t + _eager.plain(t), fullgraph=True, backend="eager")(torch.zeros(1)).item() == 0

    class Logged(torch.Tensor):  # a __torch_function__ override sees the op as before
        pass

    x = torch.zeros(1)
    assert not _eager.plain(x.as_subclass(Logged)) and _eager.plain(x, torch.nn.Parameter(x), 1.0, None)
    with torch.device("cpu"):  # a TorchFunctionMode
        assert not _eager.plain(x)
    seen = []
    with warnings.catch_warnings():  # torch.jit.trace is deprecated, still supported
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.trace(lambda t: seen.append(_eager.plain(t)) or t * 2, (x,), check_trace=False)
    assert seen == [False]
    assert _eager.plain(x)


def _torch_dispatch_state_is_plain():
    C = torch._C
    return not (C._is_any_autocast_enabled() or C._are_functorch_transforms_active()
                or C._len_torch_dispatch_stack() or C._get_tracing_state() is not None)


def test_the_dispatch_state_test_in_cpp_equals_torchs_four():
    """fastaug._C._dispatch_state_is_plain (csrc/eager.cpp, read by plain()) answers what torch._C's
    autocast, functorch, dispatch-mode and tracing tests answer together, in every such context."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Passthrough(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    seen = []

    def both(t=None):
        seen.append((fastaug._C._dispatch_state_is_plain(), _torch_dispatch_state_is_plain()))
        return t

    both()
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=dtype):
            both()
            with torch.autocast("cpu", enabled=False):
                both()
    with FakeTensorMode():
        both()
    with Passthrough():
        both()
    torch.vmap(both)(torch.zeros(2, 3))
    torch.func.grad(lambda t: both(t).sum())(torch.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.trace(lambda t: both(t) * 2, (torch.zeros(1),), check_trace=False)
    both()
    assert all(ours == theirs for ours, theirs in seen), seen
    assert [ours for ours, _ in seen] == [True, False, True, False, True, False, False, False, False, False, True]


@pytest.mark.parametrize("requires", ["x", "flow", None])
def test_the_cpp_call_takes_the_graph_path_only_when_a_graph_is_needed(requires):
    """fastaug._C._eager_<op>_call builds its C++ graph node exactly when grad mode is on and a tensor
    argument requires grad (torch._C._any_requires_grad's test), and otherwise returns the op's output
    below the Autograd key; either way the registered op's values, and the node's gradients are
    exactly the registered formula's for the inputs that require grad (None for the others)."""
    gen = torch.Generator().manual_seed(0)
    x, flow = torch.rand(2, 3, 5, 7, generator=gen), torch.randn(2, 2, 5, 7, generator=gen)
    args = {"x": x, "flow": flow}
    if requires:
        args[requires] = args[requires].clone().requires_grad_()
    expected = torch.ops.fastaug.warp(x, flow, 1, False)
    for mode in (torch.enable_grad, torch.no_grad, torch.inference_mode):
        with mode():
            out = fastaug._C._eager_warp_call(args["x"], args["flow"], 1, False)
        assert torch.equal(out, expected)
        if requires and mode is torch.enable_grad:
            assert "ImageOpGraph<fastaug::eager::Warp" in out.grad_fn.name()
            g = torch.randn(out.shape, generator=gen)
            (ours,) = torch.autograd.grad(out, args[requires], g)
            raw = torch.ops.fastaug.warp(args["x"], args["flow"], 1, False)
            assert torch.equal(ours, torch.autograd.grad(raw, args[requires], g)[0])
        else:
            assert out.grad_fn is None and not out.requires_grad


@pytest.mark.parametrize("name", ["warp", "affine_flow_warp", "appearance", "transform"])
def test_the_cpp_graph_node_behaves_as_autograd_nodes_do(name):
    """The C++ node of an image op (csrc/eager_graph.h) saves its inputs as autograd does: through the
    saved-tensor hooks (what activation offloading and non-reentrant checkpointing use), guarded by
    the version counter (an input changed in place before the backward raises), freed after one
    backward unless retain_graph."""
    opinfo = BY_NAME[name]
    s = requires_grad(_grad_samples(opinfo)[0], opinfo.grad_inputs)
    leaves = [s.kwargs[n] for n in opinfo.grad_inputs]
    packed, unpacked = [], []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t,
                                                  lambda t: unpacked.append(t) or t):
        out = s.call(opinfo.op)
    assert "ImageOpGraph" in out.grad_fn.name()
    assert len(packed) == len(opinfo.grad_inputs)  # the tensor arguments, nothing else
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    expected = torch.autograd.grad(out, leaves, g, retain_graph=True)
    assert len(unpacked) == len(packed)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        torch.autograd.grad(out, leaves, g)
        torch.autograd.grad(out, leaves, g)
    assert all(torch.equal(a, b) for a, b in zip(torch.autograd.grad(s.call(opinfo.op), leaves, g), expected))
    out = s.call(opinfo.op)
    with torch.no_grad():
        leaves[0].add_(0)  # bumps the version counter of a saved input
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(out, leaves, g)


@pytest.mark.parametrize("reentrant", [False, True])
@pytest.mark.parametrize("name", EAGER)
def test_checkpointing_recomputes_the_same_gradients(name, reentrant):
    """Activation checkpointing recomputes the op in the backward to the same gradients. The non-reentrant
    mode stops its recomputation by raising from a saved-tensor hook inside the op's call; the public
    function must let that through rather than retry the op on its full path (which saved the inputs a
    second time and failed the backward: _eager.REFUSED)."""
    opinfo = BY_NAME[name]
    s = requires_grad(_grad_samples(opinfo)[0], opinfo.grad_inputs)
    leaves = [s.kwargs[n] for n in opinfo.grad_inputs]
    out = s.call(opinfo.op)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype)
    expected = torch.autograd.grad(out, leaves, g)
    checkpointed = torch.utils.checkpoint.checkpoint(lambda *t: s.call(opinfo.op), *leaves, use_reentrant=reentrant)
    assert torch.equal(checkpointed, out)
    checkpointed.backward(g)  # (the reentrant mode refuses torch.autograd.grad)
    assert all(torch.equal(leaf.grad, e) for leaf, e in zip(leaves, expected))


def _policy_params(N, L, H, W, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = (N,) if L is None else (N, L)
    return dict(op=torch.randint(0, 16, shape, generator=gen), magnitude=torch.rand(shape, generator=gen),
                sign=torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0),
                partner=torch.randint(0, N, shape, generator=gen),
                center=torch.randint(-2, H + 2, shape + (2,), generator=gen))


@pytest.mark.parametrize("L", [None, 1, 3])
@pytest.mark.parametrize("defaults", [False, True])
def test_apply_ops_cpp_entry_takes_the_parameters_as_the_checked_path_makes_them(L, defaults):
    """fastaug._C._apply_ops_eager (csrc/eager_policy.cpp): with parameters that need no conversion it
    returns, on the CPU without a graph, the registered op's output on the checked path's canonical
    parameters (apply_ops's _canonical, which converts and checks); with a graph needed, those
    parameters themselves (values, shapes, dtypes), (N,) made (N, 1) by a view of the caller's tensor.
    sign, partner and center None: the checked path's defaults."""
    from fastaug.ops import policy
    N, H, W = 5, 9, 11
    x = torch.randint(0, 256, (N, 3, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    p = _policy_params(N, L, H, W, seed=2)
    if defaults:
        p.update(sign=None, partner=None, center=None)
    args = (p["op"], p["magnitude"], p["sign"], p["partner"], p["center"])
    canonical = policy._canonical(x, *args)
    expected = torch.ops.fastaug.apply_ops(x, x, *canonical, 77)
    out = fastaug._C._apply_ops_eager(x, *args, 77)
    assert isinstance(out, torch.Tensor) and out.grad_fn is None and torch.equal(out, expected)
    xf = (x.float() / 255).requires_grad_()
    got = fastaug._C._apply_ops_eager(xf, *args, 77)
    assert type(got) is tuple and len(got) == 5
    for ours, ref in zip(got, canonical):
        assert ours.dtype == ref.dtype and ours.shape == ref.shape and torch.equal(ours, ref)
    if not defaults:
        assert got[0].data_ptr() == p["op"].data_ptr() and got[4].data_ptr() == p["center"].data_ptr()
    with torch.no_grad():
        out = fastaug._C._apply_ops_eager(xf, *args, 77)
    assert isinstance(out, torch.Tensor) and torch.equal(out, torch.ops.fastaug.apply_ops(xf, xf, *canonical, 77))
    # A magnitude that requires grad needs a graph too (it gets no gradient: not differentiable).
    mag = p["magnitude"].clone().requires_grad_()
    got = fastaug._C._apply_ops_eager(x, p["op"], mag, *args[2:], 77)
    assert type(got) is tuple and got[1].requires_grad
    out = fastaug.apply_ops(x.float(), p["op"], mag, p["sign"], p["partner"], fill=77, center=p["center"])
    assert out.requires_grad
    out.sum().backward()
    assert mag.grad is None or not mag.grad.any()


def test_apply_ops_takes_the_cpp_entry_and_its_defaults_on_meta_tensors(monkeypatch):
    """apply_ops with parameters that need no conversion never reaches the checked path (_canonical):
    the C++ entry served it. On meta tensors (any device but the CPU) the entry makes its defaults with
    torch ops on that device and returns the parameters."""
    from fastaug.ops import policy
    N, H, W = 3, 6, 5
    x = torch.randint(0, 256, (N, 3, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    p = _policy_params(N, None, H, W, seed=6)
    expected = fastaug.apply_ops(x, p["op"], p["magnitude"])

    def refuse(*args):
        raise AssertionError("the checked path was taken")

    monkeypatch.setattr(policy, "_canonical", refuse)
    assert torch.equal(fastaug.apply_ops(x, p["op"], p["magnitude"]), expected)
    assert torch.equal(fastaug.apply_ops(x, **p), fastaug.apply_ops(x, **{k: v.unsqueeze(1) for k, v in p.items()}))
    xm, opm, magm = x.to("meta"), p["op"].to("meta"), p["magnitude"].to("meta")
    got = fastaug._C._apply_ops_eager(xm, opm, magm, None, None, None, 0)
    assert type(got) is tuple and all(t.device.type == "meta" for t in got)
    assert [tuple(t.shape) for t in got] == [(N, 1), (N, 1), (N, 1), (N, 1), (N, 1, 2)]
    assert [t.dtype for t in got] == [torch.int64, torch.float32, torch.float32, torch.int64, torch.int64]


def test_apply_ops_gradient_of_an_empty_chain_and_of_magnitudes_only():
    """An empty chain (L = 0) is the identity: its gradient is the incoming one. A chain where only the
    magnitudes require grad builds a graph whose backward gives them none (not differentiable) instead
    of refusing the chain."""
    x = torch.rand(2, 3, 5, 5, requires_grad=True)
    out = fastaug.apply_ops(x, torch.zeros(2, 0, dtype=torch.long), torch.rand(2, 0))
    g = torch.randn(out.shape)
    (gx,) = torch.autograd.grad(out, x, g)
    assert torch.equal(gx, g)
    mag = torch.rand(2, 3, requires_grad=True)
    out = fastaug.apply_ops(x.detach(), torch.zeros(2, 3, dtype=torch.long), mag)
    out.sum().backward()
    assert mag.grad is None or not mag.grad.any()


def test_apply_ops_cpp_entry_leaves_conversions_to_the_checked_path():
    """Any parameter that is not already what the kernel takes -- another dtype, a Python number, a
    tensor subclass -- gives None (apply_ops then converts and checks on its full path); the results
    of apply_ops agree either way."""
    N, H, W = 4, 6, 7
    x = torch.randint(0, 256, (N, 1, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    p = _policy_params(N, None, H, W, seed=4)

    class Sub(torch.Tensor):
        pass

    converted = [("op", p["op"].int()), ("op", p["op"].float()), ("magnitude", 0.5),
                 ("magnitude", p["magnitude"].double()), ("sign", p["sign"].double()),
                 ("partner", p["partner"].int()), ("center", p["center"].int()), ("op", p["op"].as_subclass(Sub))]
    for name, value in converted:
        q = dict(p, **{name: value})
        assert fastaug._C._apply_ops_eager(x, q["op"], q["magnitude"], q["sign"], q["partner"], q["center"], 9) is None
        if name == "op" and value.is_floating_point():
            with pytest.raises(TypeError, match="op must be an integer tensor"):
                fastaug.apply_ops(x, **q, fill=9)
            continue
        same = dict(p, magnitude=torch.full((N,), 0.5)) if isinstance(value, float) else p
        assert torch.equal(fastaug.apply_ops(x, **q, fill=9), fastaug.apply_ops(x, **same, fill=9))
    assert fastaug._C._apply_ops_eager(x.as_subclass(Sub), *p.values(), 9) is None
    with pytest.raises(TypeError, match="7 arguments"):
        fastaug._C._apply_ops_eager(x, p["op"])
    # A value the kernel refuses: the checked path's sentence.
    with pytest.raises(ValueError, match=r"op ids must be in \[0, 15\]"):
        fastaug.apply_ops(x, p["op"] + 20, p["magnitude"])
    with pytest.raises(ValueError, match=r"fill must be in \[0, 255\]"):
        fastaug.apply_ops(x, p["op"], p["magnitude"], fill=2 ** 70)
