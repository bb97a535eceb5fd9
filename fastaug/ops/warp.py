"""Flow warp family: :func:`warp` and :func:`affine_flow_warp` (docs/design.md K1, K2 spatial half).

Kernels: ``csrc/warp/warp_cpu.cpp`` and ``csrc/warp/warp_cuda.cu``. This file holds the public
functions, their fake (meta) kernels for ``torch.compile``, and their autograd formulas: the first
order by the fused backward kernels, higher orders through the reference (``_higher_order.py``).
"""
import torch

from .. import reference
from . import _eager
from ._autocast import autocast_inputs, register_float32_autocast
from ._forward_ad import refuse_forward_ad
from ._higher_order import register_higher_order
from ._validate import (PADDING_MODES, PADDING_NAMES, check_align_corners, check_float_image, check_map, check_smooth,
                        fake_maps, padding_mode_id)

_ops = torch.ops.fastaug
_WARP_BACKWARD = _eager.BackwardOp("fastaug::warp_backward")
_AFFINE_BACKWARD = _eager.BackwardOp("fastaug::affine_flow_warp_backward")


def warp(x, flow, *, padding_mode="zeros", align_corners=False):
    """Bilinearly warp images by a per-pixel displacement given in pixels.

    ``out[n, c, i, j] = bilinear(x[n, c], row = i + flow[n, 1, i, j], col = j + flow[n, 0, i, j])``:
    the same maths as ``grid_sample(x, grid, mode="bilinear")`` with the grid built from the flow,
    fused into one kernel. Because the flow is in pixels, ``align_corners`` only changes where
    ``"reflection"`` padding reflects: about the outer pixel edges (False) or centres (True).

    Args:
        x: (N, C, H, W) float image (float32/float64; float16/bfloat16 on CUDA), any strides.
        flow: (N, 2, H, W) displacement in pixels, same dtype and device; channel 0 = x (width),
            channel 1 = y (height).
        padding_mode: ``"zeros"`` | ``"border"`` | ``"reflection"``, as in ``grid_sample``.
        align_corners: a bool (None is False, as in ``grid_sample``); see above.

    Returns:
        (N, C, H, W) contiguous tensor. Differentiable with respect to ``x`` and ``flow`` to any
        order in reverse mode; float32 under ``torch.autocast`` (docs/design.md, Conventions).
    """
    if _eager.plain(x, flow) and (align_corners is False or align_corners is True):  # else checked below
        try:
            return _warp.call(x, flow, PADDING_MODES[padding_mode], align_corners)
        except _eager.REFUSED:  # the kernel's checks refused an argument: the path below names it
            pass
    refuse_forward_ad("warp", x, flow)
    x, flow = autocast_inputs(x, flow)
    check_float_image(x)
    check_map(flow, "flow", 2, x, "displacement in pixels: channel 0 = x, 1 = y")
    return _warp.registered(x, flow, padding_mode_id(padding_mode), check_align_corners(align_corners))


def affine_flow_warp(x, s_w, s_b, *, smooth=4, padding_mode="zeros"):
    """The learned spatial transformation: per-pixel affine flow, box-smoothed, then bilinear warp.

    With output coordinates ``u = (u_x, u_y)`` normalised to [-1, 1] (``align_corners=False``), the
    source location is ``s = u + S_w(u) u + s_b(u)`` with ``S_w = [[w0, w1], [w2, w3]]``
    (the paper's eq. 20), after every parameter map has been smoothed by a ``smooth x smooth`` box
    window with replicate borders (``avg_pool2d(pad(p, (lo, hi, lo, hi), "replicate"), smooth, 1)``,
    ``lo = (smooth - 1) // 2``, ``hi = smooth // 2``). Zero parameters give back ``x``; constant
    parameters give an affine warp about the image centre. One fused kernel, forward and backward;
    the parameter gradients are deterministic (no floating-point atomics).

    Args:
        x: (N, C, H, W) float image (float32/float64; float16/bfloat16 on CUDA).
        s_w: (N, 4, H, W) raw (unsmoothed) spatial weights w0..w3, row-major.
        s_b: (N, 2, H, W) raw spatial biases (x, y) in normalised units (2 / W per pixel in x).
        smooth: box window size k in [1, 64]; 1 disables smoothing.
        padding_mode: ``"zeros"`` | ``"border"`` | ``"reflection"`` (reflection about pixel edges).

    Returns:
        (N, C, H, W) warped image. Differentiable with respect to ``x``, ``s_w`` and ``s_b`` to any
        order in reverse mode; float32 under ``torch.autocast`` (docs/design.md, Conventions).
    """
    if _eager.plain(x, s_w, s_b) and type(smooth) is int:  # noqa: E721 (bool is refused below, not taken as 0 or 1)
        try:
            return _affine_flow_warp.call(x, s_w, s_b, smooth, PADDING_MODES[padding_mode])
        except _eager.REFUSED:  # the kernel's checks refused an argument: the path below names it
            pass
    refuse_forward_ad("affine_flow_warp", x, s_w, s_b)
    x, s_w, s_b = autocast_inputs(x, s_w, s_b)
    check_float_image(x)
    check_map(s_w, "s_w", 4, x, "spatial weights")
    check_map(s_b, "s_b", 2, x, "spatial biases")
    smooth = check_smooth(smooth)
    return _affine_flow_warp.registered(x, s_w, s_b, smooth, padding_mode_id(padding_mode))


# ---- fake kernels: shapes only, for torch.compile / FakeTensor -------------------------------------

@torch.library.register_fake("fastaug::warp")
def _warp_fake(x, flow, padding_mode, align_corners):
    fake_maps(x, flow=(flow, 2))
    return x.new_empty(x.shape)


@torch.library.register_fake("fastaug::warp_backward")
def _warp_backward_fake(grad_out, x, flow, padding_mode, align_corners, need_x_grad):
    fake_maps(x, grad_out, flow=(flow, 2))
    gx = x.new_empty(x.shape) if need_x_grad else x.new_empty((0,))
    return gx, flow.new_empty(flow.shape)


@torch.library.register_fake("fastaug::affine_flow_warp")
def _affine_flow_warp_fake(x, s_w, s_b, smooth, padding_mode):
    fake_maps(x, s_w=(s_w, 4), s_b=(s_b, 2))
    return x.new_empty(x.shape)


@torch.library.register_fake("fastaug::affine_flow_warp_backward")
def _affine_flow_warp_backward_fake(grad_out, x, s_w, s_b, smooth, padding_mode, need_x_grad):
    fake_maps(x, grad_out, s_w=(s_w, 4), s_b=(s_b, 2))
    gx = x.new_empty(x.shape) if need_x_grad else x.new_empty((0,))
    return gx, s_w.new_empty(s_w.shape), s_b.new_empty(s_b.shape)


# ---- autograd -------------------------------------------------------------------------------------

def _warp_setup_context(ctx, inputs, output):
    x, flow, padding_mode, align_corners = inputs
    ctx.save_for_backward(x, flow)
    ctx.padding_mode, ctx.align_corners = padding_mode, align_corners


def _warp_backward(ctx, grad):
    x, flow = ctx.saved_tensors
    need_x = ctx.needs_input_grad[0]
    gx, gflow = _WARP_BACKWARD(grad, x, flow, ctx.padding_mode, ctx.align_corners, need_x)
    return (gx if need_x else None), (gflow if ctx.needs_input_grad[1] else None), None, None


def _affine_setup_context(ctx, inputs, output):
    x, s_w, s_b, smooth, padding_mode = inputs
    ctx.save_for_backward(x, s_w, s_b)
    ctx.smooth, ctx.padding_mode = smooth, padding_mode


def _affine_backward(ctx, grad):
    x, s_w, s_b = ctx.saved_tensors
    need_x = ctx.needs_input_grad[0]
    gx, g_sw, g_sb = _AFFINE_BACKWARD(grad, x, s_w, s_b, ctx.smooth, ctx.padding_mode, need_x)
    needs = ctx.needs_input_grad
    return (gx if need_x else None), (g_sw if needs[1] else None), (g_sb if needs[2] else None), None, None


# Registered with torch.library; the public functions call the same formula through fastaug/ops/_eager.py.
_warp = _eager.register("fastaug::warp", _warp_backward, _warp_setup_context)
_affine_flow_warp = _eager.register("fastaug::affine_flow_warp", _affine_backward, _affine_setup_context)


# Second and higher orders: autograd of the backward ops through the grid_sample reference
# (fastaug/ops/_higher_order.py), with the kernels' treatment of NaN, infinite and far-away coordinates
# (kernel_coordinates: grid_sample's CPU backward crashes the process on a non-finite grid).
# Both are linear in x: the linear part is the op itself.
register_higher_order(
    "fastaug::warp_backward", 2,
    lambda t, static: reference.warp(*t, padding_mode=PADDING_NAMES[static[0]], align_corners=static[1],
                                     kernel_coordinates=True),
    lambda v, maps, static: _ops.warp(v, *maps, *static),
)
register_higher_order(
    "fastaug::affine_flow_warp_backward", 3,
    lambda t, static: reference.affine_flow_warp(*t, smooth=static[0], padding_mode=PADDING_NAMES[static[1]],
                                                 kernel_coordinates=True),
    lambda v, maps, static: _ops.affine_flow_warp(v, *maps, *static),
)

# Autocast: float32, as grid_sample on CPU, forward and backward (fastaug/ops/_autocast.py).
register_float32_autocast("fastaug::warp", "fastaug::warp_backward", "fastaug::affine_flow_warp",
                          "fastaug::affine_flow_warp_backward")
