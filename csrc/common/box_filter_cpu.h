// CPU box smoothing of parameter maps (box_filter.h defines it) and its adjoint, one output row at a
// time, for every family that smooths maps.
//
// Per-instruction-set code (see common/bilinear_row_cpu.h): plain loops the compiler vectorises for
// each copy; additions in a fixed order, so every copy gives the same bits.
//
// Forward, row i of a smoothed map: the k rows clamp(i - lo) .. clamp(i + hi) summed (vertical), then
// k shifted sums of that row with replicate border (horizontal), times 1/k^2. Each output row is
// computed from the raw maps alone, so any block of rows can be smoothed on its own and the result does
// not depend on how the rows are split among threads.
// Adjoint (a gather, deterministic): the horizontal adjoint of each gradient row as it is produced,
// then the vertical one from a ring of the last k such rows. A block of output rows [r0, r1) needs the
// gradient rows [r0 - hi, r1 + lo): the few rows outside the block are recomputed by its caller (see
// box_adjoint_rows), which keeps every block independent.

// Smoothed row i of P maps (planes[p]: H x W). rows[p] receives the row: the raw row itself when k == 1,
// else out + p * out_stride (W values). pad: scratch of W + k - 1 values.
template <typename T>
void smooth_row(const T* const* planes, int P, int64_t H, int64_t W, int64_t k, int64_t i, T* pad, T* out,
                int64_t out_stride, const T** rows) {
  if (k == 1) {  // smoothing disabled: the raw rows, exactly
    for (int p = 0; p < P; ++p) rows[p] = planes[p] + i * W;
    return;
  }
  const int64_t lo = box_lo(k), hi = box_hi(k);
  const T scale = T(1) / static_cast<T>(k * k);
  T* v = pad + lo;  // v[-lo .. W - 1 + hi]
  for (int p = 0; p < P; ++p) {
    const T* first = planes[p] + clamp_index(i - lo, H) * W;
    for (int64_t j = 0; j < W; ++j) v[j] = first[j];
    for (int64_t d = -lo + 1; d <= hi; ++d) {
      const T* r = planes[p] + clamp_index(i + d, H) * W;
      for (int64_t j = 0; j < W; ++j) v[j] += r[j];
    }
    for (int64_t e = 1; e <= lo; ++e) v[-e] = v[0];
    for (int64_t e = 1; e <= hi; ++e) v[W - 1 + e] = v[W - 1];
    T* o = out + p * out_stride;
    for (int64_t j = 0; j < W; ++j) o[j] = v[j - lo];
    for (int64_t e = -lo + 1; e < hi; ++e)
      for (int64_t j = 0; j < W; ++j) o[j] += v[j + e];
    for (int64_t j = 0; j < W; ++j) o[j] = (o[j] + v[j + hi]) * scale;
    rows[p] = o;
  }
}

// Horizontal adjoint of the (unnormalised) box sum along one row: a[m] = sum_j count(j, m) g[j]. The
// row is read from gpad[hi .. hi + W), with zeros in gpad[0, hi) and gpad[hi + W, hi + W + lo).
template <typename T>
void box_adjoint_row(const T* gpad, int64_t W, int64_t k, T* a) {
  const int64_t lo = box_lo(k), hi = box_hi(k);
  // Every column but the two ends: the plain window sum of g[m - hi .. m + lo] (zeros past the row).
  for (int64_t m = 0; m < W; ++m) a[m] = gpad[m];
  for (int64_t e = 1; e < k; ++e)
    for (int64_t m = 0; m < W; ++m) a[m] += gpad[m + e];
  // The ends also collect what the replicate border clamped onto them.
  const T* g = gpad + hi;
  for (const int64_t m : {int64_t(0), W - 1}) {
    T acc = T(0);
    for (int64_t j = std::max<int64_t>(0, m - hi); j <= std::min(W - 1, m + lo); ++j)
      acc += static_cast<T>(box_adjoint_count(j, m, W, lo, hi)) * g[j];
    a[m] = acc;
  }
}

// Scratch of box_adjoint_rows for P maps of width W and window k.
template <typename T>
struct BoxAdjointScratch {
  std::vector<T> ring, gpad;
  int64_t gstride = 0;
  void resize(int P, int64_t W, int64_t k) {
    gstride = W + k - 1;
    ring.assign(static_cast<size_t>(k * P * W), T(0));
    gpad.assign(static_cast<size_t>(P * gstride), T(0));  // the pads stay zero
  }
};

// Rows [r0, r1) of d(loss)/d(raw map) of P maps (out[p]: H x W planes) from the gradients of the
// smoothed maps: produce(i, G) writes row i of those gradients (G[p][0 .. W), nothing else) and is
// called once per row of [max(0, r0 - hi), min(H, r1 + lo)), in order.
template <typename T, typename Produce>
void box_adjoint_rows(int P, int64_t H, int64_t W, int64_t k, int64_t r0, int64_t r1, T* const* out,
                      BoxAdjointScratch<T>& s, Produce&& produce) {
  T* G[64];
  if (k == 1) {  // no smoothing: the gradient rows are the answer
    for (int64_t i = r0; i < r1; ++i) {
      for (int p = 0; p < P; ++p) G[p] = out[p] + i * W;
      produce(i, static_cast<T* const*>(G));
    }
    return;
  }
  const int64_t lo = box_lo(k), hi = box_hi(k);
  const T scale = T(1) / static_cast<T>(k * k);
  for (int p = 0; p < P; ++p) G[p] = s.gpad.data() + p * s.gstride + hi;
  auto ring_row = [&](int64_t i, int p) { return s.ring.data() + ((i % k) * P + p) * W; };
  int64_t next = std::max<int64_t>(0, r0 - hi);
  for (int64_t m = r0; m < r1; ++m) {
    for (; next <= std::min(H - 1, m + lo); ++next) {
      produce(next, static_cast<T* const*>(G));
      for (int p = 0; p < P; ++p) box_adjoint_row(s.gpad.data() + p * s.gstride, W, k, ring_row(next, p));
    }
    const int64_t i0 = std::max<int64_t>(0, m - hi), i1 = std::min(H - 1, m + lo);
    for (int p = 0; p < P; ++p) {
      T* o = out[p] + m * W;
      if (m != 0 && m != H - 1) {  // every count is 1: the window sum
        const T* a = ring_row(i0, p);
        for (int64_t j = 0; j < W; ++j) o[j] = a[j];
        for (int64_t i = i0 + 1; i <= i1; ++i) {
          const T* b = ring_row(i, p);
          for (int64_t j = 0; j < W; ++j) o[j] += b[j];
        }
      } else {  // the clamped first / last row
        for (int64_t j = 0; j < W; ++j) o[j] = T(0);
        for (int64_t i = i0; i <= i1; ++i) {
          const T cnt = static_cast<T>(box_adjoint_count(i, m, H, lo, hi));
          const T* b = ring_row(i, p);
          for (int64_t j = 0; j < W; ++j) o[j] += cnt * b[j];
        }
      }
      for (int64_t j = 0; j < W; ++j) o[j] *= scale;
    }
  }
}
