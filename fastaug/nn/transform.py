"""Layers over the learned transformation family: :class:`Appearance` and :class:`Transform` (docs/design.md K2)."""
import torch
from torch import nn

from ..ops._validate import check_float_image, check_smooth, padding_mode_id
from ..ops.transform import MODES, appearance, transform
from ._maps import given_or_predicted, map_pair


class Appearance(nn.Module):
    """Per-pixel colour filter ``x + C_w x + c_b`` with box-smoothed maps, :func:`fastaug.appearance` as a layer.

    Output channel ``i`` is ``x_i + sum_j c_w[C*i + j] x_j + c_b[i]`` at every pixel, after every map
    has been smoothed over a ``smooth x smooth`` window; zero maps give back ``x``.

    Args:
        param_head: optional module predicting the raw maps, (N, K, H, W) -> (N, C*C + C, H, W)
            (``c_w`` row-major, then ``c_b``: 12 channels for RGB, 2 for grey), from ``x`` or from
            ``forward``'s ``context``; kept as ``self.head``.
        smooth: box window in [1, 64]; 1 disables smoothing.

    Shapes:
        x: (N, C, H, W) float image, C = 1 or 3; c_w: (N, C*C, H, W); c_b: (N, C, H, W), x's dtype
        and device. Output: (N, C, H, W).
    """

    def __init__(self, param_head=None, *, smooth=4):
        super().__init__()
        smooth = check_smooth(smooth)
        self.head = param_head
        self.smooth = smooth

    def forward(self, x, c_w=None, c_b=None, *, context=None):
        """Filter ``x`` with ``c_w``, ``c_b`` (or with the head's maps); shapes in the class docstring."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            check_float_image(x)  # the op's sentence, not an IndexError from x.shape[1]
        C = x.shape[1]
        c_w, c_b = map_pair(self, c_w, c_b, ("c_w", "c_b"), (C * C, C), x, context, f"for a {C}-channel image ")
        return appearance(x, c_w, c_b, smooth=self.smooth)

    def extra_repr(self):
        return f"smooth={self.smooth}"


class Transform(nn.Module):
    """The whole learned transformation of the influence-augmentation paper (spatial + appearance),
    :func:`fastaug.transform` as a layer.

    Warps ``x`` by the box-smoothed per-pixel affine flow of :class:`AffineFlowWarp`, then adds the
    colour change of :class:`Appearance`: computed from the unwarped ``x`` (``mode="parallel"``) or
    applied to the warped image (``mode="serial"``). Zero maps give back ``x``. With
    ``nn.Sequential(E, nn.Dropout(p), G)`` as ``param_head`` (``fastaug.augment.learned``'s encoder,
    dropout on the code, generator) this is the paper's augmenter, ``LearnedAugment``; G alone maps a
    code tau (N, tau_dim), not an image, so it is a head only with ``forward(x, context=tau)``.

    Args:
        param_head: optional module predicting the raw map, (N, K, H, W) -> (N, 6 + C*C + C, H, W)
            (s_w 4, s_b 2, c_w C*C, c_b C: 18 channels for RGB, 8 for grey), from ``x`` or from
            ``forward``'s ``context``; kept as ``self.head``.
        smooth: box window in [1, 64]; 1 disables smoothing.
        mode: ``"parallel"`` | ``"serial"``.
        padding_mode: ``"zeros"`` | ``"border"`` | ``"reflection"`` for samples outside the image.

    Shapes:
        x: (N, C, H, W) float image, C = 1 or 3; params: (N, 6 + C*C + C, H, W), x's dtype and
        device. Output: (N, C, H, W).
    """

    def __init__(self, param_head=None, *, smooth=4, mode="parallel", padding_mode="zeros"):
        super().__init__()
        smooth = check_smooth(smooth)
        padding_mode_id(padding_mode)
        if not isinstance(mode, str) or mode not in MODES:  # a list is unhashable
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        self.head = param_head
        self.smooth = smooth
        self.mode = mode
        self.padding_mode = padding_mode

    def forward(self, x, params=None, *, context=None):
        """Transform ``x`` by ``params`` (or by the head's map); shapes in the class docstring."""
        params = given_or_predicted(self, params, x, context)
        return transform(x, params, smooth=self.smooth, mode=self.mode, padding_mode=self.padding_mode)

    def extra_repr(self):
        return f"smooth={self.smooth}, mode={self.mode!r}, padding_mode={self.padding_mode!r}"
