// CPU box smoothing of parameter maps (box_filter.h defines it) and its adjoint, a chunk of rows at a
// time, for every family that smooths maps.
//
// Per-instruction-set code (see common/bilinear_row_cpu.h): plain loops the compiler vectorises for
// each copy, additions in one fixed order, so every copy gives the same bits. Chunks of rows are
// processed as flat arrays (long loops even for 28-pixel rows): the horizontal passes work on rows
// padded by k - 1 columns (replicated border values forward, zeros in the adjoint), so that one flat
// shifted sum is exact for every column.
//
// Forward, row i of a smoothed map (c() clamps into the image):
//   v(i, j) = p(c(i - lo), j) + ... + p(c(i + hi), j), then
//   out(i, j) = (v(i, c(j - lo)) + ... + v(i, c(j + hi))) / k^2, sums from left to right.
// Every output row comes from the raw maps alone, so a block of rows smooths on its own, the same
// whatever the split. Adjoint (a gather, deterministic), from g = d(loss)/d(smoothed map):
//   h(i, m) = sum over the row's j in [m - hi, m + lo] of count(j, m) g(i, j), then
//   d(loss)/d(p)(m', m) = (sum over rows i in [m' - hi, m' + lo] of count(i, m') h(i, m)) / k^2,
// with count() the replicate border's multiplicity (box_adjoint_count; 1 away from the first and last
// row / column). A block of output rows [r0, r1) needs g on rows [r0 - hi, r1 + lo): its caller
// recomputes those few extra rows (see BoxAdjoint), which keeps every block independent.

// Rows per chunk of an H x W map: about 2048 values, so flat loops are long and a chunk of every map
// stays in cache (and no more rows than the map has: small images allocate little).
inline int64_t box_chunk_rows(int64_t H, int64_t W) {
  return std::max<int64_t>(1, std::min(H, 2048 / std::max<int64_t>(W, 1)));
}

// dst[f] = s[0][f] + s[1][f] + ... + s[k - 1][f] (left to right), times scale when `scaled`, for
// f < len: one pass for the usual windows (k a template argument, the k loads fused), k passes else.
template <typename T, int K>
void window_sum_fixed(const T* const* s, int64_t len, bool scaled, T scale, T* dst) {
  const T* src[K];
  for (int t = 0; t < K; ++t) src[t] = s[t];
  if (scaled) {
    for (int64_t f = 0; f < len; ++f) {
      T acc = src[0][f];
      for (int t = 1; t < K; ++t) acc += src[t][f];
      dst[f] = acc * scale;
    }
  } else {
    for (int64_t f = 0; f < len; ++f) {
      T acc = src[0][f];
      for (int t = 1; t < K; ++t) acc += src[t][f];
      dst[f] = acc;
    }
  }
}

template <typename T>
void window_sum(const T* const* s, int64_t k, int64_t len, bool scaled, T scale, T* dst) {
  switch (k) {
    case 2: return window_sum_fixed<T, 2>(s, len, scaled, scale, dst);
    case 3: return window_sum_fixed<T, 3>(s, len, scaled, scale, dst);
    case 4: return window_sum_fixed<T, 4>(s, len, scaled, scale, dst);
    case 5: return window_sum_fixed<T, 5>(s, len, scaled, scale, dst);
    case 6: return window_sum_fixed<T, 6>(s, len, scaled, scale, dst);
    case 7: return window_sum_fixed<T, 7>(s, len, scaled, scale, dst);
    case 8: return window_sum_fixed<T, 8>(s, len, scaled, scale, dst);
    default: break;
  }
  for (int64_t f = 0; f < len; ++f) dst[f] = s[0][f];
  for (int64_t t = 1; t < k; ++t) {
    const T* st = s[t];
    if (scaled && t == k - 1)
      for (int64_t f = 0; f < len; ++f) dst[f] = (dst[f] + st[f]) * scale;
    else
      for (int64_t f = 0; f < len; ++f) dst[f] += st[f];
  }
}

#if FASTAUG_ISA_SIMD
// lo + shifted<1>(lo, hi) + ... + shifted<K - 1>(lo, hi), left to right (t = 0, ..., K - 2).
template <int... t>
FASTAUG_SIMD_INLINE vec::Vf add_shifted(vec::Vf lo, vec::Vf hi, std::integer_sequence<int, t...>) {
  vec::Vf acc = lo;
  ((acc = acc + vec::shifted<t + 1>(lo, hi)), ...);
  return acc;
}
#endif

// dst[f] = src[f] + src[f + 1] + ... + src[f + k - 1] (left to right), times scale when `scaled`, for
// f < len (src holds len + k - 1 values): the horizontal passes, window_sum's additions. The AVX-512 copy
// takes the k shifted vectors from one new load a vector (vec::shifted, valignd) instead of k unaligned
// loads, most of which cross a cache line: 5-11 % off the forwards of appearance and transform and the
// backward of affine_flow_warp at 32x32 (session 17, RESULTS.md). The same additions: the same bits.
template <typename T, int K>
void shifted_sum_fixed(const T* src, int64_t len, bool scaled, T scale, T* dst) {
  int64_t f = 0;
#if FASTAUG_ISA_SIMD
  if constexpr (std::is_same<T, float>::value && vec::kLanes == 16) {
    using namespace vec;
    const Vf sc = set1(scale);
    if (len + K - 1 >= 2 * kLanes) {
      Vf lo = loadu(src);
      for (; f + 2 * kLanes <= len + K - 1 && f + kLanes <= len; f += kLanes) {
        const Vf hi = loadu(src + f + kLanes);
        const Vf acc = add_shifted(lo, hi, std::make_integer_sequence<int, K - 1>{});
        storeu(dst + f, scaled ? acc * sc : acc);
        lo = hi;
      }
    }
  }
#endif
  const T* s[K];
  for (int t = 0; t < K; ++t) s[t] = src + f + t;
  window_sum_fixed<T, K>(s, len - f, scaled, scale, dst + f);
}

template <typename T>
void shifted_sum(const T* src, int64_t k, int64_t len, bool scaled, T scale, T* dst) {
  switch (k) {
    case 2: return shifted_sum_fixed<T, 2>(src, len, scaled, scale, dst);
    case 3: return shifted_sum_fixed<T, 3>(src, len, scaled, scale, dst);
    case 4: return shifted_sum_fixed<T, 4>(src, len, scaled, scale, dst);
    case 5: return shifted_sum_fixed<T, 5>(src, len, scaled, scale, dst);
    case 6: return shifted_sum_fixed<T, 6>(src, len, scaled, scale, dst);
    case 7: return shifted_sum_fixed<T, 7>(src, len, scaled, scale, dst);
    case 8: return shifted_sum_fixed<T, 8>(src, len, scaled, scale, dst);
    default: break;
  }
  const T* s[kMaxSmooth];
  for (int64_t t = 0; t < k; ++t) s[t] = src + t;
  window_sum(s, k, len, scaled, scale, dst);
}

// Rows at least this wide are summed row by row (long enough loops); narrower ones as flat chunks.
constexpr int64_t kWideRow = 64;

// Scratch values of smooth_rows for P maps of H x W.
inline int64_t smooth_scratch_size(int P, int64_t H, int64_t W, int64_t k) {
  return (static_cast<int64_t>(P) + 2) * box_chunk_rows(H, W) * (W + k - 1);
}

// Smoothed rows [i0, i1) (at most box_chunk_rows(H, W) of them) of P maps (planes[p]: H x W): rows[p] points
// at row i0 of map p, the next rows *stride values apart (the raw rows themselves when k == 1).
template <typename T>
void smooth_rows(const T* const* planes, int P, int64_t H, int64_t W, int64_t k, int64_t i0, int64_t i1, T* scratch,
                 const T** rows, int64_t* stride) {
  if (k == 1) {  // smoothing disabled: the raw rows, exactly
    for (int p = 0; p < P; ++p) rows[p] = planes[p] + i0 * W;
    *stride = W;
    return;
  }
  const int64_t lo = box_lo(k), hi = box_hi(k), n = i1 - i0, Wp = W + k - 1, R = box_chunk_rows(H, W);
  const T scale = T(1) / static_cast<T>(k * k);
  // The rows of every map the next chunk reads for the first time, asked into L2 now, while this chunk
  // is smoothed and used. At 224x224 the vertical pass over the raw rows (read from memory, a short run
  // of rows per map in turn) held 70 % of the box sums' samples; with this, appearance's forward took
  // 7-10 % less and transform's 4-5 % (12 and 18 maps; affine_flow_warp's 6: within noise). Into L2,
  // not L1: the prefetch into L1 was slower.
  if (i1 < H) {
    const int64_t f0 = std::min(H, i1 + hi), f1 = std::min(H, i1 + hi + R);
    for (int p = 0; p < P; ++p) {
      const char* e = reinterpret_cast<const char*>(planes[p] + f1 * W);
      for (const char* b = reinterpret_cast<const char*>(planes[p] + f0 * W); b < e; b += 64)
        __builtin_prefetch(b, 0, 2);
    }
  }
  T* v = scratch;            // vertical sums, rows of W
  T* vp = scratch + R * Wp;  // the same, rows of Wp: lo copies of the first value, the row, hi of the last
  T* out = vp + R * Wp;
  *stride = Wp;
  for (int p = 0; p < P; ++p) {
    // Vertical: row i = sum over d of plane row c(i + d), into the padded rows of vp. Wide rows: row by
    // row, straight into place. Narrow rows: one flat sum over the rows whose k rows are all inside the
    // image (contiguous ranges of the plane), then copied into place; same additions either way.
    const T* src[kMaxSmooth];
    auto one_row = [&](int64_t i, T* dst) {
      for (int64_t d = -lo; d <= hi; ++d) src[d + lo] = planes[p] + clamp_index(i + d, H) * W;
      window_sum(src, k, W, false, scale, dst);
    };
    if (W >= kWideRow) {
      for (int64_t i = i0; i < i1; ++i) one_row(i, vp + (i - i0) * Wp + lo);
    } else {
      const int64_t a = std::min(i1, std::max(i0, lo)), b = std::max(a, std::min(i1, H - hi));
      for (int64_t i = i0; i < a; ++i) one_row(i, v + (i - i0) * W);
      if (b > a) {
        for (int64_t d = -lo; d <= hi; ++d) src[d + lo] = planes[p] + (a + d) * W;
        window_sum(src, k, (b - a) * W, false, scale, v + (a - i0) * W);
      }
      for (int64_t i = b; i < i1; ++i) one_row(i, v + (i - i0) * W);
      for (int64_t r = 0; r < n; ++r) std::memcpy(vp + r * Wp + lo, v + r * W, sizeof(T) * W);
    }
    for (int64_t r = 0; r < n; ++r) {  // replicate the border columns into the pads
      T* row = vp + r * Wp;
      for (int64_t t = 0; t < lo; ++t) row[t] = row[lo];
      for (int64_t t = 0; t < hi; ++t) row[lo + W + t] = row[lo + W - 1];
    }
    // Horizontal: out(i, j) = (vp(i, j) + ... + vp(i, j + k - 1)) / k^2, flat (k > 1 here).
    T* o = out + p * R * Wp;
    shifted_sum(vp, k, n * Wp - (k - 1), true, scale, o);
    rows[p] = o;
  }
}

// Calls row(i, sm) for the rows [r0, r1) of one item, sm[p] row i of the P smoothed maps, smoothing a
// chunk of rows at a time into scratch (smooth_scratch_size(P, H, W, k) values).
template <typename T, typename Row>
void smoothed_rows(const T* const* planes, int P, int64_t H, int64_t W, int64_t k, int64_t r0, int64_t r1, T* scratch,
                   Row&& row) {
  const int64_t R = box_chunk_rows(H, W);
  for (int64_t c0 = r0; c0 < r1;) {
    const int64_t c1 = std::min(r1, c0 + R);
    const T* rows[64];
    int64_t stride;
    smooth_rows(planes, P, H, W, k, c0, c1, scratch, rows, &stride);
    for (int64_t i = c0; i < c1; ++i) {
      const T* sm[64];
      for (int p = 0; p < P; ++p) sm[p] = rows[p] + (i - c0) * stride;
      row(i, static_cast<const T* const*>(sm));
    }
    c0 = c1;
  }
}

// The count(j, m) terms of the adjoint's first and last columns (the others are plain window sums):
// the same for every row, so computed once.
template <typename T>
struct BoxAdjointEnds {
  int64_t n_first = 0, last_from = 0;  // column 0: j in [0, n_first); column W - 1: j in [last_from, W)
  std::vector<T> first, last;
  BoxAdjointEnds(int64_t W, int64_t k) {
    const int64_t lo = box_lo(k), hi = box_hi(k);
    n_first = std::min(W - 1, lo) + 1;
    for (int64_t j = 0; j < n_first; ++j) first.push_back(static_cast<T>(box_adjoint_count(j, 0, W, lo, hi)));
    last_from = std::max<int64_t>(0, W - 1 - hi);
    for (int64_t j = last_from; j < W; ++j) last.push_back(static_cast<T>(box_adjoint_count(j, W - 1, W, lo, hi)));
  }
};

// The box filter's adjoint streamed over the rows of one item (a block of output rows [r0, r1) of P
// maps): the caller produces the gradient of the smoothed maps, g, for rows [first(), last()) in
// chunks of at most chunk() rows, in order, writing row i of map p at g_row(p, i) (W values), and calls
// end_chunk after each; output rows are written as soon as their window is complete.
template <typename T>
class BoxAdjoint {
 public:
  BoxAdjoint(int P, int64_t H, int64_t W, int64_t k)
      : P_(P), H_(H), W_(W), k_(k), lo_(box_lo(k)), hi_(box_hi(k)), R_(box_chunk_rows(H, W)), Wp_(W + k - 1),
        ends_(W, k) {
    if (k_ > 1) {
      g_.assign(static_cast<size_t>(P * R_ * Wp_), T(0));  // the pads stay zero
      h_.assign(static_cast<size_t>(P * hrows() * Wp_), T(0));
      v_.assign(static_cast<size_t>((R_ + k) * Wp_), T(0));
    }
  }
  int64_t chunk() const { return R_; }
  int64_t first() const { return std::max<int64_t>(0, r0_ - hi_); }
  int64_t last() const { return std::min(H_, r1_ + lo_); }

  void begin(int64_t r0, int64_t r1, T* const* out) {
    r0_ = r0;
    r1_ = r1;
    out_ = out;
    next_ = r0;
    h0_ = h1_ = first();
    hstart_ = 0;
  }
  void begin_chunk(int64_t c0) { c0_ = c0; }
  // Where the caller writes row i (of the current chunk) of map p's gradient.
  T* g_row(int p, int64_t i) {
    if (k_ == 1) return out_[p] + i * W_;  // no smoothing: the answer itself
    return g_.data() + (p * R_ + (i - c0_)) * Wp_ + hi_;
  }

  // After rows [c0, c1) of every map: their horizontal adjoint, then every output row whose rows
  // [m - hi, m + lo] are all in.
  void end_chunk(int64_t c1) {
    if (k_ == 1) return;
    const int64_t n = c1 - c0_, Wp = Wp_;
    // h holds rows [h0_, h1_) from its row hstart_ on; when this chunk does not fit after them, the
    // k - 1 last (all the vertical pass can still need) move to the front first.
    if (hstart_ + (h1_ - h0_) + n > hrows()) {
      const int64_t keep = std::min(h1_ - h0_, k_ - 1);
      for (int p = 0; p < P_; ++p) {
        T* hp = h_.data() + p * hrows() * Wp;
        std::memmove(hp, hp + (hstart_ + h1_ - h0_ - keep) * Wp, sizeof(T) * keep * Wp);
      }
      hstart_ = 0;
      h0_ = h1_ - keep;
    }
    for (int p = 0; p < P_; ++p)
      horizontal(g_.data() + p * R_ * Wp, n, h_.data() + (p * hrows() + hstart_ + h1_ - h0_) * Wp);
    h1_ = c1;
    const int64_t m_end = c1 == last() ? r1_ : std::min(r1_, c1 - lo_);
    if (next_ < m_end) vertical(next_, m_end);
    next_ = std::max(next_, m_end);
  }

 private:
  // h(i, m) of n rows from the zero-padded rows of g (stride Wp), into h (stride Wp).
  void horizontal(const T* gp, int64_t n, T* h) const {
    const int64_t W = W_, Wp = Wp_;
    shifted_sum(gp, k_, n * Wp - (k_ - 1), false, T(1), h);
    for (int64_t r = 0; r < n; ++r) {  // the first and last column
      const T* g = gp + r * Wp + hi_;
      T acc = T(0);
      for (int64_t j = 0; j < ends_.n_first; ++j) acc += ends_.first[j] * g[j];
      T acc_last = T(0);
      for (int64_t j = ends_.last_from; j < W; ++j) acc_last += ends_.last[j - ends_.last_from] * g[j];
      h[r * Wp] = acc;
      h[r * Wp + W - 1] = acc_last;
    }
  }

  // Output rows [m0, m1) of every map from the rows of h.
  void vertical(int64_t m0, int64_t m1) {
    const int64_t W = W_, H = H_, Wp = Wp_;
    const T scale = T(1) / static_cast<T>(k_ * k_);
    // Rows whose window is inside the image, other than the first and last: flat window sums.
    const int64_t a = std::min(m1, std::max({m0, hi_, int64_t(1)})), b = std::max(a, std::min(m1, H - 1 - lo_));
    for (int p = 0; p < P_; ++p) {
      const T* hp = h_.data() + (p * hrows() + hstart_ - h0_) * Wp;  // row i at hp + i * Wp
      T* op = out_[p];
      auto general = [&](int64_t m) {
        T* o = op + m * W;
        for (int64_t j = 0; j < W; ++j) o[j] = T(0);
        for (int64_t i = std::max<int64_t>(0, m - hi_); i <= std::min(H - 1, m + lo_); ++i) {
          const T cnt = static_cast<T>(box_adjoint_count(i, m, H, lo_, hi_));
          const T* hr = hp + i * Wp;
          for (int64_t j = 0; j < W; ++j) o[j] += cnt * hr[j];
        }
        for (int64_t j = 0; j < W; ++j) o[j] *= scale;
      };
      for (int64_t m = m0; m < a; ++m) general(m);
      const T* src[kMaxSmooth];
      if (b > a && W >= kWideRow) {  // wide rows: row by row, straight into place
        for (int64_t m = a; m < b; ++m) {
          for (int64_t d = -hi_; d <= lo_; ++d) src[d + hi_] = hp + (m + d) * Wp;
          window_sum(src, k_, W, true, scale, op + m * W);
        }
      } else if (b > a) {  // narrow rows: one flat sum, then copied into place (same additions)
        T* v = v_.data();
        for (int64_t d = -hi_; d <= lo_; ++d) src[d + hi_] = hp + (a + d) * Wp;
        window_sum(src, k_, (b - a) * Wp, true, scale, v);
        for (int64_t m = a; m < b; ++m) std::memcpy(op + m * W, v + (m - a) * Wp, sizeof(T) * W);
      }
      for (int64_t m = b; m < m1; ++m) general(m);
    }
  }

  // Rows of h per map: several chunks, so the k - 1 rows carried over move rarely.
  int64_t hrows() const { return std::min(4 * R_, H_) + k_ - 1; }

  int P_;
  int64_t H_, W_, k_, lo_, hi_, R_, Wp_;
  BoxAdjointEnds<T> ends_;
  int64_t r0_ = 0, r1_ = 0, next_ = 0, c0_ = 0, h0_ = 0, h1_ = 0, hstart_ = 0;
  T* const* out_ = nullptr;
  std::vector<T> g_, h_, v_;
};

// Runs the rows of one item through a BoxAdjoint: for every row i the adjoint needs, in order,
// produce(i, sm, G) with sm[p] row i of the first Ps smoothed maps (smoothing and the adjoint share
// their chunks) and G[p] where row i of map p's gradient goes. scratch: smooth_scratch_size(Ps, H, W, k).
template <typename T, typename Produce>
void box_adjoint_item(BoxAdjoint<T>& adj, int64_t r0, int64_t r1, T* const* out, int P, const T* const* planes, int Ps,
                      int64_t H, int64_t W, int64_t k, T* scratch, Produce&& produce) {
  adj.begin(r0, r1, out);
  for (int64_t c0 = adj.first(); c0 < adj.last();) {
    const int64_t c1 = std::min(adj.last(), c0 + adj.chunk());
    adj.begin_chunk(c0);
    const T* rows[64];
    int64_t stride;
    smooth_rows(planes, Ps, H, W, k, c0, c1, scratch, rows, &stride);
    for (int64_t i = c0; i < c1; ++i) {
      // Only the P entries produce may index are set (Ps smoothed rows, null past them): zeroing the
      // whole array was a `rep stos` of 512 bytes per row, 4 % of an appearance backward at 28x28.
      const T* sm[64];
      T* G[64];
      for (int p = 0; p < Ps; ++p) sm[p] = rows[p] + (i - c0) * stride;
      for (int p = Ps; p < P; ++p) sm[p] = nullptr;
      for (int p = 0; p < P; ++p) G[p] = adj.g_row(p, i);
      produce(i, static_cast<const T* const*>(sm), static_cast<T* const*>(G));
    }
    adj.end_chunk(c1);
    c0 = c1;
  }
}
