// Flow warp family: `warp` (per-pixel displacement in pixels, docs/design.md K1) and `affine_flow_warp`
// (the seed's per-pixel affine flow with box smoothing, docs/design.md K2 spatial half).
// Schemas live in csrc/fastaug.cpp; CPU kernels in warp_cpu.cpp, CUDA kernels in warp_cuda.cu.
#pragma once

#include <torch/all.h>

#include "common/box_filter.h"
#include "common/checks.h"

namespace fastaug {

// Every tensor argument of warp / warp_backward (grad_out may be undefined for the forward).
inline void check_warp_inputs(const at::Tensor& x, const at::Tensor& flow, int64_t padding_mode,
                              const at::Tensor* grad_out = nullptr) {
  check_image(x);
  check_map(flow, "flow", 2, x);
  if (grad_out) check_grad_out(*grad_out, x);
  check_padding_mode(padding_mode);
}

// Every tensor argument of affine_flow_warp / affine_flow_warp_backward.
inline void check_affine_flow_inputs(const at::Tensor& x, const at::Tensor& s_w, const at::Tensor& s_b,
                                     int64_t smooth, int64_t padding_mode, const at::Tensor* grad_out = nullptr) {
  check_image(x);
  check_map(s_w, "s_w", 4, x);
  check_map(s_b, "s_b", 2, x);
  if (grad_out) check_grad_out(*grad_out, x);
  check_smooth(smooth);
  check_padding_mode(padding_mode);
}

}  // namespace fastaug
