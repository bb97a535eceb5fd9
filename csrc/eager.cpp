// The eager path's entry points (fastaug/ops/_eager.py): each registered op called through the
// dispatcher below the Autograd key, from C++, as torch's own Python bindings call their ops. The
// dispatcher still picks the backend kernel (CPU or CUDA) and runs any key left below Autograd; what
// goes is Python's boxed call of the op (argument parsing against the schema, an IValue per argument),
// which is most of a small call's time (benchmarks/experiments/call_overhead.py). Forward ops and their
// backward ops; the influence family keeps its Python calls (its ops are not on a per-image path).
// Also here, the two per-call decisions of the eager path that are cheaper in C++ than in Python:
// whether a graph is needed (grad mode and an input that requires grad) and whether the dispatch
// state leaves the registered path nothing to do (fastaug/ops/_eager.py, plain()). When an image op
// needs a graph, its node is built here too (eager_graph.h).
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/core/impl/TorchDispatchModeTLS.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/extension.h>

#include "eager.h"
#include "eager_graph.h"

namespace fastaug {
namespace {

// Binds module.<py_name>(args...) to the op `qualname` of signature R(A...), called below Autograd;
// returns the op's handle.
template <typename R, typename... A>
c10::TypedOperatorHandle<R(A...)> bind_below_autograd(pybind11::module_& module, const char* py_name,
                                                      const char* qualname) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(qualname, "").typed<R(A...)>();
  module.def(py_name, [op](A... args) -> R { return call_below_autograd<R, A...>(op, args...); });
  return op;
}

inline bool needs_grad(const at::Tensor& t) { return t.defined() && t.requires_grad(); }
template <typename V>
inline bool needs_grad(const V&) { return false; }
// Whether a call with these arguments needs a graph: grad mode on and a tensor argument that requires
// grad, the test of torch._C._any_requires_grad.
template <typename... A>
inline bool graph_needed(const A&... args) {
  return at::GradMode::is_enabled() && (needs_grad(args) || ...);
}

// Binds module.<py_name>(args...) as above and module.<py_name>_or(graph_path): a builtin callable
// that takes the same arguments and calls graph_path(*args) (the op's autograd.Function.apply) when
// a graph is needed (graph_needed) and the op below Autograd otherwise. The public function calls it
// directly: no Python frame between the wrapper and the dispatcher.
template <typename R, typename... A>
c10::TypedOperatorHandle<R(A...)> bind_eager_forward(pybind11::module_& module, const char* py_name,
                                                     const char* qualname) {
  const auto op = bind_below_autograd<R, A...>(module, py_name, qualname);
  module.def((std::string(py_name) + "_or").c_str(), [op](pybind11::function graph_path) {
    return pybind11::cpp_function([op, graph_path](A... args) -> pybind11::object {
      if (graph_needed(args...)) return graph_path(args...);
      return pybind11::cast(call_below_autograd<R, A...>(op, args...));
    });
  });
  return op;
}

// Binds module.<py_name>(args...) as above and module.<py_name>_call(args...): the graph of the op's
// autograd formula built in C++ (eager_graph.h) when one is needed (as in bind_eager_forward), the op
// below Autograd otherwise. The image ops' public functions call it (AutogradOp.call).
template <typename Spec, typename... A>
void bind_image_op(pybind11::module_& module, const char* py_name) {
  const auto op = bind_below_autograd<at::Tensor, A...>(module, py_name, Spec::kForward);
  module.def((std::string(py_name) + "_call").c_str(), [op](A... args) -> at::Tensor {
    if (graph_needed(args...)) return eager::ImageOpGraph<Spec, A...>::apply(args...);
    return call_below_autograd<at::Tensor, A...>(op, args...);
  });
}

// True when no context is active that the registered path handles and the eager path does not:
// autocast on any device, a functorch transform, a TorchDispatchMode (FakeTensorMode included) or a
// torch.jit trace. The same tests as torch._C's _is_any_autocast_enabled,
// _are_functorch_transforms_active, _len_torch_dispatch_stack and _get_tracing_state, in one call.
bool dispatch_state_is_plain() {
  const auto tls = c10::impl::tls_local_dispatch_key_set();
  // at::autocast::is_autocast_enabled(device) is "the device's Autocast key is not excluded"; one
  // read of the thread-local sets answers it for every device at once.
  if (!(c10::autocast_dispatch_keyset - tls.excluded_).empty()) return false;
  if (tls.included_.has(c10::DispatchKey::FuncTorchDynamicLayerFrontMode) ||
      tls.included_.has(c10::DispatchKey::FuncTorchDynamicLayerBackMode)) {
    return false;
  }
  return c10::impl::TorchDispatchModeTLS::stack_len() == 0 && !torch::jit::tracer::isTracing();
}

// The same as a CPython builtin without arguments: pybind11's call machinery would double its cost,
// and plain() runs on every call of a public function.
PyObject* dispatch_state_is_plain_py(PyObject*, PyObject*) { return PyBool_FromLong(dispatch_state_is_plain()); }
PyMethodDef dispatch_state_is_plain_def = {"_dispatch_state_is_plain", dispatch_state_is_plain_py, METH_NOARGS,
                                           "True when no autocast, functorch transform, TorchDispatchMode or "
                                           "torch.jit trace is active (fastaug/ops/_eager.py, plain())."};

using T = const at::Tensor&;

}  // namespace

void bind_eager_ops(pybind11::module_& module) {
  using T2 = std::tuple<at::Tensor, at::Tensor>;
  using T3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
  module.add_object("_dispatch_state_is_plain",
                    pybind11::reinterpret_steal<pybind11::object>(
                        PyCFunction_NewEx(&dispatch_state_is_plain_def, nullptr, module.attr("__name__").ptr())));
  // The signatures are the schemas' of csrc/fastaug.cpp (typed() checks them when the module loads).
  bind_image_op<eager::Warp, T, T, int64_t, bool>(module, "_eager_warp");
  bind_below_autograd<T2, T, T, T, int64_t, bool, bool>(module, "_eager_warp_backward", "fastaug::warp_backward");
  bind_image_op<eager::AffineFlowWarp, T, T, T, int64_t, int64_t>(module, "_eager_affine_flow_warp");
  bind_below_autograd<T3, T, T, T, T, int64_t, int64_t, bool>(module, "_eager_affine_flow_warp_backward",
                                                              "fastaug::affine_flow_warp_backward");
  bind_image_op<eager::Appearance, T, T, T, int64_t>(module, "_eager_appearance");
  bind_below_autograd<T3, T, T, T, T, int64_t, bool>(module, "_eager_appearance_backward",
                                                     "fastaug::appearance_backward");
  bind_image_op<eager::Transform, T, T, int64_t, int64_t, int64_t>(module, "_eager_transform");
  bind_below_autograd<T2, T, T, T, int64_t, int64_t, int64_t, bool>(module, "_eager_transform_backward",
                                                                    "fastaug::transform_backward");
  const ApplyOpsHandle apply_ops =
      bind_eager_forward<at::Tensor, T, T, T, T, T, T, T, int64_t>(module, "_eager_apply_ops", "fastaug::apply_ops");
  bind_below_autograd<T2, T, T, T, T, T, T, T, T, int64_t, bool>(module, "_eager_apply_ops_backward",
                                                                 "fastaug::apply_ops_backward");
  bind_apply_ops_eager(module, apply_ops);
}

}  // namespace fastaug
