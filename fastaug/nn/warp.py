"""Layers over the flow warp family: :class:`Warp` and :class:`AffineFlowWarp` (docs/design.md K1, K2)."""
from torch import nn

from ..ops._validate import check_align_corners, check_smooth, padding_mode_id
from ..ops.warp import affine_flow_warp, warp
from ._maps import given_or_predicted, map_pair


class Warp(nn.Module):
    """Bilinear warp by a dense displacement in pixels, :func:`fastaug.warp` as a layer.

    ``out[n, c, i, j] = bilinear(x[n, c], row = i + flow[n, 1, i, j], col = j + flow[n, 0, i, j])``,
    the maths of ``grid_sample(x, grid, mode="bilinear")`` with the grid built from the flow.

    Args:
        flow_head: optional module predicting the flow, (N, K, H, W) -> (N, 2, H, W), from ``x`` or
            from ``forward``'s ``context``; without one, ``forward`` takes the flow.
        padding_mode: ``"zeros"`` | ``"border"`` | ``"reflection"``, as in ``grid_sample``.
        align_corners: where ``"reflection"`` reflects (pixel centres when True, edges when False);
            the flow is in pixels, so nothing else depends on it.

    Shapes:
        x: (N, C, H, W) float image; flow: (N, 2, H, W) in pixels, channel 0 = x (width),
        1 = y (height), x's dtype and device; context: anything ``flow_head`` takes.
        The head is kept as ``self.head`` (its parameters are the layer's ``head.*`` state).
        Output: (N, C, H, W).

    Example::

        head = nn.Conv2d(2, 2, 3, padding=1)         # predicts a flow from moving + fixed
        warp = fastaug.nn.Warp(head, padding_mode="border")
        warped = warp(moving, context=torch.cat([moving, fixed], 1))
    """

    def __init__(self, flow_head=None, *, padding_mode="zeros", align_corners=False):
        super().__init__()
        padding_mode_id(padding_mode)  # refuse a bad option here, not at the first forward
        self.head = flow_head
        self.padding_mode = padding_mode
        self.align_corners = check_align_corners(align_corners)

    def forward(self, x, flow=None, *, context=None):
        """Warp ``x`` by ``flow`` (or by ``flow_head(context or x)``); see the class docstring for shapes."""
        flow = given_or_predicted(self, flow, x, context)
        return warp(x, flow, padding_mode=self.padding_mode, align_corners=self.align_corners)

    def extra_repr(self):
        return f"padding_mode={self.padding_mode!r}, align_corners={self.align_corners}"


class AffineFlowWarp(nn.Module):
    """The paper's learned spatial transformation, :func:`fastaug.affine_flow_warp` as a layer.

    Samples ``x`` at ``s = u + S_w(u) u + s_b(u)`` (``u`` the output pixel in [-1, 1] coordinates,
    ``S_w`` a per-pixel 2x2 matrix, ``s_b`` a per-pixel shift in normalised units), after every map
    has been box-smoothed over a ``smooth x smooth`` window; zero maps give back ``x``.

    Args:
        param_head: optional module predicting the 6 raw maps, (N, K, H, W) -> (N, 6, H, W)
            (``s_w`` w0..w3, then ``s_b`` x, y), from ``x`` or ``forward``'s ``context``; kept as
            ``self.head``.
        smooth: box window in [1, 64]; 1 disables smoothing.
        padding_mode: ``"zeros"`` | ``"border"`` | ``"reflection"`` (about the pixel edges).

    Shapes:
        x: (N, C, H, W) float image; s_w: (N, 4, H, W); s_b: (N, 2, H, W), x's dtype and device.
        Output: (N, C, H, W).
    """

    def __init__(self, param_head=None, *, smooth=4, padding_mode="zeros"):
        super().__init__()
        smooth = check_smooth(smooth)
        padding_mode_id(padding_mode)
        self.head = param_head
        self.smooth = smooth
        self.padding_mode = padding_mode

    def forward(self, x, s_w=None, s_b=None, *, context=None):
        """Warp ``x`` by the maps ``s_w``, ``s_b`` (or by the head's 6 maps); shapes in the class docstring."""
        s_w, s_b = map_pair(self, s_w, s_b, ("s_w", "s_b"), (4, 2), x, context)
        return affine_flow_warp(x, s_w, s_b, smooth=self.smooth, padding_mode=self.padding_mode)

    def extra_repr(self):
        return f"smooth={self.smooth}, padding_mode={self.padding_mode!r}"
