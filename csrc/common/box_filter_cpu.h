// CPU building blocks for the k x k replicate-padded box smoothing of parameter maps (see
// box_filter.h for the definition) and for its adjoint, used by every family that smooths maps.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/box_filter.h"
#include "common/cpu_dispatch.h"

namespace fastaug {

// Horizontal box sums (unnormalised) of one row with replicate border. For the small windows the
// seed uses, k vectorised passes beat a running sum, whose loop-carried dependency cannot vectorise,
// and they add no cancellation error.
template <typename T>
void box_sum_row(const T* p, int64_t W, int64_t k, T* r) {
  const int64_t lo = box_lo(k), hi = box_hi(k);
  std::fill(r, r + W, T(0));
  for (int64_t d = -lo; d <= hi; ++d) {
    // Pixels whose tap j + d falls left of, inside, or right of the row.
    const int64_t in_begin = std::min(W, std::max<int64_t>(0, -d));
    const int64_t in_end = std::max(in_begin, std::min(W, W - d));
    for (int64_t j = 0; j < in_begin; ++j) r[j] += p[0];
    for (int64_t j = in_begin; j < in_end; ++j) r[j] += p[j + d];
    for (int64_t j = in_end; j < W; ++j) r[j] += p[W - 1];
  }
}

// Horizontal box sums (unnormalised) of `rows` consecutive rows of width W stored contiguously:
// k shifted adds over the rows as one flat array (long vectorised loops even for 32-pixel rows),
// then the columns whose window leaves the row (where the flat shift wraps into the neighbouring
// row) are recomputed with the replicate clamp. Same sums as box_sum_row on every row.
template <typename T>
FASTAUG_AVX2_CLONES void box_sum_rows(const T* p, int64_t rows, int64_t W, int64_t k, T* r) {
  const int64_t lo = box_lo(k), hi = box_hi(k), n = rows * W;
  // The first tap writes instead of adding: what it skips (f < lo) are left border columns,
  // recomputed below, so no zero-fill pass is needed.
  for (int64_t d = -lo; d <= hi; ++d) {
    const int64_t f0 = std::max<int64_t>(0, -d), f1 = std::min(n, n - d);
    const T* src = p + d;
    if (d == -lo)
      for (int64_t f = f0; f < f1; ++f) r[f] = src[f];
    else
      for (int64_t f = f0; f < f1; ++f) r[f] += src[f];
  }
  const int64_t left = std::min(W, lo), right = std::max(left, W - hi);  // exact columns [left, right)
  for (int64_t i = 0; i < rows; ++i) {
    const T* prow = p + i * W;
    T* rrow = r + i * W;
    for (int64_t j = 0; j < W; ++j) {
      if (j == left) j = right;  // skip the interior
      if (j >= W) break;
      T acc = T(0);
      for (int64_t d = -lo; d <= hi; ++d) acc += prow[clamp_index(j + d, W)];
      rrow[j] = acc;
    }
  }
}

// Smoothed maps for rows [r0, r1) of P planes of one image: out[p * (r1 - r0) * W + (i - r0) * W + j].
// planes[p] points at plane p (H x W, contiguous). `hsum` is scratch for horizontal sums of the
// rows the vertical window touches; both vectors are resized as needed and reused across calls.
// Both passes work on whole blocks of rows as flat arrays (see box_sum_rows).
template <typename T>
FASTAUG_AVX2_CLONES void smooth_rows(const T* const* planes, int P, int64_t H, int64_t W, int64_t k, int64_t r0, int64_t r1,
                 std::vector<T>& hsum, std::vector<T>& out) {
  const int64_t lo = box_lo(k), hi = box_hi(k);
  const int64_t h0 = std::max<int64_t>(0, r0 - lo), h1 = std::min(H, r1 + hi);  // rows touched
  const int64_t nh = h1 - h0, nr = r1 - r0;
  hsum.resize(nh * W);
  out.resize(P * nr * W);
  const T scale = T(1) / static_cast<T>(k * k);
  for (int p = 0; p < P; ++p) {
    const T* src = planes[p];
    T* o = out.data() + p * nr * W;
    if (k == 1) {  // smoothing disabled: an exact copy
      std::copy(src + r0 * W, src + r1 * W, o);
      continue;
    }
    box_sum_rows(src + h0 * W, nh, W, k, hsum.data());
    std::fill(o, o + nr * W, T(0));
    for (int64_t d = -lo; d <= hi; ++d) {
      // Output rows i in [r0, r1) read row clamp(i + d): unclamped for i in [a, b), flat.
      // (Rows clamped to 0 only exist when h0 == 0, rows clamped to H - 1 only when h1 == H.)
      const int64_t a = std::min(r1, std::max(r0, -d)), b = std::max(a, std::min(r1, H - d));
      for (int64_t i = r0; i < a; ++i) {
        const T* top = hsum.data() + (0 - h0) * W;
        for (int64_t j = 0; j < W; ++j) o[(i - r0) * W + j] += top[j];
      }
      if (b > a) {
        const T* s = hsum.data() + (a + d - h0) * W;
        T* t = o + (a - r0) * W;
        for (int64_t f = 0, n = (b - a) * W; f < n; ++f) t[f] += s[f];
      }
      for (int64_t i = b; i < r1; ++i) {
        const T* bottom = hsum.data() + (H - 1 - h0) * W;
        for (int64_t j = 0; j < W; ++j) o[(i - r0) * W + j] += bottom[j];
      }
    }
    for (int64_t f = 0, n = nr * W; f < n; ++f) o[f] *= scale;
  }
}

// Indices m in [0, L) where the adjoint of the replicate-padded box sum is not a plain window sum:
// the clamped ends (m == 0, m == L - 1) and those whose window [m - hi, m + lo] leaves [0, L).
inline void box_adjoint_borders(int64_t L, int64_t lo, int64_t hi, std::vector<int64_t>& out) {
  out.clear();
  for (int64_t m = 0; m < L; ++m)
    if (m == 0 || m == L - 1 || m < hi || m > L - 1 - lo) out.push_back(m);
}

// Adjoint of the box filter for one (H, W) plane: g holds d(loss)/d(smoothed map), out receives
// d(loss)/d(raw map). Away from the borders the adjoint of a replicate-padded box sum is a plain
// window sum (offsets -hi .. lo), so each axis is done as k shifted adds over the whole plane as one
// flat array (long vectorised loops even for 32-pixel rows); the few border rows / columns, where
// the flat shift would wrap or the clamp piles weight on the edge, are then recomputed exactly from
// box_adjoint_count. Fixed order of operations: deterministic. tmp: H * W scratch; out must not
// alias g or tmp.
template <typename T>
FASTAUG_AVX2_CLONES void box_filter_adjoint(const T* g, int64_t H, int64_t W, int64_t k, T* tmp, T* out) {
  const int64_t HW = H * W;
  if (k == 1) {
    std::copy(g, g + HW, out);
    return;
  }
  const int64_t lo = box_lo(k), hi = box_hi(k);
  const T scale = T(1) / static_cast<T>(k * k);
  std::vector<int64_t> border;
  // Columns (vertical adjoint): tmp row m = sum_i count(i, m) g row i. The first shift writes
  // instead of adding; the rows it skips (m < hi) are border rows, recomputed below.
  for (int64_t e = -hi; e <= lo; ++e) {
    const int64_t m0 = std::max<int64_t>(0, -e), m1 = std::min(H, H - e);
    if (m1 <= m0) continue;
    const T* src = g + (m0 + e) * W;
    T* dst = tmp + m0 * W;
    if (e == -hi)
      std::copy(src, src + (m1 - m0) * W, dst);
    else
      for (int64_t f = 0, n = (m1 - m0) * W; f < n; ++f) dst[f] += src[f];
  }
  box_adjoint_borders(H, lo, hi, border);
  for (int64_t m : border) {
    T* trow = tmp + m * W;
    std::fill(trow, trow + W, T(0));
    for (int64_t i = std::max<int64_t>(0, m - hi); i <= std::min(H - 1, m + lo); ++i) {
      const T cnt = static_cast<T>(box_adjoint_count(i, m, H, lo, hi));
      const T* grow = g + i * W;
      for (int64_t j = 0; j < W; ++j) trow[j] += cnt * grow[j];
    }
  }
  // Rows (horizontal adjoint) over the plane as one flat array, then the border columns exactly.
  // The first shift writes, the last one also applies 1/k^2; what they skip (f < hi, f >= HW - lo)
  // are border columns, recomputed (and scaled) below. k > 1 here, so -hi != lo.
  for (int64_t e = -hi; e <= lo; ++e) {
    const int64_t f0 = std::max<int64_t>(0, -e), f1 = std::min(HW, HW - e);
    const T* src = tmp + e;
    if (e == -hi)
      for (int64_t f = f0; f < f1; ++f) out[f] = src[f];
    else if (e == lo)
      for (int64_t f = f0; f < f1; ++f) out[f] = (out[f] + src[f]) * scale;
    else
      for (int64_t f = f0; f < f1; ++f) out[f] += src[f];
  }
  box_adjoint_borders(W, lo, hi, border);
  for (int64_t r = 0; r < H; ++r) {
    const T* trow = tmp + r * W;
    T* orow = out + r * W;
    for (int64_t m : border) {
      T acc = T(0);
      for (int64_t j = std::max<int64_t>(0, m - hi); j <= std::min(W - 1, m + lo); ++j)
        acc += static_cast<T>(box_adjoint_count(j, m, W, lo, hi)) * trow[j];
      orow[m] = acc * scale;
    }
  }
}

}  // namespace fastaug
