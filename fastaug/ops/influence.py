"""Last-layer influence family: :func:`last_layer_hvp`, :func:`influence_score`, :func:`influence_aug`
(docs/design.md K4).

Kernels: ``csrc/influence/influence_cpu.cpp`` and ``csrc/influence/influence_cuda.cu``. Both ops are
"GEMM, fused per-sample softmax step, GEMM" with the GEMMs in ATen (cuBLAS / MKL) and the step in
between ours. This file holds the public functions, their fake kernels for ``torch.compile``, and the
analytic autograd formula of the influence objective.

Notation: a classifier's last layer ``z = W h + b`` (C classes, D features), ``p = softmax(z)``,
``h~ = [h; 1]``, ``Theta = [W b]`` of shape (C, D+1), ``A_i = diag(p_i) - p_i p_i^T``. The sign and
scale conventions of influence are documented once, in :mod:`fastaug.influence`.
"""
import math
import numbers

import torch

from . import _functorch
from ._autocast import autocast_inputs, autocast_off, register_float32_autocast
from ._forward_ad import refuse_forward_ad
from ._higher_order import refuse_second_order
from ._validate import check_finite as assert_finite, check_float, check_labels, check_same_device, fake_arg

_ops = torch.ops.fastaug


def _check_features(h, name="h"):
    check_float(h, name)
    if h.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D) (features of the last layer's input), got {tuple(h.shape)}")


def last_layer_hvp(h, p, v, *, weight=None, damping=0.0, scale=None, check_finite=True):
    """Hessian-vector product of the mean softmax cross-entropy of a last linear layer, closed form.

    ``HV = scale * sum_i weight_i * R_i h~_i^T + damping * V`` with ``U = V H~^T``,
    ``R_i = p_i * u_i - p_i (p_i . u_i)`` (the per-sample softmax Jacobian), i.e. the product with
    ``H = scale * sum_i weight_i (h~_i h~_i^T) kron A_i + damping * I``. ``scale`` defaults to ``1/N``
    (the Hessian of the mean loss). Two GEMMs over the features and one fused pass in between; several
    directions are one GEMM. No autograd graph of the loss is built. The product is differentiable
    with respect to ``v``, to any order (its adjoint is the same symmetric H, so the backward is one
    more HVP); gradients with respect to ``h``, ``p`` or ``weight`` are not implemented and raise.
    float32 under ``torch.autocast``.

    Args:
        h: (N, D) features (the last layer's input), float32/float64 (float16/bfloat16 on CUDA: GEMMs
            in that dtype with float32 accumulation, the fused step in float32).
        p: (N, C) softmax probabilities of the last layer, same dtype and device as ``h``.
        v: (C, D+1) direction ``[dW | db]`` or (K, C, D+1) for K directions at once.
        weight: optional (N,) per-sample weights.
        damping: lambda >= 0 added times V: a real number (or a one-element tensor), not a bool.
        scale: finite factor of the sum (default ``1/N``; with ``N = 0`` the result is ``damping * V``).
        check_finite: raise ValueError when ``h`` or ``p`` hold NaN/inf (a device sync on CUDA).

    Returns:
        Tensor of the shape of ``v``.
    """
    refuse_forward_ad("last_layer_hvp", h, p, v, weight)
    h, p, v, weight = autocast_inputs(h, p, v, weight)
    _check_features(h)
    check_float(p, "p")
    check_float(v, "v")
    if p.dim() != 2 or p.shape[0] != h.shape[0]:
        raise ValueError(f"p must have shape ({h.shape[0]}, C) to match h {tuple(h.shape)}, got {tuple(p.shape)}")
    C, D = p.shape[1], h.shape[1]
    single = v.dim() == 2
    if tuple(v.shape[-2:]) != (C, D + 1) or v.dim() not in (2, 3):
        raise ValueError(f"v must have shape ({C}, {D + 1}) or (K, {C}, {D + 1}) for C={C} classes and D={D} "
                         f"features (last column = bias), got {tuple(v.shape)}")
    for t, name in ((p, "p"), (v, "v")):
        check_same_device(t, name, h, "h")
        if t.dtype != h.dtype:
            raise TypeError(f"{name} must have the dtype of h ({h.dtype}), got {t.dtype}")
    if weight is not None:
        check_float(weight, "weight")
        if tuple(weight.shape) != (h.shape[0],):
            raise ValueError(f"weight must have shape ({h.shape[0]},), got {tuple(weight.shape)}")
        check_same_device(weight, "weight", h, "h")
        weight = weight.to(h.dtype)
    damping = _real_number(damping, "damping")
    if not damping >= 0 or damping == float("inf"):
        raise ValueError(f"damping must be a finite number >= 0, got {damping}")
    if scale is None:
        scale = 1.0 / max(h.shape[0], 1)
    else:
        scale = _real_number(scale, "scale")
        if not math.isfinite(scale):
            raise ValueError(f"scale must be a finite number, got {scale}")
    if check_finite:
        assert_finite(h, "h")
        assert_finite(p, "p")
    out = _functorch.call("fastaug::last_layer_hvp", _ops.last_layer_hvp, h, p, v.unsqueeze(0) if single else v,
                          weight, float(scale), damping)
    return out.squeeze(0) if single else out


def _real_number(value, name):
    """``value`` as a Python float: a real number (numpy's too) or a one-element real tensor. A bool or a
    string is refused (``float(True)`` is 1.0, ``float("0.1")`` 0.1: a flag or an unparsed option)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must be a real number or a one-element real tensor, got a {value.dtype} "
                            f"tensor of shape {tuple(value.shape)}")
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _check_score_args(h, logits, target, s):
    _check_features(h)
    check_float(logits, "logits")
    check_float(s, "s")
    if logits.dim() != 2 or logits.shape[0] != h.shape[0]:
        raise ValueError(f"logits must have shape ({h.shape[0]}, C) to match h {tuple(h.shape)}, "
                         f"got {tuple(logits.shape)}")
    C, D = logits.shape[1], h.shape[1]
    if tuple(s.shape) != (C, D + 1):
        raise ValueError(f"s must have shape ({C}, {D + 1}) (reshaped s_val = H^-1 grad L_val, last column = bias), "
                         f"got {tuple(s.shape)}")
    for t, name in ((logits, "logits"), (s, "s")):
        check_same_device(t, name, h, "h")
    if h.device.type == "cpu" and not (h.dtype == logits.dtype == s.dtype):
        raise TypeError(f"h, logits and s must share one dtype on CPU, got {h.dtype}, {logits.dtype}, {s.dtype}")
    check_labels(target, h.shape[0], C)
    check_same_device(target, "target", h, "h")


def influence_score(h, logits, target, s):
    """Per-sample influence objective ``score_i = s_val^T grad_Theta l(z_i) = delta_i^T S h~_i``.

    ``delta_i = softmax(logits_i) - onehot(target_i)``; ``S`` is ``s_val`` reshaped to (C, D+1). Then
    ``I_up,loss(z_i, val) = -score_i``. Differentiable with respect to ``h`` and ``logits`` (analytic
    backward, one GEMM and one fused pass: ``d/dh = g delta^T S_W``, ``d/dz = g A (S h~)``) and to ``s``;
    ``logits`` are the classifier's output for ``h``, so gradients reach both paths of a frozen
    classifier. First order only in ``h`` and ``logits`` (differentiating that gradient raises); float32
    under ``torch.autocast``.

    Args:
        h: (N, D) features. float32/float64; float16/bfloat16 on CUDA (GEMMs with float32
            accumulation, the softmax step in float32 when logits are float32).
        logits: (N, C) last-layer outputs (any floating dtype on CUDA; the dtype of ``h`` on CPU).
        target: (N,) int64 labels in [0, C).
        s: (C, D+1) the influence direction.

    Returns:
        (N,) scores in the dtype of ``logits``.
    """
    refuse_forward_ad("influence_score", h, logits, s)
    h, logits, s = autocast_inputs(h, logits, s)
    _check_score_args(h, logits, target, s)
    return _functorch.call("fastaug::influence_score", _ops.influence_score, h, logits, target, s)


def influence_aug(h, logits, h_aug, logits_aug, target, s):
    """Influence of replacing z by its augmentation (the paper's eq. 18): ``I_aug = -(score(z~) - score(z))``.

    ``I_aug = -s_val^T (grad l(z~) - grad l(z))`` per sample; differentiable in all feature and logit
    arguments (typically only ``h_aug``/``logits_aug`` require grad). Shapes as in
    :func:`influence_score`; returns (N,).
    """
    return influence_score(h, logits, target, s) - influence_score(h_aug, logits_aug, target, s)


# ---- fake kernels: shapes only, for torch.compile / FakeTensor -------------------------------------

@torch.library.register_fake("fastaug::last_layer_hvp")
def _hvp_fake(h, p, v, weight, scale, damping):
    fake_arg(h, "h", (None, None))
    torch._check(h.dtype.is_floating_point, lambda: f"h must be floating point, got {h.dtype}")
    N, D = h.shape
    fake_arg(p, "p", (N, None), like=h, like_name="h")
    fake_arg(v, "v", (None, p.shape[1], D + 1), like=h, like_name="h")
    if weight is not None:
        fake_arg(weight, "weight", (N,), like=h, like_name="h")
    return v.new_empty(v.shape)


def _score_fake_checks(h, logits, target, s):
    fake_arg(h, "h", (None, None))
    torch._check(h.dtype.is_floating_point, lambda: f"h must be floating point, got {h.dtype}")
    N, D = h.shape
    same = h.device.type == "cpu"  # the CPU kernels want one dtype; CUDA mixes them (float32 accumulation)
    fake_arg(logits, "logits", (N, None), like=h, dtype=None if same else logits.dtype, like_name="h")
    fake_arg(s, "s", (logits.shape[1], D + 1), like=h, dtype=None if same else s.dtype, like_name="h")
    fake_arg(target, "target", (N,), like=h, dtype=torch.int64, like_name="h")


@torch.library.register_fake("fastaug::influence_score")
def _score_fake(h, logits, target, s):
    _score_fake_checks(h, logits, target, s)
    return logits.new_empty((logits.shape[0],))


@torch.library.register_fake("fastaug::influence_score_backward")
def _score_backward_fake(grad, h, logits, target, s):
    _score_fake_checks(h, logits, target, s)
    fake_arg(grad, "grad", (h.shape[0],), like=logits, like_name="logits")
    return h.new_empty(h.shape), logits.new_empty(logits.shape)


# ---- autograd -------------------------------------------------------------------------------------

def _score_setup_context(ctx, inputs, output):
    h, logits, target, s = inputs
    ctx.save_for_backward(h, logits, target, s)


def _score_backward(ctx, grad):
    h, logits, target, s = ctx.saved_tensors
    needs = ctx.needs_input_grad
    grad_h = grad_logits = grad_s = None
    if needs[0] or needs[1]:
        grad_h, grad_logits = _functorch.call("fastaug::influence_score_backward", _ops.influence_score_backward,
                                              grad, h, logits, target, s)
    if needs[3]:
        # d score_i / d S = delta_i h~_i^T, summed with the incoming weights; in the dtype of s even
        # when the backward runs inside an autocast region (which would run the matmul in half).
        with autocast_off(s.device.type):
            delta = torch.softmax(logits.to(s.dtype), dim=1)
            delta = delta - torch.nn.functional.one_hot(target, logits.shape[1]).to(delta.dtype)
            gd = delta * grad.to(s.dtype).unsqueeze(1)
            grad_s = torch.cat([gd.t() @ h.to(s.dtype), gd.sum(0).unsqueeze(1)], dim=1)
    return (grad_h if needs[0] else None), (grad_logits if needs[1] else None), None, grad_s


_functorch.register_autograd("fastaug::influence_score", _score_backward, _score_setup_context)


def _hvp_setup_context(ctx, inputs, output):
    h, p, v, weight, scale, damping = inputs
    ctx.save_for_backward(h, p, weight)
    ctx.scale, ctx.damping = scale, damping


def _hvp_backward(ctx, grad):
    h, p, weight = ctx.saved_tensors
    needs = ctx.needs_input_grad
    if needs[0] or needs[1] or needs[3]:
        raise RuntimeError("last_layer_hvp is differentiable with respect to v only (the features h, the "
                           "probabilities p and the weights enter through the Hessian); detach them")
    # H (damped) is symmetric: the vector-Jacobian product of v -> Hv is H grad.
    grad_v = (_functorch.call("fastaug::last_layer_hvp", _ops.last_layer_hvp, h, p, grad, weight, ctx.scale,
                              ctx.damping) if needs[2] else None)
    return None, None, grad_v, None, None, None


_functorch.register_autograd("fastaug::last_layer_hvp", _hvp_backward, _hvp_setup_context)

# Orders: last_layer_hvp is linear in v and its backward is the op itself, so every order in v is
# exact (h, p, weight raise above). influence_score is differentiable once in h and logits: the
# score is already a Hessian-inverse-weighted gradient, and nothing in fastaug differentiates it twice.
refuse_second_order(
    "fastaug::influence_score_backward", 5,
    "fastaug.influence_score is differentiable once in h and logits: gradients of its gradient (double "
    "backward) are not supported",
)
# Autocast: float32 (h, p, v, weight, logits, s), as softmax and the losses under autocast; the
# kernels' own ATen GEMMs then stay float32 too (they would run in bfloat16 inside an autocast region).
register_float32_autocast("fastaug::last_layer_hvp", "fastaug::influence_score", "fastaug::influence_score_backward")
