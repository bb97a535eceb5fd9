"""Readable pure-PyTorch references of the image kernels (docs/design.md K1, K2), one copy each.

These are the maths of the fused ops written with stock operators (``F.pad`` + ``avg_pool2d``
smoothing, ``grid_sample`` sampling, ``einsum`` colour filter). The tests compare the kernels with
them, the benchmarks time them as "what a user writes today", and the figures use them to show the
intermediate quantities (the flow, the smoothed maps). They are differentiable by autograd and much
slower and hungrier than the kernels; nothing on a training path should call them.

Shapes: images x (N, C, H, W); maps (N, K, H, W); everything in one dtype and on one device.
"""
import torch
import torch.nn.functional as F

__all__ = ["box_smooth", "normalised_grid", "eq20_flow", "warp", "affine_flow_warp", "colour_filter", "appearance",
           "transform"]


def box_smooth(p, k):
    """The k x k box smoothing of every map of p (N, K, H, W): stride 1, same size, window offsets
    -(k-1)//2 .. k//2, replicate borders. k = 1 returns p."""
    lo, hi = (k - 1) // 2, k // 2
    return F.avg_pool2d(F.pad(p, (lo, hi, lo, hi), mode="replicate"), k, stride=1)


def normalised_grid(H, W, like):
    """(u_y, u_x), each (H, W): pixel centres normalised to [-1, 1] (align_corners=False)."""
    uy = (2 * torch.arange(H, dtype=like.dtype, device=like.device) + 1) / H - 1
    ux = (2 * torch.arange(W, dtype=like.dtype, device=like.device) + 1) / W - 1
    return torch.meshgrid(uy, ux, indexing="ij")


def eq20_flow(s_w, s_b, grid=None):
    """The paper's eq. 20 on smoothed maps: (s_x, s_y), each (N, H, W), with s = u + S_w u + s_b,
    s_w (N, 4, H, W) the row-major 2x2 S_w and s_b (N, 2, H, W), in normalised coordinates.
    ``grid`` may pass a precomputed :func:`normalised_grid` (u_y, u_x)."""
    uy, ux = normalised_grid(s_w.shape[2], s_w.shape[3], s_w) if grid is None else grid
    sx = ux + s_w[:, 0] * ux + s_w[:, 1] * uy + s_b[:, 0]
    sy = uy + s_w[:, 2] * ux + s_w[:, 3] * uy + s_b[:, 1]
    return sx, sy


def warp(x, flow, padding_mode="zeros", align_corners=False, kernel_coordinates=False):
    """K1: sample x at (j + flow_x, i + flow_y), flow (N, 2, H, W) in pixels, through grid_sample.

    In pixel units ``align_corners`` only moves the reflection axes, so the other padding modes use the
    align_corners=False grid, which expresses every size; with align_corners=True a 1-pixel axis
    reflects every coordinate onto its only pixel centre (derivative 0), which a 0 grid expresses.

    ``kernel_coordinates=True`` gives NaN, infinite and far-away coordinates the kernels' treatment
    (:func:`_kernel_coordinate`) instead of handing them to grid_sample, whose CPU backward crashes the
    process on a NaN or infinite grid: the second-order autograd of the ops uses it."""
    N, C, H, W = x.shape
    ii, jj = torch.meshgrid(torch.arange(H, dtype=x.dtype, device=x.device),
                            torch.arange(W, dtype=x.dtype, device=x.device), indexing="ij")
    px, py = jj + flow[:, 0], ii + flow[:, 1]
    zero = None
    if kernel_coordinates:
        (px, zero_x), (py, zero_y) = (_kernel_coordinate(px, W, padding_mode, align_corners),
                                      _kernel_coordinate(py, H, padding_mode, align_corners))
        zero = zero_x | zero_y
    align_corners = align_corners and padding_mode == "reflection"
    if align_corners:
        gx = 2 * px / (W - 1) - 1 if W > 1 else px * 0
        gy = 2 * py / (H - 1) - 1 if H > 1 else py * 0
    else:
        gx, gy = (2 * px + 1) / W - 1, (2 * py + 1) / H - 1
    out = F.grid_sample(x, torch.stack([gx, gy], -1), mode="bilinear", padding_mode=padding_mode,
                        align_corners=align_corners)
    return out if zero is None else torch.where(zero[:, None], torch.zeros_like(out), out)


def _kernel_coordinate(p, size, padding_mode, align_corners=False):
    """Pixel coordinates ``p`` along an axis of ``size`` pixels as the kernels sample them
    (csrc/common/sampling.h), in a form grid_sample takes safely. Returns ``(q, zero)``: ``q`` finite and
    bounded, giving grid_sample the sample and the derivative that ``p`` gives the kernels, and ``zero``
    True where the kernels sample zero whatever the image: a NaN coordinate, and an infinite one except
    with "border" (clipped to the border pixel). Finite coordinates outside the image are moved where that
    changes nothing, so that normalising them cannot overflow: clamped into [-2, size + 1] ("zeros",
    "border": the derivative is 0 out there either way), reduced modulo the period ("reflection"). A
    1-pixel axis reflected about pixel centres maps every coordinate, NaN included, onto its pixel."""
    if padding_mode == "reflection" and align_corners and size == 1:
        return torch.where(torch.isfinite(p), p, torch.zeros_like(p)), torch.zeros_like(p, dtype=torch.bool)
    zero = torch.isnan(p) if padding_mode == "border" else ~torch.isfinite(p)
    q = torch.where(zero, torch.zeros_like(p), p)
    if padding_mode == "reflection":
        low, span = (0.0, size - 1) if align_corners else (-0.5, size)
        far = (q < low) | (q >= low + 2 * span)
        return torch.where(far, low + torch.remainder(q - low, 2 * span), q), zero
    return q.clamp(-2, size + 1), zero


def _sample(x, sx, sy, padding_mode, kernel_coordinates=False):
    """grid_sample at normalised (align_corners=False) coordinates; with ``kernel_coordinates``, those
    that are non-finite or far away first go through :func:`_kernel_coordinate` (in pixels)."""
    zero = None
    if kernel_coordinates:
        H, W = x.shape[2:]
        coords = []
        for s, size in ((sx, W), (sy, H)):
            p = ((s + 1) * size - 1) / 2
            q, z = _kernel_coordinate(p, size, padding_mode)
            coords.append((torch.where((q == p) & ~z, s, (2 * q + 1) / size - 1), z))
        (sx, zero_x), (sy, zero_y) = coords
        zero = zero_x | zero_y
    out = F.grid_sample(x, torch.stack([sx, sy], -1), mode="bilinear", padding_mode=padding_mode,
                        align_corners=False)
    return out if zero is None else torch.where(zero[:, None], torch.zeros_like(out), out)


def affine_flow_warp(x, s_w, s_b, smooth=4, padding_mode="zeros", grid=None, kernel_coordinates=False):
    """K2 spatial half: smooth the raw maps, eq. 20, bilinear sample (grid_sample).
    ``kernel_coordinates``: as for :func:`warp`."""
    p = box_smooth(torch.cat([s_w, s_b], 1), smooth)
    return _sample(x, *eq20_flow(p[:, :4], p[:, 4:6], grid), padding_mode, kernel_coordinates)


def colour_filter(y, src, c_w, c_b):
    """y + C_w src + c_b per pixel, c_w (N, C*C, H, W) row-major (output channel i gets
    sum_j c_w[C i + j] src_j), c_b (N, C, H, W), both already smoothed."""
    N, C, H, W = y.shape
    return y + torch.einsum("nijhw,njhw->nihw", c_w.reshape(N, C, C, H, W), src) + c_b


def appearance(x, c_w, c_b, smooth=4):
    """K2 appearance: x + C_w x + c_b with box-smoothed raw c_w (N, C*C, H, W) and c_b (N, C, H, W)."""
    C = x.shape[1]
    p = box_smooth(torch.cat([c_w, c_b], 1), smooth)
    return colour_filter(x, x, p[:, :C * C], p[:, C * C:])


def transform(x, params, smooth=4, mode="parallel", padding_mode="zeros", grid=None, kernel_coordinates=False):
    """K2 whole: params (N, 6 + C*C + C, H, W) raw maps (s_w, s_b, c_w, c_b) smoothed, then
    serial A(warp(x)) or parallel warp(x) + (C_w x + c_b). ``grid``: see :func:`eq20_flow`;
    ``kernel_coordinates``: as for :func:`warp`."""
    C = x.shape[1]
    p = box_smooth(params, smooth)
    y = _sample(x, *eq20_flow(p[:, 0:4], p[:, 4:6], grid), padding_mode, kernel_coordinates)
    return colour_filter(y, y if mode == "serial" else x, p[:, 6:6 + C * C], p[:, 6 + C * C:])
