"""The eager call path of the differentiable ops: the registered op without per-call Python work it
does not need (docs/design.md, How an op is built, step 5).

``torch.library.register_autograd`` puts a Python kernel at the op's Autograd dispatch key. Every
call of the op passes through it, grad or not: without grad it decides in Python that no graph is
needed and calls back into the dispatcher; with grad it runs a generated ``autograd.Function``
that also re-fills the schema's defaults and calls back into the dispatcher. At 1x8x8 that is most
of an op's time (``benchmarks/compare_builds.py``, the "fixed cost" cases). :func:`register` keeps
that registration -- direct ``torch.ops.fastaug`` calls, ``torch.compile``, ``opcheck``, export and
functorch use it -- and returns an :class:`AutogradOp` the public function calls instead, which
runs the same formula (the same ``setup_context`` and ``backward`` functions) with less Python:

* no graph needed (grad mode off, or no input requires grad): the op called below the Autograd key,
  which is what the registered kernel ends up doing;
* a graph needed: for the image ops (warp, affine_flow_warp, appearance, transform) a C++
  ``torch::autograd::Function`` of the same formula (``csrc/eager_graph.h``: the op's tensor
  arguments and the others saved, ``<op>_backward(grad, arguments..., need_x_grad)`` in the backward),
  which costs 4-6 us less a forward and backward than Python's; for apply_ops a plain
  ``autograd.Function`` whose forward calls the op below the Autograd key and then the registered
  ``setup_context``, and whose backward is the registered ``backward``.

The choice between the two is made in C++ too (``fastaug._C._eager_<op>_call``, or
``fastaug._C._eager_<op>_or`` around the Python function), so a public function reaches the
dispatcher through no Python frame of its own.

"Called below the Autograd key" goes through ``fastaug._C._eager_<op>`` (csrc/eager.cpp): the same
dispatcher call made from C++, with the exclusion of the Autograd keys set there, as torch's own
bindings call their ops. Python's boxed call of an ``OpOverload`` (each argument parsed against the
schema into an IValue) costs about 2 us more, most of a 1x8x8 call
(``benchmarks/experiments/call_overhead.py``).

Both registrations share one more saving: the backward formula calls the ``<op>_backward`` op through
a :class:`BackwardOp`, which calls it below the Autograd key when no graph of the gradient is being
built (grad mode off in the backward, i.e. ``create_graph=False``), skipping that op's own Python
autograd kernel (``_higher_order.py``, which only matters for second derivatives), and from C++
when :func:`plain` allows.

:func:`plain` says when a public function may take this path: not under ``torch.compile`` (dynamo
traces the registered op), a functorch transform (``vmap``), autocast (the wrappers' cast and the
registered Autocast kernels), forward-mode AD (refused, ``_forward_ad.py``), a ``TorchDispatchMode``
(``FakeTensorMode`` runs the fake kernels, which check less than the wrappers: no CUDA build there),
a ``__torch_function__`` override (a tensor subclass or a ``TorchFunctionMode``) or a
``torch.jit.trace``: each of those keeps the path it had.

On that path a public function skips its Python checks: the C++ entry point checks every tensor
argument (``csrc/common/checks.h``) and so does the fake kernel of a meta tensor. When the call
raises what a refused argument raises (:data:`REFUSED`; anything else reaches the caller as it is),
the function takes its full path -- its checks first, which raise the one-sentence
``ValueError`` / ``TypeError`` -- and only a failure they do not explain reaches the caller as the
kernel's own error. Scalar arguments (modes, ``smooth``) are still checked in Python where the
schema would take a wrong type (a bool as an int).
"""
import torch
import torch.autograd.forward_ad as fwAD

from .. import _C as _extension
from . import _functorch

__all__ = ["AutogradOp", "BackwardOp", "REFUSED", "plain", "register"]

# What a refused argument raises on the eager path, which a public function then retries on its full
# path for its one sentence: the wrappers' lookup of a mode's name (KeyError), pybind11's conversion of
# the arguments (TypeError; OverflowError for an int out of range), the kernels' checks (TORCH_CHECK:
# RuntimeError) and apply_ops' value checks (ValueError). Nothing broader: an exception
# raised through the call from elsewhere must reach the caller unretried -- non-reentrant
# torch.utils.checkpoint stops its recomputation by raising from a saved-tensor hook, and a retry on
# the full path recomputed the op a second time and failed the backward.
REFUSED = (KeyError, TypeError, OverflowError, RuntimeError, ValueError)

_C = torch._C
_dispatch_state_is_plain = _extension._dispatch_state_is_plain


def plain(*values):
    """True when a public function called with ``values`` (its tensor arguments; other values are
    ignored) may call its :class:`AutogradOp` directly (see the module docstring)."""
    # is_compiling first: dynamo folds it to True and traces none of the rest. The dispatch state
    # (autocast, functorch, dispatch modes, tracing) is read in one C++ call (csrc/eager.cpp): four
    # torch._C calls cost twice as much, on every call of a public function.
    return (not torch.compiler.is_compiling() and fwAD._current_level < 0 and _dispatch_state_is_plain()
            and not _C._has_torch_function(values))


def _op_and_entry(qualname):
    """(the registered op ``torch.ops.<namespace>.<name>.default``, its C++ entry below the Autograd
    key ``fastaug._C._eager_<name>``)."""
    namespace, name = qualname.split("::")
    return getattr(getattr(torch.ops, namespace), name).default, getattr(_extension, f"_eager_{name}")


class AutogradOp:
    """A registered op (``torch.ops.fastaug.<name>.default``) called with its autograd formula.

    ``op.call(*args)`` takes the op's schema arguments, positionally. When a graph is needed -- grad
    mode on and a tensor argument that requires grad -- it builds the registered formula's graph: an
    image op's is built in C++ (``fastaug._C._eager_<name>_call``, csrc/eager_graph.h), any other
    op's by ``op.function.apply(*args)`` (a plain ``autograd.Function``, called from the builtin
    ``fastaug._C._eager_<name>_or``). Otherwise it calls the op below the Autograd key, with no
    Python frame in between. ``op.op`` is the registered op and ``op.below_autograd`` its C++ entry
    below the Autograd key.
    """

    def __init__(self, qualname, backward, setup_context):
        name = qualname.split("::")[1]
        self.qualname = qualname
        self.op, self.below_autograd = _op_and_entry(qualname)

        def forward(ctx, *args):
            out = self.below_autograd(*args)
            setup_context(ctx, args, out)
            return out

        self.function = type(f"{name}_eager", (torch.autograd.Function,),
                             {"forward": staticmethod(forward), "backward": staticmethod(backward)})
        graph_in_cpp = getattr(_extension, f"_eager_{name}_call", None)
        self.call = graph_in_cpp or getattr(_extension, f"_eager_{name}_or")(self.function.apply)

    def registered(self, *args):
        """The registered op ``self.op(*args)``, through its functorch-ready formula while a ``torch.func``
        differentiation transform is active (``_functorch.py``: the registered one is refused there)."""
        return _functorch.call(self.qualname, self.op, *args)


class BackwardOp:
    """A backward op (``torch.ops.fastaug.<name>.default``) as the backward formulas call it. With a
    graph of the gradient being built (grad mode on: ``create_graph``) through every dispatch key, so
    the op records its own autograd; without one below the Autograd key: from C++
    (``fastaug._C._eager_<name>``) when :func:`plain` allows, else the registered op under
    ``_AutoDispatchBelowAutograd`` (torch.compile, functorch, dispatch modes: the path they trace)."""

    def __init__(self, qualname):
        self.qualname = qualname
        self.op, self.below_autograd = _op_and_entry(qualname)

    def __call__(self, *args):
        if _C.is_grad_enabled():
            return _functorch.call(self.qualname, self.op, *args)
        if plain(*args):
            return self.below_autograd(*args)
        with _C._AutoDispatchBelowAutograd():
            return self.op(*args)


def register(qualname, backward, setup_context):
    """``torch.library.register_autograd(qualname, backward, setup_context=...)``, and the
    :class:`AutogradOp` of the same formula. ``backward`` calls its backward op through a
    :class:`BackwardOp`."""
    _functorch.register_autograd(qualname, backward, setup_context)
    return AutogradOp(qualname, backward, setup_context)
