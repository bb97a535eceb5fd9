// The eager path's C++ entry points (csrc/eager.cpp), added to the pybind11 module in fastaug.cpp.
#pragma once

#include <torch/extension.h>

namespace fastaug {
void bind_eager_ops(pybind11::module_& module);
}  // namespace fastaug
