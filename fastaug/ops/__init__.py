"""Public functional ops, one file per kernel family, each with its fake kernel and autograd."""
from .influence import influence_aug, influence_score, last_layer_hvp
from .policy import apply_ops
from .transform import appearance, transform
from .warp import affine_flow_warp, warp

__all__ = ["warp", "affine_flow_warp", "appearance", "transform", "apply_ops", "last_layer_hvp", "influence_score",
           "influence_aug"]
