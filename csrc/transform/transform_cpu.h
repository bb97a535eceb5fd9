// CPU building blocks shared by appearance_cpu.cpp and transform_cpu.cpp: the per-row colour filter
// and its backward, written as plain loops over a row so the compiler vectorises them.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "transform/transform.h"

namespace fastaug {
namespace k2_cpu {

// Rows per parallel work item: whole images when the batch alone keeps every thread busy.
inline int64_t rows_per_item(int64_t N, int64_t H) {
  const int64_t want_items = 4 * at::get_num_threads();
  if (N >= want_items) return H;
  const int64_t splits = (want_items + N - 1) / N;
  return std::max<int64_t>(8, (H + splits - 1) / splits);
}

// out[c][j] = y[c][j] + sum_k cw[C c + k][j] * src[k][j] + cb[c][j] for one row of W pixels.
// `sm` holds the smoothed colour parameters of the row: plane p (c_w 0..C*C-1, then c_b) at sm + p * ps.
// out may alias y (each pixel reads all of y before writing).
template <typename T, int C>
inline void colour_row(const T* const* y, const T* const* src, const T* sm, int64_t ps, T* const* out,
                       int64_t W) {
  if (C == 1) {
    const T *y0 = y[0], *s0 = src[0], *cw = sm, *cb = sm + ps;
    T* o = out[0];
    for (int64_t j = 0; j < W; ++j) o[j] = y0[j] + (cw[j] * s0[j] + cb[j]);
  } else {
    const T *y0 = y[0], *y1 = y[1], *y2 = y[2], *s0 = src[0], *s1 = src[1], *s2 = src[2];
    T *o0 = out[0], *o1 = out[1], *o2 = out[2];
    for (int64_t j = 0; j < W; ++j) {
      const T a = s0[j], b = s1[j], c = s2[j];
      const T r0 = y0[j] + (sm[j] * a + sm[ps + j] * b + sm[2 * ps + j] * c + sm[9 * ps + j]);
      const T r1 = y1[j] + (sm[3 * ps + j] * a + sm[4 * ps + j] * b + sm[5 * ps + j] * c + sm[10 * ps + j]);
      const T r2 = y2[j] + (sm[6 * ps + j] * a + sm[7 * ps + j] * b + sm[8 * ps + j] * c + sm[11 * ps + j]);
      o0[j] = r0;
      o1[j] = r1;
      o2[j] = r2;
    }
  }
}

// Backward of colour_row with respect to the colour matrix and the filtered input `src`, for one
// row, given g[c][j] = d(loss)/d(out[c][j]):
//   G[C c + k][j] = g_c * src_k   (d/d smoothed c_w; d/d smoothed c_b is g itself, not copied),
//   tgt[k][j] (+)= sum_c cw[C c + k] g_c  (+ g_k when add_identity).
// G plane p at G + p * gs; `accumulate` adds into tgt instead of overwriting it.
template <typename T, int C>
inline void colour_row_backward(const T* const* g, const T* const* src, const T* sm, int64_t ps, T* G, int64_t gs,
                                T* const* tgt, bool add_identity, bool accumulate, int64_t W) {
  for (int c = 0; c < C; ++c) {
    const T* gc = g[c];
    for (int k = 0; k < C; ++k) {
      const T* sk = src[k];
      T* Gp = G + (C * c + k) * gs;
      for (int64_t j = 0; j < W; ++j) Gp[j] = gc[j] * sk[j];
    }
  }
  if (!tgt) return;
  for (int k = 0; k < C; ++k) {
    T* t = tgt[k];
    const T* gk = g[k];
    if (C == 1) {
      const T* cw = sm;
      for (int64_t j = 0; j < W; ++j) {
        T v = cw[j] * g[0][j];
        if (add_identity) v += gk[j];
        t[j] = accumulate ? t[j] + v : v;
      }
    } else {
      const T *g0 = g[0], *g1 = g[1], *g2 = g[2];
      const T *a = sm + k * ps, *b = sm + (3 + k) * ps, *c = sm + (6 + k) * ps;
      for (int64_t j = 0; j < W; ++j) {
        T v = a[j] * g0[j] + b[j] * g1[j] + c[j] * g2[j];
        if (add_identity) v += gk[j];
        t[j] = accumulate ? t[j] + v : v;
      }
    }
  }
}

}  // namespace k2_cpu
}  // namespace fastaug
