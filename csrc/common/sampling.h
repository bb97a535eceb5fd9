// Bilinear sampling helpers shared by the CPU and CUDA kernels of every family that warps.
//
// The maths mirrors torch.nn.functional.grid_sample exactly (ATen's GridSampler.h), so the
// kernels can be tested against it: padding is applied to the *coordinate* (clip for "border",
// reflect-then-clip for "reflection"), and its derivative multiplies the coordinate gradient.
#pragma once


#include <cmath>
#include <cstdint>

#include "common/host_device.h"

namespace fastaug {

// Values of the `padding_mode` integer argument of every op in the schema.
enum PaddingMode : int64_t { kZeros = 0, kBorder = 1, kReflection = 2 };

// Clip a pixel coordinate into [0, size - 1]. *grad receives d(out)/d(in).
template <typename T>
FASTAUG_HD inline T clip_coordinate(T in, int64_t size, T* grad) {
  if (in <= T(0)) {
    *grad = T(0);
    return T(0);
  }
  const T hi = static_cast<T>(size - 1);
  if (in >= hi) {
    *grad = T(0);
    return hi;
  }
  *grad = T(1);
  return in;
}

// Reflect a coordinate into [twice_low / 2, twice_high / 2]. *grad receives d(out)/d(in) (+-1).
// Uses the parity of floor(in / span) in floating point so huge inputs cannot overflow an int.
template <typename T>
FASTAUG_HD inline T reflect_coordinate(T in, int64_t twice_low, int64_t twice_high, T* grad) {
  if (twice_low == twice_high) {
    *grad = T(0);
    return T(0);
  }
  T sign = T(1);
  const T low = static_cast<T>(twice_low) / 2;
  const T span = static_cast<T>(twice_high - twice_low) / 2;
  in = in - low;
  if (in < T(0)) {
    sign = -sign;
    in = -in;
  }
  const T extra = ::fmod(in, span);
  const T flips = ::floor(in / span);
  if (::fmod(flips, T(2)) == T(0)) {
    *grad = sign;
    return extra + low;
  }
  *grad = -sign;
  return span - extra + low;
}

// Apply the padding mode to a pixel coordinate along an axis of `size` pixels.
// align_corners only matters for reflection: about pixel edges (false) or pixel centres (true).
template <typename T>
FASTAUG_HD inline T pad_coordinate(T coord, int64_t size, int64_t padding_mode, bool align_corners,
                                        T* grad) {
  if (padding_mode == kBorder) return clip_coordinate(coord, size, grad);
  if (padding_mode == kReflection) {
    T g_reflect, g_clip;
    coord = align_corners ? reflect_coordinate(coord, 0, 2 * (size - 1), &g_reflect)
                          : reflect_coordinate(coord, -1, 2 * size - 1, &g_reflect);
    coord = clip_coordinate(coord, size, &g_clip);
    *grad = g_reflect * g_clip;
    return coord;
  }
  *grad = T(1);
  return coord;
}

// Source location (pixel units, padding applied) of output pixel (i, j) of `warp`, displaced by the
// flow (fx, fy) in pixels (docs/design.md K1); mx/my receive the padding derivatives d(ix)/d(fx),
// d(iy)/d(fy).
template <typename T>
FASTAUG_HD inline void flow_source(T fx, T fy, int64_t i, int64_t j, int64_t H, int64_t W, int64_t padding_mode,
                                   bool align_corners, T* ix, T* iy, T* mx, T* my) {
  *ix = pad_coordinate(static_cast<T>(j) + fx, W, padding_mode, align_corners, mx);
  *iy = pad_coordinate(static_cast<T>(i) + fy, H, padding_mode, align_corners, my);
}

// The four neighbours of a sampling point: flat offsets into one H*W plane, bilinear weights and
// validity (zero padding). Invalid corners get offset 0 and weight 0 so reads stay in bounds.
// Corner order: 0 = (y0, x0), 1 = (y0, x0 + 1), 2 = (y0 + 1, x0), 3 = (y0 + 1, x0 + 1).
template <typename T>
struct Corners {
  int64_t offset[4];
  T weight[4];
  bool valid[4];
  T tx, ty;  // fractional position inside the cell, needed by the coordinate gradient
};

template <typename T>
FASTAUG_HD inline Corners<T> bilinear_corners(T ix, T iy, int64_t H, int64_t W) {
  Corners<T> c;
  // Far outside (or NaN): no corner can be valid. Checking first also keeps floor() -> int64 safe.
  if (!(ix >= T(-1) && ix <= static_cast<T>(W) && iy >= T(-1) && iy <= static_cast<T>(H))) {
    for (int k = 0; k < 4; ++k) {
      c.offset[k] = 0;
      c.weight[k] = T(0);
      c.valid[k] = false;
    }
    c.tx = c.ty = T(0);
    return c;
  }
  const T fx = ::floor(ix), fy = ::floor(iy);
  const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
  c.tx = ix - fx;
  c.ty = iy - fy;
  const T w[4] = {(T(1) - c.tx) * (T(1) - c.ty), c.tx * (T(1) - c.ty), (T(1) - c.tx) * c.ty, c.tx * c.ty};
  const bool vx0 = x0 >= 0 && x0 < W, vx1 = x0 + 1 >= 0 && x0 + 1 < W;
  const bool vy0 = y0 >= 0 && y0 < H, vy1 = y0 + 1 >= 0 && y0 + 1 < H;
  const bool v[4] = {vy0 && vx0, vy0 && vx1, vy1 && vx0, vy1 && vx1};
  const int64_t o[4] = {y0 * W + x0, y0 * W + x0 + 1, (y0 + 1) * W + x0, (y0 + 1) * W + x0 + 1};
  for (int k = 0; k < 4; ++k) {
    c.valid[k] = v[k];
    c.offset[k] = v[k] ? o[k] : 0;
    c.weight[k] = v[k] ? w[k] : T(0);
  }
  return c;
}

// Bilinear sample of one plane xc (read as scalar_t, accumulated in T) at the corners k: invalid
// corners carry weight 0 and offset 0, so every read stays in bounds.
template <typename T, typename scalar_t>
FASTAUG_HD inline T bilinear_sample(const scalar_t* xc, const Corners<T>& k) {
  T v = T(0);
  for (int q = 0; q < 4; ++q) v += k.weight[q] * static_cast<T>(xc[k.offset[q]]);
  return v;
}

// The four corner values of plane xc, 0 for invalid corners (what bilinear_coordinate_grad takes).
template <typename T, typename scalar_t>
FASTAUG_HD inline void corner_values(const scalar_t* xc, const Corners<T>& k, T v[4]) {
  for (int q = 0; q < 4; ++q) v[q] = k.valid[q] ? static_cast<T>(xc[k.offset[q]]) : T(0);
}

// d(sample)/d(ix) and d(sample)/d(iy) at fractional cell position (tx, ty), given the four corner
// values (0 for invalid corners). The CPU row kernels call this form (their taps store tx, ty).
template <typename T>
FASTAUG_HD inline void bilinear_coordinate_grad(T tx, T ty, const T v[4], T* d_ix, T* d_iy) {
  *d_ix = (v[1] - v[0]) * (T(1) - ty) + (v[3] - v[2]) * ty;
  *d_iy = (v[2] - v[0]) * (T(1) - tx) + (v[3] - v[1]) * tx;
}

template <typename T>
FASTAUG_HD inline void bilinear_coordinate_grad(const Corners<T>& c, const T v[4], T* d_ix, T* d_iy) {
  bilinear_coordinate_grad(c.tx, c.ty, v, d_ix, d_iy);
}

// Normalised coordinate of pixel index `i` along an axis of `size` pixels (align_corners=False), the
// convention of docs/design.md K2 / grid_sample: pixel centres at (2i + 1) / size - 1.
template <typename T>
FASTAUG_HD inline T normalised_coordinate(int64_t i, int64_t size) {
  return (T(2) * static_cast<T>(i) + T(1)) / static_cast<T>(size) - T(1);
}

// Pixel coordinate of a normalised coordinate u (align_corners=False): the inverse of the above.
template <typename T>
FASTAUG_HD inline T pixel_coordinate(T u, int64_t size) {
  return ((u + T(1)) * static_cast<T>(size) - T(1)) / T(2);
}

}  // namespace fastaug
