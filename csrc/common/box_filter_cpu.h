// CPU building blocks for the k x k replicate-padded box smoothing of parameter maps (see
// box_filter.h for the definition) and for its adjoint, used by every family that smooths maps.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/box_filter.h"

// Compile a function twice, for AVX2 and for baseline x86-64, picked at load time (GCC/Clang
// ifunc); elsewhere a plain function. For the loops the compiler vectorises by itself.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define FASTAUG_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FASTAUG_AVX2_CLONES
#endif

namespace fastaug {

// Horizontal box sums (unnormalised) of one row with replicate border. The row is first copied
// into `padded` with its edge pixels replicated, so each of the k taps is one contiguous,
// vectorisable pass; for the small windows the seed uses that beats a running sum, whose
// loop-carried dependency cannot vectorise, and it adds no cancellation error.
template <typename T>
__attribute__((always_inline)) inline void box_sum_row(const T* p, int64_t W, int64_t k, T* padded, T* r) {
  const int64_t lo = box_lo(k), hi = box_hi(k);
  for (int64_t j = 0; j < lo; ++j) padded[j] = p[0];
  std::copy(p, p + W, padded + lo);
  for (int64_t j = 0; j < hi; ++j) padded[lo + W + j] = p[W - 1];
  std::copy(padded, padded + W, r);
  for (int64_t d = 1; d < k; ++d)
    for (int64_t j = 0; j < W; ++j) r[j] += padded[j + d];
}

// Smoothed maps for rows [r0, r1) of P planes of one image: out[p * (r1 - r0) * W + (i - r0) * W + j].
// planes[p] points at plane p (H x W, contiguous). `hsum` is scratch for horizontal sums of the
// rows the vertical window touches; both vectors are resized as needed and reused across calls.
template <typename T>
FASTAUG_AVX2_CLONES void smooth_rows(const T* const* planes, int P, int64_t H, int64_t W, int64_t k, int64_t r0, int64_t r1,
                 std::vector<T>& hsum, std::vector<T>& out) {
  const int64_t lo = box_lo(k), hi = box_hi(k);
  const int64_t h0 = std::max<int64_t>(0, r0 - lo), h1 = std::min(H, r1 + hi);  // rows touched
  const int64_t nh = h1 - h0, nr = r1 - r0;
  hsum.resize(nh * W + W + k);  // the tail is the padded-row scratch of box_sum_row
  out.resize(P * nr * W);
  T* padded = hsum.data() + nh * W;
  const T scale = T(1) / static_cast<T>(k * k);
  for (int p = 0; p < P; ++p) {
    const T* src = planes[p];
    T* o = out.data() + p * nr * W;
    if (k == 1) {  // smoothing disabled: an exact copy
      std::copy(src + r0 * W, src + r1 * W, o);
      continue;
    }
    for (int64_t i = h0; i < h1; ++i) box_sum_row(src + i * W, W, k, padded, hsum.data() + (i - h0) * W);
    for (int64_t i = r0; i < r1; ++i) {
      T* orow = o + (i - r0) * W;
      const T* first = hsum.data() + (clamp_index(i - lo, H) - h0) * W;
      std::copy(first, first + W, orow);
      for (int64_t d = -lo + 1; d < hi; ++d) {
        const T* hrow = hsum.data() + (clamp_index(i + d, H) - h0) * W;
        for (int64_t j = 0; j < W; ++j) orow[j] += hrow[j];
      }
      const T* last = hsum.data() + (clamp_index(i + hi, H) - h0) * W;  // k > 1 here, so last != first
      for (int64_t j = 0; j < W; ++j) orow[j] = (orow[j] + last[j]) * scale;
    }
  }
}

// Adjoint of the box filter for one (H, W) plane: g holds d(loss)/d(smoothed map), out receives
// d(loss)/d(raw map). Columns first, then rows; a gather, so deterministic. tmp: H * W scratch.
// Away from the first and last row/column every input in the window counts once, so those outputs
// are plain window sums (vectorised shifted adds); the two border lines use the replicate counts.
template <typename T>
FASTAUG_AVX2_CLONES void box_filter_adjoint(const T* g, int64_t H, int64_t W, int64_t k, T* tmp, T* out) {
  if (k == 1) {
    std::copy(g, g + H * W, out);
    return;
  }
  const int64_t lo = box_lo(k), hi = box_hi(k);
  const T scale = T(1) / static_cast<T>(k * k);
  for (int64_t m = 0; m < H; ++m) {
    T* trow = tmp + m * W;
    std::fill(trow, trow + W, T(0));
    const bool edge = m == 0 || m == H - 1;
    for (int64_t i = std::max<int64_t>(0, m - hi); i <= std::min(H - 1, m + lo); ++i) {
      const T cnt = edge ? static_cast<T>(box_adjoint_count(i, m, H, lo, hi)) : T(1);
      const T* grow = g + i * W;
      for (int64_t j = 0; j < W; ++j) trow[j] += cnt * grow[j];
    }
  }
  for (int64_t r = 0; r < H; ++r) {
    const T* trow = tmp + r * W;
    T* orow = out + r * W;
    std::fill(orow, orow + W, T(0));
    for (int64_t d = -lo; d <= hi; ++d) {  // orow[m] += trow[m - d] where 0 <= m - d < W
      const int64_t m0 = std::max<int64_t>(0, d), m1 = std::min(W, W + d);
      for (int64_t m = m0; m < m1; ++m) orow[m] += trow[m - d];
    }
    for (int64_t m : {int64_t(0), W - 1}) {  // border columns: replicate counts
      T acc = T(0);
      for (int64_t j = std::max<int64_t>(0, m - hi); j <= std::min(W - 1, m + lo); ++j)
        acc += static_cast<T>(box_adjoint_count(j, m, W, lo, hi)) * trow[j];
      orow[m] = acc;
    }
    for (int64_t m = 0; m < W; ++m) orow[m] *= scale;
  }
}

}  // namespace fastaug
