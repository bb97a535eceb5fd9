"""Autocast policy of every op: run in float32, as ``grid_sample`` does (docs/design.md, Conventions).

Under ``torch.autocast`` (CPU or CUDA, any autocast dtype), floating-point tensor inputs other than
float64 are cast to float32 and the op returns float32; float64 and integer tensors (uint8 images,
labels, op ids) are left alone. That is exactly autocast's own rule for the ops of its float32 list
(``grid_sampler``, ``softmax``, the losses), so a model that feeds a bfloat16 conv output into
``fastaug.warp`` behaves as it would with ``grid_sample``: float64 mixed with a lower precision still
raises the ops' dtype error. The image ops sample and accumulate (a bfloat16 sampling coordinate is
off by up to 1/128 of its value, i.e. whole pixels on large images) and the influence ops solve and
reduce, so float32 is the precision all of them need.

The public functions cast with :func:`autocast_inputs` before their checks, so their dtype
errors speak of the dtypes the kernel will see; the ops themselves carry the same rule as an
Autocast kernel (:func:`register_float32_autocast`) for direct ``torch.ops.fastaug`` calls and for
graphs traced by ``torch.compile``.
"""
import torch

_AUTOCAST_DEVICES = ("cpu", "cuda")


def _cast(t):
    if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64:
        device_type = t.device.type
        if device_type in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device_type):
            return t.float()
    return t


def autocast_inputs(*values):
    """``values`` as the ops see them under autocast: floating tensors other than float64 on a device
    where autocast is enabled become float32; everything else (None, numbers, float64 and integer
    tensors, any tensor outside autocast) is returned unchanged. Returns a tuple."""
    return tuple(_cast(v) for v in values)


def register_float32_autocast(*ops):
    """Give each ``fastaug::<op>`` an Autocast kernel (CPU and CUDA) with the rule above."""
    for op in ops:
        for device_type in _AUTOCAST_DEVICES:
            if torch.amp.is_autocast_available(device_type):
                torch.library.register_autocast(op, device_type, torch.float32)
