"""Every op with PyTorch's machinery (tests/ops/opinfo.py): torch.library.opcheck of the registered
forward and backward ops, torch.compile (aot_eager on every sample kind; inductor on one small sample
per op), torch.export, torch.vmap, and CPU autocast (bfloat16: floating inputs run in float32)."""
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from opinfo import DIRECT, OPS, assert_matches, direct_args, first_sample, requires_grad

IDS = [o.name for o in OPS]


@pytest.mark.parametrize("opinfo", OPS, ids=IDS)
def test_opcheck(opinfo, device):
    """The registered forward op, with and without inputs that require grad: schema, fake kernel,
    autograd registration and dispatch agree (torch.library.opcheck)."""
    raw = getattr(torch.ops.fastaug, opinfo.raw_name).default
    for sample in opinfo.grad_samples(device)[:2]:
        torch.library.opcheck(raw, opinfo.raw(sample))
        if opinfo.raw_differentiable(sample):
            torch.library.opcheck(raw, opinfo.raw(requires_grad(sample, opinfo.grad_inputs)))
    if not opinfo.dtypes[0].is_floating_point:  # uint8 images (apply_ops): a chain of two, RGB
        torch.library.opcheck(raw, opinfo.raw(opinfo.samples(device, opinfo.dtypes[0])[-1]))


@pytest.mark.parametrize("name", [n for n in DIRECT if n.endswith("_backward")])
def test_opcheck_backward_ops(name, device):
    torch.library.opcheck(getattr(torch.ops.fastaug, name).default, tuple(direct_args(name, device=device).values()))


def _grads(opinfo, sample, fn):
    s = requires_grad(sample, opinfo.grad_inputs)
    out = fn(**s.kwargs)
    return out, torch.autograd.grad(out.square().sum(), [s.kwargs[n] for n in opinfo.grad_inputs])


def _compiled_matches_eager(opinfo, sample, backend):
    eager = opinfo.op
    compiled = torch.compile(lambda **kw: opinfo.op(**kw, **opinfo.compile_kwargs), fullgraph=True, backend=backend)
    out_e, g_e = _grads(opinfo, sample, eager)
    out_c, g_c = _grads(opinfo, sample, compiled)
    torch.testing.assert_close(out_c, out_e)
    for a, b in zip(g_c, g_e):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("where", ["meta", "fake"])
@pytest.mark.parametrize("opinfo", OPS, ids=IDS)
def test_tensors_without_data(opinfo, where):
    """Tensors that carry shapes only (meta tensors; FakeTensorMode's, as shape inference and
    torch.export use them): the public op gives the eager call's shape and dtype, and so do the
    gradients; its data checks are skipped (reading a value would raise), its shape checks are not."""
    sample = opinfo.grad_samples("cpu")[0]
    expected = sample.call(opinfo.op)
    first = next(iter(sample.tensors()))
    bad = sample.replace(**{first: torch.cat([sample.kwargs[first]] * 2)})  # its batch twice as long

    def run(s):
        s = requires_grad(s, opinfo.grad_inputs)
        out = s.call(opinfo.op)
        inputs = [s.kwargs[n] for n in opinfo.grad_inputs]
        return out, inputs, torch.autograd.grad(out.sum(), inputs)

    if where == "meta":
        to_meta = lambda k, v: v.to("meta")  # noqa: E731
        out, inputs, grads = run(sample.map_tensors(to_meta))
        with pytest.raises((ValueError, RuntimeError)):
            bad.map_tensors(to_meta).call(opinfo.op)
    else:
        with FakeTensorMode() as mode:
            out, inputs, grads = run(sample.map_tensors(lambda k, v: mode.from_tensor(v)))
    assert (out.shape, out.dtype) == (expected.shape, expected.dtype)
    assert out.device.type == ("meta" if where == "meta" else "cpu")
    for g, t in zip(grads, inputs):
        assert (g.shape, g.dtype) == (t.shape, t.dtype)


@pytest.mark.parametrize("opinfo", OPS, ids=IDS)
def test_compile_aot_eager_matches_eager(opinfo, device):
    """fullgraph torch.compile (aot_eager: the graph capture and the fake kernels, no codegen): forward
    and gradients equal the eager call."""
    torch._dynamo.reset()
    for sample in opinfo.grad_samples(device)[:2]:
        _compiled_matches_eager(opinfo, sample.map_tensors(lambda k, v: v.float() if v.is_floating_point() else v),
                                "aot_eager")
    if not opinfo.dtypes[0].is_floating_point:  # uint8 images (apply_ops): forward only, bit-exact
        sample = opinfo.samples(device, opinfo.dtypes[0])[-1]
        compiled = torch.compile(lambda **kw: opinfo.op(**kw), fullgraph=True, backend="aot_eager")
        assert torch.equal(compiled(**sample.kwargs), sample.call(opinfo.op))


@pytest.mark.slow
@pytest.mark.parametrize("opinfo", OPS, ids=IDS)
def test_compile_inductor_matches_eager(opinfo):
    """The inductor backend (C++ code generated around the custom op), one small sample per op."""
    torch._dynamo.reset()
    _compiled_matches_eager(opinfo, first_sample(opinfo, dtype=torch.float32), "inductor")


class _Call(torch.nn.Module):
    """The op as a module whose forward takes the sample's tensors (the other arguments fixed)."""

    def __init__(self, opinfo, sample):
        super().__init__()
        self.opinfo, self.names = opinfo, list(sample.tensors())
        self.fixed = {k: v for k, v in sample.kwargs.items() if k not in self.names}

    def forward(self, *tensors):
        return self.opinfo.op(**self.fixed, **dict(zip(self.names, tensors)), **self.opinfo.compile_kwargs)


@pytest.mark.parametrize("opinfo", OPS, ids=IDS)
def test_export_matches_eager(opinfo):
    sample = first_sample(opinfo, dtype=torch.float32)
    module = _Call(opinfo, sample)
    args = tuple(sample.tensors().values())
    exported = torch.export.export(module, args)
    assert any(f"fastaug.{opinfo.raw_name}" in str(n.target) for n in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(*args), module(*args))


@pytest.mark.parametrize("opinfo", OPS, ids=IDS)
def test_vmap(opinfo):
    """torch.vmap over a new leading dimension of every tensor argument: the stack of the single calls."""
    sample = opinfo.samples("cpu", opinfo.dtypes[-1])[0]
    second = sample.map_tensors(lambda k, v: v.flip(-1))  # other values, same shapes, still valid
    batched = {k: torch.stack([v, second.kwargs[k]]) for k, v in sample.tensors().items()}
    fixed = {k: v for k, v in sample.kwargs.items() if k not in batched}
    names = list(batched)
    fn = lambda *ts: opinfo.op(**fixed, **dict(zip(names, ts)), **opinfo.compile_kwargs)  # noqa: E731
    out = torch.vmap(fn)(*batched.values())
    expected = torch.stack([fn(*[b[i] for b in batched.values()]) for i in range(2)])
    assert torch.equal(out, expected)


@pytest.mark.parametrize("opinfo", [o for o in OPS if o.autocast_inputs], ids=lambda o: o.name)
def test_autocast_cpu_bfloat16_runs_in_float32(opinfo):
    """Under torch.autocast("cpu", bfloat16), floating inputs (all bfloat16, or one of them: a conv's
    output next to a float32 image) are cast to float32: the output is the float32 call's, as
    grid_sample's is."""
    base = first_sample(opinfo, dtype=torch.float32)
    floats = [k for k in opinfo.autocast_inputs if base.kwargs.get(k) is not None]
    for cast in (floats, floats[-1:]):
        sample = base.map_tensors(lambda k, v: v.to(torch.bfloat16) if k in cast else v)
        expected = sample.map_tensors(lambda k, v: v.float() if v.dtype == torch.bfloat16 else v).call(opinfo.op)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = sample.call(opinfo.op)
        assert out.dtype == expected.dtype == torch.float32, cast
        assert_matches(opinfo, out, expected, torch.float64)  # same float32 inputs: the float64 tolerance
