"""One optimiser step after the caller's forward and loss: backward, float16 grad scaling, clipping,
optimiser(s) and scheduler step. Every optimiser step of the package goes through :func:`optimizer_step`:
the classifier's, a GAN's generator and discriminator steps, two optimisers sharing one backward
(stage 4's E and G), a REINFORCE controller's, and L-BFGS fits that re-evaluate the loss (``closure``)."""
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


def _zero(optimizers):
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)


def optimizer_step(loss, optimizer, *, scheduler=None, scaler=None, clip_grad=0.0, parameters=None,
                   retain_graph=False, closure=None):
    """Backward ``loss`` (a 0-d tensor) and step ``optimizer`` (and ``scheduler`` once, when given).

    Args:
        loss: the 0-d loss to backpropagate (None when ``closure`` computes it).
        optimizer: one optimiser, or a sequence of optimisers over disjoint parameters that share this
            one backward (each learning at its own rate): every one is zeroed, the loss backpropagated
            once, and each stepped in the order given.
        scheduler: stepped once after the optimiser(s).
        scaler: a float16 ``GradScaler``: the loss is scaled, gradients unscaled before clipping, and
            a step skipped on overflow, as ``torch.amp`` prescribes.
        clip_grad: > 0 clips the global L2 norm of ``parameters`` (default: every parameter of the
            optimisers).
        retain_graph: keep the graph for a later backward.
        closure: for an optimiser that re-evaluates the loss (L-BFGS): ``closure()`` returns the loss
            (a forward only); zeroing and backward are done here, at every evaluation.

    Gradients are zeroed first (``set_to_none``), so the caller only computes the loss. Returns the
    gradient norm before clipping (a 0-d tensor) when clipping, the first loss ``optimizer.step``
    returns with a ``closure``, else None.
    """
    optimizers = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
    if closure is not None:
        if len(optimizers) != 1 or scaler is not None or clip_grad:
            raise ValueError("optimizer_step with a closure takes one optimiser, without a scaler or clipping")

        def evaluate():
            _zero(optimizers)
            value = closure()
            value.backward()
            return value

        out = optimizers[0].step(evaluate)
        if scheduler is not None:
            scheduler.step()
        return out
    _zero(optimizers)
    if scaler is not None:
        scaler.scale(loss).backward(retain_graph=retain_graph)
        for opt in optimizers:
            scaler.unscale_(opt)
    else:
        loss.backward(retain_graph=retain_graph)
    norm = None
    if clip_grad:
        if parameters is None:
            parameters = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
        norm = torch.nn.utils.clip_grad_norm_(parameters, clip_grad)
    for opt in optimizers:
        if scaler is not None:
            scaler.step(opt)
        else:
            opt.step()
    if scaler is not None:
        scaler.update()
    if scheduler is not None:
        scheduler.step()
    return norm
