// CPU bilinear sampling of whole output rows, for every family that warps.
//
// A row is processed in two steps: `compute_taps` turns the row's source coordinates (already
// padded, see sampling.h) into four int32 offsets, weights and validity masks per pixel (structure
// of arrays; the portable path takes them from sampling.h's bilinear_corners, the maths the CUDA
// kernels use), then `gather_taps` / `coordinate_grad_taps` / `scatter_taps` run per channel. On
// CPUs with AVX2 the float32 versions use 8-wide intrinsics (hardware gathers), chosen at run time,
// so the package still runs on any x86-64 (and non-x86) machine. Semantics match grid_sample:
// invalid corners contribute nothing, far-away or NaN coordinates sample zero.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/sampling.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTAUG_X86_DISPATCH 1
#include <immintrin.h>
#endif

namespace fastaug {

// Per-pixel taps of one output row. Offsets index one H x W plane and are always in bounds
// (clamped); `valid` (0 or -1) says whether a corner really lies inside the image.
template <typename T>
struct RowTaps {
  std::vector<int32_t> offset[4], valid[4];
  std::vector<T> weight[4];
  std::vector<T> tx, ty;
  void resize(int64_t n) {
    for (int q = 0; q < 4; ++q) {
      offset[q].resize(n);
      valid[q].resize(n);
      weight[q].resize(n);
    }
    tx.resize(n);
    ty.resize(n);
  }
};

inline bool cpu_has_avx2() {
#ifdef FASTAUG_X86_DISPATCH
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

// ---- portable versions --------------------------------------------------------------------------

template <typename T>
inline void compute_taps_scalar(const T* ix, const T* iy, int64_t begin, int64_t end, int32_t H, int32_t W,
                                RowTaps<T>& t) {
  for (int64_t j = begin; j < end; ++j) {
    // The corners and weights of sampling.h (the maths the CUDA kernels use), stored as taps.
    const Corners<T> c = bilinear_corners(ix[j], iy[j], H, W);
    for (int q = 0; q < 4; ++q) {
      t.offset[q][j] = static_cast<int32_t>(c.offset[q]);
      t.valid[q][j] = c.valid[q] ? -1 : 0;
      t.weight[q][j] = c.weight[q];
    }
    t.tx[j] = c.tx;
    t.ty[j] = c.ty;
  }
}

template <typename T>
inline void gather_taps_scalar(const T* xc, const RowTaps<T>& t, int64_t begin, int64_t end, T* out) {
  for (int64_t j = begin; j < end; ++j) {
    T acc = T(0);
    for (int q = 0; q < 4; ++q)
      if (t.valid[q][j]) acc += t.weight[q][j] * xc[t.offset[q][j]];
    out[j] = acc;
  }
}

template <typename T>
inline void coordinate_grad_taps_scalar(const T* xc, const T* go, const RowTaps<T>& t, int64_t begin, int64_t end,
                                        T* g_ix, T* g_iy) {
  for (int64_t j = begin; j < end; ++j) {
    T v[4], d_ix, d_iy;
    for (int q = 0; q < 4; ++q) v[q] = t.valid[q][j] ? xc[t.offset[q][j]] : T(0);
    bilinear_coordinate_grad(t.tx[j], t.ty[j], v, &d_ix, &d_iy);  // sampling.h: the CUDA kernels' maths
    g_ix[j] += go[j] * d_ix;
    g_iy[j] += go[j] * d_iy;
  }
}

// ---- AVX2 float32 versions ----------------------------------------------------------------------

#ifdef FASTAUG_X86_DISPATCH
// Taps of 8 pixels, in registers.
struct Taps8 {
  __m256i offset[4];
  __m256 valid[4];  // all-ones bits where the corner is inside the image
  __m256 weight[4];
  __m256 tx, ty;
};

__attribute__((target("avx2,fma"))) inline Taps8 taps8(__m256 x, __m256 y, int32_t H, int32_t W) {
  const __m256i m1 = _mm256_set1_epi32(-1), zero = _mm256_setzero_si256(), one_i = _mm256_set1_epi32(1);
  const __m256i vW = _mm256_set1_epi32(W), vH = _mm256_set1_epi32(H);
  const __m256 one = _mm256_set1_ps(1.f);
  // max_ps returns its second operand when the first is NaN: NaN -> -2, like the scalar path.
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-2.f)), _mm256_set1_ps(float(W + 1)));
  y = _mm256_min_ps(_mm256_max_ps(y, _mm256_set1_ps(-2.f)), _mm256_set1_ps(float(H + 1)));
  const __m256 fx = _mm256_floor_ps(x), fy = _mm256_floor_ps(y);
  Taps8 t;
  t.tx = _mm256_sub_ps(x, fx);
  t.ty = _mm256_sub_ps(y, fy);
  const __m256i x0 = _mm256_cvttps_epi32(fx), y0 = _mm256_cvttps_epi32(fy);
  const __m256i x1 = _mm256_add_epi32(x0, one_i), y1 = _mm256_add_epi32(y0, one_i);
  const __m256i vx0 = _mm256_and_si256(_mm256_cmpgt_epi32(x0, m1), _mm256_cmpgt_epi32(vW, x0));
  const __m256i vx1 = _mm256_and_si256(_mm256_cmpgt_epi32(x1, m1), _mm256_cmpgt_epi32(vW, x1));
  const __m256i vy0 = _mm256_and_si256(_mm256_cmpgt_epi32(y0, m1), _mm256_cmpgt_epi32(vH, y0));
  const __m256i vy1 = _mm256_and_si256(_mm256_cmpgt_epi32(y1, m1), _mm256_cmpgt_epi32(vH, y1));
  const __m256i wm1 = _mm256_set1_epi32(W - 1), hm1 = _mm256_set1_epi32(H - 1);
  const __m256i cx0 = _mm256_min_epi32(_mm256_max_epi32(x0, zero), wm1);
  const __m256i cx1 = _mm256_min_epi32(_mm256_max_epi32(x1, zero), wm1);
  const __m256i ry0 = _mm256_mullo_epi32(_mm256_min_epi32(_mm256_max_epi32(y0, zero), hm1), vW);
  const __m256i ry1 = _mm256_mullo_epi32(_mm256_min_epi32(_mm256_max_epi32(y1, zero), hm1), vW);
  t.offset[0] = _mm256_add_epi32(ry0, cx0);
  t.offset[1] = _mm256_add_epi32(ry0, cx1);
  t.offset[2] = _mm256_add_epi32(ry1, cx0);
  t.offset[3] = _mm256_add_epi32(ry1, cx1);
  t.valid[0] = _mm256_castsi256_ps(_mm256_and_si256(vy0, vx0));
  t.valid[1] = _mm256_castsi256_ps(_mm256_and_si256(vy0, vx1));
  t.valid[2] = _mm256_castsi256_ps(_mm256_and_si256(vy1, vx0));
  t.valid[3] = _mm256_castsi256_ps(_mm256_and_si256(vy1, vx1));
  const __m256 ux = _mm256_sub_ps(one, t.tx), uy = _mm256_sub_ps(one, t.ty);
  t.weight[0] = _mm256_mul_ps(ux, uy);
  t.weight[1] = _mm256_mul_ps(t.tx, uy);
  t.weight[2] = _mm256_mul_ps(ux, t.ty);
  t.weight[3] = _mm256_mul_ps(t.tx, t.ty);
  return t;
}

__attribute__((target("avx2,fma"))) inline int64_t compute_taps_avx2(const float* ix, const float* iy, int64_t n,
                                                                     int32_t H, int32_t W, RowTaps<float>& t) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const Taps8 k = taps8(_mm256_loadu_ps(ix + j), _mm256_loadu_ps(iy + j), H, W);
    for (int q = 0; q < 4; ++q) {
      _mm256_storeu_si256((__m256i*)(t.offset[q].data() + j), k.offset[q]);
      _mm256_storeu_si256((__m256i*)(t.valid[q].data() + j), _mm256_castps_si256(k.valid[q]));
      _mm256_storeu_ps(t.weight[q].data() + j, k.weight[q]);
    }
    _mm256_storeu_ps(t.tx.data() + j, k.tx);
    _mm256_storeu_ps(t.ty.data() + j, k.ty);
  }
  return j;
}

// Sample C planes at 8 pixels straight from registers (no taps stored): the forward fast path.
__attribute__((target("avx2,fma"))) inline int64_t sample_row_avx2(const float* ix, const float* iy, int64_t n,
                                                                   int32_t H, int32_t W, const float* x, int64_t C,
                                                                   float* out, int64_t out_stride) {
  const int64_t plane = int64_t(H) * W;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const Taps8 k = taps8(_mm256_loadu_ps(ix + j), _mm256_loadu_ps(iy + j), H, W);
    for (int64_t c = 0; c < C; ++c) {
      const float* xc = x + c * plane;
      __m256 acc = _mm256_mul_ps(k.weight[0], _mm256_mask_i32gather_ps(_mm256_setzero_ps(), xc, k.offset[0], k.valid[0], 4));
      for (int q = 1; q < 4; ++q)
        acc = _mm256_fmadd_ps(k.weight[q], _mm256_mask_i32gather_ps(_mm256_setzero_ps(), xc, k.offset[q], k.valid[q], 4), acc);
      _mm256_storeu_ps(out + c * out_stride + j, acc);
    }
  }
  return j;
}

// d(loss)/d(ix), d(loss)/d(iy) of 8 pixels over C planes, from registers: the backward fast path
// when no gradient for x is needed. Writes (not accumulates) g_ix, g_iy.
__attribute__((target("avx2,fma"))) inline int64_t coordinate_grad_row_avx2(const float* ix, const float* iy,
                                                                            int64_t n, int32_t H, int32_t W,
                                                                            const float* x, const float* gout,
                                                                            int64_t gout_stride, int64_t C,
                                                                            float* g_ix, float* g_iy) {
  const int64_t plane = int64_t(H) * W;
  const __m256 one = _mm256_set1_ps(1.f);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const Taps8 k = taps8(_mm256_loadu_ps(ix + j), _mm256_loadu_ps(iy + j), H, W);
    const __m256 utx = _mm256_sub_ps(one, k.tx), uty = _mm256_sub_ps(one, k.ty);
    __m256 gx = _mm256_setzero_ps(), gy = _mm256_setzero_ps();
    for (int64_t c = 0; c < C; ++c) {
      const float* xc = x + c * plane;
      __m256 v[4];
      for (int q = 0; q < 4; ++q) v[q] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), xc, k.offset[q], k.valid[q], 4);
      const __m256 g = _mm256_loadu_ps(gout + c * gout_stride + j);
      const __m256 d_ix = _mm256_fmadd_ps(_mm256_sub_ps(v[3], v[2]), k.ty, _mm256_mul_ps(_mm256_sub_ps(v[1], v[0]), uty));
      const __m256 d_iy = _mm256_fmadd_ps(_mm256_sub_ps(v[3], v[1]), k.tx, _mm256_mul_ps(_mm256_sub_ps(v[2], v[0]), utx));
      gx = _mm256_fmadd_ps(g, d_ix, gx);
      gy = _mm256_fmadd_ps(g, d_iy, gy);
    }
    _mm256_storeu_ps(g_ix + j, gx);
    _mm256_storeu_ps(g_iy + j, gy);
  }
  return j;
}

__attribute__((target("avx2,fma"))) inline __m256 gather_corner(const float* xc, const RowTaps<float>& t, int q,
                                                                int64_t j) {
  const __m256i idx = _mm256_loadu_si256((const __m256i*)(t.offset[q].data() + j));
  const __m256 mask = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)(t.valid[q].data() + j)));
  return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), xc, idx, mask, 4);
}

__attribute__((target("avx2,fma"))) inline int64_t gather_taps_avx2(const float* xc, const RowTaps<float>& t,
                                                                    int64_t n, float* out) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(t.weight[0].data() + j), gather_corner(xc, t, 0, j));
    for (int q = 1; q < 4; ++q)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(t.weight[q].data() + j), gather_corner(xc, t, q, j), acc);
    _mm256_storeu_ps(out + j, acc);
  }
  return j;
}

__attribute__((target("avx2,fma"))) inline int64_t coordinate_grad_taps_avx2(const float* xc, const float* go,
                                                                             const RowTaps<float>& t, int64_t n,
                                                                             float* g_ix, float* g_iy) {
  const __m256 one = _mm256_set1_ps(1.f);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v0 = gather_corner(xc, t, 0, j), v1 = gather_corner(xc, t, 1, j);
    const __m256 v2 = gather_corner(xc, t, 2, j), v3 = gather_corner(xc, t, 3, j);
    const __m256 tx = _mm256_loadu_ps(t.tx.data() + j), ty = _mm256_loadu_ps(t.ty.data() + j);
    const __m256 g = _mm256_loadu_ps(go + j);
    const __m256 d_ix = _mm256_fmadd_ps(_mm256_sub_ps(v3, v2), ty, _mm256_mul_ps(_mm256_sub_ps(v1, v0), _mm256_sub_ps(one, ty)));
    const __m256 d_iy = _mm256_fmadd_ps(_mm256_sub_ps(v3, v1), tx, _mm256_mul_ps(_mm256_sub_ps(v2, v0), _mm256_sub_ps(one, tx)));
    _mm256_storeu_ps(g_ix + j, _mm256_fmadd_ps(g, d_ix, _mm256_loadu_ps(g_ix + j)));
    _mm256_storeu_ps(g_iy + j, _mm256_fmadd_ps(g, d_iy, _mm256_loadu_ps(g_iy + j)));
  }
  return j;
}
#endif

// ---- dispatching entry points -------------------------------------------------------------------

// Taps of n pixels with source pixel coordinates ix, iy in an H x W plane (H * W < 2^31).
template <typename T>
inline void compute_taps(const T* ix, const T* iy, int64_t n, int64_t H, int64_t W, RowTaps<T>& t) {
  int64_t done = 0;
#ifdef FASTAUG_X86_DISPATCH
  if constexpr (std::is_same_v<T, float>)
    if (cpu_has_avx2()) done = compute_taps_avx2(ix, iy, n, (int32_t)H, (int32_t)W, t);
#endif
  compute_taps_scalar(ix, iy, done, n, (int32_t)H, (int32_t)W, t);
}

// out[j] = bilinear sample of plane xc at the taps.
template <typename T>
inline void gather_taps(const T* xc, const RowTaps<T>& t, int64_t n, T* out) {
  int64_t done = 0;
#ifdef FASTAUG_X86_DISPATCH
  if constexpr (std::is_same_v<T, float>)
    if (cpu_has_avx2()) done = gather_taps_avx2(xc, t, n, out);
#endif
  gather_taps_scalar(xc, t, done, n, out);
}

// g_ix[j] += go[j] * d(sample)/d(ix), g_iy likewise, for plane xc.
template <typename T>
inline void coordinate_grad_taps(const T* xc, const T* go, const RowTaps<T>& t, int64_t n, T* g_ix, T* g_iy) {
  int64_t done = 0;
#ifdef FASTAUG_X86_DISPATCH
  if constexpr (std::is_same_v<T, float>)
    if (cpu_has_avx2()) done = coordinate_grad_taps_avx2(xc, go, t, n, g_ix, g_iy);
#endif
  coordinate_grad_taps_scalar(xc, go, t, done, n, g_ix, g_iy);
}

// Sample all C planes of x (stride H * W) at n pixels into out (channel stride out_stride). Uses the
// fused AVX2 path when it can; `t` is scratch for the rest.
template <typename T>
inline void sample_row(const T* ix, const T* iy, int64_t n, int64_t H, int64_t W, const T* x, int64_t C, T* out,
                       int64_t out_stride, RowTaps<T>& t) {
  int64_t done = 0;
#ifdef FASTAUG_X86_DISPATCH
  if constexpr (std::is_same_v<T, float>)
    if (cpu_has_avx2()) done = sample_row_avx2(ix, iy, n, (int32_t)H, (int32_t)W, x, C, out, out_stride);
#endif
  if (done == n) return;
  compute_taps_scalar(ix, iy, done, n, (int32_t)H, (int32_t)W, t);
  for (int64_t c = 0; c < C; ++c) gather_taps_scalar(x + c * H * W, t, done, n, out + c * out_stride);
}

// g_ix, g_iy (overwritten) = d(loss)/d(source coordinate) of n pixels summed over the C planes of x,
// with gout the gradient of the samples (channel stride gout_stride). When gx is non-null, also
// scatters the gradient for x (planes of H * W).
template <typename T>
inline void sample_row_backward(const T* ix, const T* iy, int64_t n, int64_t H, int64_t W, const T* x,
                                const T* gout, int64_t gout_stride, int64_t C, T* g_ix, T* g_iy, T* gx,
                                RowTaps<T>& t) {
  int64_t done = 0;
#ifdef FASTAUG_X86_DISPATCH
  if constexpr (std::is_same_v<T, float>)
    if (!gx && cpu_has_avx2())
      done = coordinate_grad_row_avx2(ix, iy, n, (int32_t)H, (int32_t)W, x, gout, gout_stride, C, g_ix, g_iy);
#endif
  if (done == n) return;
  compute_taps(ix + done, iy + done, n - done, H, W, t);
  std::fill(g_ix + done, g_ix + n, T(0));
  std::fill(g_iy + done, g_iy + n, T(0));
  for (int64_t c = 0; c < C; ++c) {
    coordinate_grad_taps(x + c * H * W, gout + c * gout_stride + done, t, n - done, g_ix + done, g_iy + done);
    if (gx) scatter_taps(gx + c * H * W, gout + c * gout_stride + done, t, n - done);
  }
}

// gxc[corner] += weight * go[j] for every valid corner (a scatter: the caller owns the plane).
template <typename T>
inline void scatter_taps(T* gxc, const T* go, const RowTaps<T>& t, int64_t n) {
  for (int64_t j = 0; j < n; ++j)
    for (int q = 0; q < 4; ++q)
      if (t.valid[q][j]) gxc[t.offset[q][j]] += t.weight[q][j] * go[j];
}

}  // namespace fastaug
