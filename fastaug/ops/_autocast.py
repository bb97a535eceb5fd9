"""Autocast policy of every op: run in float32, as ``grid_sample`` does on CPU (docs/design.md, Conventions).

Under ``torch.autocast`` (CPU or CUDA, any autocast dtype), floating-point tensor inputs other than
float64 are cast to float32 and the op returns float32; float64 and integer tensors (uint8 images,
labels, op ids) are left alone. That is autocast's own rule for the ops of its float32 list
(``grid_sampler`` on CPU, ``softmax``, the losses), so a model that feeds a bfloat16 conv output into
``fastaug.warp`` behaves as it would with ``grid_sample``, and float64 mixed with a lower precision
still raises the ops' dtype error. The image ops sample and accumulate (a bfloat16 sampling
coordinate is off by up to 1/128 of its value, i.e. whole pixels on large images), the CPU kernels
have no half-precision path, and the influence ops solve and reduce, so float32 is the precision all
of them need. (On CUDA ``grid_sample`` promotes to the widest input instead, running in half when
every input is half; fastaug runs in float32 there too: one rule on both devices.)

Two places apply the rule:

* the public functions cast with :func:`autocast_inputs` before their checks, so mixed dtypes pass
  the checks under autocast and keep their one-sentence error outside it;
* :func:`register_float32_autocast` gives the ops the same rule as an Autocast kernel, for direct
  ``torch.ops.fastaug`` calls and for graphs traced by ``torch.compile``. The kernel then runs with
  autocast off, so ATen calls inside it (the influence ops' GEMMs) stay float32 too. The backward ops
  get it as well: a backward run inside the autocast region (``torch.autograd.grad`` in the ``with``
  block) would otherwise run those GEMMs in half precision.
"""
import contextlib

import torch

__all__ = ["autocast_inputs", "autocast_off", "register_float32_autocast"]

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


def autocast_off(device_type):
    """A context that turns autocast off on ``device_type`` (a backward computing in full precision
    inside an autocast region); a no-op on devices without autocast (meta tensors: shape inference)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def register_float32_autocast(*ops):
    """Give each op (``"fastaug::<name>"``) an Autocast kernel on CPU and CUDA with the rule above."""
    for op in ops:
        for device_type in _AUTOCAST_DEVICES:
            if torch.amp.is_autocast_available(device_type):
                torch.library.register_autocast(op, device_type, torch.float32)
