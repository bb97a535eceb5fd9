"""``torch.nn`` layers over fastaug's image ops, for putting the kernels inside a model.

Each layer takes its options (``padding_mode``, ``align_corners``, ``smooth``, ``mode``) in the
constructor and its per-pixel maps in ``forward``: either passed in, or predicted by an optional
head module (any ``nn.Module`` mapping the head input to the maps, e.g. a small CNN or U-Net).

* :class:`Warp` – :func:`fastaug.warp`: bilinear warp by a dense flow in pixels.
* :class:`AffineFlowWarp` – :func:`fastaug.affine_flow_warp`: the paper's box-smoothed per-pixel affine flow.
* :class:`Appearance` – :func:`fastaug.appearance`: per-pixel colour filter.
* :class:`Transform` – :func:`fastaug.transform`: the whole learned transformation (spatial + appearance).

The layers hold no parameters of their own (only their head's), so a layer without a head has an
empty ``state_dict`` and behaves exactly as the functional op.
"""
from .transform import Appearance, Transform
from .warp import AffineFlowWarp, Warp

__all__ = ["Warp", "AffineFlowWarp", "Appearance", "Transform"]
