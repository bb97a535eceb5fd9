"""One optimiser step after the caller's forward and loss: backward, float16 grad scaling, clipping,
optimiser and scheduler step. Every training loop of the package calls :func:`optimizer_step`."""
import torch

__all__ = ["optimizer_step", "make_scaler", "autocast"]


def make_scaler(device, amp_dtype):
    """A ``torch.amp.GradScaler`` for float16 autocast on CUDA, else None (bfloat16 and float32 need none).

    Raises ValueError for float16 on a device other than CUDA."""
    if amp_dtype is None or amp_dtype in (torch.bfloat16, torch.float32):
        return None
    if torch.device(device).type != "cuda":
        raise ValueError("--amp-dtype float16 needs CUDA; use bfloat16 on CPU")
    return torch.amp.GradScaler("cuda")


def autocast(device, amp_dtype):
    """The autocast context for ``amp_dtype`` (a no-op context when None)."""
    return torch.autocast(torch.device(device).type, dtype=amp_dtype, enabled=amp_dtype is not None)


def optimizer_step(loss, optimizer, *, scheduler=None, scaler=None, clip_grad=0.0, parameters=None,
                   retain_graph=False):
    """Backward ``loss`` (a 0-d tensor) and step ``optimizer`` (and ``scheduler`` once, when given).

    Gradients are zeroed first (``set_to_none``), so the caller only computes the loss. With a
    ``scaler`` (float16 AMP) the loss is scaled, gradients unscaled before clipping, and the step
    skipped on overflow, as ``torch.amp`` prescribes. ``clip_grad`` > 0 clips the global L2 norm of
    ``parameters`` (default: every parameter of the optimiser). Returns the gradient norm before
    clipping (a 0-d tensor) when clipping, else None.
    """
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward(retain_graph=retain_graph)
        scaler.unscale_(optimizer)
    else:
        loss.backward(retain_graph=retain_graph)
    norm = None
    if clip_grad:
        if parameters is None:
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
        norm = torch.nn.utils.clip_grad_norm_(parameters, clip_grad)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return norm
