// Learned transformation family (docs/design.md K2): `appearance` (per-pixel colour filter with
// box-smoothed parameters) and `transform` (the fused spatial + appearance transformation from the raw
// parameter map of the generator G). Schemas live in csrc/fastaug.cpp; CPU kernels in appearance_cpu.cpp
// and transform_cpu.cpp, CUDA kernels in appearance_cuda.cu and transform_cuda.cu.
//
// Parameter map layout of `transform` (channels, in order): s_w (4, row-major 2x2), s_b (2),
// c_w (C*C, row-major: output channel i gets sum_j c_w[C*i + j] * x_j), c_b (C): 18 for RGB, 8 for grey.
#pragma once

#include <torch/all.h>

#include "common/host_device.h"
#include "common/affine_flow.h"
#include "common/box_filter.h"
#include "common/checks.h"
#include "common/sampling.h"

namespace fastaug {

// Composition modes of `transform` (the `mode` integer of the schema).
enum TransformMode : int64_t { kParallel = 0, kSerial = 1 };

// Offsets of the parameter groups inside the raw map of `transform` (kSpatialParams: affine_flow.h).
FASTAUG_HD constexpr int colour_params(int C) { return C * C + C; }
FASTAUG_HD constexpr int transform_params(int C) { return kSpatialParams + colour_params(C); }

// The colour filter at one pixel, the one copy used by both ops on CPU and CUDA:
//   out_c = y_c + (c_b[c] + sum_q c_w[C c + q] src_q)
// with y the image the change is added to and src the image it is computed from (the same image,
// except in parallel mode of `transform`: y the warped sample, src x at the pixel). cw[p] / cb[c] are
// the smoothed parameters at the pixel; out may alias y or src.
template <typename T, int C>
FASTAUG_HD inline void colour_filter(const T cw[C * C], const T cb[C], const T src[C], const T y[C], T out[C]) {
  T o[C];
  for (int c = 0; c < C; ++c) {
    T d = cb[c];
    for (int q = 0; q < C; ++q) d += cw[C * c + q] * src[q];
    o[c] = y[c] + d;
  }
  for (int c = 0; c < C; ++c) out[c] = o[c];
}

// Its backward at one pixel, given g = d(loss)/d(out) (y receives g itself, c_b's smoothed map too):
// the gradient of the smoothed colour matrix, g_cw[C c + q] = g_c src_q ...
template <typename T, int C>
FASTAUG_HD inline void colour_filter_weight_grad(const T src[C], const T g[C], T g_cw[C * C]) {
  for (int c = 0; c < C; ++c)
    for (int q = 0; q < C; ++q) g_cw[C * c + q] = g[c] * src[q];
}

// ... and the gradient reaching src, g_src[q] = sum_c c_w[C c + q] g_c (C_w^T g).
template <typename T, int C>
FASTAUG_HD inline void colour_filter_input_grad(const T cw[C * C], const T g[C], T g_src[C]) {
  for (int q = 0; q < C; ++q) {
    T t = T(0);
    for (int c = 0; c < C; ++c) t += cw[C * c + q] * g[c];
    g_src[q] = t;
  }
}

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
