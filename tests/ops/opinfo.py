"""Every public op of fastaug described once (the idea of PyTorch's ``torch.testing._internal.opinfo``,
without its weight): which inputs to try, what the right answer is, how close is close enough, which
inputs are differentiable, which mistakes a caller can make, and how the registered ``torch.ops.fastaug``
ops behind it are called. The generic test files (``test_spec_*.py``, ``test_direct_calls.py``) run
every kind of check on every spec; the per-op files (``test_warp.py``, ...) keep the maths that only
one op has, drawing their inputs from here too.

A :class:`SampleInput` is one call of the public function, by keyword. An :class:`OpInfo` holds:

* ``samples(device, dtype, n=None)``: a few varied, small calls (``n`` overrides the batch size; 0
  gives an empty batch), every tensor drawn from a seeded generator;
* ``grad_samples(device)``: float64 calls small enough for ``gradcheck`` (the first one is also the
  "one small sample" of the compile, export and opcheck tests);
* ``reference``: the readable answer (``fastaug/reference.py``; the Pillow oracle and the influence
  references of ``tests/oracles/``), called with the sample's keywords;
* ``tol``: ``assert_close`` tolerances per dtype against the reference;
* ``grad_inputs``: the names of the differentiable inputs; ``gradgrad``: True when the op supports
  double backward, False when differentiating its backward must raise a RuntimeError;
* ``raw(sample)``: the positional arguments of the registered forward op ``torch.ops.fastaug.<raw_name>``;
* ``direct``: the contract of every registered op of the family (forward and backward) for direct
  calls: the symbolic shape and dtype of each tensor argument, valid and invalid other arguments;
* ``bad_args``: mutations of a valid call that the public function must refuse, with the exception
  type and a regex naming the argument.
"""
import re
from dataclasses import dataclass, field
from typing import Callable

import torch

import fastaug
from fastaug import reference
from fastaug.ops.policy import OP_IDS, OP_NAMES
from fastaug.ops.transform import num_params
from oracles.influence import reference_aug, reference_hvp, reference_score

HAS_CUDA = bool(fastaug.build_info()["cuda"]) and torch.cuda.is_available()
PADDING = {"zeros": 0, "border": 1, "reflection": 2}
MODES = {"parallel": 0, "serial": 1}


@dataclass
class SampleInput:
    """One call of a public op: ``op(**kwargs)``; ``name`` says what is special about it."""
    kwargs: dict
    name: str = ""

    def call(self, fn):
        return fn(**self.kwargs)

    def tensors(self):
        return {k: v for k, v in self.kwargs.items() if isinstance(v, torch.Tensor)}

    def replace(self, **changes):
        return SampleInput(dict(self.kwargs, **changes), self.name)

    def map_tensors(self, fn):
        """A copy with fn applied to every tensor argument."""
        return SampleInput({k: fn(k, v) if isinstance(v, torch.Tensor) else v for k, v in self.kwargs.items()},
                           self.name)

    def __repr__(self):
        shapes = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else v for k, v in self.kwargs.items()}
        return f"SampleInput({self.name or ''} {shapes})"


@dataclass
class OpInfo:
    name: str
    op: Callable
    raw_name: str
    raw: Callable  # SampleInput -> positional args of torch.ops.fastaug.<raw_name>
    samples: Callable  # (device, dtype, n=None) -> list[SampleInput]
    grad_samples: Callable  # device -> list[SampleInput] (float64)
    reference: Callable  # (**kwargs) -> expected output
    dtypes: tuple  # dtypes of the reference-parity test on CPU
    tol: dict
    grad_inputs: tuple
    gradgrad: bool
    direct: dict
    bad_args: list = field(default_factory=list)
    cuda_dtypes: tuple = ()  # extra dtypes on CUDA only
    gradcheck_kwargs: dict = field(default_factory=dict)
    reference_in_float64: bool = True  # evaluate the reference in float64 and cast back
    # Which inputs autocast may cast: the floating ones (policy magnitudes/signs are parameters, not data).
    autocast_inputs: tuple = ()
    differentiable_reference: bool = True  # the reference's autograd gives the right gradients
    compile_kwargs: dict = field(default_factory=dict)  # extra keywords when traced (data checks off)
    # Whether the registered forward op is differentiable on this sample (apply_ops: a chain run in one
    # call is not; the public function then runs it step by step).
    raw_differentiable: Callable = lambda sample: True

    def expected(self, sample):
        """The reference on this sample: evaluated in float64 and cast back to the output dtype where the
        reference allows (a float32 grid_sample's own rounding would otherwise be measured, not ours)."""
        if not self.reference_in_float64:
            return self.reference(**sample.kwargs)
        dt = next(v.dtype for v in sample.kwargs.values() if isinstance(v, torch.Tensor) and v.is_floating_point())
        s64 = sample.map_tensors(lambda k, v: v.double() if v.is_floating_point() else v)
        out = self.reference(**s64.kwargs)
        return out.to(dt)

    def __repr__(self):
        return self.name


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def seeded(shape, device="cpu", dtype=torch.float64, seed=0, scale=1.0, normal=False):
    """Seeded tensor drawn in float64 on the CPU (same values on every device), cast."""
    g = _gen(seed)
    t = torch.randn(shape, generator=g, dtype=torch.float64) if normal else torch.rand(shape, generator=g,
                                                                                        dtype=torch.float64)
    return (t * scale).to(device=device, dtype=dtype)


# ---- warp ------------------------------------------------------------------------------------------

IMG = ("N", "C", "H", "W")
FLT = "float"  # dtype rules of the direct-call contracts: the op's floating dtype (float64 there)
IMAGE = "image"  # uint8 or floating image (apply_ops)


def _warp_samples(device, dtype, n=None):
    # Every padding x align_corners on one odd-sized image, and other shapes (a 1-pixel image, a grey
    # tall one, a large flow far outside) with one combination each.
    cases = [((2, 3, 5, 7), p, a) for p in PADDING for a in (False, True)]
    cases += [((1, 1, 1, 1), "zeros", False), ((3, 1, 16, 9), "reflection", False), ((2, 2, 13, 20), "border", True)]
    out = []
    for i, (shape, padding, align) in enumerate(cases):
        N, C, H, W = shape
        N = N if n is None else n
        out.append(SampleInput(dict(x=seeded((N, C, H, W), device, dtype, i),
                                    flow=seeded((N, 2, H, W), device, dtype, 100 + i, 0.4 * max(H, W), normal=True),
                                    padding_mode=padding, align_corners=align), f"{shape} {padding} ac={align}"))
    return out


def _warp_grad_samples(device):
    return [SampleInput(dict(x=seeded((2, 1, 4, 5), device, torch.float64, i),
                             flow=seeded((2, 2, 4, 5), device, torch.float64, 10 + i, 2.5, normal=True),
                             padding_mode=p, align_corners=a), f"{p} ac={a}")
            for i, (p, a) in enumerate([("zeros", False), ("border", True), ("reflection", False),
                                        ("reflection", True)])]


WARP = OpInfo(
    name="warp", op=fastaug.warp, raw_name="warp",
    raw=lambda s: (s.kwargs["x"], s.kwargs["flow"], PADDING[s.kwargs["padding_mode"]], s.kwargs["align_corners"]),
    samples=_warp_samples, grad_samples=_warp_grad_samples, reference=reference.warp,
    dtypes=(torch.float64, torch.float32), cuda_dtypes=(torch.float16, torch.bfloat16),
    tol={torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=1e-5, rtol=1e-5),
         torch.float16: dict(atol=5e-2, rtol=5e-2), torch.bfloat16: dict(atol=5e-2, rtol=5e-2)},
    grad_inputs=("x", "flow"), gradgrad=True, autocast_inputs=("x", "flow"),
    direct={
        "warp": dict(tensors={"x": (IMG, FLT, "unit"), "flow": (("N", 2, "H", "W"), FLT, "rand")},
                     scalars={"padding_mode": (2, [-1, 3]), "align_corners": (True, [])},
                     order=["x", "flow", "padding_mode", "align_corners"]),
        "warp_backward": dict(tensors={"grad_out": (IMG, FLT, "rand"), "x": (IMG, FLT, "unit"),
                                       "flow": (("N", 2, "H", "W"), FLT, "rand")},
                              scalars={"padding_mode": (0, [3]), "align_corners": (False, []),
                                       "need_x_grad": (True, [])},
                              order=["grad_out", "x", "flow", "padding_mode", "align_corners", "need_x_grad"]),
    },
    bad_args=[
        (lambda a: dict(a, x=a["x"][0]), ValueError, r"x must have shape \(N, C, H, W\)"),
        (lambda a: dict(a, flow=a["flow"][:1]), ValueError, r"flow .* must have shape \(2, 2, 5, 7\)"),
        (lambda a: dict(a, flow=a["flow"][:, :1]), ValueError, r"flow .* must have shape"),
        (lambda a: dict(a, flow=a["flow"][..., :6]), ValueError, r"flow .* got \(2, 2, 5, 6\)"),
        (lambda a: dict(a, x=a["x"].to(torch.uint8)), TypeError, r"x must be a floating-point tensor"),
        (lambda a: dict(a, flow=a["flow"].long()), TypeError, r"flow must have the dtype of x"),
        (lambda a: dict(a, x=a["x"].half(), flow=a["flow"].half()), TypeError, r"float16 is supported on CUDA only"),
        (lambda a: dict(a, flow=a["flow"].to("meta")), ValueError, r"flow must be on the device of x"),
        (lambda a: dict(a, padding_mode="wrap"), ValueError, r"padding_mode must be one of"),
        (lambda a: dict(a, x=a["x"].numpy()), TypeError, r"x must be a torch.Tensor"),
    ],
)


# ---- affine_flow_warp --------------------------------------------------------------------------------

def _affine_samples(device, dtype, n=None):
    cases = [((2, 3, 5, 7), k, p) for k, p in [(1, "zeros"), (2, "border"), (3, "reflection"), (4, "zeros"),
                                                 (7, "border")]]
    cases += [((1, 1, 1, 1), 4, "reflection"), ((3, 1, 16, 9), 3, "zeros"), ((2, 3, 20, 24), 4, "reflection")]
    out = []
    for i, (shape, k, padding) in enumerate(cases):
        N, C, H, W = shape
        N = N if n is None else n
        out.append(SampleInput(dict(x=seeded((N, C, H, W), device, dtype, i),
                                    s_w=seeded((N, 4, H, W), device, dtype, 100 + i, 0.3, normal=True),
                                    s_b=seeded((N, 2, H, W), device, dtype, 200 + i, 0.3, normal=True),
                                    smooth=k, padding_mode=padding), f"{shape} k={k} {padding}"))
    return out


def _affine_grad_samples(device):
    return [SampleInput(dict(x=seeded((1, 2, 5, 6), device, torch.float64, i),
                             s_w=seeded((1, 4, 5, 6), device, torch.float64, 10 + i, 0.3, normal=True),
                             s_b=seeded((1, 2, 5, 6), device, torch.float64, 20 + i, 0.3, normal=True),
                             smooth=k, padding_mode=p), f"k={k} {p}")
            for i, (k, p) in enumerate([(4, "zeros"), (1, "border"), (2, "reflection"), (5, "zeros")])]


AFFINE_FLOW_WARP = OpInfo(
    name="affine_flow_warp", op=fastaug.affine_flow_warp, raw_name="affine_flow_warp",
    raw=lambda s: (s.kwargs["x"], s.kwargs["s_w"], s.kwargs["s_b"], s.kwargs["smooth"],
                   PADDING[s.kwargs["padding_mode"]]),
    samples=_affine_samples, grad_samples=_affine_grad_samples, reference=reference.affine_flow_warp,
    dtypes=(torch.float64, torch.float32), cuda_dtypes=(torch.float16, torch.bfloat16), tol=WARP.tol,
    grad_inputs=("x", "s_w", "s_b"), gradgrad=True, autocast_inputs=("x", "s_w", "s_b"),
    direct={
        "affine_flow_warp": dict(tensors={"x": (IMG, FLT, "unit"), "s_w": (("N", 4, "H", "W"), FLT, "rand"),
                                          "s_b": (("N", 2, "H", "W"), FLT, "rand")},
                                 scalars={"smooth": (3, [0, 65]), "padding_mode": (1, [5])},
                                 order=["x", "s_w", "s_b", "smooth", "padding_mode"]),
        "affine_flow_warp_backward": dict(
            tensors={"grad_out": (IMG, FLT, "rand"), "x": (IMG, FLT, "unit"), "s_w": (("N", 4, "H", "W"), FLT, "rand"),
                     "s_b": (("N", 2, "H", "W"), FLT, "rand")},
            scalars={"smooth": (4, [0, 100]), "padding_mode": (2, [-2]), "need_x_grad": (True, [])},
            order=["grad_out", "x", "s_w", "s_b", "smooth", "padding_mode", "need_x_grad"]),
    },
    bad_args=[
        (lambda a: dict(a, s_w=a["s_b"]), ValueError, r"s_w .* must have shape \(2, 4, 5, 7\)"),
        (lambda a: dict(a, s_b=a["s_w"]), ValueError, r"s_b .* must have shape \(2, 2, 5, 7\)"),
        (lambda a: dict(a, smooth=0), ValueError, r"smooth must be in \[1, 64\]"),
        (lambda a: dict(a, smooth=2.0), TypeError, r"smooth must be an int"),
        (lambda a: dict(a, s_w=a["s_w"].float()), TypeError, r"s_w must have the dtype of x"),
        (lambda a: dict(a, padding_mode="wrap"), ValueError, r"padding_mode must be one of"),
        (lambda a: dict(a, x=a["x"][0]), ValueError, r"x must have shape"),
    ],
)


# ---- appearance and transform -----------------------------------------------------------------------

def _appearance_samples(device, dtype, n=None):
    out = []
    for i, (C, k) in enumerate([(3, 4), (3, 3), (1, 1), (1, 4), (3, 2)]):
        N, H, W = (2 if n is None else n), 11, 13
        out.append(SampleInput(dict(x=seeded((N, C, H, W), device, dtype, i),
                                    c_w=seeded((N, C * C, H, W), device, dtype, 100 + i, 0.2, normal=True),
                                    c_b=seeded((N, C, H, W), device, dtype, 200 + i, 0.2, normal=True),
                                    smooth=k), f"C={C} k={k}"))
    return out


def _appearance_grad_samples(device):
    return [SampleInput(dict(x=seeded((2, C, 4, 5), device, torch.float64, C),
                             c_w=seeded((2, C * C, 4, 5), device, torch.float64, 10 + C, 0.2, normal=True),
                             c_b=seeded((2, C, 4, 5), device, torch.float64, 20 + C, 0.2, normal=True),
                             smooth=3), f"C={C}") for C in (3, 1)]


APPEARANCE = OpInfo(
    name="appearance", op=fastaug.appearance, raw_name="appearance",
    raw=lambda s: (s.kwargs["x"], s.kwargs["c_w"], s.kwargs["c_b"], s.kwargs["smooth"]),
    samples=_appearance_samples, grad_samples=_appearance_grad_samples, reference=reference.appearance,
    dtypes=(torch.float64, torch.float32), cuda_dtypes=(torch.float16, torch.bfloat16), tol=WARP.tol,
    grad_inputs=("x", "c_w", "c_b"), gradgrad=True, autocast_inputs=("x", "c_w", "c_b"),
    direct={
        "appearance": dict(tensors={"x": (IMG, FLT, "unit"), "c_w": (("N", "C*C", "H", "W"), FLT, "rand"),
                                    "c_b": (IMG, FLT, "rand")},
                           scalars={"smooth": (2, [-1, 65])}, order=["x", "c_w", "c_b", "smooth"], colour=True),
        "appearance_backward": dict(
            tensors={"grad_out": (IMG, FLT, "rand"), "x": (IMG, FLT, "unit"),
                     "c_w": (("N", "C*C", "H", "W"), FLT, "rand"), "c_b": (IMG, FLT, "rand")},
            scalars={"smooth": (4, [0]), "need_x_grad": (True, [])},
            order=["grad_out", "x", "c_w", "c_b", "smooth", "need_x_grad"], colour=True),
    },
    bad_args=[
        (lambda a: dict(a, c_w=a["c_w"][:, :3]), ValueError, r"c_w"),
        (lambda a: dict(a, c_b=a["c_b"][:, :1]), ValueError, r"c_b"),
        (lambda a: dict(a, x=a["x"].long()), TypeError, r"x"),
        (lambda a: dict(a, x=a["x"][:, :2], c_w=a["c_w"][:, :4], c_b=a["c_b"][:, :2]), ValueError,
         r"1 \(grey\) or 3 \(RGB\)"),
        (lambda a: dict(a, smooth=65), ValueError, r"smooth"),
    ],
)


def transform_inputs(N, C, H, W, device="cpu", dtype=torch.float64, scale=0.2, seed=0):
    """An image (N, C, H, W) in [0, 1] and raw parameter maps (N, 6 + C*C + C, H, W), seeded."""
    x = seeded((N, C, H, W), device, dtype, seed)
    return x, seeded((N, num_params(C), H, W), device, dtype, seed + 1, scale, normal=True)


def colour_half(params, C):
    """(c_w, c_b): the colour half of the transform's parameters (appearance's arguments), as views."""
    return params[:, 6:6 + C * C], params[:, 6 + C * C:]


def _transform_samples(device, dtype, n=None):
    out = []
    cases = [(3, "parallel", "zeros", 4), (3, "serial", "border", 3), (3, "parallel", "reflection", 2),
             (3, "serial", "zeros", 1), (1, "parallel", "border", 4), (1, "serial", "reflection", 3)]
    for i, (C, mode, padding, k) in enumerate(cases):
        N, H, W = (2 if n is None else n), 10, 12
        out.append(SampleInput(dict(x=seeded((N, C, H, W), device, dtype, i),
                                    params=seeded((N, num_params(C), H, W), device, dtype, 100 + i, 0.4, normal=True),
                                    smooth=k, mode=mode, padding_mode=padding), f"C={C} {mode} {padding} k={k}"))
    return out


def _transform_grad_samples(device):
    cases = [(3, "parallel", "zeros", 4), (3, "serial", "zeros", 3), (1, "parallel", "border", 2),
             (1, "serial", "reflection", 4)]
    return [SampleInput(dict(x=seeded((2, C, 4, 5), device, torch.float64, i),
                             params=seeded((2, num_params(C), 4, 5), device, torch.float64, 10 + i, 0.3, normal=True),
                             smooth=k, mode=mode, padding_mode=p), f"C={C} {mode} {p} k={k}")
            for i, (C, mode, p, k) in enumerate(cases)]


TRANSFORM = OpInfo(
    name="transform", op=fastaug.transform, raw_name="transform",
    raw=lambda s: (s.kwargs["x"], s.kwargs["params"], s.kwargs["smooth"], MODES[s.kwargs["mode"]],
                   PADDING[s.kwargs["padding_mode"]]),
    samples=_transform_samples, grad_samples=_transform_grad_samples, reference=reference.transform,
    dtypes=(torch.float64, torch.float32), cuda_dtypes=(torch.float16, torch.bfloat16), tol=WARP.tol,
    grad_inputs=("x", "params"), gradgrad=True, autocast_inputs=("x", "params"),
    gradcheck_kwargs=dict(eps=1e-6, atol=1e-6),
    direct={
        "transform": dict(tensors={"x": (IMG, FLT, "unit"), "params": (("N", "6+C*C+C", "H", "W"), FLT, "rand")},
                          scalars={"smooth": (4, [0, 65]), "mode": (1, [2, -1]), "padding_mode": (0, [3])},
                          order=["x", "params", "smooth", "mode", "padding_mode"], colour=True),
        "transform_backward": dict(
            tensors={"grad_out": (IMG, FLT, "rand"), "x": (IMG, FLT, "unit"),
                     "params": (("N", "6+C*C+C", "H", "W"), FLT, "rand")},
            scalars={"smooth": (3, [0]), "mode": (0, [7]), "padding_mode": (2, [3]), "need_x_grad": (True, [])},
            order=["grad_out", "x", "params", "smooth", "mode", "padding_mode", "need_x_grad"], colour=True),
    },
    bad_args=[
        (lambda a: dict(a, params=a["params"][:, :8]), ValueError, r"params"),  # a grey map for an RGB image
        (lambda a: dict(a, x=a["x"][:, :1]), ValueError, r"params"),  # an RGB map for a grey image
        (lambda a: dict(a, x=a["x"][:, :2], params=a["params"][:, :12]), ValueError, r"1 \(grey\) or 3 \(RGB\)"),
        (lambda a: dict(a, mode="sideways"), ValueError, r"mode"),
        (lambda a: dict(a, padding_mode="wrap"), ValueError, r"padding_mode"),
        (lambda a: dict(a, params=a["params"].float()), TypeError, r"params"),
        (lambda a: dict(a, x=a["x"].half(), params=a["params"].half()), TypeError, r"x"),
        (lambda a: dict(a, smooth=0), ValueError, r"smooth"),
    ],
)


# ---- apply_ops (the policy ops) -------------------------------------------------------------------------

def _policy_images(N, C, H, W, seed, device):
    """uint8 images: random ones, and every fourth of narrow range (so AutoContrast/Equalize matter)."""
    g = _gen(seed)
    x = torch.randint(0, 256, (N, C, H, W), generator=g, dtype=torch.uint8)
    low = torch.randint(60, 140, (N, C, H, W), generator=g, dtype=torch.uint8)
    x[3::4] = low[3::4]
    return x.to(device)


def policy_params(N, L, seed, device, H=12, W=10, ops=None):
    """Seeded op ids (every op, and the identity -1), magnitudes (including 1, 0.5, 1/9), signs,
    partners and Cutout centres (some outside the image), each (N, L) (centres (N, L, 2))."""
    g = _gen(seed)
    op = (torch.arange(N * L).remainder(17) - 1).view(N, L) if ops is None else ops
    op = op[torch.randperm(N, generator=g)] if ops is None else op
    mag = torch.rand(N, L, generator=g)
    mag.view(-1)[:3] = torch.tensor([1.0, 0.5, 1.0 / 9])[: mag.numel()]
    sign = torch.where(torch.rand(N, L, generator=g) < 0.5, -1.0, 1.0)
    partner = torch.randint(0, max(N, 1), (N, L), generator=g)
    center = torch.stack([torch.randint(-2, H + 2, (N, L), generator=g), torch.randint(-2, W + 2, (N, L), generator=g)],
                         -1)
    return dict(op=op.to(device), magnitude=mag.to(device), sign=sign.to(device), partner=partner.to(device),
                center=center.to(device))


_PILLOW_EXACT_IDS = [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14]  # identity, geometric, histogram, Cutout


def _policy_samples(device, dtype, n=None):
    """One op per image (L = 1; every op once in each call) in RGB and grey, and a chain of 2 (RGB)."""
    out = []
    for i, (C, L) in enumerate([(3, 1), (1, 1), (3, 2)]):
        N = 17 if n is None else n
        x = _policy_images(N, C, 12, 10, i, device)
        if dtype.is_floating_point:
            x = x.to(dtype) / 255
        ops = None
        if L == 2:
            # The first step from the ops Pillow gives exactly (a +-1 blend followed by Equalize could
            # move a whole histogram bin), the second any op.
            first = torch.tensor(_PILLOW_EXACT_IDS).repeat(N)[:N]
            ops = torch.stack([first, torch.arange(N).remainder(17) - 1], 1)
        out.append(SampleInput(dict(x=x, **policy_params(N, L, 10 + i, device, ops=ops), fill=(128, 0, 255)[i]),
                               f"C={C} L={L}"))
    return out


DIFFERENTIABLE_POLICY_OPS = [n for n in OP_NAMES if n not in ("AutoContrast", "Equalize", "Posterize")]


def _policy_grad_samples(device):
    """Float64 images away from the 8-bit level boundaries (Solarize's threshold compares levels), every
    differentiable op on two images (different magnitudes, signs, partners, centres), and a chain of two."""
    g = _gen(5)
    N = 2 * len(DIFFERENTIABLE_POLICY_OPS)
    x = ((torch.randint(0, 255, (N, 3, 6, 5), generator=g).double() + 0.3) / 255).to(device)
    ops = torch.tensor([OP_IDS[n] for n in DIFFERENTIABLE_POLICY_OPS] * 2)[:, None]
    one = SampleInput(dict(x=x, **policy_params(N, 1, 6, device, 6, 5, ops=ops), fill=128), "every differentiable op")
    chain_ops = torch.tensor([[0, 10], [15, 4], [13, 15]])
    chain = SampleInput(dict(x=x[:3].clone(), **policy_params(3, 2, 7, device, 6, 5, ops=chain_ops), fill=0), "chain")
    return [one, chain]


def _pillow_reference(**kwargs):
    from oracles.pillow_policy import pillow_apply_ops  # Pillow is imported only where it is the oracle

    return pillow_apply_ops(**kwargs)


def _policy_raw(s):
    """apply_ops(x, x, op, magnitude, sign, partner, center, fill): every policy parameter with its (N, L)."""
    a = s.kwargs
    shaped = [t if t.dim() == 2 else t[:, None] for t in (a["op"], a["magnitude"], a["sign"], a["partner"])]
    center = a["center"] if a["center"].dim() == 3 else a["center"][:, None]
    return (a["x"], a["x"], *shaped, center, a["fill"])


APPLY_OPS = OpInfo(
    name="apply_ops", op=fastaug.apply_ops, raw_name="apply_ops", raw=_policy_raw,
    samples=_policy_samples, grad_samples=_policy_grad_samples, reference=_pillow_reference,
    reference_in_float64=False, differentiable_reference=False,
    # float16/bfloat16 on CUDA: a half-precision pixel may round to the next 8-bit level, which the
    # quantising ops then amplify; test_policy.py::test_cuda_half checks the ops without quantisation.
    dtypes=(torch.uint8, torch.float32, torch.float64),
    # Pillow truncates the blends, fastaug rounds them (uint8: +-1). Float images follow the same maths
    # without any rounding, while Pillow also rounds what it blends with (Sharpness's smoothed image,
    # Contrast's mean, Color's grey) to a level first: a blend with factor f in [0.1, 1.9] then moves
    # by up to |1 - f| / 2 < 0.45 of a level more, so 1.5 levels.
    tol={torch.uint8: dict(atol=1, rtol=0), torch.float32: dict(atol=1.5 / 255, rtol=0),
         torch.float64: dict(atol=1.5 / 255, rtol=0)},
    grad_inputs=("x",), gradgrad=False, autocast_inputs=("x",), gradcheck_kwargs=dict(fast_mode=True),
    raw_differentiable=lambda s: s.kwargs["op"].dim() == 1 or s.kwargs["op"].shape[1] == 1,
    direct={
        "apply_ops": dict(
            tensors={"x": (IMG, IMAGE, "unit"), "pairs": (IMG, IMAGE, "unit"), "op": (("N", "L"), torch.int64, "op"),
                     "magnitude": (("N", "L"), torch.float32, "unit"), "sign": (("N", "L"), torch.float32, "sign"),
                     "partner": (("N", "L"), torch.int64, "index"), "center": (("N", "L", 2), torch.int64, "center")},
            scalars={"fill": (128, [-1, 256])},
            order=["x", "pairs", "op", "magnitude", "sign", "partner", "center", "fill"], colour=True),
        "apply_ops_backward": dict(
            tensors={"grad_out": (IMG, FLT, "rand"), "x": (IMG, FLT, "unit"), "pairs": (IMG, FLT, "unit"),
                     "op": (("N", 1), torch.int64, "op"), "magnitude": (("N", 1), torch.float32, "unit"),
                     "sign": (("N", 1), torch.float32, "sign"), "partner": (("N", 1), torch.int64, "index"),
                     "center": (("N", 1, 2), torch.int64, "center")},
            scalars={"fill": (0, [300]), "need_pairs_grad": (True, [])},
            order=["grad_out", "x", "pairs", "op", "magnitude", "sign", "partner", "center", "fill",
                   "need_pairs_grad"], colour=True),
    },
    bad_args=[
        (lambda a: dict(a, op=a["op"] + 16), ValueError, "op"),
        (lambda a: dict(a, op=a["op"].clamp(max=0) - 2), ValueError, "op"),
        (lambda a: dict(a, magnitude=a["magnitude"] + 1.5), ValueError, "magnitude"),
        (lambda a: dict(a, magnitude=a["magnitude"] - 1.1), ValueError, "magnitude"),
        (lambda a: dict(a, sign=torch.full_like(a["magnitude"], float("nan"))), ValueError, "sign must not be NaN"),
        (lambda a: dict(a, sign=float("nan")), ValueError, "sign must not be NaN"),
        (lambda a: dict(a, x=a["x"].int()), TypeError, "x"),
        (lambda a: dict(a, x=a["x"][:, :2]), ValueError, "channels"),
        (lambda a: dict(a, x=torch.cat([a["x"], a["x"][:, :1]], 1)), ValueError, "channels"),
        (lambda a: dict(a, x=a["x"][0]), ValueError, "x"),
        (lambda a: dict(a, op=a["op"][:3]), ValueError, "op"),
        (lambda a: dict(a, magnitude=a["magnitude"][:3]), ValueError, "magnitude"),
        (lambda a: dict(a, op=a["op"].float()), TypeError, "op"),
        (lambda a: dict(a, x="img"), TypeError, "x"),
        (lambda a: dict(a, partner=a["partner"][:3]), ValueError, "partner"),
        (lambda a: dict(a, partner=a["partner"] + a["x"].shape[0]), ValueError, "partner"),
        (lambda a: dict(a, partner=a["partner"].float()), TypeError, "partner"),
        (lambda a: dict(a, sign=torch.ones(a["x"].shape[0] + 1)), ValueError, "sign"),
        (lambda a: dict(a, center=torch.zeros(a["x"].shape[0], 3, dtype=torch.int64)), ValueError, "center"),
        (lambda a: dict(a, fill=300), ValueError, "fill"),
        (lambda a: dict(a, fill=0.5), TypeError, "fill"),
        # Python numbers are accepted for every image and step; a bool is not a magnitude, nor a float an index
        (lambda a: dict(a, magnitude=True), TypeError,
         r"^magnitude must be a real torch\.Tensor or a Python int or float, got bool True$"),
        (lambda a: dict(a, magnitude=[0.5]), TypeError,
         r"^magnitude must be a real torch\.Tensor or a Python int or float, got list$"),
        (lambda a: dict(a, sign=False), TypeError, r"^sign must be a real torch\.Tensor or a Python int or float"),
        (lambda a: dict(a, partner=1.5), TypeError,
         r"^partner must be an integer torch\.Tensor or a Python int, got float 1\.5$"),
    ],
)


# ---- influence: last_layer_hvp, influence_score, influence_aug --------------------------------------------

def influence_problem(N, D, Q, device, dtype=torch.float64, seed=0):
    """Seeded features h (N, D), classifier theta (Q, D+1), labels (N,), and the logits h theta^T + b."""
    g = _gen(seed)
    h = torch.randn(N, D, generator=g, dtype=torch.float64)
    theta = torch.randn(Q, D + 1, generator=g, dtype=torch.float64) * 0.5
    y = torch.randint(0, Q, (N,), generator=g)
    logits = h @ theta[:, :D].T + theta[:, D]
    return h.to(device, dtype), theta.to(device, dtype), y.to(device), logits.to(device, dtype)


def _hvp_samples(device, dtype, n=None):
    out = []
    for i, (N, D, Q, K, weighted, damping, scale) in enumerate([(23, 6, 4, 3, False, 0.0, None),
                                                               (23, 6, 4, 3, True, 0.3, None),
                                                               (17, 5, 3, 0, False, 0.1, 1.0),
                                                               (200, 32, 10, 2, True, 0.0, 0.01)]):
        N = N if n is None else n
        h, theta, _, logits = influence_problem(N, D, Q, device, dtype, seed=i)
        v = seeded((K, Q, D + 1) if K else (Q, D + 1), device, dtype, 50 + i, normal=True)
        w = seeded((N,), device, dtype, 60 + i) if weighted else None
        out.append(SampleInput(dict(h=h, p=torch.softmax(logits, 1), v=v, weight=w, damping=damping, scale=scale),
                               f"N={N} K={K} w={weighted} d={damping} s={scale}"))
    return out


def _hvp_grad_samples(device):
    h, theta, _, logits = influence_problem(13, 4, 3, device, seed=7)
    v = seeded((2, 3, 5), device, torch.float64, 8, normal=True)
    p = torch.softmax(logits, 1)
    return [SampleInput(dict(h=h, p=p, v=v, weight=seeded((13,), device, torch.float64, 9), damping=0.2, scale=None),
                        "weighted"),
            SampleInput(dict(h=h, p=p, v=v, weight=None, damping=0.0, scale=0.1), "unweighted, scaled")]


LAST_LAYER_HVP = OpInfo(
    name="last_layer_hvp", op=fastaug.last_layer_hvp, raw_name="last_layer_hvp",
    raw=lambda s: (s.kwargs["h"], s.kwargs["p"], s.kwargs["v"] if s.kwargs["v"].dim() == 3 else s.kwargs["v"][None],
                   s.kwargs["weight"],
                   1.0 / max(s.kwargs["h"].shape[0], 1) if s.kwargs["scale"] is None else s.kwargs["scale"],
                   s.kwargs["damping"]),
    samples=_hvp_samples, grad_samples=_hvp_grad_samples, reference=reference_hvp,
    # Half-precision features on CUDA accumulate in float32 (output float32 for the scores): measured
    # against float64 by norms in test_influence_ops.py::test_half_features_cuda, not element-wise here.
    dtypes=(torch.float64, torch.float32),
    tol={torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=1e-5, rtol=1e-4)},
    # Double backward works: v -> Hv is linear and its backward is this op again (H is symmetric).
    grad_inputs=("v",), gradgrad=True, autocast_inputs=("h", "p", "v", "weight"),
    compile_kwargs=dict(check_finite=False),  # the finiteness check reads the data: not traceable
    direct={
        "last_layer_hvp": dict(
            tensors={"h": (("N", "D"), FLT, "rand"), "p": (("N", "Q"), FLT, "unit"), "v": (("K", "Q", "D+1"), FLT, "rand"),
                     "weight": (("N",), FLT, "unit")},
            scalars={"scale": (0.5, [float("nan"), float("inf")]), "damping": (0.1, [-1.0, float("inf")])},
            order=["h", "p", "v", "weight", "scale", "damping"]),
    },
    bad_args=[
        (lambda a: dict(a, v=a["v"][..., :-1]), ValueError, "v must have shape"),
        (lambda a: dict(a, p=a["p"][:-1]), ValueError, "p must have shape"),
        (lambda a: dict(a, damping=-1.0), ValueError, "damping"),
        (lambda a: dict(a, h=a["h"].index_put((torch.tensor(3), torch.tensor(2)), torch.tensor(float("nan"),
                                                                                              dtype=a["h"].dtype))),
         ValueError, "h contains NaN"),
        (lambda a: dict(a, p=a["p"].float()), TypeError, "dtype of h"),
        (lambda a: dict(a, weight=torch.ones(3, dtype=a["h"].dtype)), ValueError, "weight must have shape"),
        (lambda a: dict(a, h=a["h"][0]), ValueError, r"h must have shape \(N, D\)"),
    ],
)


def _score_samples(device, dtype, n=None):
    out = []
    for i, (N, D, Q) in enumerate([(23, 6, 4), (7, 4, 3), (50, 16, 10)]):
        N = N if n is None else n
        h, theta, y, logits = influence_problem(N, D, Q, device, dtype, seed=i)
        out.append(SampleInput(dict(h=h, logits=logits, target=y, s=seeded((Q, D + 1), device, dtype, 30 + i, 1.0, True)),
                               f"N={N} D={D} Q={Q}"))
    return out


def _score_grad_samples(device):
    h, theta, y, logits = influence_problem(7, 4, 3, device, seed=3)
    return [SampleInput(dict(h=h, logits=logits, target=y, s=seeded((3, 5), device, torch.float64, 4, 1.0, True)))]


INFLUENCE_SCORE = OpInfo(
    name="influence_score", op=fastaug.influence_score, raw_name="influence_score",
    raw=lambda s: (s.kwargs["h"], s.kwargs["logits"], s.kwargs["target"], s.kwargs["s"]),
    samples=_score_samples, grad_samples=_score_grad_samples, reference=reference_score,
    dtypes=(torch.float64, torch.float32),  # half precision on CUDA: see LAST_LAYER_HVP
    tol={torch.float64: dict(atol=1e-12, rtol=1e-10), torch.float32: dict(atol=1e-5, rtol=1e-4)},
    grad_inputs=("h", "logits", "s"), gradgrad=False, autocast_inputs=("h", "logits", "s"),
    direct={
        "influence_score": dict(
            tensors={"h": (("N", "D"), FLT, "rand"), "logits": (("N", "Q"), FLT, "rand"),
                     "target": (("N",), torch.int64, "label"), "s": (("Q", "D+1"), FLT, "rand")},
            scalars={}, order=["h", "logits", "target", "s"]),
        "influence_score_backward": dict(
            tensors={"grad": (("N",), FLT, "rand"), "h": (("N", "D"), FLT, "rand"), "logits": (("N", "Q"), FLT, "rand"),
                     "target": (("N",), torch.int64, "label"), "s": (("Q", "D+1"), FLT, "rand")},
            scalars={}, order=["grad", "h", "logits", "target", "s"]),
    },
    bad_args=[
        (lambda a: dict(a, h=a["h"].half(), logits=a["logits"].half(), s=a["s"].half()), TypeError, "CUDA only"),
        (lambda a: dict(a, s=a["s"][:, :-1]), ValueError, "s must have shape"),
        (lambda a: dict(a, target=a["target"] + 10), ValueError, "class labels"),
        (lambda a: dict(a, target=a["target"].int()), TypeError, "int64"),
    ],
)


def _aug_samples(device, dtype, n=None):
    out = []
    for smp in _score_samples(device, dtype, n):
        a = smp.kwargs
        h_aug = a["h"] + seeded(a["h"].shape, device, dtype, 77, 0.1, True)
        logits_aug = a["logits"] + seeded(a["logits"].shape, device, dtype, 78, 0.1, True)
        out.append(SampleInput(dict(h=a["h"], logits=a["logits"], h_aug=h_aug, logits_aug=logits_aug,
                                    target=a["target"], s=a["s"]), smp.name))
    return out


INFLUENCE_AUG = OpInfo(
    name="influence_aug", op=fastaug.influence_aug, raw_name="influence_score",
    raw=lambda s: (s.kwargs["h_aug"], s.kwargs["logits_aug"], s.kwargs["target"], s.kwargs["s"]),
    samples=_aug_samples, grad_samples=lambda device: _aug_samples(device, torch.float64)[1:2],
    reference=reference_aug, dtypes=(torch.float64, torch.float32),
    tol=INFLUENCE_SCORE.tol, grad_inputs=("h_aug", "logits_aug", "s"), gradgrad=False,
    autocast_inputs=("h", "logits", "h_aug", "logits_aug", "s"), direct={},
    bad_args=[
        (lambda a: dict(a, h_aug=a["h_aug"][:-1]), ValueError, "h"),
        (lambda a: dict(a, target=a["target"] + 10), ValueError, "class labels"),
    ],
)

# ---- direct calls: valid arguments of any registered op from its contract --------------------------------

DIRECT_SIZES = dict(N=3, C=3, H=5, W=6, L=2, D=4, K=2, Q=5)


def _direct_tensor(shape, dtype, seed, kind="rand"):
    g = _gen(seed)
    if kind == "op":
        return torch.randint(-1, 16, shape, generator=g)
    if kind == "index":
        return torch.randint(0, DIRECT_SIZES["N"], shape, generator=g)
    if kind == "label":
        return torch.randint(0, DIRECT_SIZES["Q"], shape, generator=g)
    if kind == "center":
        return torch.randint(-1, 7, shape, generator=g)
    if kind == "sign":
        return torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0).to(dtype)
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * (1 if kind == "unit" else 0.4)).to(dtype)


def symbol_size(sym, sizes):
    """The size of one dimension of a contract: an int, or arithmetic on the sizes ("C*C", "D+1")."""
    if isinstance(sym, int):
        return sym
    return int(eval(sym, {}, dict(sizes)))


def symbols(sym):
    return set(re.findall(r"[A-Z]", sym)) if isinstance(sym, str) else set()


def direct_args(name, sizes=None, dtype=torch.float64, image_dtype=None, device="cpu"):
    """Valid arguments of the registered op ``torch.ops.fastaug.<name>``, as a dict in schema order."""
    spec = DIRECT[name]
    sizes = dict(DIRECT_SIZES, **(sizes or {}))
    args = {}
    for i, arg in enumerate(spec["order"]):
        if arg in spec["tensors"]:
            shape, rule, kind = spec["tensors"][arg]
            dt = dtype if rule == FLT else (image_dtype or dtype) if rule == IMAGE else rule
            args[arg] = _direct_tensor(tuple(symbol_size(s, sizes) for s in shape), dt, seed=i, kind=kind).to(device)
        else:
            args[arg] = spec["scalars"][arg][0]
    return args


def call_direct(name, args):
    return getattr(torch.ops.fastaug, name)(*args.values())


OPS = [WARP, AFFINE_FLOW_WARP, APPEARANCE, TRANSFORM, APPLY_OPS, LAST_LAYER_HVP, INFLUENCE_SCORE, INFLUENCE_AUG]
BY_NAME = {o.name: o for o in OPS}
#: The direct-call contract of every registered op (forward and backward), from every spec.
DIRECT = {raw: spec for o in OPS for raw, spec in o.direct.items()}
FLOAT_OPS = [o for o in OPS if any(d.is_floating_point for d in o.dtypes)]


def first_sample(opinfo, device="cpu", dtype=torch.float64):
    """The one small sample of the expensive checks (compile, export): the first grad sample, cast."""
    s = opinfo.grad_samples(device)[0]
    return s.map_tensors(lambda k, v: v.to(dtype) if v.is_floating_point() and k in opinfo.autocast_inputs else v)


def requires_grad(sample, names):
    """A copy whose tensors named in `names` are fresh leaves that require grad."""
    return sample.map_tensors(lambda k, v: v.detach().clone().requires_grad_(k in names))


def strided(t):
    """The same values with other strides: every other element of a twice-as-long last dimension."""
    wide = torch.stack([t, torch.zeros_like(t)], -1).flatten(-2)
    return wide[..., ::2]


def assert_matches(opinfo, out, expected, dtype):
    """The comparison of the parity tests: per-dtype tolerances; integer outputs compared as ints."""
    if not out.is_floating_point():
        out, expected = out.int(), expected.int()
    torch.testing.assert_close(out, expected, **opinfo.tol[dtype], check_dtype=False)


__all__ = ["SampleInput", "OpInfo", "seeded", "transform_inputs", "colour_half", "OPS", "BY_NAME", "DIRECT", "FLOAT_OPS", "first_sample", "requires_grad",
           "strided", "assert_matches", "policy_params", "influence_problem", "HAS_CUDA", "PADDING", "MODES", "DIRECT_SIZES", "direct_args",
           "call_direct", "symbol_size", "symbols"]
