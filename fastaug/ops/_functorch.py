"""The ops under ``torch.func`` transforms: ``grad``, ``vjp``, ``jacrev``, ``vmap`` over them (per-sample
gradients), and nestings of those.

``torch.library.register_autograd`` builds an ``autograd.Function`` without a ``setup_context``
staticmethod, and functorch refuses such a Function ("it must override the setup_context
staticmethod", pytorch/pytorch#168393, #170834, #179652): ``torch.func.grad`` of anything calling an
op so registered raised that internal sentence, although ``torch.autograd.grad`` of the same function
works. :func:`register_autograd` registers a formula as before and keeps it, so that :func:`call`
can run it, while a functorch transform is active, through an ``autograd.Function`` that has the
formula's own ``setup_context`` (and ``generate_vmap_rule``: the op itself is batched by PyTorch's
fallback under ``vmap``, as before). Under ``vmap`` alone the registered op is called as before.
Forward mode stays refused (``_forward_ad.py``).
"""
import torch
from torch._C._functorch import TransformType
from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

from ._forward_ad import forward_ad_refusal

__all__ = ["register_autograd", "call", "active", "any_active"]

_FUNCTIONS = {}


def register_autograd(qualname, backward, setup_context):
    """``torch.library.register_autograd(qualname, backward, setup_context=...)``, and the same formula
    as a functorch-ready ``autograd.Function`` for :func:`call`."""
    torch.library.register_autograd(qualname, backward, setup_context=setup_context)
    namespace, name = qualname.split("::")
    op = getattr(getattr(torch.ops, namespace), name).default

    def forward(*args):
        return op(*args)  # autograd.Function runs its forward without grad: the op's own autograd is not recorded

    def jvp(ctx, *tangents):  # torch.func.jvp / jacfwd / hessian: the sentence of _forward_ad.py
        raise forward_ad_refusal(name.removesuffix("_backward"))

    _FUNCTIONS[qualname] = type(f"{name}_functorch", (torch.autograd.Function,),
                                {"forward": staticmethod(forward), "setup_context": staticmethod(setup_context),
                                 "backward": staticmethod(backward), "jvp": staticmethod(jvp),
                                 "generate_vmap_rule": True})


_GRAD_TRANSFORMS = (TransformType.Grad, TransformType.Jvp)


def active():
    """True while a functorch differentiation transform (grad, vjp, jacrev, jvp, ...; alone or inside or
    around vmap) is active. Not under vmap alone, where the registered op's own autograd works (batched
    by PyTorch's fallback, double backward included), nor while tracing for torch.compile, which traces
    the registered op."""
    if torch.compiler.is_compiling() or torch._C._functorch.peek_interpreter_stack() is None:
        return False
    return any(i.key() in _GRAD_TRANSFORMS for i in retrieve_all_functorch_interpreters())


def any_active():
    """True while any functorch transform is active (vmap included), except while tracing for torch.compile."""
    return not torch.compiler.is_compiling() and torch._C._functorch.peek_interpreter_stack() is not None


def call(qualname, op, *args):
    """``op(*args)`` (the registered op ``qualname``), through its functorch-ready Function while a
    functorch transform is active."""
    if active():
        return _FUNCTIONS[qualname].apply(*args)
    return op(*args)
