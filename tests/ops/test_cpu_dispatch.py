"""The CPU kernels' instruction-set copies (csrc/common/cpu_kernels.h) and their thread-count invariance.

Every copy this CPU can run (default, avx2, avx512), forced with FASTAUG_CPU_CAPABILITY in a process of
its own, must return bit for bit what the default copy (the scalar maths of sampling.h, which the CUDA
kernels share) returns: outputs and every gradient of warp, affine_flow_warp, appearance and transform,
float32 and float64, every padding mode, both composition modes, flows far outside the image, non-finite
ones, images split into several blocks of rows, and 200 warps of random shapes. In each process every op
also returns the same bits with 1, 2 and 4 threads, forward and gradients with and without the one for x."""
import os
import subprocess
import sys

import pytest
import torch

import fastaug
from opinfo import AFFINE_FLOW_WARP, APPEARANCE, TRANSFORM, WARP, SampleInput, requires_grad, seeded

CAPABILITIES = ["default", "avx2", "avx512"]
RANK = {c: i for i, c in enumerate(CAPABILITIES)}
SUPPORTED = fastaug.build_info()["cpu_supported"]
OPINFOS = [WARP, AFFINE_FLOW_WARP, APPEARANCE, TRANSFORM]
THREADS = (1, 2, 4)


def _extra_samples(dtype):
    """Larger calls than the spec samples: whole vectors of interior pixels, several blocks of rows per
    image (N = 1, tall or wide), flows reaching far into other blocks (past the band of rows an item
    scatters into), and coordinates the vector code hands to the scalar maths (reflection of huge or
    non-finite coordinates)."""
    tall = (1, 3, 300, 37)
    flow = seeded((1, 2, 300, 37), dtype=dtype, seed=5, scale=6.0, normal=True)
    wild = flow.clone()
    wild[0, 0, 3, :5] = torch.tensor([1e30, -1e30, float("inf"), float("nan"), 4e7], dtype=dtype)
    wild[0, 1, 250, 10:12] = torch.tensor([float("-inf"), 1e9], dtype=dtype)
    out = [(WARP, dict(x=seeded(tall, dtype=dtype, seed=4), flow=flow, padding_mode=p, align_corners=a))
           for p, a in [("zeros", False), ("border", True), ("reflection", False), ("reflection", True)]]
    out += [(WARP, dict(x=seeded(tall, dtype=dtype, seed=4), flow=wild, padding_mode=p, align_corners=False))
            for p in ("zeros", "reflection")]
    # Wide: blocks of 8 rows whose flow reaches up to ~60 rows away, past the scatter's band of rows.
    out.append((WARP, dict(x=seeded((1, 1, 64, 1024), dtype=dtype, seed=16),
                           flow=seeded((1, 2, 64, 1024), dtype=dtype, seed=17, scale=15.0, normal=True),
                           padding_mode="zeros", align_corners=False)))
    out.append((WARP, dict(x=seeded((2, 1, 48, 64), dtype=dtype, seed=6),
                           flow=seeded((2, 2, 48, 64), dtype=dtype, seed=7, scale=0.7, normal=True),
                           padding_mode="border", align_corners=False)))
    # Whole images (N >= 8: one item per image) of 1 to 4 channels: the SIMD copies scatter the gradient
    # for x into pixel slots (bilinear_row_cpu.h, SlotGrid); corners past every edge, pixels with none.
    for (N, C, H, W), p, seed in [((8, 3, 20, 37), "zeros", 18), ((9, 2, 17, 16), "border", 20),
                                  ((8, 4, 16, 33), "reflection", 22), ((8, 1, 28, 28), "zeros", 28)]:
        slot_flow = seeded((N, 2, H, W), dtype=dtype, seed=seed + 1, scale=5.0, normal=True)
        slot_flow[0, 0, 2, :6] = torch.tensor([1e30, -40.0, float("inf"), float("nan"), 4e7, -0.5], dtype=dtype)
        slot_flow[1, 1, 0, 3:5] = torch.tensor([-1.0, 25.0], dtype=dtype)
        out.append((WARP, dict(x=seeded((N, C, H, W), dtype=dtype, seed=seed), flow=slot_flow, padding_mode=p,
                               align_corners=False)))
    # A larger slot grid (68 KiB an image, reused by the next image of the task), flows far enough to land
    # corners in its border and spare rows.
    big_flow = seeded((8, 2, 64, 72), dtype=dtype, seed=41, scale=20.0, normal=True)
    out.append((WARP, dict(x=seeded((8, 3, 64, 72), dtype=dtype, seed=40), flow=big_flow, padding_mode="zeros",
                           align_corners=False)))
    # More channels than a pixel slot holds: one grid per group of 4 channels, the last group full (8) or
    # partial (5, 6), every padding; corners past every edge.
    for (N, C, H, W), p, seed in [((8, 8, 19, 35), "zeros", 46), ((8, 6, 17, 20), "reflection", 48),
                                  ((9, 5, 16, 18), "border", 50)]:
        many_flow = seeded((N, 2, H, W), dtype=dtype, seed=seed + 1, scale=6.0, normal=True)
        many_flow[0, 0, 2, :4] = torch.tensor([1e30, -40.0, float("nan"), -0.5], dtype=dtype)
        out.append((WARP, dict(x=seeded((N, C, H, W), dtype=dtype, seed=seed), flow=many_flow, padding_mode=p,
                               align_corners=p == "border")))
    # The forwards (and a backward's reads of x) of 3 channels or more sample a bordered copy held as pixel
    # slots up to 2^19 pixels a plane, the planes past that (bilinear_row_cpu.h, sample_quads): 16 full
    # groups of 4 channels, and one plane either side of the line.
    out.append((WARP, dict(x=seeded((2, 64, 12, 21), dtype=dtype, seed=60),
                           flow=seeded((2, 2, 12, 21), dtype=dtype, seed=61, scale=4.0, normal=True),
                           padding_mode="reflection", align_corners=False)))
    for (N, C, H, W), seed in [((1, 3, 724, 724), 62), ((1, 4, 512, 1025), 64)]:
        out.append((WARP, dict(x=seeded((N, C, H, W), dtype=dtype, seed=seed),
                               flow=seeded((N, 2, H, W), dtype=dtype, seed=seed + 1, scale=2.0, normal=True),
                               padding_mode="zeros", align_corners=False)))
    # 16 channels or more: the gradient for x scatters into wide slots of 16 channels, then groups of 4
    # (none, 4 + 1, 3), whole images and bands of rows, flows past the bands' slots and non-finite.
    for (N, C, H, W), p, scale, seed in [((8, 16, 13, 21), "zeros", 5.0, 66), ((8, 21, 11, 19), "border", 5.0, 68),
                                         ((9, 35, 9, 17), "reflection", 5.0, 70), ((2, 20, 96, 40), "zeros", 3.0, 72),
                                         ((1, 17, 120, 33), "zeros", 25.0, 74)]:
        wide_flow = seeded((N, 2, H, W), dtype=dtype, seed=seed + 1, scale=scale, normal=True)
        wide_flow[0, 0, 2, :4] = torch.tensor([1e30, -40.0, float("nan"), -0.5], dtype=dtype)
        out.append((WARP, dict(x=seeded((N, C, H, W), dtype=dtype, seed=seed), flow=wide_flow, padding_mode=p,
                               align_corners=False)))
    out.append((AFFINE_FLOW_WARP, dict(x=seeded((8, 6, 20, 33), dtype=dtype, seed=52),
                                       s_w=seeded((8, 4, 20, 33), dtype=dtype, seed=53, scale=0.3, normal=True),
                                       s_b=seeded((8, 2, 20, 33), dtype=dtype, seed=54, scale=0.3, normal=True),
                                       smooth=3, padding_mode="zeros")))
    # Images split into bands of rows (fewer than 8 images: each 96x90 image is three items of 46 rows or
    # fewer, cpu_parallel.h), of 3 and 5 channels.
    for (N, C, H, W), seed in [((2, 5, 23, 41), 42), ((2, 3, 96, 90), 44), ((2, 5, 96, 90), 56)]:
        out.append((WARP, dict(x=seeded((N, C, H, W), dtype=dtype, seed=seed),
                               flow=seeded((N, 2, H, W), dtype=dtype, seed=seed + 1, scale=3.0, normal=True),
                               padding_mode="zeros", align_corners=False)))
    # Rows of constant shifts (blocks of consecutive corners: the slots' vector path) next to rows of noise.
    # (Fractional shifts: at whole ones the flow's gradient has a kink the reference may land either side of.)
    # (Width 45 ends each row with a block of 13 pixels, 33 with a block of one: the slots' odd tails.)
    for C, W in ((3, 45), (1, 45), (3, 33)):
        shift = seeded((8, 2, 21, W), dtype=dtype, seed=30, scale=3.0, normal=True)
        shift[:, :, :12] = torch.tensor([2.25, -0.5], dtype=dtype).view(1, 2, 1, 1)
        shift[::2, :, 4:8] = 0.375
        out.append((WARP, dict(x=seeded((8, C, 21, W), dtype=dtype, seed=31), flow=shift, padding_mode="zeros",
                               align_corners=False)))
    out.append((AFFINE_FLOW_WARP, dict(x=seeded((8, 3, 24, 40), dtype=dtype, seed=24),
                                       s_w=seeded((8, 4, 24, 40), dtype=dtype, seed=25, scale=0.3, normal=True),
                                       s_b=seeded((8, 2, 24, 40), dtype=dtype, seed=26, scale=0.3, normal=True),
                                       smooth=3, padding_mode="zeros")))
    for k, p in [(4, "zeros"), (5, "reflection"), (1, "border")]:
        out.append((AFFINE_FLOW_WARP, dict(x=seeded(tall, dtype=dtype, seed=8),
                                           s_w=seeded((1, 4, 300, 37), dtype=dtype, seed=9, scale=0.2, normal=True),
                                           s_b=seeded((1, 2, 300, 37), dtype=dtype, seed=10, scale=0.2, normal=True),
                                           smooth=k, padding_mode=p)))
    # (Windows of 6 and 7 too: the AVX-512 copy's horizontal sums have one instantiation per k up to 8.)
    for C, k in [(3, 4), (1, 2), (1, 6), (3, 7)]:
        out.append((APPEARANCE, dict(x=seeded((1, C, 200, 45), dtype=dtype, seed=11),
                                     c_w=seeded((1, C * C, 200, 45), dtype=dtype, seed=12, scale=0.2, normal=True),
                                     c_b=seeded((1, C, 200, 45), dtype=dtype, seed=13, scale=0.2, normal=True),
                                     smooth=k)))
    for N, C, mode, p, k in [(1, 3, "parallel", "zeros", 4), (1, 3, "serial", "reflection", 3),
                             (1, 1, "serial", "border", 1), (8, 3, "serial", "zeros", 2),
                             (8, 3, "parallel", "zeros", 2), (8, 1, "parallel", "border", 2)]:
        out.append((TRANSFORM, dict(x=seeded((N, C, 200 // N, 45), dtype=dtype, seed=14),
                                    params=seeded((N, 6 + C * C + C, 200 // N, 45), dtype=dtype, seed=15, scale=0.3,
                                                  normal=True),
                                    smooth=k, mode=mode, padding_mode=p)))
    return out


def _random_warps(n=200):
    """Warps of random shapes (1 to 3 images of 1 to 9 channels, up to 400 rows: most of them split into
    bands of rows, many with more channels than a pixel slot holds), flows from a hundredth of a pixel
    to tens of pixels, some rounded to quarter pixels (blocks of consecutive corners), some non-finite;
    every padding. Float32: the SIMD copies' paths."""
    g = torch.Generator().manual_seed(123)
    out = []
    for i in range(n):
        N, C, H, W = (int(torch.randint(lo, hi, (1,), generator=g))
                      for lo, hi in ((1, 4), (1, 10), (1, 160), (1, 160)))
        if i % 7 == 0:
            H = int(torch.randint(150, 400, (1,), generator=g))
        flow = torch.randn(N, 2, H, W, generator=g) * float(torch.rand(1, generator=g)) ** 3 * 60
        if i % 5 == 0:
            flow = flow.round() / 4
        if i % 11 == 0 and H * W > 3:
            flow.view(-1)[:3] = torch.tensor([float("nan"), float("inf"), 1e9])
        out.append((WARP, dict(x=torch.rand(N, C, H, W, generator=g), flow=flow,
                               padding_mode=("zeros", "border", "reflection")[i % 3], align_corners=i % 4 == 1)))
    return out


def _calls():
    """(name, opinfo, kwargs) of every call the test compares."""
    calls = []
    for dtype in (torch.float32, torch.float64):
        for o in OPINFOS:
            calls += [(f"{o.name} {s.name} {dtype}", o, s.kwargs) for s in o.samples("cpu", dtype)]
        calls += [(f"{o.name} extra {i} {dtype}", o, kw) for i, (o, kw) in enumerate(_extra_samples(dtype))]
    calls += [(f"warp random {i}", o, kw) for i, (o, kw) in enumerate(_random_warps())]
    return calls


def _results(opinfo, kwargs):
    """Output, gradients of every input, and gradients of every input but x, of one call."""
    sample = SampleInput(kwargs)
    res = []
    for names in (opinfo.grad_inputs, opinfo.grad_inputs[1:]):
        s = requires_grad(sample, names)
        out = s.call(opinfo.op)
        g = seeded(out.shape, dtype=out.dtype, seed=99, normal=True)
        res += [out.detach()] + list(torch.autograd.grad(out, [s.kwargs[n] for n in names], g))
    return res


def _same(a, b):
    """Bit for bit, NaN where NaN."""
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(torch.isnan(a), torch.isnan(b)) and \
        torch.equal(a.nan_to_num(0.0, 1.0, -1.0), b.nan_to_num(0.0, 1.0, -1.0))


def run_child(path):
    """In a process whose copy FASTAUG_CPU_CAPABILITY forced: every call's results with 1 thread (saved to
    path), after checking that 2 and 4 threads give the same bits."""
    results = {}
    for name, opinfo, kwargs in _calls():
        per_threads = []
        for t in THREADS:
            torch.set_num_threads(t)
            per_threads.append(_results(opinfo, kwargs))
        for t, res in zip(THREADS[1:], per_threads[1:]):
            for i, (a, b) in enumerate(zip(per_threads[0], res)):
                assert _same(a, b), f"{name}: result {i} differs between 1 and {t} threads"
        results[name] = per_threads[0]
    torch.save({"capability": fastaug.build_info()["cpu_capability"], "results": results}, path)


def _run(capability, tmp_path):
    path = tmp_path / f"{capability}.pt"
    env = dict(os.environ, FASTAUG_CPU_CAPABILITY=capability)
    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path[:0] = [{here!r}, {os.path.dirname(here)!r}]; import test_cpu_dispatch as t; " \
           f"t.run_child({str(path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(path)


@pytest.fixture(scope="module")
def default_results(tmp_path_factory):
    return _run("default", tmp_path_factory.mktemp("default"))


@pytest.mark.slow
def test_default_copy_is_thread_count_invariant(default_results):
    assert default_results["capability"] == "default"
    assert len(default_results["results"]) == len(_calls())


@pytest.mark.slow
@pytest.mark.parametrize("capability", ["avx2", "avx512"])
def test_each_copy_returns_the_default_copys_bits(capability, default_results, tmp_path):
    if RANK[SUPPORTED] < RANK[capability]:
        pytest.skip(f"this CPU runs {SUPPORTED} at best")
    got = _run(capability, tmp_path)
    assert got["capability"] == capability
    for name, expected in default_results["results"].items():
        for i, (a, b) in enumerate(zip(expected, got["results"][name])):
            assert _same(a, b), f"{capability}: {name}: result {i} differs from the default copy's"


def test_an_invalid_capability_is_a_clear_error():
    env = dict(os.environ, FASTAUG_CPU_CAPABILITY="avx9000")
    code = "import torch, fastaug; fastaug.warp(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "FASTAUG_CPU_CAPABILITY must be default, avx2 or avx512, got 'avx9000'" in proc.stderr


def test_build_info_names_the_copy_in_use():
    info = fastaug.build_info()
    assert info["cpu_supported"] in CAPABILITIES
    want = os.environ.get("FASTAUG_CPU_CAPABILITY") or "avx512"
    assert info["cpu_capability"] == CAPABILITIES[min(RANK[want], RANK[info["cpu_supported"]])]


@pytest.mark.parametrize("index", range(len(_extra_samples(torch.float64))))
def test_large_calls_match_the_reference(index):
    """The extra calls above (images split into blocks, far-reaching flows; finite ones) against the
    readable reference: output and every gradient, float64."""
    opinfo, kwargs = _extra_samples(torch.float64)[index]
    if any(not torch.isfinite(v).all() for v in kwargs.values() if isinstance(v, torch.Tensor)):
        pytest.skip("non-finite flow: compared between copies only")
    sample = requires_grad(SampleInput(kwargs), opinfo.grad_inputs)
    out = sample.call(opinfo.op)
    g = seeded(out.shape, seed=99, normal=True)
    got = [out] + list(torch.autograd.grad(out, [sample.kwargs[n] for n in opinfo.grad_inputs], g))
    ref_sample = requires_grad(SampleInput(kwargs), opinfo.grad_inputs)
    ref = opinfo.reference(**ref_sample.kwargs)
    expected = [ref] + list(torch.autograd.grad(ref, [ref_sample.kwargs[n] for n in opinfo.grad_inputs], g))
    for name, a, b in zip(("output",) + opinfo.grad_inputs, got, expected):
        torch.testing.assert_close(a, b, **opinfo.tol[torch.float64], msg=lambda m: f"{name}: {m}")
