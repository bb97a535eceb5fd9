"""Every op against its readable reference (tests/ops/opinfo.py), on every sample, dtype and device; the
same answer for other memory layouts and for an empty batch; CUDA against the CPU."""
import pytest
import torch

from opinfo import OPS, assert_matches, requires_grad, strided

PARITY = [pytest.param(o, dt, id=f"{o.name}-{str(dt)[6:]}") for o in OPS for dt in o.dtypes]
CUDA_ONLY = [pytest.param(o, dt, id=f"{o.name}-{str(dt)[6:]}") for o in OPS for dt in o.cuda_dtypes]
IDS = [o.name for o in OPS]


@pytest.mark.parametrize("opinfo,dtype", PARITY)
def test_matches_reference(opinfo, dtype, device):
    for sample in opinfo.samples(device, dtype):
        out = sample.call(opinfo.op)
        assert out.dtype == dtype or not dtype.is_floating_point or opinfo.name.startswith("influence"), sample
        try:
            assert_matches(opinfo, out, opinfo.expected(sample), dtype)
        except AssertionError as e:
            raise AssertionError(f"{sample}: {e}") from None


@pytest.mark.cuda
@pytest.mark.parametrize("opinfo,dtype", CUDA_ONLY)
def test_half_precision_matches_reference_on_cuda(opinfo, dtype):
    """float16/bfloat16 (CUDA only): the reference evaluated in float64 on the same rounded inputs."""
    for sample in opinfo.samples("cuda", dtype)[:3]:
        assert_matches(opinfo, sample.call(opinfo.op).to(dtype), opinfo.expected(sample), dtype)


@pytest.mark.parametrize("opinfo", [o for o in OPS if o.differentiable_reference], ids=lambda o: o.name)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_gradients_match_reference_autograd(opinfo, dtype, device):
    """The op's backward equals autograd through the reference, for a random output gradient."""
    for sample in opinfo.samples(device, dtype)[:3]:
        ours = requires_grad(sample, opinfo.grad_inputs)
        out = ours.call(opinfo.op)
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(out)
        inputs = [ours.kwargs[n] for n in opinfo.grad_inputs]
        got = torch.autograd.grad(out, inputs, g)
        ref_sample = requires_grad(sample.map_tensors(lambda k, v: v.double() if v.is_floating_point() else v),
                                   opinfo.grad_inputs)
        ref_out = opinfo.reference(**ref_sample.kwargs)
        expected = torch.autograd.grad(ref_out, [ref_sample.kwargs[n] for n in opinfo.grad_inputs], g.double())
        for name, a, b in zip(opinfo.grad_inputs, got, expected):
            try:
                assert_matches(opinfo, a, b.to(a.dtype), dtype)
            except AssertionError as e:
                raise AssertionError(f"{sample}, gradient of {name}: {e}") from None


@pytest.mark.parametrize("opinfo", OPS, ids=IDS)
def test_non_contiguous_and_channels_last_give_the_same_result(opinfo, device):
    """Strided views of every tensor argument, and channels_last images and maps: bit-identical output."""
    dtype = opinfo.dtypes[-1]
    for sample in opinfo.samples(device, dtype)[:2]:
        ref = sample.call(opinfo.op)
        views = sample.map_tensors(lambda k, v: strided(v))
        assert any(not v.is_contiguous() for v in views.tensors().values())
        assert torch.equal(views.call(opinfo.op), ref), sample
        cl = sample.map_tensors(lambda k, v: v.to(memory_format=torch.channels_last) if v.dim() == 4 else v)
        assert torch.equal(cl.call(opinfo.op), ref), sample


@pytest.mark.parametrize("opinfo", OPS, ids=IDS)
def test_empty_batch(opinfo, device):
    """N = 0: an output of the reference's shape, and gradients of the inputs' shapes."""
    dtype = torch.float64
    sample = opinfo.samples(device, dtype, n=0)[0]
    sample = requires_grad(sample, opinfo.grad_inputs)
    out = sample.call(opinfo.op)
    expected = opinfo.expected(sample.map_tensors(lambda k, v: v.detach()))
    assert out.shape == expected.shape
    assert_matches(opinfo, out, expected, dtype)
    grads = torch.autograd.grad(out.sum(), [sample.kwargs[n] for n in opinfo.grad_inputs], allow_unused=True)
    for name, gr in zip(opinfo.grad_inputs, grads):
        assert gr is None or gr.shape == sample.kwargs[name].shape, name


@pytest.mark.cuda
@pytest.mark.parametrize("opinfo", OPS, ids=IDS)
def test_cuda_matches_cpu(opinfo):
    """Forward and gradients on CUDA equal the CPU's: exactly for uint8 images, within 1e-12 in float64
    (the CUDA gradient for x is an atomic scatter, as grid_sample's: its sums may differ in the last bits;
    a fill value rounded through float32 on one device only differs by ~1e-9), 1e-5 in float32."""
    for dtype in opinfo.dtypes:
        for sample in opinfo.samples("cpu", dtype)[:3]:
            res = {}
            for dev in ("cpu", "cuda"):
                s = sample.map_tensors(lambda k, v: v.to(dev))
                if dtype.is_floating_point:
                    s = requires_grad(s, opinfo.grad_inputs)
                out = s.call(opinfo.op)
                grads = []
                if dtype.is_floating_point:
                    g = torch.ones_like(out)
                    grads = torch.autograd.grad(out, [s.kwargs[n] for n in opinfo.grad_inputs], g)
                res[dev] = [out.detach().cpu()] + [gr.cpu() for gr in grads]
            for a, b in zip(res["cpu"], res["cuda"]):
                if dtype == torch.float64:
                    torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-12)
                elif not dtype.is_floating_point:
                    assert torch.equal(b, a), sample
                else:
                    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
