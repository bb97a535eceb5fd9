"""Learned transformation family: :func:`appearance` and :func:`transform` (docs/design.md K2).

Kernels: ``csrc/transform/{appearance,transform}_{cpu.cpp,cuda.cu}``. This file holds the public
functions, their fake (meta) kernels for ``torch.compile``, and their autograd formulas: the first
order by the fused backward kernels, higher orders through the reference (``_higher_order.py``).

Parameter map of :func:`transform` (what the generator G outputs), channels in order:
``s_w`` (4, the row-major 2x2 matrix ``[[w0, w1], [w2, w3]]``), ``s_b`` (2, x then y, normalised
units), ``c_w`` (C*C, row-major: output channel i gets ``sum_j c_w[C*i + j] * x_j``), ``c_b`` (C):
18 channels for RGB images, 8 for grey ones.
"""
import torch

from .. import reference
from . import _eager
from ._autocast import autocast_inputs, register_float32_autocast
from ._forward_ad import refuse_forward_ad
from ._higher_order import register_higher_order
from ._validate import (PADDING_MODES, PADDING_NAMES, check_float_image, check_map, check_smooth, fake_maps,
                        padding_mode_id)

_ops = torch.ops.fastaug
_APPEARANCE_BACKWARD = _eager.BackwardOp("fastaug::appearance_backward")
_TRANSFORM_BACKWARD = _eager.BackwardOp("fastaug::transform_backward")

MODES = {"parallel": 0, "serial": 1}
MODE_NAMES = {i: name for name, i in MODES.items()}
SPATIAL_CHANNELS = 6


def num_params(channels):
    """Channels of the raw parameter map for images with ``channels`` colour channels (18 or 8)."""
    return SPATIAL_CHANNELS + channels * channels + channels


def _check_colour_image(x, op):
    check_float_image(x)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{op}: x must have 1 (grey) or 3 (RGB) channels, got shape {tuple(x.shape)}")


def _mode_id(mode):
    if not isinstance(mode, str) or mode not in MODES:  # a list is unhashable
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    return MODES[mode]


def appearance(x, c_w, c_b, *, smooth=4):
    """Per-pixel colour filtering with box-smoothed parameters: ``x + C_w x + c_b``.

    At every pixel, output channel ``i`` is ``x_i + sum_j c_w[C*i + j] x_j + c_b[i]``, after every
    parameter map has been smoothed by a ``smooth x smooth`` box window with replicate borders
    (``avg_pool2d(pad(p, (lo, hi, lo, hi), "replicate"), smooth, 1)``, ``lo = (smooth - 1) // 2``,
    ``hi = smooth // 2``), the paper's appearance model (section 4.2). Zero parameters give back a
    finite ``x`` exactly. One fused kernel forward and backward; the parameter gradients are
    deterministic.

    Args:
        x: (N, C, H, W) float image with C = 3 (RGB) or C = 1 (grey); float32/float64, or
            float16/bfloat16 on CUDA; any strides.
        c_w: (N, C*C, H, W) raw colour matrices, row-major (9 maps for RGB, 1 for grey).
        c_b: (N, C, H, W) raw colour biases.
        smooth: box window size k in [1, 64]; 1 disables smoothing.

    Returns:
        (N, C, H, W) contiguous tensor. Differentiable with respect to ``x``, ``c_w`` and ``c_b``
        to any order in reverse mode; float32 under ``torch.autocast`` (docs/design.md, Conventions).
    """
    if _eager.plain(x, c_w, c_b) and type(smooth) is int:  # noqa: E721 (bool is refused below, not taken as 0 or 1)
        try:
            return _appearance.call(x, c_w, c_b, smooth)
        except _eager.REFUSED:  # the kernel's checks refused an argument: the path below names it
            pass
    refuse_forward_ad("appearance", x, c_w, c_b)
    x, c_w, c_b = autocast_inputs(x, c_w, c_b)
    _check_colour_image(x, "appearance")
    C = x.shape[1]
    check_map(c_w, "c_w", C * C, x, f"{'3x3' if C == 3 else '1x1'} colour matrix per pixel, row-major")
    check_map(c_b, "c_b", C, x, "colour bias per pixel")
    smooth = check_smooth(smooth)
    return _appearance.registered(x, c_w, c_b, smooth)


def transform(x, params, *, smooth=4, mode="parallel", padding_mode="zeros"):
    """The learned transformation of the influence-augmentation paper (spatial + appearance), fused into one kernel.

    ``params`` is the raw (unsmoothed) map of the generator: s_w (4), s_b (2), c_w (C*C), c_b (C).
    Every map is box-smoothed as in :func:`appearance`. The spatial part samples ``x`` bilinearly at
    ``s = u + S_w(u) u + s_b(u)`` with ``u`` the output pixel's coordinate normalised to [-1, 1]
    (``align_corners=False``; the paper's eq. 20, exactly :func:`fastaug.affine_flow_warp`), giving
    the warped image ``y``. Then, with the colour parameters read at the output pixel:

    * ``mode="parallel"`` (the paper's best): ``out = y + (C_w x + c_b)``, the colour change computed
      from the unwarped ``x`` at the output pixel;
    * ``mode="serial"``: ``out = y + C_w y + c_b``, the colour filter applied to the warped image.

    Zero parameters give back a finite ``x`` exactly (docs/design.md K2); per-image constant parameters
    give an affine warp about the image centre followed by (serial) or added to (parallel) a global
    colour transform.
    The forward and the backward are each one fused pass; the gradient for ``params`` is
    deterministic (no floating-point atomics), the gradient for ``x`` is computed only when ``x``
    requires grad.

    Args:
        x: (N, C, H, W) float image, C = 3 (RGB) or 1 (grey); float32/float64, or float16/bfloat16
            on CUDA; any strides (channels_last included).
        params: (N, 18, H, W) for RGB or (N, 8, H, W) for grey, same dtype and device as ``x``.
        smooth: box window size k in [1, 64]; 1 disables smoothing.
        mode: ``"parallel"`` | ``"serial"``, see above.
        padding_mode: ``"zeros"`` | ``"border"`` | ``"reflection"`` for samples outside the image.

    Returns:
        (N, C, H, W) contiguous tensor. Differentiable with respect to ``x`` and ``params`` to any
        order in reverse mode; float32 under ``torch.autocast`` (docs/design.md, Conventions).
    """
    if _eager.plain(x, params) and type(smooth) is int:  # noqa: E721 (bool is refused below, not taken as 0 or 1)
        try:
            return _transform.call(x, params, smooth, MODES[mode], PADDING_MODES[padding_mode])
        except _eager.REFUSED:  # the kernel's checks refused an argument: the path below names it
            pass
    refuse_forward_ad("transform", x, params)
    x, params = autocast_inputs(x, params)
    _check_colour_image(x, "transform")
    C = x.shape[1]
    what = ("s_w 4, s_b 2, c_w 9, c_b 3 channels for an RGB image" if C == 3
            else "s_w 4, s_b 2, c_w 1, c_b 1 channels for a grey image")
    check_map(params, "params", num_params(C), x, what)
    smooth = check_smooth(smooth)
    return _transform.registered(x, params, smooth, _mode_id(mode), padding_mode_id(padding_mode))


# ---- fake kernels: shapes only, for torch.compile / FakeTensor -------------------------------------

@torch.library.register_fake("fastaug::appearance")
def _appearance_fake(x, c_w, c_b, smooth):
    C = x.shape[1]
    fake_maps(x, colour=True, c_w=(c_w, C * C), c_b=(c_b, C))
    return x.new_empty(x.shape)


@torch.library.register_fake("fastaug::appearance_backward")
def _appearance_backward_fake(grad_out, x, c_w, c_b, smooth, need_x_grad):
    C = x.shape[1]
    fake_maps(x, grad_out, colour=True, c_w=(c_w, C * C), c_b=(c_b, C))
    gx = x.new_empty(x.shape) if need_x_grad else x.new_empty((0,))
    return gx, c_w.new_empty(c_w.shape), c_b.new_empty(c_b.shape)


@torch.library.register_fake("fastaug::transform")
def _transform_fake(x, params, smooth, mode, padding_mode):
    fake_maps(x, colour=True, params=(params, num_params(x.shape[1])))
    return x.new_empty(x.shape)


@torch.library.register_fake("fastaug::transform_backward")
def _transform_backward_fake(grad_out, x, params, smooth, mode, padding_mode, need_x_grad):
    fake_maps(x, grad_out, colour=True, params=(params, num_params(x.shape[1])))
    gx = x.new_empty(x.shape) if need_x_grad else x.new_empty((0,))
    return gx, params.new_empty(params.shape)


# ---- autograd -------------------------------------------------------------------------------------

def _appearance_setup_context(ctx, inputs, output):
    x, c_w, c_b, smooth = inputs
    ctx.save_for_backward(x, c_w, c_b)
    ctx.smooth = smooth


def _appearance_backward(ctx, grad):
    x, c_w, c_b = ctx.saved_tensors
    needs = ctx.needs_input_grad
    gx, g_cw, g_cb = _APPEARANCE_BACKWARD(grad, x, c_w, c_b, ctx.smooth, needs[0])
    return (gx if needs[0] else None), (g_cw if needs[1] else None), (g_cb if needs[2] else None), None


def _transform_setup_context(ctx, inputs, output):
    x, params, smooth, mode, padding_mode = inputs
    ctx.save_for_backward(x, params)
    ctx.smooth, ctx.mode, ctx.padding_mode = smooth, mode, padding_mode


def _transform_backward(ctx, grad):
    x, params = ctx.saved_tensors
    needs = ctx.needs_input_grad
    gx, gp = _TRANSFORM_BACKWARD(grad, x, params, ctx.smooth, ctx.mode, ctx.padding_mode, needs[0])
    return (gx if needs[0] else None), (gp if needs[1] else None), None, None, None


# Registered with torch.library; the public functions call the same formula through fastaug/ops/_eager.py.
_appearance = _eager.register("fastaug::appearance", _appearance_backward, _appearance_setup_context)
_transform = _eager.register("fastaug::transform", _transform_backward, _transform_setup_context)


# Second and higher orders: autograd of the backward ops through the reference composition
# (fastaug/ops/_higher_order.py).
def _without_colour_bias(params, channels):
    """params with the raw c_b maps (the last ``channels``) set to zero: the op's linear part in x."""
    return torch.cat([params[:, :-channels], params.new_zeros(params[:, -channels:].shape)], 1)


register_higher_order(
    "fastaug::appearance_backward", 3, lambda t, static: reference.appearance(*t, smooth=static[0]),
    lambda v, maps, static: _ops.appearance(v, maps[0], torch.zeros_like(maps[1]), *static),
)
register_higher_order(
    "fastaug::transform_backward", 2,
    lambda t, static: reference.transform(*t, smooth=static[0], mode=MODE_NAMES[static[1]],
                                          padding_mode=PADDING_NAMES[static[2]], kernel_coordinates=True),
    lambda v, maps, static: _ops.transform(v, _without_colour_bias(maps[0], v.shape[1]), *static),
)

# Autocast: float32, as grid_sample on CPU, forward and backward (fastaug/ops/_autocast.py).
register_float32_autocast("fastaug::appearance", "fastaug::appearance_backward", "fastaug::transform",
                          "fastaug::transform_backward")
