"""Time the public ops of two fastaug checkouts against each other, interleaved, in one run.

    python -m benchmarks.compare_builds --a /path/to/old/checkout --b . [--rounds 3] [--threads 2]

Each checkout must hold a built extension (``fastaug/_C*.so``). Every case runs in a fresh
subprocess per checkout and per round (A, B, A, B, ...), so both builds see the same machine drift;
each prints the median of ``torch.utils.benchmark``'s blocked autorange and the table keeps the
median over rounds. Used for the before/after tables of kernel refactors in benchmarks/RESULTS.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from . import KEPT_MEMORY_ENV

def _warp_case(n, c, h, w, scale, backward, flow_only=False):
    """fastaug.warp on an n x c x h x w batch, flows of `scale` pixels; forward, or forward+backward
    (both gradients, or the flow's only)."""
    if backward:
        return f"""
x = torch.rand({n}, {c}, {h}, {w}, requires_grad={not flow_only}); f = (torch.randn({n}, 2, {h}, {w}) * {scale}).requires_grad_()
def fn(): fastaug.warp(x, f).sum().backward()"""
    return f"""
x = torch.rand({n}, {c}, {h}, {w}); f = torch.randn({n}, 2, {h}, {w}) * {scale}
def fn(): fastaug.warp(x, f)"""


# name -> Python that builds inputs and defines fn() (run inside the checkout's fastaug)
CASES = {
    "warp fwd+bwd 32x3x64x64 f32": """
x = torch.rand(32, 3, 64, 64, requires_grad=True); f = (torch.randn(32, 2, 64, 64) * 3).requires_grad_()
def fn(): fastaug.warp(x, f, padding_mode="border").sum().backward()""",
    "warp fwd+bwd 8x3x64x64 f64": """
x = torch.rand(8, 3, 64, 64, dtype=torch.float64, requires_grad=True)
f = (torch.randn(8, 2, 64, 64, dtype=torch.float64) * 3).requires_grad_()
def fn(): fastaug.warp(x, f).sum().backward()""",
    "warp fwd+bwd 64x1x28x28 f32": """
x = torch.rand(64, 1, 28, 28, requires_grad=True); f = (torch.randn(64, 2, 28, 28) * 3).requires_grad_()
def fn(): fastaug.warp(x, f).sum().backward()""",
    "warp fwd+bwd 16x3x224x224 f32, smooth flow": """
import torch.nn.functional as F
x = torch.rand(16, 3, 224, 224, requires_grad=True)
f = F.interpolate(torch.randn(16, 2, 14, 14) * 3, size=(224, 224), mode="bilinear").requires_grad_()
def fn(): fastaug.warp(x, f).sum().backward()""",
    "warp fwd 128x3x32x32 f32": _warp_case(128, 3, 32, 32, 3, backward=False),
    "warp fwd 16x3x224x224 f32": _warp_case(16, 3, 224, 224, 3, backward=False),
    "warp fwd+bwd 1x3x1024x1024 f32 (one large image: split into items)": _warp_case(1, 3, 1024, 1024, 2, backward=True),
    "warp fwd 1x3x1024x1024 f32": _warp_case(1, 3, 1024, 1024, 2, backward=False),
    "warp fwd+bwd 8x64x56x56 f32 (feature maps)": _warp_case(8, 64, 56, 56, 2, backward=True),
    "warp fwd+bwd 4x256x28x28 f32 (feature maps)": _warp_case(4, 256, 28, 28, 2, backward=True),
    "warp fwd 8x64x56x56 f32 (feature maps)": _warp_case(8, 64, 56, 56, 2, backward=False),
    "warp fwd+bwd flow only 8x64x56x56 f32 (feature maps)": _warp_case(8, 64, 56, 56, 2, backward=True,
                                                                       flow_only=True),
    "warp fwd+bwd flow only 16x3x224x224 f32": _warp_case(16, 3, 224, 224, 3, backward=True, flow_only=True),
    "affine_flow_warp fwd 8x64x56x56 f32 (feature maps)": """
x = torch.rand(8, 64, 56, 56)
w = torch.randn(8, 4, 56, 56) * 0.05; b = torch.randn(8, 2, 56, 56) * 0.05
def fn(): fastaug.affine_flow_warp(x, w, b, smooth=4)""",
    "warp fwd+bwd 256x3x32x32 f32": _warp_case(256, 3, 32, 32, 3, backward=True),
    "affine_flow_warp fwd+bwd 32x3x64x64 f32": """
x = torch.rand(32, 3, 64, 64, requires_grad=True)
w = (torch.randn(32, 4, 64, 64) * 0.05).requires_grad_(); b = (torch.randn(32, 2, 64, 64) * 0.05).requires_grad_()
def fn(): fastaug.affine_flow_warp(x, w, b, smooth=4).sum().backward()""",
    "appearance fwd+bwd 32x3x64x64 f32": """
x = torch.rand(32, 3, 64, 64, requires_grad=True)
w = (torch.randn(32, 9, 64, 64) * 0.05).requires_grad_(); b = (torch.randn(32, 3, 64, 64) * 0.05).requires_grad_()
def fn(): fastaug.appearance(x, w, b, smooth=4).sum().backward()""",
    "apply_ops 128x3x32x32 uint8": """
g = torch.Generator().manual_seed(0)
x = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8, generator=g)
op = torch.randint(0, 16, (128,), generator=g); m = torch.rand(128, generator=g)
def fn(): fastaug.apply_ops(x, op, m)""",
    "copy of a 256x3x32x32 uint8 batch": """
x = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8); out = torch.empty_like(x)
def fn(): out.copy_(x)""",
}

# apply_ops on a uint8 batch, one random op per image with every parameter drawn (the kernel benchmark's call).
_RANDOM_OPS = """
g = torch.Generator().manual_seed(0)
N = {n}
x = torch.randint(0, 256, (N, 3, {s}, {s}), dtype=torch.uint8, generator=g)
op = torch.randint(0, 16, (N,), generator=g); mag = torch.rand(N, generator=g)
sign = torch.where(torch.rand(N, generator=g) < 0.5, -1.0, 1.0); partner = torch.randint(0, N, (N,), generator=g)
center = torch.stack([torch.randint(0, {s}, (N,), generator=g), torch.randint(0, {s}, (N,), generator=g)], 1)
def fn(): fastaug.apply_ops(x, op, mag, sign, partner, center=center)"""
CASES["apply_ops 256x3x32x32 uint8, the kernel benchmark's call"] = _RANDOM_OPS.format(n=256, s=32)
CASES["apply_ops 64x3x224x224 uint8, random op per image"] = _RANDOM_OPS.format(n=64, s=224)

# The same call on float32 images, forward and forward+backward.
_RANDOM_OPS_F32 = """
g = torch.Generator().manual_seed(0)
N = {n}
x = torch.rand(N, 3, {s}, {s}, generator=g, requires_grad={grad})
op = torch.randint(0, 16, (N,), generator=g); mag = torch.rand(N, generator=g)
sign = torch.where(torch.rand(N, generator=g) < 0.5, -1.0, 1.0); partner = torch.randint(0, N, (N,), generator=g)
center = torch.stack([torch.randint(0, {s}, (N,), generator=g), torch.randint(0, {s}, (N,), generator=g)], 1)
def fn(): {call}"""
_F32_FWD = "fastaug.apply_ops(x, op, mag, sign, partner, center=center)"
_F32_BWD = "fastaug.apply_ops(x, op, mag, sign, partner, center=center).sum().backward()"
CASES["apply_ops 16x3x224x224 float32, random op per image"] = _RANDOM_OPS_F32.format(n=16, s=224, grad=False,
                                                                                     call=_F32_FWD)
CASES["apply_ops fwd+bwd 256x3x32x32 float32, random op per image"] = _RANDOM_OPS_F32.format(n=256, s=32, grad=True,
                                                                                             call=_F32_BWD)

# The fused transform, forward+backward, one mode and size.
_TRANSFORM = """
from fastaug.ops.transform import num_params
x = torch.rand({n}, 3, {s}, {s}, requires_grad=True)
p = (torch.randn({n}, num_params(3), {s}, {s}) * 0.05).requires_grad_()
def fn(): fastaug.transform(x, p, smooth=4, mode="{mode}").sum().backward()"""
for _name, _n, _s, _mode in (("transform fwd+bwd 32x3x64x64 f32", 32, 64, "parallel"),
                             ("transform fwd+bwd 16x3x224x224 f32", 16, 224, "parallel"),
                             ("transform serial fwd+bwd 32x3x64x64 f32", 32, 64, "serial")):
    CASES[_name] = _TRANSFORM.format(n=_n, s=_s, mode=_mode)

# One policy op for every image of a uint8 batch (random magnitudes): the ops whose kernels have their
# own fast paths, at the kernel benchmark's sizes.
_ONE_OP = """
x = torch.randint(0, 256, ({n}, 3, {s}, {s}), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
op = torch.full(({n},), {op}); m = torch.rand({n}, generator=torch.Generator().manual_seed(1))
def fn(): fastaug.apply_ops(x, op, m)"""
for _name, _op, _sizes in (("Sharpness", 13, ((256, 32), (16, 224))), ("Rotate", 4, ((256, 32), (16, 224))),
                           ("ShearY", 1, ((256, 32), (16, 224))), ("AutoContrast", 5, ((256, 32), (16, 224))),
                           ("Invert", 6, ((16, 224),)), ("Equalize", 7, ((16, 224),)),
                           ("Brightness", 12, ((256, 32), (16, 224))), ("Contrast", 10, ((256, 32), (16, 224))),
                           ("Color", 11, ((256, 32), (16, 224))), ("SamplePairing", 15, ((256, 32), (16, 224)))):
    for _n, _s in _sizes:
        CASES[f"apply_ops {_name} {_n}x3x{_s}x{_s} uint8"] = _ONE_OP.format(n=_n, s=_s, op=_op)

# The per-call fixed cost of every public op: a 1x1x8x8 image (the kernel's own work is a few hundred
# nanoseconds), without grad and forward+backward; grid_sample with a precomputed base grid is the yardstick.
_TINY = """
x = torch.rand(1, 1, 8, 8, requires_grad=True); g = torch.randn(1, 1, 8, 8)
maps = {"flow": (2, 1.0), "s_w": (4, 0.1), "s_b": (2, 0.1), "c_w": (1, 0.1), "c_b": (1, 0.1), "p": (8, 0.1)}
m = {k: (torch.randn(1, c, 8, 8) * s).requires_grad_() for k, (c, s) in maps.items()}
op = torch.tensor([[10]]); mag = torch.rand(1, 1); sign = torch.ones(1, 1); op1, mag1 = op[:, 0].clone(), mag[:, 0].clone()
partner = torch.zeros(1, 1, dtype=torch.long)
center = torch.zeros(1, 1, 2, dtype=torch.long); x8 = (x.detach() * 255).to(torch.uint8)
base = torch.stack(torch.meshgrid((2 * torch.arange(8) + 1) / 8 - 1, (2 * torch.arange(8) + 1) / 8 - 1,
                                  indexing="ij")[::-1], -1)[None]
scale = torch.tensor([0.25, 0.25])
calls = {
    "warp": lambda: fastaug.warp(x, m["flow"]),
    "affine_flow_warp": lambda: fastaug.affine_flow_warp(x, m["s_w"], m["s_b"]),
    "appearance": lambda: fastaug.appearance(x, m["c_w"], m["c_b"]),
    "transform": lambda: fastaug.transform(x, m["p"]),
    "apply_ops float32": lambda: fastaug.apply_ops(x, op, mag, sign, partner, center=center),
    "apply_ops uint8": lambda: fastaug.apply_ops(x8, op, mag, sign, partner, center=center),
    "apply_ops uint8, (N,) parameters and defaults": lambda: fastaug.apply_ops(x8, op1, mag1),
    "grid_sample, base grid precomputed": lambda: torch.nn.functional.grid_sample(
        x, base + m["flow"].permute(0, 2, 3, 1) * scale, align_corners=False),
}
call = calls[NAME]
"""
for _name in ("warp", "affine_flow_warp", "appearance", "transform", "apply_ops float32", "apply_ops uint8",
              "apply_ops uint8, (N,) parameters and defaults", "grid_sample, base grid precomputed"):
    CASES[f"fixed cost: {_name} fwd 1x1x8x8 (no grad)"] = _TINY.replace("NAME", repr(_name)) + """
def fn():
    with torch.no_grad(): call()"""
    if not _name.startswith("apply_ops uint8"):
        CASES[f"fixed cost: {_name} fwd+bwd 1x1x8x8"] = _TINY.replace("NAME", repr(_name)) + """
def fn(): call().backward(g)"""

CHILD = """
import json, sys, torch, torch.utils.benchmark as tb
torch.set_num_threads({threads})
import fastaug
assert fastaug.__file__.startswith({root!r}), fastaug.__file__
{setup}
fn()
t = tb.Timer(stmt="fn()", globals={{"fn": fn}}, num_threads=torch.get_num_threads())
print(json.dumps(t.blocked_autorange(min_run_time={min_run_time}).median * 1e3))
"""


def time_case(root, setup, threads, min_run_time):
    code = CHILD.format(threads=threads, root=os.path.abspath(root), setup=setup, min_run_time=min_run_time)
    # The allocator keeps freed memory on huge pages, as in benchmarks.run (harness.keep_freed_memory),
    # unless the caller's environment says otherwise.
    env = dict(KEPT_MEMORY_ENV, **dict(os.environ, PYTHONPATH=os.path.abspath(root)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{root}: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ms(t):
    """Milliseconds with four significant digits (the fixed-cost cases are a few microseconds)."""
    return f"{t:.4g}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="checkout A (before)")
    p.add_argument("--b", required=True, help="checkout B (after)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    p.add_argument("--threads", type=int, default=torch_threads(), help="torch threads in each child")
    p.add_argument("--min-run-time", type=float, default=0.5, help="seconds per measurement (0.5)")
    p.add_argument("--only", default="", help="substring filter on case names")
    args = p.parse_args(argv)
    print(f"| case | A ms | B ms | B/A |  ({args.threads} threads, median of {args.rounds} interleaved rounds)")
    print("|---|---|---|---|")
    for name, setup in CASES.items():
        if args.only and args.only not in name:
            continue
        a, b = [], []
        for _ in range(args.rounds):
            a.append(time_case(args.a, setup, args.threads, args.min_run_time))
            b.append(time_case(args.b, setup, args.threads, args.min_run_time))
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"| {name} | {_ms(ma)} | {_ms(mb)} | {mb / ma:.3f} |", flush=True)
    return 0


def torch_threads():
    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
