"""Batched discrete policy ops: :func:`apply_ops` (docs/design.md K3).

Kernels: ``csrc/policy/`` (``policy_engine.h`` holds the per-image maths shared by
``policy_cpu.cpp`` and ``policy_cuda.cu``). This file holds the public function, argument
canonicalisation and validation, the fake (meta) kernels and the autograd formula.
"""
import numbers

import torch

from . import _eager
from .. import _C as _extension
from ._autocast import autocast_inputs, register_float32_autocast
from ._forward_ad import refuse_forward_ad
from ._higher_order import refuse_second_order
from ._validate import check_device, check_tensor, data_checks_off, fake_arg, fake_image

_APPLY_OPS_BACKWARD = _eager.BackwardOp("fastaug::apply_ops_backward")

#: Op names by id (docs/design.md K3). Id -1 is fastaug's "identity / skip" marker.
OP_NAMES = (
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "AutoContrast", "Invert", "Equalize",
    "Solarize", "Posterize", "Contrast", "Color", "Brightness", "Sharpness", "Cutout", "SamplePairing",
)
OP_IDS = {name: i for i, name in enumerate(OP_NAMES)}
IDENTITY = -1
NUM_OPS = len(OP_NAMES)
#: Ops whose float outputs carry no gradient to the image (piecewise constant or histogram-defined).
NON_DIFFERENTIABLE = ("AutoContrast", "Equalize", "Posterize")
#: Ops that ignore their magnitude.
MAGNITUDE_FREE = ("AutoContrast", "Invert", "Equalize")
#: Ops whose direction is set by ``sign``.
SIGNED = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Contrast", "Color", "Brightness", "Sharpness")

_IMAGE_DTYPES = (torch.uint8, torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _as_param(t, name, shape, dtype, device, kind):
    """Turn a per-step parameter into a (N, L[, ...]) tensor of ``dtype`` on ``device``: a tensor, or
    one Python number for every image and step (an int, or a float for the real parameters)."""
    accepted = ("a real torch.Tensor or a Python int or float" if kind == "real" else
                "an integer torch.Tensor or a Python int")
    if isinstance(t, bool) or (kind == "int" and isinstance(t, float)):
        raise TypeError(f"{name} must be {accepted}, got {type(t).__name__} {t!r}")
    if isinstance(t, (int, float)):
        return torch.full(shape, t, dtype=dtype, device=device)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be {accepted}, got {type(t).__name__}")
    if kind == "int" and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor, got {t.dtype}")
    if kind == "real" and (t.is_complex() or t.dtype == torch.bool):
        raise TypeError(f"{name} must be a real tensor, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} must be on the device of x ({device}), got {t.device}")
    if tuple(t.shape) != tuple(shape):
        if t.dim() == len(shape) - 1 and tuple(t.shape) == tuple(shape[:1]) + tuple(shape[2:]) and shape[1] == 1:
            t = t.unsqueeze(1)
        else:
            raise ValueError(f"{name} must have shape {tuple(shape)} (one value per image and chain step), "
                             f"got {tuple(t.shape)}")
    return t.to(dtype).contiguous()


def _canonical(x, op, magnitude, sign, partner, center):
    check_tensor(x, "x")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.dtype not in _IMAGE_DTYPES:
        raise TypeError(f"x must be uint8 or floating point (float32/float64; float16/bfloat16 on CUDA) with "
                        f"values in [0, 255] or [0, 1], got {x.dtype}")
    if x.dtype in (torch.float16, torch.bfloat16) and x.device.type != "cuda":
        raise TypeError(f"x: {x.dtype} is supported on CUDA only; use float32 or float64 on CPU")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"x must have 1 (grey) or 3 (RGB) channels, got shape {tuple(x.shape)}")
    check_device(x, "x")
    check_tensor(op, "op")
    if op.is_floating_point() or op.is_complex() or op.dtype == torch.bool:
        raise TypeError(f"op must be an integer tensor of op ids, got {op.dtype}")
    if op.device != x.device:
        raise ValueError(f"op must be on the device of x ({x.device}), got {op.device}")
    N, _, H, W = x.shape
    if op.dim() not in (1, 2) or op.shape[0] != N:
        raise ValueError(f"op must have shape (N,) or (N, L) with N = {N} images, got {tuple(op.shape)}")
    op2 = (op.unsqueeze(1) if op.dim() == 1 else op).to(torch.int64).contiguous()
    shape = tuple(op2.shape)
    dev = x.device
    mag = _as_param(magnitude, "magnitude", shape, torch.float32, dev, "real")
    sgn = _as_param(1.0 if sign is None else sign, "sign", shape, torch.float32, dev, "real")
    if partner is None:
        prt = ((torch.arange(N, device=dev) + 1) % max(N, 1)).unsqueeze(1).expand(shape).contiguous()
    else:
        prt = _as_param(partner, "partner", shape, torch.int64, dev, "int")
    if center is None:
        cen = torch.tensor([H // 2, W // 2], dtype=torch.int64, device=dev).expand(shape + (2,)).contiguous()
    else:
        cen = _as_param(center, "center", shape + (2,), torch.int64, dev, "int")
    return op2, mag, sgn, prt, cen


def _check_values(op, mag, sgn, prt, N):
    """Value checks: one host synchronisation for all of them (skipped where data_checks_off)."""
    if data_checks_off(op):
        return
    flags = torch.stack([
        ((op < IDENTITY) | (op >= NUM_OPS)).any(),
        (~((mag >= 0) & (mag <= 1))).any(),
        ((prt < 0) | (prt >= N)).any(),
        sgn.isnan().any(),
    ]).tolist()
    if flags[0]:
        raise ValueError(f"op ids must be in [0, {NUM_OPS - 1}] (or -1 for identity), got values in "
                         f"[{int(op.min())}, {int(op.max())}]")
    if flags[1]:
        raise ValueError("magnitude must be in [0, 1] (a policy with B bins maps bin b to b / (B - 1)), got "
                         f"values in [{float(mag.min())}, {float(mag.max())}]")
    if flags[2]:
        raise ValueError(f"partner indices must be in [0, {N}) (images of the batch), got values in "
                         f"[{int(prt.min())}, {int(prt.max())}]")
    if flags[3]:
        raise ValueError("sign must not be NaN (a negative sign is -1, any other +1)")


def apply_ops(x, op, magnitude, sign=None, partner=None, *, fill=128, center=None):
    """Apply a different AutoAugment-style op and magnitude to every image of a batch, in one call.

    Op ids (docs/design.md K3; ``fastaug.ops.policy.OP_NAMES``), value at magnitude ``m``, ``s = sign``:

    ==  =============  ==========================================================================
    0   ShearX         Pillow affine (1, v, 0, 0, 1, 0), v = 0.3 s m, nearest, fill
    1   ShearY         affine (1, 0, 0, v, 1, 0)
    2   TranslateX     affine (1, 0, v, 0, 1, 0), v = s (150/331) W m pixels (not truncated)
    3   TranslateY     affine (1, 0, 0, 0, 1, v), v = s (150/331) H m
    4   Rotate         ``Image.rotate(30 s m)`` (degrees, counter-clockwise, about the centre), nearest
    5   AutoContrast   ``ImageOps.autocontrast`` per channel (ignores m)
    6   Invert         255 - x (ignores m)
    7   Equalize       ``ImageOps.equalize`` per channel (ignores m)
    8   Solarize       x >= 256 (1 - m) -> 255 - x
    9   Posterize      keep 8 - round(4 m) bits (round half to even)
    10  Contrast       blend with the rounded mean of the grey image, factor 1 + 0.9 s m
    11  Color          blend with the grey image (Pillow's L), factor 1 + 0.9 s m
    12  Brightness     blend with black, factor 1 + 0.9 s m
    13  Sharpness      blend with Pillow's SMOOTH filter (border unfiltered), factor 1 + 0.9 s m
    14  Cutout         side k = floor(0.2 min(H, W) m + 0.5) (half up); rows [cy - k//2, cy - k//2 + k),
                       same for columns, clipped, set to ``fill``; centre (row, col) ``center``
    15  SamplePairing  (1 - w) x + w x[partner], w = 0.4 m
    -1  identity       (fastaug extension: skip this chain position)
    ==  =============  ==========================================================================

    Magnitude 0 is the identity for every op except AutoContrast, Invert and Equalize. uint8
    results equal Pillow's exactly for ops 5-9 and the geometric ops (Pillow's 16.16 fixed-point
    nearest sampling is reproduced), and lie within +-1 of Pillow for the blends 10-13 and 15:
    Pillow truncates the blend, fastaug rounds it to nearest, so that float inputs agree with the
    uint8 path to within 1/255. Float images (in [0, 1]) follow the same maths without rounding,
    except that Equalize, Posterize and the Solarize threshold act on the nearest 8-bit level, and
    the blends clamp to [0, 1].

    **Chains**: ``op`` of shape (N, L) applies ``op[:, 0]``, then ``op[:, 1]``, ... to each image
    (a sub-policy is L = 2); every parameter then has a leading (N, L). Without gradients the
    whole chain runs in one kernel call (CPU: one task per image; CUDA: one thread block per image,
    one launch). When ``x`` requires grad, the chain runs as L calls so autograd can keep the
    intermediate images. SamplePairing always mixes with the partner's *input* image ``x[partner]``.

    **Gradients** (float ``x``): geometric ops, Invert, Solarize, Contrast, Color, Brightness,
    Sharpness, Cutout and SamplePairing (to both images) are differentiable with respect to the
    image; AutoContrast, Equalize and Posterize pass no gradient (zero). Magnitudes are not
    differentiable. First order only: differentiating the gradient raises. Under ``torch.autocast``
    a float image runs in float32 (uint8 stays uint8).

    Args:
        x: (N, C, H, W) images, C = 1 or 3; uint8 in [0, 255] or float in [0, 1] (float32/float64;
            float16/bfloat16 on CUDA); any strides.
        op: (N,) or (N, L) integer op ids in [0, 15] (or -1).
        magnitude: real tensor of the shape of ``op`` with values in [0, 1], or one Python float or int
            for every image and step (a bool raises TypeError).
        sign: +-1 per op (a real tensor or one Python number; only its sign is used: negative is -1,
            zero or positive +1, NaN raises) for the signed ops; ``None`` means +1.
        partner: integer indices in [0, N) of the images SamplePairing mixes in; ``None`` means
            image ``(n + 1) % N``.
        fill: fill value in [0, 255] of the geometric ops and Cutout (``fill / 255`` for float images).
        center: (N, 2) or (N, L, 2) integer (row, column) of each Cutout square's centre (may lie
            outside the image); ``None`` means ``(H // 2, W // 2)``.

    Returns:
        (N, C, H, W) contiguous tensor of the dtype of ``x``.

    All random choices (ops, magnitudes, signs, partners, centres) are inputs, so the op is
    deterministic; :mod:`fastaug.augment` draws them from a ``torch.Generator``.
    """
    # type(fill) is int: a bool is refused below, not taken as 0 or 1
    if _eager.plain(x, op, magnitude, sign, partner, center) and type(fill) is int:  # noqa: E721
        try:
            # csrc/eager_policy.cpp: the output (CPU, no graph needed), the parameters as the kernel
            # takes them, without a copy, or None when one needs a conversion (the path below).
            got = _extension._apply_ops_eager(x, op, magnitude, sign, partner, center, fill)
            if type(got) is tuple:
                if x.device.type != "cpu":  # the CUDA kernel clamps instead of checking the values
                    _check_values(got[0], got[1], got[2], got[3], x.shape[0])
                return _run(x, *got, fill)
            if got is not None:
                return got
        except _eager.REFUSED:  # the kernel's checks refused an argument: the path below names it
            pass
    refuse_forward_ad("apply_ops", x)
    x, = autocast_inputs(x)
    op2, mag, sgn, prt, cen = _canonical(x, op, magnitude, sign, partner, center)
    if isinstance(fill, bool) or not isinstance(fill, numbers.Integral):  # numpy integers too, as smooth
        raise TypeError(f"fill must be an int in [0, 255], got {type(fill).__name__}")
    fill = int(fill)
    if not 0 <= fill <= 255:
        raise ValueError(f"fill must be in [0, 255], got {fill}")
    _check_values(op2, mag, sgn, prt, x.shape[0])
    return _run(x, op2, mag, sgn, prt, cen, fill, _apply_ops.registered)


def _run(x, op, mag, sgn, prt, cen, fill, call=None):
    """The kernel on canonical arguments (``call``: the registered op, or by default the eager path);
    a chain of L > 1 steps runs step by step when x requires grad, so autograd keeps every step's image."""
    call = _apply_ops.call if call is None else call
    L = op.shape[1]
    if L > 1 and x.requires_grad and torch.is_grad_enabled():
        out = x
        for l in range(L):
            out = call(out, x, op[:, l:l + 1], mag[:, l:l + 1], sgn[:, l:l + 1], prt[:, l:l + 1], cen[:, l:l + 1], fill)
        return out
    return call(x, x, op, mag, sgn, prt, cen, fill)


# ---- fake kernels: shapes only, for torch.compile / FakeTensor -------------------------------------

def _fake_checks(x, pairs, op, magnitude, sign, partner, center, grad_out=None):
    """What the C++ check_policy_inputs checks, on fake tensors (csrc/policy/policy.h)."""
    fake_image(x, colour=True, dtypes=_IMAGE_DTYPES)
    N, C, H, W = x.shape
    fake_arg(pairs, "pairs", (N, C, H, W), like=x)
    fake_arg(op, "op", (N, None), like=x, dtype=torch.int64)
    L = op.shape[1]
    fake_arg(magnitude, "magnitude", (N, L), like=op, dtype=torch.float32, like_name="op")
    fake_arg(sign, "sign", (N, L), like=op, dtype=torch.float32, like_name="op")
    fake_arg(partner, "partner", (N, L), like=op, dtype=torch.int64, like_name="op")
    fake_arg(center, "center", (N, L, 2), like=op, dtype=torch.int64, like_name="op")
    if grad_out is not None:
        fake_arg(grad_out, "grad_out", (N, C, H, W), like=x)


@torch.library.register_fake("fastaug::apply_ops")
def _apply_ops_fake(x, pairs, op, magnitude, sign, partner, center, fill):
    _fake_checks(x, pairs, op, magnitude, sign, partner, center)
    return x.new_empty(x.shape)


@torch.library.register_fake("fastaug::apply_ops_backward")
def _apply_ops_backward_fake(grad_out, x, pairs, op, magnitude, sign, partner, center, fill, need_pairs_grad):
    _fake_checks(x, pairs, op, magnitude, sign, partner, center, grad_out)
    gp = x.new_empty(x.shape) if need_pairs_grad else x.new_empty((0,))
    return x.new_empty(x.shape), gp


# ---- autograd -------------------------------------------------------------------------------------

def _setup_context(ctx, inputs, output):
    x, pairs, op, magnitude, sign, partner, center, fill = inputs
    ctx.save_for_backward(x, pairs, op, magnitude, sign, partner, center)
    ctx.fill = fill


def _backward(ctx, grad):
    x, pairs, op, magnitude, sign, partner, center = ctx.saved_tensors
    need_x, need_pairs = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if not (need_x or need_pairs):  # only a magnitude or sign asked: they are not differentiable
        return (None,) * 8
    if op.shape[1] == 0:  # an empty chain is the identity
        return (grad if need_x else None), None, None, None, None, None, None, None
    if op.shape[1] != 1:
        raise RuntimeError("fastaug::apply_ops: gradients of a chain computed in one call are not available; "
                           "call fastaug.apply_ops, which runs the chain step by step when x requires grad")
    gx, gp = _APPLY_OPS_BACKWARD(grad, x, pairs, op, magnitude, sign, partner, center, ctx.fill, need_pairs)
    return (gx if need_x else None), (gp if need_pairs else None), None, None, None, None, None, None


# Registered with torch.library; the public function calls the same formula through fastaug/ops/_eager.py.
_apply_ops = _eager.register("fastaug::apply_ops", _backward, _setup_context)

# Differentiable once: the policy ops' Jacobians are piecewise constant in the image (nearest
# sampling, blends, masks), so the only second-order term would be the forward-mode product
# d(grad_x)/d(grad_out), which no kernel computes; the policies augment data, not models.
refuse_second_order(
    "fastaug::apply_ops_backward", 10,
    "fastaug.apply_ops is differentiable once: gradients of its gradient (double backward) are not supported",
)
# Autocast: a float image runs in float32 (uint8 images are untouched), as every fastaug op.
register_float32_autocast("fastaug::apply_ops", "fastaug::apply_ops_backward")
