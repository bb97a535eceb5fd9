"""Argument checks shared by the public ops (eager) and by their fake kernels (``torch._check``).

Eager errors name the argument, what was expected and what was received, as ``ValueError`` /
``TypeError``; they use only shapes, dtypes and devices (plus the explicitly data-dependent
:func:`check_finite` / :func:`check_labels`, skipped while compiling), so they trace cleanly under
``torch.compile(fullgraph=True)``. The fake kernels check what a fake tensor knows (shapes, dtypes,
devices) with :func:`fake_arg`, as the C++ kernels do with ``check_arg`` (csrc/common/checks.h).
"""
import numbers

import torch
from torch._subclasses.fake_tensor import is_fake

from .._loader import REBUILD
from .. import _C

HAS_CUDA_KERNELS = bool(_C.build_info()["cuda"])

#: The widest box window the kernels accept (from the C++ constant, csrc/common/box_filter.h).
MAX_SMOOTH = int(_C.limits()["max_smooth"])

PADDING_MODES = {"zeros": 0, "border": 1, "reflection": 2}
PADDING_NAMES = {i: name for name, i in PADDING_MODES.items()}

_HALF = (torch.float16, torch.bfloat16)


def padding_mode_id(padding_mode):
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:  # a list is unhashable
        raise ValueError(f"padding_mode must be one of {sorted(PADDING_MODES)}, got {padding_mode!r}")
    return PADDING_MODES[padding_mode]


def check_align_corners(align_corners):
    """Return align_corners as a bool: True, False, or None (False, grid_sample's default). Anything else
    is refused, as grid_sample refuses it: ``bool("False")`` is True."""
    if align_corners is None or isinstance(align_corners, bool):
        return bool(align_corners)
    raise TypeError(f"align_corners must be a bool (True or False), got {type(align_corners).__name__} "
                    f"{align_corners!r}")


def check_tensor(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    # The kernels read dense strided memory: a sparse, MKL-DNN or nested tensor reached them as the
    # dispatcher's 50-line "Could not run" error, or a nested tensor's internal error on its sizes.
    if t.is_nested:
        raise TypeError(f"{name} must be a dense (strided) tensor, got a nested tensor; stack its tensors into one")
    if t.layout != torch.strided:
        kind = str(t.layout).replace("torch.", "").lstrip("_")
        raise TypeError(f"{name} must be a dense (strided) tensor, got a {kind} tensor; call .to_dense() first")


def check_device(x, name="x"):
    if x.device.type == "cuda" and not HAS_CUDA_KERNELS:
        raise RuntimeError(
            f"{name} is a CUDA tensor but this fastaug build has no CUDA kernels (it was built CPU-only); "
            f"{REBUILD} on a machine with the CUDA toolkit, or set FASTAUG_CUDA=1 to make that build fail loudly."
        )
    if x.device.type not in ("cpu", "cuda", "meta"):
        raise RuntimeError(f"{name}: fastaug supports CPU and CUDA tensors, got device {x.device}")


def check_float(t, name):
    """t must be a floating-point tensor on a supported device; float16/bfloat16 only on CUDA."""
    check_tensor(t, name)
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32/float64, or float16/bfloat16 on CUDA), "
                        f"got {t.dtype}")
    if t.dtype in _HALF and t.device.type != "cuda":
        raise TypeError(f"{name}: {t.dtype} is supported on CUDA only; use float32 or float64 on CPU")
    check_device(t, name)


def check_float_image(x, name="x"):
    """x must be a 4-D (N, C, H, W) floating-point tensor; float16/bfloat16 only on CUDA."""
    check_float(x, name)
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")


def check_same_device(t, name, ref, ref_name):
    if t.device != ref.device:
        raise ValueError(f"{name} must be on the device of {ref_name} ({ref.device}), got {t.device}")


def check_map(t, name, channels, x, what):
    """t must be (N, channels, H, W) matching image x in N, H, W, dtype and device."""
    check_tensor(t, name)
    expected = (x.shape[0], channels, x.shape[2], x.shape[3])
    if tuple(t.shape) != expected:
        raise ValueError(f"{name} ({what}) must have shape {expected} to match x {tuple(x.shape)}, got {tuple(t.shape)}")
    check_same_device(t, name, x, "x")
    if t.dtype != x.dtype:
        # Under autocast the other dtypes were cast to float32 already (fastaug/ops/_autocast.py).
        hint = (" (autocast casts half precision to float32 but leaves float64 alone, as for grid_sample)"
                if x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type) else "")
        raise TypeError(f"{name} must have the dtype of x ({x.dtype}), got {t.dtype}{hint}")


def check_smooth(smooth):
    """Return ``smooth`` as a Python int: an integer (numpy's too, as torch's own int arguments take
    them; not a bool) in [1, MAX_SMOOTH]."""
    if isinstance(smooth, bool) or not isinstance(smooth, numbers.Integral):
        raise TypeError(f"smooth must be an int (box window size), got {type(smooth).__name__}")
    smooth = int(smooth)
    if not 1 <= smooth <= MAX_SMOOTH:
        raise ValueError(f"smooth must be in [1, {MAX_SMOOTH}] (1 disables smoothing), got {smooth}")
    return smooth


def data_checks_off(t):
    """True where data-dependent checks are skipped: while tracing under torch.compile (the kernels then
    propagate NaN), on tensors without data (meta tensors and FakeTensorMode's, which carry shapes
    only), on vmap's batched tensors (the CPU kernels check the same values per call) and on empty
    tensors (nothing to check)."""
    if torch.compiler.is_compiling() or t.numel() == 0 or t.device.type == "meta":
        return True
    if torch._C._functorch.is_batchedtensor(t):
        return True
    return type(t) is not torch.Tensor and is_fake(t)  # a plain tensor is never fake (is_fake: 1.4 µs)


def check_finite(t, name):
    """Raise ValueError when t holds NaN or infinite values (a device sync on CUDA)."""
    if data_checks_off(t):
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_labels(target, n, num_classes, name="target"):
    """target must be (n,) int64 class labels in [0, num_classes)."""
    check_tensor(target, name)
    if target.dtype != torch.int64:
        raise TypeError(f"{name} must be int64 class labels, got {target.dtype}")
    if tuple(target.shape) != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(target.shape)}")
    if not data_checks_off(target):
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} must hold class labels in [0, {num_classes}), got values in [{lo}, {hi}]")


# ---- fake kernels ---------------------------------------------------------------------------------

def fake_arg(t, name, shape, like=None, dtype=None, like_name="x"):
    """``torch._check`` a tensor argument of a fake kernel: its sizes (``shape``; None = any size in
    that dimension) and its dtype and device, those of the argument ``like`` (named ``like_name``)
    unless ``dtype`` is given."""
    ref = f" (like {like_name})" if like is not None else ""
    torch._check(t.dim() == len(shape), lambda: f"{name} must have {len(shape)} dimensions{ref}, got {tuple(t.shape)}")
    for d, size in enumerate(shape):
        if size is not None:
            torch._check(t.shape[d] == size, lambda: f"{name} must have size {size} in dimension {d}{ref}, "
                                                     f"got {tuple(t.shape)}")
    if like is not None:
        torch._check(t.device == like.device, lambda: f"{name} must be on {like.device}{ref}, got {t.device}")
        dtype = like.dtype if dtype is None else dtype
    if dtype is not None:
        torch._check(t.dtype == dtype, lambda: f"{name} must be {dtype}{ref}, got {t.dtype}")


def fake_image(x, name="x", colour=False, dtypes=None):
    """The fake-kernel check of the (N, C, H, W) image every other argument follows: floating point
    (or one of ``dtypes``), and with ``colour`` C = 1 or 3."""
    torch._check(x.dim() == 4, lambda: f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if dtypes is None:
        torch._check(x.dtype.is_floating_point, lambda: f"{name} must be floating point, got {x.dtype}")
    else:
        torch._check(x.dtype in dtypes, lambda: f"{name} must be one of {dtypes}, got {x.dtype}")
    # As check_floating in csrc/common/checks.h (the CPU kernels have no half-precision path); a meta
    # tensor's fake kernel is what the public functions' fast path checks (fastaug/ops/_eager.py).
    torch._check(x.dtype not in _HALF or x.device.type == "cuda",
                 lambda: f"{name}: {x.dtype} is supported on CUDA only, got a {x.device.type} tensor")
    if colour:
        torch._check(x.shape[1] in (1, 3), lambda: f"{name} must have 1 or 3 channels, got {tuple(x.shape)}")


def fake_maps(x, grad_out=None, colour=False, **maps):
    """Fake-kernel checks of an image op: x an image (C = 1 or 3 with ``colour``), each
    ``name=(tensor, channels)`` an (N, channels, H, W) map like x, and grad_out (if given) shaped like x."""
    fake_image(x, colour=colour)
    N, C, H, W = x.shape
    for name, (t, channels) in maps.items():
        fake_arg(t, name, (N, channels, H, W), like=x)
    if grad_out is not None:
        fake_arg(grad_out, "grad_out", (N, C, H, W), like=x)
