// The k x k box smoothing of docs/design.md K2, shared by every kernel that smooths parameter maps.
//
// out[i] = (1/k) * sum_{d=-lo}^{hi} p[clamp(i + d, 0, L - 1)] along each axis (replicate border),
// lo = (k - 1) / 2, hi = k / 2, i.e. avg_pool2d(pad(p, (lo, hi, lo, hi), "replicate"), k, stride=1).
// The 2-D filter is separable: rows, then columns, 1/k^2 overall.
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>

#include "common/host_device.h"

namespace fastaug {

// The widest box window any op accepts (Python reads it from fastaug._C.limits()): the CUDA kernels
// smooth a tile plus a (k - 1) halo in shared memory, and wider windows are far beyond any use of
// the smoothing.
constexpr int64_t kMaxSmooth = 64;

inline void check_smooth(int64_t smooth) {
  TORCH_CHECK(smooth >= 1 && smooth <= kMaxSmooth, "fastaug: smooth must be in [1, ", kMaxSmooth, "], got ", smooth);
}

FASTAUG_HD inline int64_t box_lo(int64_t k) { return (k - 1) / 2; }
FASTAUG_HD inline int64_t box_hi(int64_t k) { return k / 2; }

FASTAUG_HD inline int64_t clamp_index(int64_t i, int64_t L) { return i < 0 ? 0 : (i >= L ? L - 1 : i); }

// Weight of input i in output m of the *adjoint* of the replicate-padded box sum along an axis of
// length L: the number of window offsets d in [-lo, hi] with clamp(i + d) == m. Inputs i that can
// reach m all lie in [m - hi, m + lo], so the adjoint is a gather (deterministic, no atomics).
FASTAUG_HD inline int64_t box_adjoint_count(int64_t i, int64_t m, int64_t L, int64_t lo, int64_t hi) {
  const int64_t dmin = (m == 0) ? -lo : (m - i > -lo ? m - i : -lo);
  const int64_t dmax = (m == L - 1) ? hi : (m - i < hi ? m - i : hi);
  return dmax >= dmin ? dmax - dmin + 1 : 0;
}

}  // namespace fastaug
