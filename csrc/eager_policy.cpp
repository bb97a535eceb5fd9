// apply_ops's eager entry (fastaug/ops/policy.py, apply_ops): its parameters as the kernel takes them,
// without a copy, and on the CPU, where no graph is needed, the kernel itself, in one builtin. Done in
// Python, the parameters alone were five unsqueezes and a dozen type tests: 5 of the 9 µs of a call at
// N = 1 with (N,)-shaped parameters (benchmarks/RESULTS.md, "Issue 22: apply_ops's parameters in C++"). A
// CPython builtin taking its arguments as a C array (METH_FASTCALL), as pybind11's argument casting
// would cost about what the rest saves.
#include <torch/csrc/autograd/python_variable.h>
#include <torch/extension.h>

#include "eager.h"

namespace fastaug {
namespace {

using T = const at::Tensor&;

PyTypeObject* tensor_type = nullptr;    // torch.Tensor itself: subclasses take the checked path
ApplyOpsHandle* apply_ops_op = nullptr;  // fastaug::apply_ops (bind_eager_ops looked it up)

bool is_plain_tensor(PyObject* obj) { return Py_TYPE(obj) == tensor_type; }

// `obj` as the kernel takes it: a torch.Tensor (not a subclass) of `dtype`, made (N, L[, 2]) from the
// (N[, 2]) layout by a view when op came as (N,); undefined when it needs a conversion. Its shape is
// the kernel's to check.
at::Tensor as_is(PyObject* obj, at::ScalarType dtype, int64_t full_rank, bool op_was_1d) {
  if (!is_plain_tensor(obj)) return at::Tensor();
  const at::Tensor& t = THPVariable_Unpack(obj);
  if (t.scalar_type() != dtype) return at::Tensor();
  return op_was_1d && t.dim() == full_rank - 1 ? t.unsqueeze(1) : t;
}

// The defaults of apply_ops's full path: partner (n + 1) % N of each image n, (N,); the image centre
// (H // 2, W // 2), (2,). Written in place on the CPU: the torch ops that make them elsewhere
// (arange, remainder; a tensor copied to the device) cost several microseconds a call.
at::Tensor default_partner(int64_t N, at::Device device) {
  const auto options = at::TensorOptions().dtype(at::kLong);
  if (!device.is_cpu()) return at::remainder(at::arange(1, N + 1, options.device(device)), std::max<int64_t>(N, 1));
  at::Tensor partner = at::empty({N}, options);
  int64_t* p = partner.data_ptr<int64_t>();
  for (int64_t n = 0; n < N; ++n) p[n] = n + 1 < N ? n + 1 : 0;
  return partner;
}

at::Tensor default_center(int64_t H, int64_t W, at::Device device) {
  at::Tensor center = at::empty({2}, at::TensorOptions().dtype(at::kLong));
  center.data_ptr<int64_t>()[0] = H / 2;
  center.data_ptr<int64_t>()[1] = W / 2;
  return device.is_cpu() ? center : center.to(device);
}

// _apply_ops_eager(x, op, magnitude, sign, partner, center, fill), fill an int. Returns
// * None when a parameter needs a conversion (apply_ops then checks and converts everything);
// * the output, when x is on the CPU and no graph is needed (grad mode off, or no tensor argument
//   that requires grad): the kernel called below Autograd;
// * else the tuple (op, magnitude, sign, partner, center) as the kernel takes them (op int64 (N, L);
//   magnitude, sign float32 (N, L); partner int64 (N, L); center int64 (N, L, 2)), for apply_ops to
//   run through autograd (or, on CUDA, after its value checks).
// sign, partner and center may be None: +1, image (n + 1) % N and the image centre (H // 2, W // 2),
// as the full path makes them. Nothing is checked beyond types: the kernel checks shapes, devices and
// (on the CPU) values, and apply_ops takes its full path, which names the argument, when it refuses.
PyObject* apply_ops_eager(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 7) {
    PyErr_SetString(PyExc_TypeError,
                    "_apply_ops_eager takes 7 arguments (x, op, magnitude, sign, partner, center, fill)");
    return nullptr;
  }
  HANDLE_TH_ERRORS
  PyObject *x_obj = args[0], *op_obj = args[1], *sign_obj = args[3], *partner_obj = args[4], *center_obj = args[5];
  if (!is_plain_tensor(x_obj) || !is_plain_tensor(op_obj)) Py_RETURN_NONE;
  const at::Tensor& x = THPVariable_Unpack(x_obj);
  const at::Tensor& op = THPVariable_Unpack(op_obj);
  if (x.dim() != 4 || op.scalar_type() != at::kLong || (op.dim() != 1 && op.dim() != 2)) Py_RETURN_NONE;
  const bool op_was_1d = op.dim() == 1;
  const at::Tensor op2 = op_was_1d ? op.unsqueeze(1) : op;
  const int64_t N = op2.size(0), L = op2.size(1);
  const at::Tensor mag = as_is(args[2], at::kFloat, 2, op_was_1d);
  at::Tensor sign, partner, center;
  if (sign_obj == Py_None) {
    sign = at::ones({N, L}, x.options().dtype(at::kFloat));
  } else {
    sign = as_is(sign_obj, at::kFloat, 2, op_was_1d);
  }
  if (partner_obj == Py_None) {
    partner = default_partner(N, x.device()).unsqueeze(1).expand({N, L});
  } else {
    partner = as_is(partner_obj, at::kLong, 2, op_was_1d);
  }
  if (center_obj == Py_None) {
    center = default_center(x.size(2), x.size(3), x.device()).expand({N, L, 2});
  } else {
    center = as_is(center_obj, at::kLong, 3, op_was_1d);
  }
  if (!mag.defined() || !sign.defined() || !partner.defined() || !center.defined()) Py_RETURN_NONE;
  const bool graph = at::GradMode::is_enabled() && (x.requires_grad() || mag.requires_grad() || sign.requires_grad());
  if (!graph && x.device().is_cpu()) {
    const int64_t fill = PyLong_AsLongLong(args[6]);
    if (fill == -1 && PyErr_Occurred()) return nullptr;
    return THPVariable_Wrap(call_below_autograd<at::Tensor, T, T, T, T, T, T, T, int64_t>(
        *apply_ops_op, x, x, op2, mag, sign, partner, center, fill));
  }
  PyObject* out = PyTuple_New(5);
  if (out == nullptr) return nullptr;
  const at::Tensor* items[5] = {&op2, &mag, &sign, &partner, &center};
  for (Py_ssize_t i = 0; i < 5; ++i) {
    PyObject* item = THPVariable_Wrap(*items[i]);
    if (item == nullptr) {
      Py_DECREF(out);  // frees the items set so far
      return nullptr;
    }
    PyTuple_SET_ITEM(out, i, item);
  }
  return out;
  END_HANDLE_TH_ERRORS
}

PyMethodDef apply_ops_eager_def = {
    "_apply_ops_eager", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(apply_ops_eager)), METH_FASTCALL,
    "apply_ops's output (CPU, no graph needed), its parameters as the kernel takes them, or None "
    "(csrc/eager_policy.cpp, fastaug/ops/policy.py)."};

}  // namespace

void bind_apply_ops_eager(pybind11::module_& module, const ApplyOpsHandle& apply_ops) {
  tensor_type = reinterpret_cast<PyTypeObject*>(pybind11::module_::import("torch").attr("Tensor").ptr());
  // Kept for the life of the process, as the module's other builtins keep theirs.
  apply_ops_op = new ApplyOpsHandle(apply_ops);
  module.add_object("_apply_ops_eager",
                    pybind11::reinterpret_steal<pybind11::object>(
                        PyCFunction_NewEx(&apply_ops_eager_def, nullptr, module.attr("__name__").ptr())));
}

}  // namespace fastaug
