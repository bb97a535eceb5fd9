"""fastaug: fast learned, adversarial and budgeted data augmentation for PyTorch.

Kernels (CPU and CUDA, differentiable, registered as ``torch.ops.fastaug.*``):

* :func:`fastaug.warp` – bilinear warp by a per-pixel displacement in pixels.
* :func:`fastaug.affine_flow_warp` – the per-pixel affine flow of the learned spatial
  transformation, box-smoothed, fused with the warp.
* :func:`fastaug.apply_ops` – AutoAugment-style ops with a different op and magnitude per image
  (and chains of them), in one call.
* :func:`fastaug.appearance` – per-pixel colour filter with box-smoothed parameters.
* :func:`fastaug.transform` – the whole learned transformation (spatial + appearance) in one kernel.
* :func:`fastaug.last_layer_hvp` – closed-form last-layer softmax Hessian-vector products (K4).
* :func:`fastaug.influence_score` / :func:`fastaug.influence_aug` – the influence objective with an
  analytic backward (K4); solvers and scores in :mod:`fastaug.influence`.

Layers over the image ops, to put in a model: :mod:`fastaug.nn` (``Warp``, ``AffineFlowWarp``,
``Appearance``, ``Transform``).
"""
import torch  # noqa: F401  (the extension needs torch's symbols loaded first)

from ._loader import load_extension

_C = load_extension()

from .ops.influence import influence_aug, influence_score, last_layer_hvp  # noqa: E402
from .ops.policy import apply_ops  # noqa: E402
from .ops.transform import appearance, transform  # noqa: E402
from .ops.warp import affine_flow_warp, warp  # noqa: E402
# after the ops, which the layers call; left out of __all__ so that a star import cannot shadow torch.nn
from . import nn  # noqa: E402, F401

__version__ = "0.1.0"


def build_info():
    """Return how the compiled core was built.

    Returns:
        dict with ``torch_version`` (the torch it was compiled against), ``cuda`` (bool: CUDA
        kernels compiled in), ``cuda_archs`` (the target architecture list, "" without CUDA),
        ``cpu_capability`` (the copy of the CPU kernels this process runs: "default", "avx2" or
        "avx512", the best the CPU has capped by the environment variable FASTAUG_CPU_CAPABILITY)
        and ``cpu_supported`` (the best this CPU has).
    """
    return dict(_C.build_info())


__all__ = ["warp", "affine_flow_warp", "appearance", "transform", "apply_ops", "last_layer_hvp", "influence_score",
           "influence_aug", "build_info"]
