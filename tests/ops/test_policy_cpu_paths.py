"""The CPU kernels of fastaug.apply_ops on every dispatch path against the shared engine.

The CPU forward has fast paths (csrc/policy/policy_cpu_fast.h) compiled once per instruction-set level
(``FASTAUG_CPU_CAPABILITY`` = default, avx2, avx512 caps the level; a level the CPU lacks falls back to
the best it has) and the shared engine, the code the CUDA kernel runs (``FASTAUG_POLICY_CPU_ENGINE=1``).
Every path must give the engine's output bit for bit: every op, uint8 / float32 / float64, RGB and
grey, shapes whose rows end inside and outside the vector loops, tiny images, chains, magnitudes 0 and
1, and for floats values outside [0, 1], signed zeros and NaN; the backward likewise. Outputs and
gradients must not depend on the number of threads. Pillow parity on every path:
test_policy.py::test_pillow_parity.
"""
import pytest
import torch

import fastaug  # noqa: F401  (registers torch.ops.fastaug)

LEVELS = ("default", "avx2", "avx512")
SHAPES = [(24, 3, 17, 23), (19, 1, 32, 32), (9, 3, 64, 48), (8, 3, 5, 70), (6, 1, 70, 5), (6, 3, 3, 3),
          (5, 3, 2, 2), (4, 1, 1, 1), (4, 3, 3, 1), (4, 1, 1, 9)]


def _raw(x, p, fill):
    return torch.ops.fastaug.apply_ops(x, x, p["op"], p["magnitude"], p["sign"], p["partner"], p["center"], fill)


def _params(N, L, H, W, seed, ops=None):
    g = torch.Generator().manual_seed(seed)
    op = torch.randint(-1, 16, (N, L), generator=g) if ops is None else ops
    mag = torch.rand(N, L, generator=g)
    mag.view(-1)[: min(3, mag.numel())] = torch.tensor([0.0, 1.0, 0.5])[: min(3, mag.numel())]
    sign = torch.where(torch.rand(N, L, generator=g) < 0.5, -1.0, 1.0)
    partner = torch.randint(0, N, (N, L), generator=g)
    center = torch.stack([torch.randint(-3, H + 3, (N, L), generator=g), torch.randint(-3, W + 3, (N, L), generator=g)],
                         -1)
    return dict(op=op, magnitude=mag, sign=sign, partner=partner, center=center)


def _images(shape, dtype, seed, odd_values=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    if shape[0] > 2:  # a flat image and a two-level one: empty histograms, equal min and max
        x[0] = 77
        x[1] = torch.where(torch.rand(shape[1:], generator=g) < 0.5, 3, 250).to(torch.uint8)
    if dtype == torch.uint8:
        return x
    x = x.to(dtype) / 255
    if odd_values:
        x = x * 1.4 - 0.2
        x.view(-1)[::7] = -0.0
        x.view(-1)[::11] = 0.0
        x.view(-1)[::97] = float("nan")
    return x


def _bits(t):
    """The tensor's bytes: compares floats bit for bit (signed zeros, NaN payloads)."""
    return t.contiguous().view(-1).view(torch.uint8)


def _use(monkeypatch, path):
    """Route the next calls to the engine or to the fast kernels at one level."""
    if path == "engine":
        monkeypatch.setenv("FASTAUG_POLICY_CPU_ENGINE", "1")
        monkeypatch.delenv("FASTAUG_CPU_CAPABILITY", raising=False)
    else:
        monkeypatch.delenv("FASTAUG_POLICY_CPU_ENGINE", raising=False)
        monkeypatch.setenv("FASTAUG_CPU_CAPABILITY", path)


def _run(monkeypatch, path, x, p, fill=128):
    _use(monkeypatch, path)
    return _raw(x, p, fill)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64], ids=["u8", "f32", "f64"])
def test_every_op_matches_the_engine(level, dtype, monkeypatch):
    for si, (N, C, H, W) in enumerate(SHAPES):
        x = _images((N, C, H, W), dtype, si)
        for op_id in range(-1, 16):
            p = _params(N, 1, H, W, 100 * si + op_id, ops=torch.full((N, 1), op_id))
            fill = (128, 0, 255)[op_id % 3]
            ref = _run(monkeypatch, "engine", x, p, fill)
            out = _run(monkeypatch, level, x, p, fill)
            assert torch.equal(_bits(out), _bits(ref)), f"op {op_id} {tuple(x.shape)} {dtype} on {level}"


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64], ids=["u8", "f32", "f64"])
def test_chains_match_the_engine(level, dtype, monkeypatch):
    for si, (N, C, H, W) in enumerate(SHAPES[:6]):
        x = _images((N, C, H, W), dtype, 50 + si)
        for L in (2, 3):
            p = _params(N, L, H, W, 7 * si + L)
            ref = _run(monkeypatch, "engine", x, p)
            out = _run(monkeypatch, level, x, p)
            assert torch.equal(_bits(out), _bits(ref)), f"L={L} {tuple(x.shape)} {dtype} on {level}"


def test_equalize_of_a_large_plane_matches_the_engine(monkeypatch):
    """Above 2^24 pixels (counts plus step) the Equalize table's quotients are taken in double."""
    g = torch.Generator().manual_seed(8)
    x = torch.randint(0, 256, (1, 1, 4100, 4100), generator=g, dtype=torch.uint8)
    x[0, 0, :1000] //= 2  # an uneven histogram
    p = _params(1, 1, 4100, 4100, 9, ops=torch.full((1, 1), 7))
    ref = _run(monkeypatch, "engine", x, p)
    for level in LEVELS:
        assert torch.equal(_run(monkeypatch, level, x, p), ref), level


def _every_level_images(N, seed):
    """N RGB images of 16x32 whose every channel holds each of the 256 levels once (so every table entry
    is read) plus 256 pixels drawn from a random range (so the grey mean that Contrast blends with
    varies), and N grey images whose levels fill a random [lo, hi] (AutoContrast's range)."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.empty(N, 3, 16, 32, dtype=torch.uint8)
    for i in range(N):
        lo = int(torch.randint(0, 256, (1,), generator=g))
        hi = int(torch.randint(lo, 256, (1,), generator=g))
        for c in range(3):
            every = torch.randperm(256, generator=g)
            extra = torch.randint(lo, hi + 1, (256,), generator=g)
            rgb[i, c] = torch.cat([every, extra]).view(16, 32).to(torch.uint8)
    grey = torch.empty(N, 1, 16, 32, dtype=torch.uint8)
    for i in range(N):
        lo = int(torch.randint(0, 256, (1,), generator=g))
        hi = int(torch.randint(lo, 256, (1,), generator=g))
        span = torch.arange(lo, hi + 1)
        grey[i, 0] = span[torch.randint(0, span.numel(), (512,), generator=g)].view(16, 32).to(torch.uint8)
        grey[i, 0, 0, : span.numel() if span.numel() < 32 else 32] = span[:32]
        grey[i, 0, 1, 0], grey[i, 0, 1, 1] = lo, hi
    return rgb, grey


@pytest.mark.parametrize("level", LEVELS)
def test_line_tables_match_the_engine_at_many_factors(level, monkeypatch):
    """Brightness, Contrast and AutoContrast build tables that the AVX2 path applies as integer lines
    when one fits at all 256 levels (simd::fit_line), and as lookups otherwise: 768 factors per op,
    each table read at every level, against the engine."""
    N = 384
    rgb, grey = _every_level_images(N, 21)
    for op_id in (12, 10, 5):  # Brightness, Contrast, AutoContrast
        for x in (rgb, grey):
            for seed in (0, 1):
                p = _params(N, 1, 16, 32, 1000 * op_id + seed, ops=torch.full((N, 1), op_id))
                p["magnitude"][: N // 4, 0] = torch.linspace(0, 1, N // 4)  # even factors, exact halves
                ref = _run(monkeypatch, "engine", x, p)
                out = _run(monkeypatch, level, x, p)
                bad = (out != ref).flatten(1).any(1).nonzero().flatten().tolist()
                assert not bad, f"op {op_id} C={x.shape[1]} on {level}: images {bad[:5]}"


# Magnitudes whose blend factor the AVX2 kernels must leave to the float blend: an integer line fits
# their q_d (simd::fit_blend) but a rounding of the engine's sum crosses an integer for some pair of
# levels, which the 2^-13 margin catches. Found by emulating fit_blend in numpy over 20000 magnitudes;
# 0.2-0.4 % of factors are of this kind, 5 % are left to the float blend in all.
_CROSSING_ENHANCE = {1.0: [0.178571879863739, 0.7051284909248352, 0.13616548478603363],
                     -1.0: [0.7051284909248352, 0.7913436889648438, 0.13616548478603363]}
_CROSSING_PAIRING = [0.8277025818824768, 0.178571879863739, 0.9409341812133789]


def _blend_params(N, H, W, seed, op_id, crossing):
    p = _params(N, 1, H, W, seed, ops=torch.full((N, 1), op_id))
    special = [(m, s) for s, ms in crossing.items() for m in ms] if isinstance(crossing, dict) else \
        [(m, 1.0) for m in crossing]
    for i, (m, s) in enumerate(special):
        p["magnitude"][i, 0], p["sign"][i, 0] = m, s
    return p


@pytest.mark.parametrize("level", LEVELS)
def test_fixed_point_blends_match_the_engine(level, monkeypatch):
    """SamplePairing, Color and Sharpness blend in integers on AVX2 where simd::fit_blend proves it
    exact for the factor: SamplePairing over all 65536 pairs of levels at 48 factors (those with a
    crossing rounding included), Color and Sharpness at 48 factors each."""
    K = 24
    rows = torch.arange(256, dtype=torch.uint8).view(256, 1).expand(256, 256)
    x = torch.stack([rows, rows.t()] * K).unsqueeze(1).contiguous()  # image 2i: levels by row; 2i + 1: by column
    p = _blend_params(2 * K, 256, 256, 5, 15, _CROSSING_PAIRING)
    p["partner"] = (torch.arange(2 * K) ^ 1).view(-1, 1)
    ref = _run(monkeypatch, "engine", x, p)
    out = _run(monkeypatch, level, x, p)
    bad = (out != ref).flatten(1).any(1).nonzero().flatten().tolist()
    assert not bad, f"SamplePairing on {level}: images {bad[:5]}"

    g = torch.Generator().manual_seed(6)
    rgb = torch.randint(0, 256, (48, 3, 96, 128), generator=g, dtype=torch.uint8)
    rgb[:8, 0] = torch.arange(128, dtype=torch.uint8) * 2  # red across, green and blue down: spread greys
    rgb[:8, 1:] = (torch.arange(96, dtype=torch.uint8) * 2 + 40).view(96, 1)
    for op_id in (11, 13):  # Color, Sharpness
        p = _blend_params(48, 96, 128, 7 + op_id, op_id, _CROSSING_ENHANCE)
        ref = _run(monkeypatch, "engine", rgb, p)
        out = _run(monkeypatch, level, rgb, p)
        bad = (out != ref).flatten(1).any(1).nonzero().flatten().tolist()
        assert not bad, f"op {op_id} on {level}: images {bad[:5]}"


@pytest.mark.parametrize("level", LEVELS)
def test_chains_with_skipped_steps_match_the_engine(level, monkeypatch):
    """Identity steps (skipped ops) anywhere in a chain, and chains of identities only: the fast path
    leaves them out instead of copying, so the ping-pong must still end in the output."""
    I = -1
    ops = torch.tensor([[I, I, I], [I, 6, I], [6, I, I], [I, I, 6], [6, I, 0], [I, 13, 4], [8, 9, I], [4, 6, 15]])
    N, C, H, W = ops.shape[0], 3, 13, 11
    for dtype in (torch.uint8, torch.float32):
        x = _images((N, C, H, W), dtype, 3)
        p = _params(N, 3, H, W, 4, ops=ops)
        ref = _run(monkeypatch, "engine", x, p)
        out = _run(monkeypatch, level, x, p)
        assert torch.equal(_bits(out), _bits(ref)), f"{dtype} on {level}"
        assert torch.equal(out[0], x[0])


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_float_edge_values_match_the_engine(level, dtype, monkeypatch):
    """Values outside [0, 1], -0.0 and NaN: the fast float paths keep the engine's every rounding,
    clamp and comparison (AutoContrast's extremes, the Solarize threshold, Sharpness borders)."""
    for si, (N, C, H, W) in enumerate(SHAPES[:5]):
        x = _images((N, C, H, W), dtype, 90 + si, odd_values=True)
        for op_id in range(-1, 16):
            p = _params(N, 1, H, W, 11 * si + op_id, ops=torch.full((N, 1), op_id))
            ref = _run(monkeypatch, "engine", x, p)
            out = _run(monkeypatch, level, x, p)
            assert torch.equal(_bits(out), _bits(ref)), f"op {op_id} {tuple(x.shape)} {dtype} on {level}"


def _backward(monkeypatch, path, g, x, p):
    _use(monkeypatch, path)
    return torch.ops.fastaug.apply_ops_backward(g, x, x, p["op"], p["magnitude"], p["sign"], p["partner"],
                                                p["center"], 128, True)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_backward_matches_the_engine(level, dtype, monkeypatch):
    """apply_ops_backward, every op: the image's gradient and the partners' (SamplePairing), bit for bit."""
    for si, (N, C, H, W) in enumerate(SHAPES):
        x = _images((N, C, H, W), dtype, 30 + si, odd_values=si % 2 == 1)
        g = torch.randn((N, C, H, W), generator=torch.Generator().manual_seed(si), dtype=dtype)
        for op_id in range(-1, 16):
            p = _params(N, 1, H, W, 13 * si + op_id, ops=torch.full((N, 1), op_id))
            ref = _backward(monkeypatch, "engine", g, x, p)
            out = _backward(monkeypatch, level, g, x, p)
            for r, o, name in zip(ref, out, ("x", "partner")):
                assert torch.equal(_bits(o), _bits(r)), f"grad of {name}, op {op_id} {tuple(x.shape)} {dtype} on {level}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_partner_gradient_is_the_ordered_sum(dtype):
    """The partners' gradient: partner m gets w_n g_n of every image n that paired with it (SamplePairing,
    w_n = 0.4 m_n in float32), summed in increasing n, bit for bit."""
    N, C, H, W = 40, 3, 6, 5
    g0 = torch.Generator().manual_seed(12)
    x = torch.rand(N, C, H, W, generator=g0, dtype=dtype)
    g = torch.randn(N, C, H, W, generator=g0, dtype=dtype)
    ops = torch.where(torch.rand(N, 1, generator=g0) < 0.7, 15, 6)
    p = _params(N, 1, H, W, 5, ops=ops)
    p["partner"] = torch.randint(0, 6, (N, 1), generator=g0)  # many images share a partner
    _, gp = torch.ops.fastaug.apply_ops_backward(g, x, x, p["op"], p["magnitude"], p["sign"], p["partner"],
                                                 p["center"], 128, True)
    ref = torch.zeros_like(x)
    for n in range(N):
        if int(ops[n, 0]) == 15:
            w = (torch.tensor(0.4, dtype=torch.float32) * p["magnitude"][n, 0]).to(dtype)
            ref[int(p["partner"][n, 0])] += w * g[n]
    assert torch.equal(_bits(gp), _bits(ref))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["u8", "f32"])
def test_output_does_not_depend_on_threads(dtype, monkeypatch):
    monkeypatch.delenv("FASTAUG_POLICY_CPU_ENGINE", raising=False)
    monkeypatch.delenv("FASTAUG_CPU_CAPABILITY", raising=False)
    x = _images((64, 3, 40, 36), dtype, 5)
    p = _params(64, 2, 40, 36, 6)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    n = torch.get_num_threads()
    try:
        outs, grads = [], []
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            outs.append(_raw(x, p, 128))
            if dtype != torch.uint8:
                p1 = {k: v[:, :1].contiguous() for k, v in p.items()}
                grads.append(torch.cat(_backward(monkeypatch, "avx512", g, x, p1)))
    finally:
        torch.set_num_threads(n)
    for other in outs[1:]:
        assert torch.equal(_bits(outs[0]), _bits(other))
    for other in grads[1:]:
        assert torch.equal(_bits(grads[0]), _bits(other))


def test_bad_capability_is_one_sentence(monkeypatch):
    monkeypatch.setenv("FASTAUG_CPU_CAPABILITY", "sse9")
    x = _images((2, 3, 4, 4), torch.uint8, 0)
    with pytest.raises(RuntimeError, match="FASTAUG_CPU_CAPABILITY must be default, avx2 or avx512, got 'sse9'"):
        _raw(x, _params(2, 1, 4, 4, 0), 128)
