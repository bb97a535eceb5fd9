// Flow warp family: `warp` (per-pixel displacement in pixels, DESIGN.md K1) and `affine_flow_warp`
// (the seed's per-pixel affine flow with box smoothing, DESIGN.md K2 spatial half).
// Schemas live in csrc/fastaug.cpp; CPU kernels in warp_cpu.cpp, CUDA kernels in warp_cuda.cu.
#pragma once

#include <torch/all.h>

#include <tuple>

#include "common/checks.h"

namespace fastaug {

// The largest box window we accept: the CUDA kernels smooth a tile plus a (smooth - 1) halo in
// shared memory, and windows wider than this are far beyond any use of the smoothing.
constexpr int64_t kMaxSmooth = 64;

inline void check_warp_inputs(const at::Tensor& x, const at::Tensor& flow, int64_t padding_mode) {
  check_dim(x, 4, "x");
  check_floating(x, "x");
  check_map(flow, "flow", 2, x);
  check_padding_mode(padding_mode);
}

inline void check_affine_flow_inputs(const at::Tensor& x, const at::Tensor& s_w, const at::Tensor& s_b,
                                     int64_t smooth, int64_t padding_mode) {
  check_dim(x, 4, "x");
  check_floating(x, "x");
  check_map(s_w, "s_w", 4, x);
  check_map(s_b, "s_b", 2, x);
  TORCH_CHECK(smooth >= 1 && smooth <= kMaxSmooth, "smooth must be in [1, ", kMaxSmooth, "], got ", smooth);
  check_padding_mode(padding_mode);
}

}  // namespace fastaug
