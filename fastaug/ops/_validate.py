"""Argument checks shared by the public ops.

Errors name the argument, what was expected and what was received. They use only shapes, dtypes
and devices, so they trace cleanly under ``torch.compile(fullgraph=True)``.
"""
import torch

from .._loader import REBUILD
from .. import _C

HAS_CUDA_KERNELS = bool(_C.build_info()["cuda"])

PADDING_MODES = {"zeros": 0, "border": 1, "reflection": 2}


def padding_mode_id(padding_mode):
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {sorted(PADDING_MODES)}, got {padding_mode!r}")
    return PADDING_MODES[padding_mode]


def check_tensor(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")


def check_float_image(x, name="x"):
    """x must be a 4-D (N, C, H, W) floating-point tensor; float16/bfloat16 only on CUDA."""
    check_tensor(x, name)
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32/float64, or float16/bfloat16 on CUDA), got {x.dtype}")
    if x.dtype in (torch.float16, torch.bfloat16) and x.device.type != "cuda":
        raise TypeError(f"{name}: {x.dtype} is supported on CUDA only; use float32 or float64 on CPU")
    check_device(x, name)


def check_device(x, name="x"):
    if x.device.type == "cuda" and not HAS_CUDA_KERNELS:
        raise RuntimeError(
            f"{name} is a CUDA tensor but this fastaug build has no CUDA kernels (it was built CPU-only); "
            f"{REBUILD} on a machine with the CUDA toolkit, or set FASTAUG_CUDA=1 to make that build fail loudly."
        )
    if x.device.type not in ("cpu", "cuda", "meta"):
        raise RuntimeError(f"{name}: fastaug supports CPU and CUDA tensors, got device {x.device}")


def check_map(t, name, channels, x, what):
    """t must be (N, channels, H, W) matching image x in N, H, W, dtype and device."""
    check_tensor(t, name)
    expected = (x.shape[0], channels, x.shape[2], x.shape[3])
    if tuple(t.shape) != expected:
        raise ValueError(f"{name} ({what}) must have shape {expected} to match x {tuple(x.shape)}, got {tuple(t.shape)}")
    if t.device != x.device:
        raise ValueError(f"{name} must be on the same device as x ({x.device}), got {t.device}")
    if t.dtype != x.dtype:
        raise TypeError(f"{name} must have the dtype of x ({x.dtype}), got {t.dtype}")


def check_smooth(smooth, max_smooth=64):
    if isinstance(smooth, bool) or not isinstance(smooth, int):
        raise TypeError(f"smooth must be an int (box window size), got {type(smooth).__name__}")
    if not 1 <= smooth <= max_smooth:
        raise ValueError(f"smooth must be in [1, {max_smooth}] (1 disables smoothing), got {smooth}")
