"""Forward-mode differentiation is refused loudly (torch.func.jvp / jacfwd / hessian, forward_ad).

The ops' autograd is reverse mode only (``torch.library.register_autograd`` has no forward-mode
formula). PyTorch then runs a custom op on a dual tensor as if it had no tangent, so
``torch.func.jvp(fastaug.warp, ...)`` would return a zero tangent without a word. Each public
function calls :func:`refuse_forward_ad` first, so a tangent reaching an op raises one sentence.
Reverse mode, to any order, is what the image ops support (``_higher_order.py``).
"""
import torch
import torch.autograd.forward_ad as fwAD

__all__ = ["refuse_forward_ad"]


def refuse_forward_ad(op, *values):
    """Raise RuntimeError when a tensor among ``values`` carries a forward-mode tangent."""
    # A module-level integer read on the common path: no dual level is open outside forward mode.
    if fwAD._current_level < 0 or torch.compiler.is_compiling():
        return
    if any(isinstance(v, torch.Tensor) and fwAD.unpack_dual(v).tangent is not None for v in values):
        raise forward_ad_refusal(op)


def forward_ad_refusal(op):
    """The RuntimeError a forward-mode derivative of ``fastaug.<op>`` raises."""
    return RuntimeError(f"fastaug.{op} does not support forward-mode differentiation (torch.func.jvp, jacfwd, "
                        f"hessian, torch.autograd.forward_ad); use reverse mode (torch.autograd.grad, "
                        f"torch.autograd.functional.hvp / hessian)")
