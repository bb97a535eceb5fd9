"""Autograd formulas for the *backward* custom ops, so that gradients of gradients are exact.

The first-order gradients come from our fused backward kernels (``fastaug::<op>_backward``). Those
ops need an autograd formula of their own for a second derivative (gradient penalties, R1,
Hessian-vector products, MAML); without one PyTorch differentiates them as constants and the second
derivative is silently zero. Two kinds of formula live here:

* :func:`register_higher_order` (warp, affine_flow_warp, appearance, transform): the backward op's
  vector-Jacobian product recomputed through the readable reference composition in
  :mod:`fastaug.reference` (grid_sample, avg_pool2d, einsum), whose first-order gradients the op tests
  hold equal to the kernels'. The second-order terms are autograd's derivatives of that same maths, on
  any device and dtype grid_sample supports, and they stay attached to the graph, so third and higher
  orders are autograd's too. It costs a reference forward and two backwards, paid only when a second
  derivative is asked for; the first-order path is untouched.
* :func:`refuse_second_order` (apply_ops, influence_score): an autograd formula that raises one
  sentence, so that differentiating those backwards fails loudly instead of returning zeros.
"""
import torch

from . import _functorch
from ._autocast import autocast_off

__all__ = ["register_higher_order", "refuse_second_order"]


def _alias(t):
    """A node for ``t`` at which autograd.grad takes a *partial* derivative.

    A view of a tensor in the graph, not a detached copy: the incoming gradient may itself depend on
    x through the caller's graph, but that path reaches x, not this alias of x, so it is not counted
    twice; and with ``create_graph`` the results stay attached to x for the next order. Tensors that
    do not require grad get a fresh leaf."""
    return t.view_as(t) if t.requires_grad else t.detach().requires_grad_()


def register_higher_order(qualname, n_tensors, reference, linear_part):
    """Register autograd on the backward op ``qualname`` through a differentiable reference.

    The backward op must have the schema ``(grad_out, t_1, ..., t_n, *static, need_x_grad) ->
    (grad_t_1, ..., grad_t_n)`` with ``t_1 = x`` (its gradient an empty tensor when ``need_x_grad`` is
    False) and the ``static`` arguments non-tensors. ``reference(tensors, static)`` must return the
    op's forward output from the n tensors, differentiably, with the kernel's maths.

    Every op here is affine in x for fixed maps: ``op(x) = A x + b``, so ``grad_x = A^T grad_out``
    does not depend on x and its derivative in grad_out is ``A`` itself. ``linear_part(v, maps,
    static)`` must return ``A v`` with the fused forward kernel (the op with its bias removed). When
    only grad_x is differentiated and only in grad_out (a gradient penalty with respect to the image
    of an op whose maps are constants), that kernel call is the whole answer.
    """
    def setup_context(ctx, inputs, output):
        grad_out, tensors = inputs[0], inputs[1:1 + n_tensors]
        ctx.save_for_backward(grad_out, *tensors)
        ctx.static, ctx.need_x_grad = tuple(inputs[1 + n_tensors:-1]), bool(inputs[-1])
        ctx.set_materialize_grads(False)  # an unused map gradient arrives as None, not zeros

    def backward(ctx, *cotangents):
        grad_out, *tensors = ctx.saved_tensors
        wanted = ctx.needs_input_grad[:1 + n_tensors]
        pairs = [(i, c) for i, c in enumerate(cotangents) if c is not None and (i > 0 or ctx.need_x_grad)]
        results = [None] * (1 + n_tensors)
        if grad_out.numel() == 0:
            # An empty output (N, C, H or W zero): every first-order gradient is an empty sum, so every
            # derivative of it is zero. The reference is not run: grid_sample and avg_pool2d refuse an
            # empty H or W ("expected input to have non-empty spatial dimensions").
            results = [torch.zeros_like(t) if w else None for t, w in zip((grad_out, *tensors), wanted)]
        elif [i for i, _ in pairs] == [0] and not any(wanted[2:]):
            # d<c, A^T grad_out>/d grad_out = A c; nothing depends on x (results[1] stays None = zero).
            results[0] = linear_part(pairs[0][1], tensors[1:], ctx.static) if wanted[0] else None
        elif pairs and any(wanted):
            if _functorch.any_active():  # the reference's torch.autograd.grad on fresh leaves is refused there
                raise RuntimeError(f"{qualname.replace('::', '.').replace('_backward', '')}: this second derivative "
                                   f"is not supported under torch.func transforms (grad of grad, jacrev of jacrev, "
                                   f"hessian); use torch.autograd.grad(..., create_graph=True) or "
                                   f"torch.autograd.functional.hessian")
            create_graph = torch.is_grad_enabled()  # the caller asked for a graph of this derivative
            # The reference in full precision whatever autocast region the backward runs in (einsum
            # would otherwise run in bfloat16 under CPU autocast).
            with torch.enable_grad(), autocast_off(grad_out.device.type):
                leaves = [_alias(t) for t in (grad_out, *tensors)]
                first = torch.autograd.grad(reference(leaves[1:], ctx.static), leaves[1:], leaves[0],
                                            create_graph=True)
                targets = [leaf for leaf, w in zip(leaves, wanted) if w]
                grads = iter(torch.autograd.grad([first[i] for i, _ in pairs], targets, [c for _, c in pairs],
                                                 allow_unused=True, create_graph=create_graph))
            results = [next(grads) if w else None for w in wanted]
        return (*results, *[None] * (len(ctx.static) + 1))

    _functorch.register_autograd(qualname, backward, setup_context)


def refuse_second_order(qualname, n_inputs, reason):
    """Register on the backward op ``qualname`` (``n_inputs`` arguments) an autograd formula that
    raises ``RuntimeError(reason)``: its gradient is then never silently zero."""
    def setup_context(ctx, inputs, output):
        pass

    def backward(ctx, *cotangents):
        raise RuntimeError(reason)

    _functorch.register_autograd(qualname, backward, setup_context)
