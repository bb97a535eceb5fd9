// Hand-written x86 kernels of the CPU policy ops (policy_cpu_fast.h picks them by level): AVX2
// gathers (as loads) for the geometric ops and ShearY's shifted column runs, uint8 blends in AVX2 and
// AVX-512 float lanes or, on AVX2, integer lanes, 256-entry table lookups (AVX2 VPSHUFB rows, AVX-512
// VBMI byte permutes) and tables that are integer lines.
//
// Exactness: every float blend computes policy_math.h's blend_u8 lane by lane with the same IEEE
// operations in the same order ((deg + alpha (img - deg)) + 0.5, clamped, truncated) and no FMA, so
// each byte equals the scalar function's; the clamp as max/min gives the same bytes as blend_u8's
// comparisons (they differ only in the sign of a zero, and no NaN can occur). The integer forms (lines,
// FixedBlend) are used only where a check over every input level (fit_line) or every difference of
// levels (fit_blend) proves them equal to the table or to blend_u8.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "policy/policy_math.h"

#define FA_AVX2 __attribute__((target("avx2"))) inline

namespace fastaug {
namespace policy {
namespace simd {

FA_AVX2 __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// ---- gathers: d[k] = s[off[k]] for k in [ks, ke) ------------------------------------------------------
// Eight loads and inserts, not vpgatherdd / vgatherdps: on AMD Zen 3 a gather of eight words costs 1.6x
// the loads (1.1 against 0.68 ns per word, a rotation's offsets over a 224x224 image held in cache;
// benchmarks/RESULTS.md, session 9), and Intel's gathers got slower with the 2023 GDS microcode update.

// The eight 32-bit words at base + off[k] * Scale bytes (unaligned reads).
template <int Scale>
FA_AVX2 __m256i load_words(const void* base, const int32_t* off) {
  const char* b = static_cast<const char*>(base);
  auto word = [&](int k) {
    int32_t w;
    std::memcpy(&w, b + static_cast<int64_t>(off[k]) * Scale, 4);
    return w;
  };
  __m128i lo = _mm_cvtsi32_si128(word(0)), hi = _mm_cvtsi32_si128(word(4));
  lo = _mm_insert_epi32(lo, word(1), 1);
  hi = _mm_insert_epi32(hi, word(5), 1);
  lo = _mm_insert_epi32(lo, word(2), 2);
  hi = _mm_insert_epi32(hi, word(6), 2);
  lo = _mm_insert_epi32(lo, word(3), 3);
  hi = _mm_insert_epi32(hi, word(7), 3);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// uint8 through gathers of 32-bit words: each reads the byte it needs and the three after it, or, with
// `before`, the caller passes s - 3 and the byte is the word's last (the three before it are read).
FA_AVX2 void gather(const uint8_t* s, bool before, const int32_t* off, uint8_t* d, int64_t ks, int64_t ke) {
  const __m256i pick = before ? _mm256_setr_epi8(3, 7, 11, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 3, 7,
                                                 11, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)
                              : _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4,
                                                 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i lanes = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
  int64_t k = ks;
  for (; k + 8 <= ke; k += 8) {
    const __m256i v = load_words<1>(s, off + k);
    const __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pick), lanes);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(d + k), _mm256_castsi256_si128(b));
  }
  const int64_t at = before ? 3 : 0;
  for (; k < ke; ++k) d[k] = s[off[k] + at];
}

// Pixel p of three uint8 planes as word p, levels in bytes 0, 1, 2, 32 pixels a step by byte and word
// interleaves (what GCC makes of the plain loop widens every byte to a word first: twice the time);
// returns how many it did (a multiple of 32).
FA_AVX2 int64_t pack_rgb(const uint8_t* r, const uint8_t* g, const uint8_t* b, uint32_t* packed, int64_t n) {
  const __m256i zero = _mm256_setzero_si256();
  int64_t p = 0;
  for (; p + 32 <= n; p += 32) {
    const __m256i R = load32(r + p), G = load32(g + p), B = load32(b + p);
    // Per 128-bit lane (pixels 0-15 and 16-31 of the step): pairs (r, g) and (b, 0), then words.
    const __m256i rg_lo = _mm256_unpacklo_epi8(R, G), rg_hi = _mm256_unpackhi_epi8(R, G);
    const __m256i b_lo = _mm256_unpacklo_epi8(B, zero), b_hi = _mm256_unpackhi_epi8(B, zero);
    const __m256i w0 = _mm256_unpacklo_epi16(rg_lo, b_lo), w1 = _mm256_unpackhi_epi16(rg_lo, b_lo);  // 0-3, 4-7 | 16-19, 20-23
    const __m256i w2 = _mm256_unpacklo_epi16(rg_hi, b_hi), w3 = _mm256_unpackhi_epi16(rg_hi, b_hi);  // 8-11, 12-15 | 24-31
    __m256i* out = reinterpret_cast<__m256i*>(packed + p);
    _mm256_storeu_si256(out, _mm256_permute2x128_si256(w0, w1, 0x20));
    _mm256_storeu_si256(out + 1, _mm256_permute2x128_si256(w2, w3, 0x20));
    _mm256_storeu_si256(out + 2, _mm256_permute2x128_si256(w0, w1, 0x31));
    _mm256_storeu_si256(out + 3, _mm256_permute2x128_si256(w2, w3, 0x31));
  }
  return p;
}

// Three uint8 planes through one gather: `packed` holds pixel p's three levels as the low bytes of
// word p (pack_rgb), so a 32-bit gather of eight words reads eight pixels of every channel, which the
// byte shuffle then sorts into d0, d1, d2. Does [ks, ks + 8 * floor((ke - ks) / 8)); returns its end.
FA_AVX2 int64_t gather_rgb(const uint32_t* packed, const int32_t* off, uint8_t* d0, uint8_t* d1, uint8_t* d2,
                           int64_t ks, int64_t ke) {
  // Per 128-bit lane: the four pixels' first levels in bytes 0-3, the seconds in 4-7, the thirds in 8-11.
  const __m256i sort = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, -1, -1, -1, -1, 0, 4, 8, 12, 1, 5,
                                        9, 13, 2, 6, 10, 14, -1, -1, -1, -1);
  const __m256i lanes = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  int64_t k = ks;
  for (; k + 8 <= ke; k += 8) {
    const __m256i v = load_words<4>(packed, off + k);
    const __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, sort), lanes);
    const __m128i lo = _mm256_castsi256_si128(b);  // eight first levels, then eight seconds
    _mm_storel_epi64(reinterpret_cast<__m128i*>(d0 + k), lo);
    _mm_storeh_pd(reinterpret_cast<double*>(d1 + k), _mm_castsi128_pd(lo));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(d2 + k), _mm256_extracti128_si256(b, 1));
  }
  return k;
}

FA_AVX2 void gather(const float* s, bool, const int32_t* off, float* d, int64_t ks, int64_t ke) {
  int64_t k = ks;
  for (; k + 8 <= ke; k += 8) _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k), load_words<4>(s, off + k));
  for (; k < ke; ++k) d[k] = s[off[k]];
}

FA_AVX2 void gather(const double* s, bool, const int32_t* off, double* d, int64_t ks, int64_t ke) {
  int64_t k = ks;
  for (; k + 4 <= ke; k += 4) {
    const __m128i idx = _mm_loadu_si128(reinterpret_cast<const __m128i*>(off + k));
    _mm256_storeu_pd(d + k, _mm256_mask_i32gather_pd(_mm256_setzero_pd(), s, idx,
                                                      _mm256_castsi256_pd(_mm256_set1_epi64x(-1)), 8));
  }
  for (; k < ke; ++k) d[k] = s[off[k]];
}

// ---- ShearY: output column x is source column x shifted by t_x whole rows -------------------------------
// (policy_cpu_fast.h, is_column_shift: t_x = (a5 + x a3) >> 16, monotone in x.) A row is cut into
// 32-column chunks (the last one moved back to end at column W, overlapping the one before: it writes the
// same bytes again); a chunk's columns of equal t_x form runs, so the chunk is one 32-byte load per run
// merged by byte blends, against a load and insert per pixel for the general affine. Rows are done in
// order, chunk after chunk (a chunk's column of rows at a time is 2.5x slower: every load and store
// misses L1).
struct ColumnRuns {
  const int64_t* off;    // run j's shift t_j W (t_j rows)
  const uint8_t* mask;   // ... its 32-byte mask over the chunk (0xFF on the run's columns)
  int64_t per;           // chunk c's runs are [c per, (c + 1) per)
  int64_t chunks;
};

// d[x] = s[(y + t_x) W + x] for x < W: output row y from plane s. With `inside` (every run reads a row
// inside the image) no range test and no fill.
template <bool inside>
FA_AVX2 void column_shift_row(const uint8_t* s, uint8_t* d, int64_t y, int64_t H, int64_t W, const ColumnRuns& r,
                              uint8_t fill) {
  const __m256i f = _mm256_set1_epi8(static_cast<char>(fill));
  alignas(32) uint8_t fills[32];
  if constexpr (!inside) _mm256_store_si256(reinterpret_cast<__m256i*>(fills), f);
  const uint8_t* row = s + y * W;
  const uint64_t at = static_cast<uint64_t>(y * W), plane = static_cast<uint64_t>(H * W);
  for (int64_t c = 0; c < r.chunks; ++c) {
    const int64_t x0 = 32 * c + 32 <= W ? 32 * c : W - 32;
    const int64_t j0 = c * r.per, j1 = j0 + r.per;
    __m256i acc;
    if constexpr (inside) {
      acc = load32(row + r.off[j0] + x0);
      for (int64_t j = j0 + 1; j < j1; ++j)
        acc = _mm256_blendv_epi8(acc, load32(row + r.off[j] + x0), load32(r.mask + 32 * j));
    } else {
      // A run whose row is outside the image blends the fill instead: the address is chosen, and every
      // run blends, so no test sits around the blend.
      acc = f;
      for (int64_t j = j0; j < j1; ++j) {
        const bool in = at + static_cast<uint64_t>(r.off[j]) < plane;  // 0 <= y + t_j < H
        const uint8_t* p = in ? row + r.off[j] + x0 : fills;
        acc = _mm256_blendv_epi8(acc, load32(p), load32(r.mask + 32 * j));
      }
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + x0), acc);
  }
}

// An integer line: clamp((a v + b) >> shift, 0, 255) (tables, fit_line) or (a d + b) >> shift (blends,
// fit_blend).
struct LineFit {
  int32_t a, b;
  int shift;
};

// The integer line through the points (x0 + i, y[i]), i < n (a multiple of 8): a slope a near a0 and
// an offset b with y[i] 2^shift <= a x + b < (y[i] + 1) 2^shift at every point, i.e. y[i] = (a x + b) >>
// shift. With `clamped` (a table clamped to [0, 255]) a point at 0 bounds b only from above and one at
// 255 only from below. For a given a the points' bounds on b meet when the largest lower bound is at
// most the smallest upper one; a is tried at a0, a0 -+ 1, a0 -+ 2. Every a x + b stays within 2^30, and
// so does y 2^shift (the caller's choice of shift).
FA_AVX2 bool fit_points(const int32_t* y, int32_t x0, int n, int shift, int64_t a0, bool clamped, LineFit* fit) {
  const int64_t x_last = x0 + n - 1, reach = x_last > -int64_t(x0) ? x_last : -int64_t(x0);
  const __m256i zero = _mm256_setzero_si256(), full = _mm256_set1_epi32(255), step8 = _mm256_set1_epi32(8);
  const __m256i unit = _mm256_set1_epi32((1 << shift) - 1), none_lo = _mm256_set1_epi32(INT32_MIN),
                none_hi = _mm256_set1_epi32(INT32_MAX);
  const __m128i sh = _mm_cvtsi32_si128(shift);
  for (const int64_t t : {0, -1, 1, -2, 2}) {
    const int64_t a = a0 + t;
    if (a < 0 || a * reach >= (int64_t(1) << 30)) continue;
    const __m256i av = _mm256_set1_epi32(static_cast<int32_t>(a));
    __m256i lo = none_lo, hi = none_hi, x = _mm256_add_epi32(_mm256_set1_epi32(x0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int i = 0; i < n; i += 8) {
      const __m256i Y = _mm256_load_si256(reinterpret_cast<const __m256i*>(y + i));
      const __m256i low = _mm256_sub_epi32(_mm256_sll_epi32(Y, sh), _mm256_mullo_epi32(x, av));  // y 2^s - a x
      const __m256i high = _mm256_add_epi32(low, unit);                                          // + 2^s - 1
      lo = _mm256_max_epi32(lo, clamped ? _mm256_blendv_epi8(low, none_lo, _mm256_cmpeq_epi32(Y, zero)) : low);
      hi = _mm256_min_epi32(hi, clamped ? _mm256_blendv_epi8(high, none_hi, _mm256_cmpeq_epi32(Y, full)) : high);
      x = _mm256_add_epi32(x, step8);
    }
    alignas(32) int32_t los[8], his[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(los), lo);
    _mm256_store_si256(reinterpret_cast<__m256i*>(his), hi);
    int64_t bl = INT32_MIN, bh = INT32_MAX;
    for (int k = 0; k < 8; ++k) {
      bl = los[k] > bl ? los[k] : bl;
      bh = his[k] < bh ? his[k] : bh;
    }
    if (bl > bh) continue;
    const int64_t b = bl == INT32_MIN ? bh : bl;
    const int64_t lim = int64_t(1) << 30;  // keep every a x + b in int32
    if (b + a * x0 <= -lim || b + a * x0 >= lim || b + a * x_last <= -lim || b + a * x_last >= lim) continue;
    *fit = {static_cast<int32_t>(a), static_cast<int32_t>(b), shift};
    return true;
  }
  return false;
}

// ---- uint8 blends, 16 pixels per step -------------------------------------------------------------------
// Two ways to compute blend_u8(deg, img, alpha) = clamp(floor(((deg + alpha (img - deg)) + 0.5))) on
// eight int32 lanes (levels): FloatBlend, the engine's float operations themselves, and FixedBlend, an
// integer form that fit_blend proves equal for the factor at hand (below). The kernels take either.

struct BlendConsts {
  __m256 alpha, half, zero, top;
};

FA_AVX2 BlendConsts blend_consts(float alpha) {
  return {_mm256_set1_ps(alpha), _mm256_set1_ps(0.5f), _mm256_setzero_ps(), _mm256_set1_ps(255.0f)};
}

// blend_u8 of eight lanes, as int32 in [0, 255].
FA_AVX2 __m256i blend8(__m256 deg, __m256 img, const BlendConsts& k) {
  __m256 r = _mm256_add_ps(_mm256_add_ps(deg, _mm256_mul_ps(k.alpha, _mm256_sub_ps(img, deg))), k.half);
  r = _mm256_min_ps(_mm256_max_ps(r, k.zero), k.top);
  return _mm256_cvttps_epi32(r);
}

struct FloatBlend {
  BlendConsts k;
  FA_AVX2 __m256i operator()(__m256i deg, __m256i img) const {
    return blend8(_mm256_cvtepi32_ps(deg), _mm256_cvtepi32_ps(img), k);
  }
};

// The blend as integers. With d = img - deg (an integer, exact in float) and p = fl(alpha d), the
// engine's r = fl(fl(deg + p) + 0.5) floors to deg + q_d, q_d = floor(p + 0.5), unless p + 0.5 lies
// within 2^-15 below an integer: |deg + p| < 512 for alpha in [0, 2), so each of the two roundings
// moves the sum by at most 2^-16, and it cannot fall below deg + q_d (deg + q_d - 0.5 and deg + q_d are
// floats and rounding is monotone). So when every q_d keeps 2^-13 clear of that (d = -256 .. 255, checked)
// and q_d = (a d + b) >> 21 for every d (fit_points, as fit_line fits tables, and checked),
// blend_u8 = clamp(deg + ((a (img - deg) + b) >> 21), 0, 255) at every pair of levels. One multiply
// and five integer operations per eight lanes against eleven in float. Any other factor keeps the
// float blend.
FA_AVX2 bool fit_blend(float alpha, LineFit* fit) {
  if (!(alpha >= 0.0f && alpha < 2.0f)) return false;
  constexpr int kShift = 21;
  alignas(32) int32_t q[512];  // q[d + 256], d = -256 .. 255
  const __m256 a8 = _mm256_set1_ps(alpha);
  const __m256d half = _mm256_set1_pd(0.5), edge = _mm256_set1_pd(1.0 - 1.0 / 8192.0);
  __m256 d8 = _mm256_setr_ps(-256, -255, -254, -253, -252, -251, -250, -249);
  __m256d unsafe = _mm256_setzero_pd();
  for (int i = 0; i < 512; i += 8) {
    const __m256 p = _mm256_mul_ps(a8, d8);  // the engine's fmul(alpha, img - deg)
    for (int h = 0; h < 2; ++h) {
      const __m256d t = _mm256_add_pd(_mm256_cvtps_pd(h ? _mm256_extractf128_ps(p, 1) : _mm256_castps256_ps128(p)), half);
      const __m256d fl = _mm256_floor_pd(t);
      unsafe = _mm256_or_pd(unsafe, _mm256_cmp_pd(_mm256_sub_pd(t, fl), edge, _CMP_GT_OQ));
      _mm_store_si128(reinterpret_cast<__m128i*>(q + i + 4 * h), _mm256_cvttpd_epi32(fl));
    }
    d8 = _mm256_add_ps(d8, _mm256_set1_ps(8.0f));
  }
  if (_mm256_movemask_pd(unsafe) != 0) return false;
  const int64_t a0 = static_cast<int64_t>(std::nearbyint(static_cast<double>(alpha) * (1 << kShift)));
  return fit_points(q, -256, 512, kShift, a0, false, fit);
}

struct FixedBlend {
  __m256i a, b, zero, top;
  __m128i shift;
  FA_AVX2 explicit FixedBlend(const LineFit& f)
      : a(_mm256_set1_epi32(f.a)), b(_mm256_set1_epi32(f.b)), zero(_mm256_setzero_si256()),
        top(_mm256_set1_epi32(255)), shift(_mm_cvtsi32_si128(f.shift)) {}
  FA_AVX2 __m256i operator()(__m256i deg, __m256i img) const {
    const __m256i q = _mm256_sra_epi32(_mm256_add_epi32(_mm256_mullo_epi32(_mm256_sub_epi32(img, deg), a), b), shift);
    return _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(deg, q), zero), top);
  }
};

// The blend kernels below: the FixedBlend of alpha when fit_blend finds one and the span of n bytes is
// long enough to repay the fit (about 0.3 us), else its FloatBlend.
#define FA_WITH_BLEND(alpha, n, call)                                  \
  do {                                                                 \
    LineFit fit_;                                                      \
    if ((n) >= 4096 && fit_blend((alpha), &fit_)) {                    \
      const FixedBlend blend(fit_);                                    \
      return call;                                                     \
    }                                                                  \
    const FloatBlend blend{blend_consts(alpha)};                       \
    return call;                                                       \
  } while (0)

// Bytes 0-7 / 8-15 of v as int32.
FA_AVX2 __m256i lo8(__m128i v) { return _mm256_cvtepu8_epi32(v); }
FA_AVX2 __m256i hi8(__m128i v) { return _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)); }

// Sixteen int32 in [0, 255] (two registers, in order) as sixteen bytes.
FA_AVX2 __m128i pack16(__m256i a, __m256i b) {
  const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
  return _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
}

FA_AVX2 __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
FA_AVX2 void store16(uint8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
// Sixteen bytes as 16-bit lanes.
FA_AVX2 __m256i w16(const uint8_t* p) { return _mm256_cvtepu8_epi16(load16(p)); }

// SamplePairing: d = blend_u8(s, q, w) for [0, n); returns how many it did (all when n >= 16: the
// kernels below end with a step that overlaps the one before, which writes the same bytes again).
template <typename Blend>
FA_AVX2 int64_t pairing_with(const Blend& blend, const uint8_t* s, const uint8_t* q, uint8_t* d, int64_t n) {
  for (int64_t i = 0;; i += 16) {
    i = i + 16 <= n ? i : n - 16;  // the last step overlaps the previous one: same bytes again
    const __m128i a = load16(s + i), b = load16(q + i);
    store16(d + i, pack16(blend(lo8(a), lo8(b)), blend(hi8(a), hi8(b))));
    if (i + 16 == n) return n;
  }
}

FA_AVX2 int64_t pairing(const uint8_t* s, const uint8_t* q, uint8_t* d, int64_t n, float w) {
  if (n < 16) return 0;
  FA_WITH_BLEND(w, n, pairing_with(blend, s, q, d, n));
}

// lut[v] = blend_u8(deg, v, alpha) for v = 0..255 (Contrast, Brightness).
FA_AVX2 void blend_lut(float deg, float alpha, uint8_t* lut) {
  const BlendConsts k = blend_consts(alpha);
  const __m256 d = _mm256_set1_ps(deg), eight = _mm256_set1_ps(8.0f);
  __m256 v = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  for (int i = 0; i < 256; i += 16) {
    const __m256 w = _mm256_add_ps(v, eight);
    store16(lut + i, pack16(blend8(d, v, k), blend8(d, w, k)));
    v = _mm256_add_ps(w, eight);
  }
}

// Pillow's L of eight pixels (grey_u8), as int32.
FA_AVX2 __m256i grey8(__m256i r, __m256i g, __m256i b) {
  const __m256i s = _mm256_add_epi32(
      _mm256_add_epi32(_mm256_mullo_epi32(r, _mm256_set1_epi32(19595)), _mm256_mullo_epi32(g, _mm256_set1_epi32(38470))),
      _mm256_add_epi32(_mm256_mullo_epi32(b, _mm256_set1_epi32(7471)), _mm256_set1_epi32(0x8000)));
  return _mm256_srli_epi32(s, 16);
}

// Color: every channel blended with the pixel's L; returns how many pixels it did.
template <typename Blend>
FA_AVX2 int64_t color_with(const Blend& blend, const uint8_t* r, const uint8_t* g, const uint8_t* b, uint8_t* dr,
                           uint8_t* dg, uint8_t* db, int64_t n) {
  for (int64_t p = 0;; p += 16) {
    p = p + 16 <= n ? p : n - 16;  // the last step overlaps the previous one: same bytes again
    const __m128i r8 = load16(r + p), g8 = load16(g + p), b8 = load16(b + p);
    const __m256i rl = lo8(r8), gl = lo8(g8), bl = lo8(b8), rh = hi8(r8), gh = hi8(g8), bh = hi8(b8);
    const __m256i yl = grey8(rl, gl, bl), yh = grey8(rh, gh, bh);
    store16(dr + p, pack16(blend(yl, rl), blend(yh, rh)));
    store16(dg + p, pack16(blend(yl, gl), blend(yh, gh)));
    store16(db + p, pack16(blend(yl, bl), blend(yh, bh)));
    if (p + 16 == n) return n;
  }
}

FA_AVX2 int64_t color(const uint8_t* r, const uint8_t* g, const uint8_t* b, uint8_t* dr, uint8_t* dg, uint8_t* db,
                      int64_t n, float f) {
  if (n < 16) return 0;
  FA_WITH_BLEND(f, 3 * n, color_with(blend, r, g, b, dr, dg, db, n));
}

// Sum of grey_u8 over pixels [0, n) of three planes, 32 pixels a step: grey_total512 (AVX-512, below) in
// 256-bit registers. Returns how many pixels it summed (a multiple of 32) and adds their sum to *total.
FA_AVX2 int64_t grey_total(const uint8_t* r, const uint8_t* g, const uint8_t* b, int64_t n, int64_t* total) {
  const __m256i w_rg = _mm256_set1_epi32(static_cast<int>((static_cast<uint32_t>(-27066) << 16) | 19595u));
  const __m256i w_b = _mm256_set1_epi32((16384 << 16) | 7471);
  const __m256i lo8 = _mm256_set1_epi32(0xff), hi8 = _mm256_set1_epi32(0xff0000), two = _mm256_set1_epi32(0x20000);
  constexpr int64_t kSteps = int64_t(1) << 16;  // the 8 lanes' total stays below 2^31: 4 * 255 a lane a step
  int64_t p = 0;
  while (p + 32 <= n) {
    __m256i acc = _mm256_setzero_si256();
    for (int64_t k = 0; k < kSteps && p + 32 <= n; ++k, p += 32) {
      const __m256i R = load32(r + p), G = load32(g + p), B = load32(b + p);
      const __m256i g16[4] = {_mm256_and_si256(_mm256_slli_epi32(G, 16), hi8),
                              _mm256_and_si256(_mm256_slli_epi32(G, 8), hi8), _mm256_and_si256(G, hi8),
                              _mm256_and_si256(_mm256_srli_epi32(G, 8), hi8)};
      const __m256i r8[4] = {_mm256_and_si256(R, lo8), _mm256_and_si256(_mm256_srli_epi32(R, 8), lo8),
                             _mm256_and_si256(_mm256_srli_epi32(R, 16), lo8), _mm256_srli_epi32(R, 24)};
      const __m256i b8[4] = {_mm256_and_si256(B, lo8), _mm256_and_si256(_mm256_srli_epi32(B, 8), lo8),
                             _mm256_and_si256(_mm256_srli_epi32(B, 16), lo8), _mm256_srli_epi32(B, 24)};
      for (int t = 0; t < 4; ++t) {
        const __m256i l = _mm256_add_epi32(
            _mm256_add_epi32(_mm256_madd_epi16(_mm256_or_si256(r8[t], g16[t]), w_rg), g16[t]),
            _mm256_madd_epi16(_mm256_or_si256(b8[t], two), w_b));
        acc = _mm256_add_epi32(acc, _mm256_srli_epi32(l, 16));
      }
    }
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
    for (int k = 0; k < 8; ++k) *total += lanes[k];
  }
  return p;
}

// SMOOTH of the 16 pixels at flat index i (each with a full 3x3 window) in 16-bit lanes, and the
// pixels: S = window sum + 4 centre, SMOOTH = (2S + 13) / 26 = (S + 6) / 13 (2S + 13 is odd), computed
// as mulhi(S + 6, 5042): x 5042 / 2^16 exceeds x / 13 by less than 0.04 for x < 3322, and x / 13 is
// at least 1/13 below the next integer.
FA_AVX2 __m256i smooth16(const uint8_t* s, int64_t i, int64_t W, __m256i* centre) {
  const uint8_t* m = s + i - W;
  const uint8_t* c = s + i;
  const uint8_t* p = s + i + W;
  *centre = w16(c);
  __m256i S = _mm256_add_epi16(_mm256_add_epi16(w16(m - 1), w16(m)), _mm256_add_epi16(w16(m + 1), w16(c - 1)));
  S = _mm256_add_epi16(S, _mm256_add_epi16(_mm256_add_epi16(w16(c + 1), w16(p - 1)), _mm256_add_epi16(w16(p), w16(p + 1))));
  S = _mm256_add_epi16(S, _mm256_slli_epi16(*centre, 2));
  S = _mm256_add_epi16(S, *centre);
  return _mm256_mulhi_epu16(_mm256_add_epi16(S, _mm256_set1_epi16(6)), _mm256_set1_epi16(5042));
}

// Sharpness of 32 pixels at flat index i (each with a full 3x3 window) with no byte shuffles:
// sharpness64 (below) in 256-bit registers.
template <typename Blend>
FA_AVX2 void sharpness32(const uint8_t* s, uint8_t* d, int64_t i, int64_t W, const Blend& blend) {
  const __m256i lo8 = _mm256_set1_epi16(0xff), lo16 = _mm256_set1_epi32(0xffff), lo8d = _mm256_set1_epi32(0xff);
  __m256i left = _mm256_setzero_si256(), low = _mm256_setzero_si256(), high = _mm256_setzero_si256(),
          right = _mm256_setzero_si256(), centre = _mm256_setzero_si256();
  for (int64_t r = i - W; r <= i + W; r += W) {  // column sums of the three rows
    const __m256i b = load32(s + r);
    left = _mm256_add_epi16(left, _mm256_and_si256(load32(s + r - 1), lo8));
    low = _mm256_add_epi16(low, _mm256_and_si256(b, lo8));
    high = _mm256_add_epi16(high, _mm256_srli_epi16(b, 8));
    right = _mm256_add_epi16(right, _mm256_srli_epi16(load32(s + r + 1), 8));
    if (r == i) centre = b;
  }
  const __m256i six = _mm256_set1_epi16(6), magic = _mm256_set1_epi16(5042);
  const __m256i mid = _mm256_add_epi16(low, high);
  __m256i even = _mm256_add_epi16(_mm256_add_epi16(mid, left), _mm256_slli_epi16(_mm256_and_si256(centre, lo8), 2));
  __m256i odd = _mm256_add_epi16(_mm256_add_epi16(mid, right), _mm256_slli_epi16(_mm256_srli_epi16(centre, 8), 2));
  even = _mm256_mulhi_epu16(_mm256_add_epi16(even, six), magic);  // word j: pixel 2j
  odd = _mm256_mulhi_epu16(_mm256_add_epi16(odd, six), magic);    // word j: pixel 2j + 1
  const __m256i r0 = blend(_mm256_and_si256(even, lo16), _mm256_and_si256(centre, lo8d));
  const __m256i r1 = blend(_mm256_and_si256(odd, lo16), _mm256_and_si256(_mm256_srli_epi32(centre, 8), lo8d));
  const __m256i r2 = blend(_mm256_srli_epi32(even, 16), _mm256_and_si256(_mm256_srli_epi32(centre, 16), lo8d));
  const __m256i r3 = blend(_mm256_srli_epi32(odd, 16), _mm256_srli_epi32(centre, 24));
  const __m256i out = _mm256_or_si256(_mm256_or_si256(r0, _mm256_slli_epi32(r1, 8)),
                                      _mm256_or_si256(_mm256_slli_epi32(r2, 16), _mm256_slli_epi32(r3, 24)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), out);
}

// Sharpness over flat indices [begin, end) of a plane of width W (all with a full 3x3 window);
// returns the end of the part it did. 32 pixels a step (sharpness32), spans under 32 pixels 16 at a
// time.
template <typename Blend>
FA_AVX2 int64_t sharpness_with(const Blend& blend, const uint8_t* s, uint8_t* d, int64_t begin, int64_t end,
                               int64_t W) {
  if (end - begin >= 32) {
    for (int64_t i = begin;; i += 32) {
      i = i + 32 <= end ? i : end - 32;  // the last step overlaps the previous one: same bytes again
      sharpness32(s, d, i, W, blend);
      if (i + 32 == end) return end;
    }
  }
  for (int64_t i = begin;; i += 16) {
    i = i + 16 <= end ? i : end - 16;  // the last step overlaps the previous one: same bytes again
    __m256i centre;
    const __m256i deg = smooth16(s, i, W, &centre);
    const __m256i dl = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(deg));
    const __m256i dh = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(deg, 1));
    const __m256i cl = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(centre));
    const __m256i ch = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(centre, 1));
    store16(d + i, pack16(blend(dl, cl), blend(dh, ch)));
    if (i + 16 == end) return end;
  }
}

FA_AVX2 int64_t sharpness(const uint8_t* s, uint8_t* d, int64_t begin, int64_t end, int64_t W, float f) {
  if (end - begin < 16) return begin;
  FA_WITH_BLEND(f, end - begin, sharpness_with(blend, s, d, begin, end, W));
}

// ---- 256-entry table lookups, 32 per step ----------------------------------------------------------------
// VPSHUFB looks up 16 entries; the table's rows T_r = lut[16 r .. 16 r + 15] take eight lookups per half.
// For a byte v below 128, a_k = v - 16 k (k = 0..7, wrapping) has bit 7 clear exactly when k <= v >> 4
// (otherwise it lies in [-112, -1]: bit 7 set, and VPSHUFB gives 0), and VPSHUFB reads a_k's low nibble,
// which is v's. So the XOR of the lookups in the difference rows D_k = T_k ^ T_{k-1} (D_0 = T_0)
// telescopes to T_{v >> 4}[v & 15]. Bytes of 128 and up: the same with v - 128 and the rows 8..15; v's
// bit 7 picks between the two halves (VPBLENDVB), dropping each half's lanes of the other. 48 vector
// operations per 32 bytes, against two loads and a store per byte for the scalar loop: on Zen 3, 192
// planes of 224x224 in 1.46 ms against 3.5-6.0 ms (a copy: 0.38 ms). Same bytes as lut[v] by construction.
struct LutRows {
  __m256i lo[8], hi[8];
};

FA_AVX2 LutRows lut_rows(const uint8_t* lut) {
  LutRows r;
  __m128i prev_lo = _mm_setzero_si128(), prev_hi = _mm_setzero_si128();
  for (int k = 0; k < 8; ++k) {
    const __m128i lo = load16(lut + 16 * k), hi = load16(lut + 128 + 16 * k);
    r.lo[k] = _mm256_broadcastsi128_si256(_mm_xor_si128(lo, prev_lo));
    r.hi[k] = _mm256_broadcastsi128_si256(_mm_xor_si128(hi, prev_hi));
    prev_lo = lo;
    prev_hi = hi;
  }
  return r;
}

// The lookups of Nv vectors at once (1 or 2: two interleaved chains keep more shuffles in flight,
// 6 % faster on Zen 3).
template <int Nv>
FA_AVX2 void lut_vectors(const LutRows& r, const __m256i* v, __m256i* out) {
  const __m256i sixteen = _mm256_set1_epi8(16), top = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256i a[Nv], b[Nv], lo[Nv], hi[Nv];
  for (int u = 0; u < Nv; ++u) {
    a[u] = v[u];
    b[u] = _mm256_xor_si256(v[u], top);
    lo[u] = _mm256_shuffle_epi8(r.lo[0], a[u]);
    hi[u] = _mm256_shuffle_epi8(r.hi[0], b[u]);
  }
  for (int k = 1; k < 8; ++k) {
    for (int u = 0; u < Nv; ++u) {
      a[u] = _mm256_sub_epi8(a[u], sixteen);
      b[u] = _mm256_sub_epi8(b[u], sixteen);
      lo[u] = _mm256_xor_si256(lo[u], _mm256_shuffle_epi8(r.lo[k], a[u]));
      hi[u] = _mm256_xor_si256(hi[u], _mm256_shuffle_epi8(r.hi[k], b[u]));
    }
  }
  for (int u = 0; u < Nv; ++u) out[u] = _mm256_blendv_epi8(lo[u], hi[u], v[u]);
}

// d[i] = lut[s[i]] for i < n (s and d may be the same; the last partial step goes through a buffer).
FA_AVX2 void lut_apply(const uint8_t* s, uint8_t* d, int64_t n, const uint8_t* lut) {
  const LutRows r = lut_rows(lut);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m256i v[2] = {load32(s + i), load32(s + i + 32)};
    __m256i out[2];
    lut_vectors<2>(r, v, out);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), out[0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i + 32), out[1]);
  }
  for (; i < n; i += 32) {
    const int64_t m = n - i < 32 ? n - i : 32;
    alignas(32) uint8_t buf[32] = {};
    std::memcpy(buf, s + i, static_cast<size_t>(m));
    __m256i out;
    const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
    lut_vectors<1>(r, &v, &out);
    _mm256_store_si256(reinterpret_cast<__m256i*>(buf), out);
    std::memcpy(d + i, buf, static_cast<size_t>(m));
  }
}

// ---- tables that are lines: 32 per step in 32-bit lanes ----------------------------------------------------
// Brightness, Contrast and AutoContrast build tables that floor an affine function of the level (a
// blend with a constant, Pillow's autocontrast scale and offset), up to the float roundings of the
// engine's arithmetic. When the table equals clamp((a v + b) >> shift, 0, 255) at all 256 levels,
// which fit_line checks level by level, that integer line gives the same bytes for 25 vector operations
// per 32 bytes against the lookup's 48 (one multiply per eight lanes; packs saturate, which is the
// clamp). A table no line fits (a rounding that leaves the line, Equalize) keeps the lookup.

// A line through the table's 256 points, clamped (fit_points), with a slope near `slope` (the op's real
// factor), or false. The shift is the largest that keeps a v + b and lut[v] 2^shift within 2^30.
FA_AVX2 bool fit_line(const uint8_t* lut, double slope, LineFit* fit) {
  if (!(slope >= 0.0 && slope <= 256.0)) return false;  // NaN fails too
  int shift = 22;
  while (shift > 0 && (255.0 * slope + 512.0) * static_cast<double>(int64_t(1) << shift) >= 1073741824.0) --shift;
  const int64_t a0 = static_cast<int64_t>(std::nearbyint(slope * static_cast<double>(int64_t(1) << shift)));
  alignas(32) int32_t y[256];
  for (int i = 0; i < 256; i += 8)
    _mm256_store_si256(reinterpret_cast<__m256i*>(y + i),
                       _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(lut + i))));
  return fit_points(y, 0, 256, shift, a0, true, fit);
}

// clamp((a v + b) >> shift, 0, 255) of the 32 bytes at p.
FA_AVX2 __m256i line32(const uint8_t* p, __m256i a, __m256i b, __m128i sh) {
  __m256i r[4];
  for (int k = 0; k < 4; ++k) {
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * k)));
    r[k] = _mm256_sra_epi32(_mm256_add_epi32(_mm256_mullo_epi32(v, a), b), sh);
  }
  // packs and packus work within 128-bit halves: the result's dwords hold lanes 0-3 of r[0], r[1],
  // r[2], r[3], then lanes 4-7 of each; the permute puts them back in order.
  const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
  return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// d[i] = clamp((fit.a s[i] + fit.b) >> fit.shift, 0, 255) for i < n (s and d may be the same; the last
// partial step goes through a buffer).
FA_AVX2 void line_apply(const uint8_t* s, uint8_t* d, int64_t n, const LineFit& fit) {
  const __m256i a = _mm256_set1_epi32(fit.a), b = _mm256_set1_epi32(fit.b);
  const __m128i sh = _mm_cvtsi32_si128(fit.shift);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), line32(s + i, a, b, sh));
  if (i < n) {
    const int64_t m = n - i;
    alignas(32) uint8_t buf[32] = {};
    std::memcpy(buf, s + i, static_cast<size_t>(m));
    _mm256_store_si256(reinterpret_cast<__m256i*>(buf), line32(buf, a, b, sh));
    std::memcpy(d + i, buf, static_cast<size_t>(m));
  }
}

// ---- AVX-512 uint8 blends, 16 pixels per step ------------------------------------------------------------
// The same lane arithmetic in 16 float lanes; 16 int32 narrow to 16 bytes in one instruction.

#if defined(__GNUC__) && !defined(__clang__)
#define FA_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"), optimize("fp-contract=off"))) inline
#else
#define FA_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) inline
#endif

struct BlendConsts16 {
  __m512 alpha, half, zero, top;
};

FA_AVX512 BlendConsts16 blend_consts16(float alpha) {
  return {_mm512_set1_ps(alpha), _mm512_set1_ps(0.5f), _mm512_setzero_ps(), _mm512_set1_ps(255.0f)};
}

// blend_u8 before its truncation. With a factor in [0, 1] (kClamp false) the clamp to [0, 255] is
// skipped: every rounded step then stays between the two levels (|alpha (img - deg)| <= |img - deg|,
// and a sum between two integers rounds to a value between them), so the clamp would change nothing.
template <bool kClamp>
FA_AVX512 __m512 blend_value(__m512 deg, __m512 img, const BlendConsts16& k) {
  const __m512 r = _mm512_add_ps(_mm512_add_ps(deg, _mm512_mul_ps(k.alpha, _mm512_sub_ps(img, deg))), k.half);
  if constexpr (kClamp) return _mm512_min_ps(_mm512_max_ps(r, k.zero), k.top);
  return r;
}

FA_AVX512 bool blend_needs_clamp(float alpha) { return !(alpha >= 0.0f && alpha <= 1.0f); }

template <bool kClamp>
FA_AVX512 __m128i blend16(__m512 deg, __m512 img, const BlendConsts16& k) {
  return _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(blend_value<kClamp>(deg, img, k)));
}

FA_AVX512 __m512i u32x16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <bool kClamp>
FA_AVX512 int64_t pairing512(const uint8_t* s, const uint8_t* q, uint8_t* d, int64_t n, float w) {
  const BlendConsts16 k = blend_consts16(w);
  if (n < 16) return 0;
  for (int64_t i = 0;; i += 16) {
    i = i + 16 <= n ? i : n - 16;  // the last step overlaps the previous one: same bytes again
    store16(d + i, blend16<kClamp>(_mm512_cvtepi32_ps(u32x16(s + i)), _mm512_cvtepi32_ps(u32x16(q + i)), k));
    if (i + 16 == n) return n;
  }
}

FA_AVX512 int64_t pairing512(const uint8_t* s, const uint8_t* q, uint8_t* d, int64_t n, float w) {
  return blend_needs_clamp(w) ? pairing512<true>(s, q, d, n, w) : pairing512<false>(s, q, d, n, w);
}

template <bool kClamp>
FA_AVX512 int64_t color512(const uint8_t* r, const uint8_t* g, const uint8_t* b, uint8_t* dr, uint8_t* dg,
                           uint8_t* db, int64_t n, float f) {
  const BlendConsts16 k = blend_consts16(f);
  const __m512i wr = _mm512_set1_epi32(19595), wg = _mm512_set1_epi32(38470), wb = _mm512_set1_epi32(7471),
                round = _mm512_set1_epi32(0x8000);
  if (n < 16) return 0;
  for (int64_t p = 0;; p += 16) {
    p = p + 16 <= n ? p : n - 16;  // the last step overlaps the previous one: same bytes again
    const __m512i ri = u32x16(r + p), gi = u32x16(g + p), bi = u32x16(b + p);
    const __m512i l = _mm512_add_epi32(_mm512_add_epi32(_mm512_mullo_epi32(ri, wr), _mm512_mullo_epi32(gi, wg)),
                                       _mm512_add_epi32(_mm512_mullo_epi32(bi, wb), round));
    const __m512 y = _mm512_cvtepi32_ps(_mm512_srli_epi32(l, 16));
    store16(dr + p, blend16<kClamp>(y, _mm512_cvtepi32_ps(ri), k));
    store16(dg + p, blend16<kClamp>(y, _mm512_cvtepi32_ps(gi), k));
    store16(db + p, blend16<kClamp>(y, _mm512_cvtepi32_ps(bi), k));
    if (p + 16 == n) return n;
  }
}

FA_AVX512 int64_t color512(const uint8_t* r, const uint8_t* g, const uint8_t* b, uint8_t* dr, uint8_t* dg,
                           uint8_t* db, int64_t n, float f) {
  return blend_needs_clamp(f) ? color512<true>(r, g, b, dr, dg, db, n, f) : color512<false>(r, g, b, dr, dg, db, n, f);
}

// The blend of 16 pixels whose SMOOTH and level are the int32 lanes deg and img: the level, 0..255.
template <bool kClamp>
FA_AVX512 __m512i blend16_i32(__m512i deg, __m512i img, const BlendConsts16& k) {
  return _mm512_cvttps_epi32(blend_value<kClamp>(_mm512_cvtepi32_ps(deg), _mm512_cvtepi32_ps(img), k));
}

// Sharpness of 64 pixels at flat index i (each with a full 3x3 window) with no byte shuffles, which
// only one port runs and which bound the 16-pixel step. 16-bit lanes hold the even pixels (a word's
// low byte) and the odd ones (its high byte) apart: word j of the loads at i - 1, i and i + 1 holds
// columns (2j - 1, 2j), (2j, 2j + 1) and (2j + 1, 2j + 2), so pixel 2j's window columns are the low
// bytes at i - 1 and i and the high byte at i, pixel 2j + 1's the low and high bytes at i and the high
// byte at i + 1. 32-bit lanes then hold pixels 4j + t, t = 0..3, as byte t of the lane, and the four
// blended quarters are shifted back into place. Each pixel's arithmetic is smooth16's and blend16's.
template <bool kClamp>
FA_AVX512 void sharpness64(const uint8_t* s, uint8_t* d, int64_t i, int64_t W, const BlendConsts16& k) {
  const __m512i lo8 = _mm512_set1_epi16(0xff), lo16 = _mm512_set1_epi32(0xffff), lo8d = _mm512_set1_epi32(0xff);
  __m512i left = _mm512_setzero_si512(), low = _mm512_setzero_si512(), high = _mm512_setzero_si512(),
          right = _mm512_setzero_si512(), centre = _mm512_setzero_si512();
  for (int64_t r = i - W; r <= i + W; r += W) {  // column sums of the three rows
    const __m512i b = _mm512_loadu_si512(s + r);
    left = _mm512_add_epi16(left, _mm512_and_si512(_mm512_loadu_si512(s + r - 1), lo8));
    low = _mm512_add_epi16(low, _mm512_and_si512(b, lo8));
    high = _mm512_add_epi16(high, _mm512_srli_epi16(b, 8));
    right = _mm512_add_epi16(right, _mm512_srli_epi16(_mm512_loadu_si512(s + r + 1), 8));
    if (r == i) centre = b;
  }
  // S = window + 4 centre; SMOOTH = mulhi(S + 6, 5042) (smooth16).
  const __m512i six = _mm512_set1_epi16(6), magic = _mm512_set1_epi16(5042);
  const __m512i mid = _mm512_add_epi16(low, high);
  __m512i even = _mm512_add_epi16(_mm512_add_epi16(mid, left), _mm512_slli_epi16(_mm512_and_si512(centre, lo8), 2));
  __m512i odd = _mm512_add_epi16(_mm512_add_epi16(mid, right), _mm512_slli_epi16(_mm512_srli_epi16(centre, 8), 2));
  even = _mm512_mulhi_epu16(_mm512_add_epi16(even, six), magic);  // word j: pixel 2j
  odd = _mm512_mulhi_epu16(_mm512_add_epi16(odd, six), magic);    // word j: pixel 2j + 1
  const __m512i r0 = blend16_i32<kClamp>(_mm512_and_si512(even, lo16), _mm512_and_si512(centre, lo8d), k);
  const __m512i r1 =
      blend16_i32<kClamp>(_mm512_and_si512(odd, lo16), _mm512_and_si512(_mm512_srli_epi32(centre, 8), lo8d), k);
  const __m512i r2 =
      blend16_i32<kClamp>(_mm512_srli_epi32(even, 16), _mm512_and_si512(_mm512_srli_epi32(centre, 16), lo8d), k);
  const __m512i r3 = blend16_i32<kClamp>(_mm512_srli_epi32(odd, 16), _mm512_srli_epi32(centre, 24), k);
  const __m512i out = _mm512_or_si512(_mm512_or_si512(r0, _mm512_slli_epi32(r1, 8)),
                                      _mm512_or_si512(_mm512_slli_epi32(r2, 16), _mm512_slli_epi32(r3, 24)));
  _mm512_storeu_si512(d + i, out);
}

// Sharpness as simd::sharpness: 64 pixels a step (sharpness64), spans under 64 pixels 16 at a time
// with the blend in 16 float lanes.
template <bool kClamp>
FA_AVX512 int64_t sharpness512(const uint8_t* s, uint8_t* d, int64_t begin, int64_t end, int64_t W, float f) {
  const BlendConsts16 k = blend_consts16(f);
  if (end - begin >= 64) {
    for (int64_t i = begin;; i += 64) {
      i = i + 64 <= end ? i : end - 64;  // the last step overlaps the previous one: same bytes again
      sharpness64<kClamp>(s, d, i, W, k);
      if (i + 64 == end) return end;
    }
  }
  if (end - begin < 16) return begin;
  for (int64_t i = begin;; i += 16) {
    i = i + 16 <= end ? i : end - 16;  // the last step overlaps the previous one: same bytes again
    __m256i centre;
    const __m256i deg = smooth16(s, i, W, &centre);
    store16(d + i, blend16<kClamp>(_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(deg)),
                                   _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(centre)), k));
    if (i + 16 == end) return end;
  }
}

FA_AVX512 int64_t sharpness512(const uint8_t* s, uint8_t* d, int64_t begin, int64_t end, int64_t W, float f) {
  return blend_needs_clamp(f) ? sharpness512<true>(s, d, begin, end, W, f) : sharpness512<false>(s, d, begin, end, W, f);
}

// ---- AVX-512 column shifts (ShearY on uint8) ---------------------------------------------------------------

// Output column x of a column-shift resampling reads source row y + t_x (t monotone in x). Over a
// chunk of 64 columns the columns with the same t form runs; `mask` marks a run's columns.
struct ShiftRun {
  int64_t t;
  uint64_t mask;
};

// One output row: for each chunk, one zero-masked load per run from its source row, OR-ed together
// (independent loads, not a chain of merges), and the fill where no run's row is inside the image.
// Masked-off bytes are not read.
FA_AVX512 void column_shift_row(const uint8_t* s, uint8_t* d, int64_t y, int64_t H, int64_t W, const ShiftRun* runs,
                                const int32_t* first, uint8_t fill) {
  const __m512i f = _mm512_set1_epi8(static_cast<char>(fill));
  for (int64_t x0 = 0, c = 0; x0 < W; x0 += 64, ++c) {
    __m512i got = _mm512_setzero_si512();
    __mmask64 valid = 0;
    for (int32_t j = first[c]; j < first[c + 1]; ++j) {
      const int64_t r = y + runs[j].t;
      if (r >= 0 && r < H) {
        got = _mm512_or_si512(got, _mm512_maskz_loadu_epi8(runs[j].mask, s + r * W + x0));
        valid |= runs[j].mask;
      }
    }
    const __m512i acc = _mm512_mask_blend_epi8(valid, f, got);
    if (W - x0 >= 64) {
      _mm512_storeu_si512(d + x0, acc);
    } else {
      _mm512_mask_storeu_epi8(d + x0, (~0ULL) >> (64 - (W - x0)), acc);
    }
  }
}

// Output rows [y0, y1) of an image of at most 64 columns (one chunk) whose every run reads a row inside
// the image: no test per run, no fill.
FA_AVX512 void column_shift_rows_inside(const uint8_t* s, uint8_t* d, int64_t y0, int64_t y1, int64_t W,
                                        const ShiftRun* runs, int32_t n) {
  const __mmask64 keep = W >= 64 ? ~0ULL : (~0ULL) >> (64 - W);
  for (int64_t y = y0; y < y1; ++y) {
    __m512i got = _mm512_setzero_si512();
    for (int32_t j = 0; j < n; ++j)
      got = _mm512_or_si512(got, _mm512_maskz_loadu_epi8(runs[j].mask, s + (y + runs[j].t) * W));
    _mm512_mask_storeu_epi8(d + y * W, keep, got);
  }
}

// n[i] = start + h[0] + ... + h[i - 1] for i < 256, as floats (exact: the caller keeps every count
// below 2^24): a scan of 16 lanes in four shifted additions per vector, the previous vectors' total
// carried in, instead of a chain of 256 dependent additions.
FA_AVX512 void prefix_counts256(const int* h, int start, float* n) {
  const __m512i zero = _mm512_setzero_si512(), last = _mm512_set1_epi32(15);
  __m512i carry = _mm512_set1_epi32(start);
  for (int i = 0; i < 256; i += 16) {
    const __m512i v = _mm512_loadu_si512(h + i);
    __m512i x = _mm512_add_epi32(v, _mm512_alignr_epi32(v, zero, 15));  // lane j: v[j] + v[j - 1]
    x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 14));
    x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 12));
    x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 8));  // inclusive sums within the vector
    x = _mm512_add_epi32(x, carry);
    _mm512_storeu_ps(n + i, _mm512_cvtepi32_ps(_mm512_sub_epi32(x, v)));
    carry = _mm512_permutexvar_epi32(last, x);
  }
}

// Sum of grey_u8 (Pillow's L: (19595 r + 38470 g + 7471 b + 2^15) >> 16) over pixels [0, n) of three
// planes, 64 pixels a step without widening shuffles: 32-bit lanes hold pixels 4j + t as byte t, and
// each quarter's (r, g) and (b, 2) word pairs go through vpmaddwd. 38470 is past int16, so g enters as
// -27066 and g * 2^16 is added back; (b, 2) . (7471, 16384) carries the rounding term. Exact: every sum
// is below 2^24. Returns how many pixels it summed (a multiple of 64) and adds their sum to *total.
FA_AVX512 int64_t grey_total512(const uint8_t* r, const uint8_t* g, const uint8_t* b, int64_t n, int64_t* total) {
  const __m512i w_rg = _mm512_set1_epi32(static_cast<int>((static_cast<uint32_t>(-27066) << 16) | 19595u));
  const __m512i w_b = _mm512_set1_epi32((16384 << 16) | 7471);
  const __m512i lo8 = _mm512_set1_epi32(0xff), hi8 = _mm512_set1_epi32(0xff0000), two = _mm512_set1_epi32(0x20000);
  constexpr int64_t kSteps = int64_t(1) << 16;  // the 16 lanes' total stays below 2^31: 4 * 255 a lane a step
  int64_t p = 0;
  while (p + 64 <= n) {
    __m512i acc = _mm512_setzero_si512();
    for (int64_t k = 0; k < kSteps && p + 64 <= n; ++k, p += 64) {
      const __m512i R = _mm512_loadu_si512(r + p), G = _mm512_loadu_si512(g + p), B = _mm512_loadu_si512(b + p);
      const __m512i g16[4] = {_mm512_and_si512(_mm512_slli_epi32(G, 16), hi8),
                              _mm512_and_si512(_mm512_slli_epi32(G, 8), hi8), _mm512_and_si512(G, hi8),
                              _mm512_and_si512(_mm512_srli_epi32(G, 8), hi8)};
      const __m512i r8[4] = {_mm512_and_si512(R, lo8), _mm512_and_si512(_mm512_srli_epi32(R, 8), lo8),
                             _mm512_and_si512(_mm512_srli_epi32(R, 16), lo8), _mm512_srli_epi32(R, 24)};
      const __m512i b8[4] = {_mm512_and_si512(B, lo8), _mm512_and_si512(_mm512_srli_epi32(B, 8), lo8),
                             _mm512_and_si512(_mm512_srli_epi32(B, 16), lo8), _mm512_srli_epi32(B, 24)};
      for (int t = 0; t < 4; ++t) {
        const __m512i l = _mm512_add_epi32(
            _mm512_add_epi32(_mm512_madd_epi16(_mm512_or_si512(r8[t], g16[t]), w_rg), g16[t]),
            _mm512_madd_epi16(_mm512_or_si512(b8[t], two), w_b));
        acc = _mm512_add_epi32(acc, _mm512_srli_epi32(l, 16));
      }
    }
    *total += _mm512_reduce_add_epi32(acc);
  }
  return p;
}

#undef FA_AVX512

// ---- AVX-512 VBMI: 64 table lookups per step ------------------------------------------------------------

// Two 128-entry VPERMI2B lookups (index bits 0-6) and a blend on bit 7.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) inline void lut_apply_vbmi(const uint8_t* s, uint8_t* d,
                                                                                  int64_t n, const uint8_t* lut) {
  const __m512i t0 = _mm512_loadu_si512(lut), t1 = _mm512_loadu_si512(lut + 64);
  const __m512i t2 = _mm512_loadu_si512(lut + 128), t3 = _mm512_loadu_si512(lut + 192);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i v = _mm512_loadu_si512(s + i);
    const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1), hi = _mm512_permutex2var_epi8(t2, v, t3);
    _mm512_storeu_si512(d + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi));
  }
  if (i < n) {
    const __mmask64 m = (~0ULL) >> (64 - (n - i));
    const __m512i v = _mm512_maskz_loadu_epi8(m, s + i);
    const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1), hi = _mm512_permutex2var_epi8(t2, v, t3);
    _mm512_mask_storeu_epi8(d + i, m, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi));
  }
}

}  // namespace simd
}  // namespace policy
}  // namespace fastaug

#undef FA_AVX2
#undef FA_WITH_BLEND
#define FASTAUG_POLICY_SIMD 1
#endif
