// Learned transformation family (docs/design.md K2): `appearance` (per-pixel colour filter with
// box-smoothed parameters) and `transform` (the fused spatial + appearance transformation from the raw
// parameter map of the generator G). Schemas live in csrc/fastaug.cpp; CPU kernels in appearance_cpu.cpp
// and transform_cpu.cpp, CUDA kernels in appearance_cuda.cu and transform_cuda.cu.
//
// Parameter map layout of `transform` (channels, in order): s_w (4, row-major 2x2), s_b (2),
// c_w (C*C, row-major: output channel i gets sum_j c_w[C*i + j] * x_j), c_b (C): 18 for RGB, 8 for grey.
#pragma once

#include <torch/all.h>

#include "common/affine_flow.h"
#include "common/box_filter.h"
#include "common/checks.h"
#include "common/sampling.h"
#include "transform/colour_filter.h"

namespace fastaug {

inline void check_colour_channels(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.size(1) == 1 || x.size(1) == 3, "fastaug: ", op,
              ": x must have 1 (grey) or 3 (RGB) channels, got shape ", x.sizes());
}

// Every tensor argument of appearance / appearance_backward.
inline void check_appearance_inputs(const at::Tensor& x, const at::Tensor& c_w, const at::Tensor& c_b,
                                    int64_t smooth, const at::Tensor* grad_out = nullptr) {
  check_image(x);
  check_colour_channels(x, "appearance");
  const int64_t C = x.size(1);
  check_map(c_w, "c_w", C * C, x);
  check_map(c_b, "c_b", C, x);
  if (grad_out) check_grad_out(*grad_out, x);
  check_smooth(smooth);
}

// Every tensor argument of transform / transform_backward.
inline void check_transform_inputs(const at::Tensor& x, const at::Tensor& params, int64_t smooth, int64_t mode,
                                   int64_t padding_mode, const at::Tensor* grad_out = nullptr) {
  check_image(x);
  check_colour_channels(x, "transform");
  check_map(params, "params", transform_params(static_cast<int>(x.size(1))), x);
  if (grad_out) check_grad_out(*grad_out, x);
  check_smooth(smooth);
  TORCH_CHECK(mode == kParallel || mode == kSerial, "fastaug: mode must be 0 (parallel) or 1 (serial), got ", mode);
  check_padding_mode(padding_mode);
}

}  // namespace fastaug
