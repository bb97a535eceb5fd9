// Learned transformation family (DESIGN.md K2): `appearance` (per-pixel colour filter with box-smoothed
// parameters) and `transform` (the fused spatial + appearance transformation from the raw parameter
// map of the generator G). Schemas live in csrc/fastaug.cpp; CPU kernels in appearance_cpu.cpp and
// transform_cpu.cpp, CUDA kernels in appearance_cuda.cu and transform_cuda.cu.
//
// Parameter map layout of `transform` (channels, in order): s_w (4, row-major 2x2), s_b (2),
// c_w (C*C, row-major: output channel i gets sum_j c_w[C*i + j] * x_j), c_b (C): 18 for RGB, 8 for grey.
#pragma once

#include <c10/macros/Macros.h>
#include <torch/all.h>

#include "common/checks.h"
#include "common/sampling.h"

namespace fastaug {

// Widest box window accepted (the CUDA kernels smooth a tile plus a (smooth - 1) halo in shared memory).
constexpr int64_t kMaxTransformSmooth = 64;

// Composition modes of `transform` (the `mode` integer of the schema).
enum TransformMode : int64_t { kParallel = 0, kSerial = 1 };

// Offsets of the parameter groups inside the raw map of `transform`.
constexpr int kSpatialParams = 6;  // w0 w1 w2 w3 b0 b1
C10_HOST_DEVICE constexpr int colour_params(int C) { return C * C + C; }
C10_HOST_DEVICE constexpr int transform_params(int C) { return kSpatialParams + colour_params(C); }

// Source location (pixel units, padding applied) of output pixel (i, j) under the seed's eq. 20 with
// smoothed parameters w0..w3, b0, b1: s = u + S_w u + s_b in normalised coordinates
// (align_corners=False). It is evaluated as j + (W / 2) * (S_w u + s_b)_x, which equals
// pixel_coordinate(s_x) exactly in real arithmetic and makes zero parameters land exactly on the
// pixel centre (so the identity transformation returns x bit for bit). mx/my receive
// d(ix)/d(s_x), d(iy)/d(s_y) (padding derivative times the pixel scale W/2, H/2).
template <typename T>
C10_HOST_DEVICE inline void eq20_source(T w0, T w1, T w2, T w3, T b0, T b1, int64_t i, int64_t j, int64_t H,
                                        int64_t W, int64_t padding_mode, T* ix, T* iy, T* mx, T* my) {
  const T ux = normalised_coordinate<T>(j, W), uy = normalised_coordinate<T>(i, H);
  const T half_w = static_cast<T>(W) / 2, half_h = static_cast<T>(H) / 2;
  const T dx = w0 * ux + w1 * uy + b0, dy = w2 * ux + w3 * uy + b1;
  T gx, gy;
  *ix = pad_coordinate(static_cast<T>(j) + half_w * dx, W, padding_mode, false, &gx);
  *iy = pad_coordinate(static_cast<T>(i) + half_h * dy, H, padding_mode, false, &gy);
  *mx = gx * half_w;
  *my = gy * half_h;
}

inline void check_colour_channels(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.size(1) == 1 || x.size(1) == 3, op, ": x must have 1 (grey) or 3 (RGB) channels, got shape ",
              x.sizes());
}

inline void check_smooth_window(int64_t smooth) {
  TORCH_CHECK(smooth >= 1 && smooth <= kMaxTransformSmooth, "smooth must be in [1, ", kMaxTransformSmooth,
              "], got ", smooth);
}

inline void check_appearance_inputs(const at::Tensor& x, const at::Tensor& c_w, const at::Tensor& c_b,
                                    int64_t smooth) {
  check_dim(x, 4, "x");
  check_floating(x, "x");
  check_colour_channels(x, "appearance");
  const int64_t C = x.size(1);
  check_map(c_w, "c_w", C * C, x);
  check_map(c_b, "c_b", C, x);
  check_smooth_window(smooth);
}

inline void check_transform_inputs(const at::Tensor& x, const at::Tensor& params, int64_t smooth, int64_t mode,
                                   int64_t padding_mode) {
  check_dim(x, 4, "x");
  check_floating(x, "x");
  check_colour_channels(x, "transform");
  check_map(params, "params", transform_params(static_cast<int>(x.size(1))), x);
  check_smooth_window(smooth);
  TORCH_CHECK(mode == kParallel || mode == kSerial, "mode must be 0 (parallel) or 1 (serial), got ", mode);
  check_padding_mode(padding_mode);
}

inline void check_grad_out(const at::Tensor& grad, const at::Tensor& x) {
  TORCH_CHECK(grad.sizes() == x.sizes(), "grad_out must have the shape of x ", x.sizes(), ", got ", grad.sizes());
  check_same(x, "x", grad, "grad_out");
}

}  // namespace fastaug
