// The eager path's entry points (fastaug/ops/_eager.py): each registered op called through the
// dispatcher below the Autograd key, from C++, as torch's own Python bindings call their ops. The
// dispatcher still picks the backend kernel (CPU or CUDA) and runs any key left below Autograd; what
// goes is Python's boxed call of the op (argument parsing against the schema, an IValue per argument),
// which is most of a small call's time (benchmarks/experiments/call_overhead.py). Forward ops and their
// backward ops; the influence family keeps its Python calls (its ops are not on a per-image path).
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/extension.h>

#include "eager.h"

namespace fastaug {
namespace {

// Binds module.<py_name>(args...) to the op `qualname` of signature R(A...), called below Autograd.
template <typename R, typename... A>
void bind_below_autograd(pybind11::module_& module, const char* py_name, const char* qualname) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(qualname, "").typed<R(A...)>();
  module.def(py_name, [op](A... args) -> R {
    pybind11::gil_scoped_release no_gil;  // as torch's bindings do: the kernel may run long, on threads
    at::AutoDispatchBelowAutograd guard;
    return op.call(args...);
  });
}

using T = const at::Tensor&;

}  // namespace

void bind_eager_ops(pybind11::module_& module) {
  using T2 = std::tuple<at::Tensor, at::Tensor>;
  using T3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
  // The signatures are the schemas' of csrc/fastaug.cpp (typed() checks them when the module loads).
  bind_below_autograd<at::Tensor, T, T, int64_t, bool>(module, "_eager_warp", "fastaug::warp");
  bind_below_autograd<T2, T, T, T, int64_t, bool, bool>(module, "_eager_warp_backward", "fastaug::warp_backward");
  bind_below_autograd<at::Tensor, T, T, T, int64_t, int64_t>(module, "_eager_affine_flow_warp",
                                                             "fastaug::affine_flow_warp");
  bind_below_autograd<T3, T, T, T, T, int64_t, int64_t, bool>(module, "_eager_affine_flow_warp_backward",
                                                              "fastaug::affine_flow_warp_backward");
  bind_below_autograd<at::Tensor, T, T, T, int64_t>(module, "_eager_appearance", "fastaug::appearance");
  bind_below_autograd<T3, T, T, T, T, int64_t, bool>(module, "_eager_appearance_backward",
                                                     "fastaug::appearance_backward");
  bind_below_autograd<at::Tensor, T, T, int64_t, int64_t, int64_t>(module, "_eager_transform", "fastaug::transform");
  bind_below_autograd<T2, T, T, T, int64_t, int64_t, int64_t, bool>(module, "_eager_transform_backward",
                                                                    "fastaug::transform_backward");
  bind_below_autograd<at::Tensor, T, T, T, T, T, T, T, int64_t>(module, "_eager_apply_ops", "fastaug::apply_ops");
  bind_below_autograd<T2, T, T, T, T, T, T, T, T, int64_t, bool>(module, "_eager_apply_ops_backward",
                                                                 "fastaug::apply_ops_backward");
}

}  // namespace fastaug
