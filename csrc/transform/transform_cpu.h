// CPU building blocks shared by appearance_cpu.cpp and transform_cpu.cpp: the colour filter of a
// whole row and its backward, as loops over the row calling the per-pixel maths of transform.h (the
// code the CUDA kernels run), which the compiler inlines and vectorises across pixels.
#pragma once

#include <cstdint>

#include "transform/transform.h"

namespace fastaug {
namespace k2_cpu {

// out[c][j] = y[c][j] + c_b[c][j] + sum_q c_w[C c + q][j] src[q][j] for one row of W pixels.
// `sm` holds the smoothed colour parameters of the row: plane p (c_w 0..C*C-1, then c_b) at sm + p * ps.
// out may alias y (each pixel reads all of its inputs before writing).
template <typename T, int C>
inline void colour_row(const T* const* y, const T* const* src, const T* sm, int64_t ps, T* const* out,
                       int64_t W) {
  for (int64_t j = 0; j < W; ++j) {
    T cw[C * C], cb[C], s[C], yy[C], o[C];
    for (int p = 0; p < C * C; ++p) cw[p] = sm[p * ps + j];
    for (int c = 0; c < C; ++c) {
      cb[c] = sm[(C * C + c) * ps + j];
      s[c] = src[c][j];
      yy[c] = y[c][j];
    }
    colour_filter<T, C>(cw, cb, s, yy, o);
    for (int c = 0; c < C; ++c) out[c][j] = o[c];
  }
}

// Backward of colour_row for one row, given g[c][j] = d(loss)/d(out[c][j]):
//   G plane C c + q (at G + p * gs) = g_c src_q     (d/d smoothed c_w; d/d smoothed c_b is g itself),
//   tgt[q][j] (+)= sum_c c_w[C c + q] g_c (+ g_q when add_identity), only when tgt is non-null
//   (then `sm` must hold the row's smoothed c_w planes at stride ps); `accumulate` adds into tgt.
template <typename T, int C>
inline void colour_row_backward(const T* const* g, const T* const* src, const T* sm, int64_t ps, T* G, int64_t gs,
                                T* const* tgt, bool add_identity, bool accumulate, int64_t W) {
  for (int64_t j = 0; j < W; ++j) {
    T gg[C], s[C], gcw[C * C];
    for (int c = 0; c < C; ++c) {
      gg[c] = g[c][j];
      s[c] = src[c][j];
    }
    colour_filter_weight_grad<T, C>(s, gg, gcw);
    for (int p = 0; p < C * C; ++p) G[p * gs + j] = gcw[p];
  }
  if (!tgt) return;
  for (int64_t j = 0; j < W; ++j) {
    T gg[C], cw[C * C], t[C];
    for (int c = 0; c < C; ++c) gg[c] = g[c][j];
    for (int p = 0; p < C * C; ++p) cw[p] = sm[p * ps + j];
    colour_filter_input_grad<T, C>(cw, gg, t);
    for (int q = 0; q < C; ++q) {
      const T v = add_identity ? t[q] + gg[q] : t[q];
      tgt[q][j] = accumulate ? tgt[q][j] + v : v;
    }
  }
}

}  // namespace k2_cpu
}  // namespace fastaug
