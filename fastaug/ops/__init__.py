"""Public functional ops, one file per kernel family, each with its fake kernel and autograd."""
from .policy import apply_ops
from .transform import appearance, transform
from .warp import affine_flow_warp, warp

__all__ = ["warp", "affine_flow_warp", "appearance", "transform", "apply_ops"]
