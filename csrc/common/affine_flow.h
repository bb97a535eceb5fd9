// The seed's eq. 20 sampling point and its adjoint: the one copy used by affine_flow_warp and
// transform, on CPU and CUDA (docs/design.md K2, "Spatial").
//
// With output coordinates u = (u_x, u_y) normalised to [-1, 1] (align_corners=False) and smoothed
// parameters w0..w3 (S_w, row-major 2x2) and b0, b1 (s_b), the source point is s = u + S_w u + s_b.
#pragma once


#include <cstdint>

#include "common/host_device.h"
#include "common/sampling.h"

namespace fastaug {

// Number of spatial parameter maps: w0 w1 w2 w3 (row-major 2x2) then b0 b1.
constexpr int kSpatialParams = 6;

// Source location (pixel units, padding applied) of output pixel (i, j) with uy = u_y(i) precomputed
// by the caller. It is evaluated as j + (W / 2) * (S_w u + s_b)_x, which equals
// pixel_coordinate(s_x) in exact arithmetic and makes zero parameters land exactly on the pixel
// centre (so the identity transformation returns x bit for bit). mx/my receive d(ix)/d(s_x) and
// d(iy)/d(s_y): the padding derivative times the pixel scale W/2, H/2.
template <typename T>
FASTAUG_HD inline void eq20_source(T w0, T w1, T w2, T w3, T b0, T b1, T uy, int64_t i, int64_t j, int64_t H,
                                        int64_t W, int64_t padding_mode, T* ix, T* iy, T* mx, T* my) {
  const T ux = normalised_coordinate<T>(j, W);
  const T half_w = static_cast<T>(W) / 2, half_h = static_cast<T>(H) / 2;
  const T dx = w0 * ux + w1 * uy + b0, dy = w2 * ux + w3 * uy + b1;
  T gx, gy;
  *ix = pad_coordinate(static_cast<T>(j) + half_w * dx, W, padding_mode, false, &gx);
  *iy = pad_coordinate(static_cast<T>(i) + half_h * dy, H, padding_mode, false, &gy);
  *mx = gx * half_w;
  *my = gy * half_h;
}

// Adjoint of eq. 20 at one pixel: from gsx = d(loss)/d(s_x) and gsy = d(loss)/d(s_y) (the
// coordinate gradient times mx, my), the gradient of the six smoothed maps, in the order
// w0 w1 w2 w3 b0 b1: s_x = u_x + w0 u_x + w1 u_y + b0, s_y = u_y + w2 u_x + w3 u_y + b1.
template <typename T>
FASTAUG_HD inline void eq20_adjoint(T gsx, T gsy, T ux, T uy, T g[kSpatialParams]) {
  g[0] = gsx * ux;
  g[1] = gsx * uy;
  g[2] = gsy * ux;
  g[3] = gsy * uy;
  g[4] = gsx;
  g[5] = gsy;
}

}  // namespace fastaug
