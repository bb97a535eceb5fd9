"""Autograd formulas for the *backward* custom ops, so that gradients of gradients are exact.

The first-order gradients come from our fused backward kernels (``fastaug::<op>_backward``). Those
ops need an autograd formula of their own for a second derivative (gradient penalties, R1,
Hessian-vector products, MAML); without one PyTorch differentiates them as constants and the second
derivative is silently zero. Two kinds of formula live here:

* :func:`register_second_order` (warp, affine_flow_warp, appearance, transform): the backward op's
  vector-Jacobian product recomputed through the readable reference composition in
  :mod:`fastaug.reference` (grid_sample, avg_pool2d, einsum), whose first-order gradients the op tests
  hold equal to the kernels'. The second-order terms are autograd's derivatives of that same maths, on
  any device and dtype grid_sample supports. It costs a reference forward and two backwards, paid only
  when a second derivative is asked for; the first-order path is untouched.
* :func:`refuse_second_order` (apply_ops, influence_score): an autograd formula that raises one
  sentence, so that differentiating those backwards fails loudly instead of returning zeros.

Third order is refused the same way (see :class:`_RefuseHigherOrder`).
"""
import torch

__all__ = ["register_second_order", "refuse_second_order"]


class _RefuseHigherOrder(torch.autograd.Function):
    """Identity on the second-order results that raises when it is differentiated (third order).

    The second-order results are computed from detached copies of the backward op's inputs (the
    incoming gradient may itself depend on x, and differentiating through it here would count that
    path twice), so they carry no graph. When the caller asked for one (``create_graph=True``), this
    node ties them to the inputs so that a third derivative raises instead of being silently zero.
    """

    @staticmethod
    def forward(ctx, message, n_results, *tensors):
        ctx.message = message
        return tuple(t.clone() for t in tensors[:n_results])

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(ctx.message)


def _guard_third_order(qualname, results, graph_inputs):
    """Return ``results`` (a list with None entries) tied to ``graph_inputs`` by :class:`_RefuseHigherOrder`
    when grad mode is on (the backward runs under ``create_graph=True``), unchanged otherwise."""
    if not torch.is_grad_enabled():
        return results
    inputs = [t for t in graph_inputs if t is not None and t.requires_grad]
    present = [i for i, r in enumerate(results) if r is not None]
    if not inputs or not present:
        return results
    message = (f"{qualname}: third-order gradients are not supported (fastaug's ops are differentiable twice); "
               f"use fastaug.reference for higher orders")
    guarded = _RefuseHigherOrder.apply(message, len(present), *[results[i] for i in present], *inputs)
    out = list(results)
    for i, g in zip(present, guarded):
        out[i] = g
    return out


def register_second_order(qualname, n_tensors, reference, linear_part):
    """Register autograd on the backward op ``qualname`` through a differentiable reference.

    The backward op must have the schema ``(grad_out, t_1, ..., t_n, *static, need_x_grad) ->
    (grad_t_1, ..., grad_t_n)`` with ``t_1 = x`` (its gradient an empty tensor when ``need_x_grad`` is
    False) and the ``static`` arguments non-tensors. ``reference(tensors, static)`` must return the
    op's forward output from the n tensors, differentiably, with the kernel's maths.

    Every op here is affine in x for fixed maps: ``op(x) = A x + b``, so ``grad_x = A^T grad_out``
    does not depend on x and its derivative in grad_out is ``A`` itself. ``linear_part(v, maps,
    static)`` must return ``A v`` with the fused forward kernel (the op with its bias removed). When
    only grad_x is differentiated and only in grad_out (a gradient penalty with respect to the image
    of an op whose maps are constants), that kernel call is the whole answer, exact to every order.
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
        if [i for i, _ in pairs] == [0] and not any(wanted[2:]):
            # d<c, A^T grad_out>/d grad_out = A c; nothing depends on x (results[1] stays None = zero).
            results[0] = linear_part(pairs[0][1], tensors[1:], ctx.static) if wanted[0] else None
        elif pairs and any(wanted):
            device_type = grad_out.device.type
            # The reference in full precision whatever autocast region the backward runs in (einsum
            # would otherwise run in bfloat16 under CPU autocast); detached leaves: see _RefuseHigherOrder.
            with torch.enable_grad(), torch.autocast(device_type, enabled=False):
                leaves = [t.detach().requires_grad_() for t in (grad_out, *tensors)]
                y = reference(leaves[1:], ctx.static)
                first = torch.autograd.grad(y, leaves[1:], leaves[0], create_graph=True)
                outs = [first[i] for i, _ in pairs]
                cots = [c for _, c in pairs]
                targets = [leaf for leaf, w in zip(leaves, wanted) if w]
                grads = iter(torch.autograd.grad(outs, targets, cots, allow_unused=True))
            results = [next(grads) if w else None for w in wanted]
            results = _guard_third_order(qualname, results, [grad_out, *tensors, *cots])
        static_nones = [None] * (len(ctx.static) + 1)
        return (*results, *static_nones)

    torch.library.register_autograd(qualname, backward, setup_context=setup_context)


def refuse_second_order(qualname, n_inputs, reason):
    """Register on the backward op ``qualname`` (``n_inputs`` arguments) an autograd formula that
    raises ``RuntimeError(reason)``: its gradient is then never silently zero."""
    def setup_context(ctx, inputs, output):
        pass

    def backward(ctx, *cotangents):
        raise RuntimeError(reason)

    torch.library.register_autograd(qualname, backward, setup_context=setup_context)
