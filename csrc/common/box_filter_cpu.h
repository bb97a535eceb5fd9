// CPU building blocks for the k x k replicate-padded box smoothing of parameter maps (see
// box_filter.h for the definition) and for its adjoint, used by every family that smooths maps.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/box_filter.h"

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

// Smoothed maps for rows [r0, r1) of P planes of one image: out[p * (r1 - r0) * W + (i - r0) * W + j].
// planes[p] points at plane p (H x W, contiguous). `hsum` is scratch for horizontal sums of the
// rows the vertical window touches; both vectors are resized as needed and reused across calls.
template <typename T>
void smooth_rows(const T* const* planes, int P, int64_t H, int64_t W, int64_t k, int64_t r0, int64_t r1,
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
    for (int64_t i = h0; i < h1; ++i) box_sum_row(src + i * W, W, k, hsum.data() + (i - h0) * W);
    for (int64_t i = r0; i < r1; ++i) {
      T* orow = o + (i - r0) * W;
      std::fill(orow, orow + W, T(0));
      for (int64_t d = -lo; d <= hi; ++d) {
        const T* hrow = hsum.data() + (clamp_index(i + d, H) - h0) * W;
        for (int64_t j = 0; j < W; ++j) orow[j] += hrow[j];
      }
      for (int64_t j = 0; j < W; ++j) orow[j] *= scale;
    }
  }
}

// Adjoint of box_sum_row: r[clamp(j + d)] += g[j] for every pixel j and window offset d, as k
// shifted (vectorisable) passes like the forward's. r must not alias g.
template <typename T>
void box_adjoint_row(const T* g, int64_t W, int64_t k, T* r) {
  const int64_t lo = box_lo(k), hi = box_hi(k);
  std::fill(r, r + W, T(0));
  for (int64_t d = -lo; d <= hi; ++d) {
    const int64_t in_begin = std::min(W, std::max<int64_t>(0, -d));  // j + d < 0 clamps to 0
    const int64_t in_end = std::max(in_begin, std::min(W, W - d));    // j + d > W - 1 clamps to W - 1
    T left = T(0), right = T(0);
    for (int64_t j = 0; j < in_begin; ++j) left += g[j];
    for (int64_t j = in_begin; j < in_end; ++j) r[j + d] += g[j];
    for (int64_t j = in_end; j < W; ++j) right += g[j];
    r[0] += left;
    r[W - 1] += right;
  }
}

// Adjoint of the box filter for one (H, W) plane: g holds d(loss)/d(smoothed map), out receives
// d(loss)/d(raw map). The transpose of "rows, then columns" is "columns, then rows": every output
// row of the vertical window adds its gradient row to the (clamped) input rows it read, then each
// row goes through box_adjoint_row. Whole-row adds in a fixed order: deterministic and vectorised.
// tmp: H * W scratch; out must not alias g or tmp.
template <typename T>
void box_filter_adjoint(const T* g, int64_t H, int64_t W, int64_t k, T* tmp, T* out) {
  if (k == 1) {
    std::copy(g, g + H * W, out);
    return;
  }
  const int64_t lo = box_lo(k), hi = box_hi(k);
  const T scale = T(1) / static_cast<T>(k * k);
  std::fill(tmp, tmp + H * W, T(0));
  for (int64_t i = 0; i < H; ++i) {
    const T* grow = g + i * W;
    for (int64_t d = -lo; d <= hi; ++d) {
      T* trow = tmp + clamp_index(i + d, H) * W;
      for (int64_t j = 0; j < W; ++j) trow[j] += grow[j];
    }
  }
  for (int64_t r = 0; r < H; ++r) {
    T* orow = out + r * W;
    box_adjoint_row(tmp + r * W, W, k, orow);
    for (int64_t j = 0; j < W; ++j) orow[j] *= scale;
  }
}

}  // namespace fastaug
