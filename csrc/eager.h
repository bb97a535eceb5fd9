// The eager path's C++ entry points (csrc/eager.cpp, csrc/eager_policy.cpp), added to the pybind11
// module in fastaug.cpp.
#pragma once

#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/extension.h>

namespace fastaug {

// The op called through the dispatcher below Autograd, the GIL released as torch's bindings do (the
// kernel may run long, on threads); the GIL is held again when the result is returned.
template <typename R, typename... A>
R call_below_autograd(const c10::TypedOperatorHandle<R(A...)>& op, A... args) {
  pybind11::gil_scoped_release no_gil;
  at::AutoDispatchBelowAutograd guard;
  return op.call(args...);
}

// fastaug::apply_ops's handle (its schema in csrc/fastaug.cpp).
using ApplyOpsHandle = c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                           const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                           const at::Tensor&, int64_t)>;

void bind_eager_ops(pybind11::module_& module);
// apply_ops's eager entry (csrc/eager_policy.cpp), calling the op through `apply_ops`.
void bind_apply_ops_eager(pybind11::module_& module, const ApplyOpsHandle& apply_ops);
}  // namespace fastaug
