// The per-pixel maths of the learned transformation's colour half (docs/design.md K2), the one copy
// the CPU and CUDA kernels of `appearance` and `transform` run, and the parameter layout of
// `transform`. Free of torch, so the CPU kernels' per-instruction-set copies can include it
// (common/cpu_kernels.h).
#pragma once

#include "common/affine_flow.h"
#include "common/host_device.h"

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

}  // namespace fastaug
