// The small vector vocabulary the SIMD copies of the CPU kernels are written in (common/cpu_kernels.h):
// float32 lanes (Vf), int32 lanes (Vi) and lane masks (Mask), once for AVX2 (8 lanes) and once for
// AVX-512 (16 lanes), each inside its own target region (common/cpu_dispatch.h). Only what the kernels
// use, with IEEE semantics made explicit where it matters: comparisons are ordered (false on NaN),
// there is no min/max (their NaN rules differ between instruction sets; the kernels select instead),
// and no fused multiply-add (the SIMD copies must round exactly as the scalar maths does).
#pragma once

#include <cstdint>

#include "common/cpu_dispatch.h"

#ifdef FASTAUG_X86_DISPATCH
#include <immintrin.h>

// ---- AVX2 + FMA: 8 lanes ----------------------------------------------------------------------------
FASTAUG_ISA_AVX2_BEGIN
namespace fastaug {
namespace simd {
namespace avx2 {

constexpr int kLanes = 8;
struct Vf {
  __m256 v;
};
struct Vi {
  __m256i v;
};
struct Mask {
  __m256i v;  // all ones in a lane that is set
};

inline Vf set1(float a) { return {_mm256_set1_ps(a)}; }
inline Vi set1i(int32_t a) { return {_mm256_set1_epi32(a)}; }
inline Vf zero() { return {_mm256_setzero_ps()}; }
inline Vi iota_i() { return {_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)}; }

// The first n lanes (0 <= n <= kLanes).
inline Mask first_n(int n) { return {_mm256_cmpgt_epi32(set1i(n).v, iota_i().v)}; }

inline Vf loadu(const float* p) { return {_mm256_loadu_ps(p)}; }
// Lanes [0, n) from p, the others 0; nothing past p + n is read.
inline Vf load_n(const float* p, int n) { return {_mm256_maskload_ps(p, first_n(n).v)}; }
inline void storeu(float* p, Vf a) { _mm256_storeu_ps(p, a.v); }
// Lanes [0, n) to p; nothing past p + n is written.
inline void store_n(float* p, Vf a, int n) { _mm256_maskstore_ps(p, first_n(n).v, a.v); }
inline Vi loadu_i(const int32_t* p) { return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))}; }
inline void storeu_i(int32_t* p, Vi a) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), a.v); }

inline Vf operator+(Vf a, Vf b) { return {_mm256_add_ps(a.v, b.v)}; }
inline Vf operator-(Vf a, Vf b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline Vf operator*(Vf a, Vf b) { return {_mm256_mul_ps(a.v, b.v)}; }
// Lanes t.. of lo, then lanes ..t - 1 of hi: the vector t floats past lo's in memory when hi follows lo.
// (A blend and a cross-lane permute. The box sums use it with 16 lanes only: in the AVX2 copy it
// measured no faster than unaligned loads on Zen 4.)
template <int t>
inline Vf shifted(Vf lo, Vf hi) {
  static_assert(t > 0 && t < 8, "a shift inside one vector");
  const __m256 mixed = _mm256_blend_ps(lo.v, hi.v, (1 << t) - 1);  // lane l < t from hi
  return {_mm256_permutevar8x32_ps(mixed, _mm256_setr_epi32(t, t + 1, t + 2, t + 3, t + 4, t + 5, t + 6, t + 7))};
}
inline Vf operator/(Vf a, Vf b) { return {_mm256_div_ps(a.v, b.v)}; }
inline Vf operator-(Vf a) { return {_mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f))}; }
inline Vf floor(Vf a) { return {_mm256_floor_ps(a.v)}; }
inline Vf fma(Vf a, Vf b, Vf c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }  // exact-remainder maths only

inline Mask lt(Vf a, Vf b) { return {_mm256_castps_si256(_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ))}; }
inline Mask le(Vf a, Vf b) { return {_mm256_castps_si256(_mm256_cmp_ps(a.v, b.v, _CMP_LE_OQ))}; }
inline Mask gt(Vf a, Vf b) { return {_mm256_castps_si256(_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ))}; }
inline Mask ge(Vf a, Vf b) { return {_mm256_castps_si256(_mm256_cmp_ps(a.v, b.v, _CMP_GE_OQ))}; }
inline Mask eq(Vf a, Vf b) { return {_mm256_castps_si256(_mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ))}; }
inline Mask operator&(Mask a, Mask b) { return {_mm256_and_si256(a.v, b.v)}; }
inline Mask operator|(Mask a, Mask b) { return {_mm256_or_si256(a.v, b.v)}; }
inline Mask andnot(Mask a, Mask b) { return {_mm256_andnot_si256(a.v, b.v)}; }  // ~a & b
inline bool all(Mask a) { return _mm256_movemask_ps(_mm256_castsi256_ps(a.v)) == 0xff; }
inline bool any(Mask a) { return _mm256_movemask_ps(_mm256_castsi256_ps(a.v)) != 0; }
// Every lane of `active` is set in m.
inline bool all_of(Mask m, Mask active) { return _mm256_testc_si256(m.v, active.v) != 0; }
// Bit l set when lane l is.
inline unsigned mask_bits(Mask a) { return static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(a.v))); }
// m ? a : b, lane by lane.
inline Vf select(Mask m, Vf a, Vf b) { return {_mm256_blendv_ps(b.v, a.v, _mm256_castsi256_ps(m.v))}; }
inline Vi select(Mask m, Vi a, Vi b) {
  return {_mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(b.v), _mm256_castsi256_ps(a.v),
                                               _mm256_castsi256_ps(m.v)))};
}

inline Vi operator+(Vi a, Vi b) { return {_mm256_add_epi32(a.v, b.v)}; }
inline Vi operator-(Vi a, Vi b) { return {_mm256_sub_epi32(a.v, b.v)}; }
inline Vi operator*(Vi a, Vi b) { return {_mm256_mullo_epi32(a.v, b.v)}; }
inline Vi operator&(Vi a, Vi b) { return {_mm256_and_si256(a.v, b.v)}; }
inline Vi min(Vi a, Vi b) { return {_mm256_min_epi32(a.v, b.v)}; }
inline Vi max(Vi a, Vi b) { return {_mm256_max_epi32(a.v, b.v)}; }
inline Mask gt(Vi a, Vi b) { return {_mm256_cmpgt_epi32(a.v, b.v)}; }
inline Mask eq(Vi a, Vi b) { return {_mm256_cmpeq_epi32(a.v, b.v)}; }
inline Vi trunc_i(Vf a) { return {_mm256_cvttps_epi32(a.v)}; }  // the caller keeps |a| < 2^31
inline Vi broadcast_first(Vi a) { return {_mm256_permutevar8x32_epi32(a.v, _mm256_setzero_si256())}; }
inline int32_t first(Vi a) { return _mm_cvtsi128_si32(_mm256_castsi256_si128(a.v)); }
inline Vf to_f(Vi a) { return {_mm256_cvtepi32_ps(a.v)}; }

// base[idx] in the lanes of m, 0 elsewhere (nothing read there).
inline Vf gather(const float* base, Vi idx, Mask m) {
  return {_mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, idx.v, _mm256_castsi256_ps(m.v), 4)};
}
// (base[idx], base[idx + 1]) of every lane, read as one 8-byte element each: half the loads of two
// gathers. Every lane must be in bounds. Eight plain loads, not two vgatherdpd: on AMD Zen 3 a
// 4-element gather costs about 8 cycles, twice the loads and shuffles below (measured 1.2-1.3 against
// 0.65-0.72 ns per pixel and channel, a 224x224 image's pairs from cache), and Intel's gathers got
// slower with the 2023 GDS microcode update; the values read, and so the results, are the same.
inline void pairs_at(const float* base, const int32_t* i, Vf* left, Vf* right) {
  auto pair = [&](int l, __m128d lo) { return _mm_loadh_pd(lo, reinterpret_cast<const double*>(base + i[l])); };
  auto first = [&](int l) { return _mm_castsi128_pd(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(base + i[l]))); };
  const __m128d p0 = pair(1, first(0)), p1 = pair(3, first(2));  // l0 r0 l1 r1, l2 r2 l3 r3
  const __m128d p4 = pair(5, first(4)), p5 = pair(7, first(6));  // lanes 4-7 likewise
  const __m256 a = _mm256_castpd_ps(_mm256_set_m128d(p4, p0)), b = _mm256_castpd_ps(_mm256_set_m128d(p5, p1));
  left->v = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // l0 l1 l2 l3 | l4 l5 l6 l7
  right->v = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
}
inline void gather_pairs(const float* base, Vi idx, Vf* left, Vf* right) {
  alignas(32) int32_t i[kLanes];
  _mm256_store_si256(reinterpret_cast<__m256i*>(i), idx.v);
  pairs_at(base, i, left, right);
}
// The same for the lanes of m only (0 elsewhere; nothing read there: their lanes read base[0] and
// base[1], which the caller keeps in bounds, and are then cleared).
inline void gather_pairs(const float* base, Vi idx, Mask m, Vf* left, Vf* right) {
  gather_pairs(base, {_mm256_and_si256(idx.v, m.v)}, left, right);
  left->v = _mm256_and_ps(left->v, _mm256_castsi256_ps(m.v));
  right->v = _mm256_and_ps(right->v, _mm256_castsi256_ps(m.v));
}

// Pixel slots: the lanes of a, b, c, d as 4-float slots (a[l], b[l], c[l], d[l]), slot l at out + 4 * l.
// (Two in-lane shuffles leave pixel 4k + i in 128-bit lane k of the i-th result; the lanes are then
// put in pixel order.)
inline void interleave4(Vf a, Vf b, Vf c, Vf d, float* out) {
  const __m256 t0 = _mm256_unpacklo_ps(a.v, b.v), t1 = _mm256_unpackhi_ps(a.v, b.v);
  const __m256 t2 = _mm256_unpacklo_ps(c.v, d.v), t3 = _mm256_unpackhi_ps(c.v, d.v);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(out, _mm256_permute2f128_ps(u0, u1, 0x20));       // pixels 0, 1
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(u2, u3, 0x20));   // 2, 3
  _mm256_storeu_ps(out + 16, _mm256_permute2f128_ps(u0, u1, 0x31));  // 4, 5
  _mm256_storeu_ps(out + 24, _mm256_permute2f128_ps(u2, u3, 0x31));  // 6, 7
}
// p[0..3] += *w * g[0..3]: one pixel slot's read-add-write (a product, then a sum: no fused rounding).
inline void slot_add(float* p, const float* w, const float* g) {
  _mm_storeu_ps(p, _mm_add_ps(_mm_loadu_ps(p), _mm_mul_ps(_mm_broadcast_ss(w), _mm_loadu_ps(g))));
}

// Wide pixel slots (16 channels side by side, a cache line a slot): p[0..15] += *w * g[0..15] (two
// 8-float read-add-writes here).
inline void wide_add(float* p, const float* w, const float* g) {
  const __m256 ws = _mm256_broadcast_ss(w);
  _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), _mm256_mul_ps(ws, _mm256_loadu_ps(g))));
  _mm256_storeu_ps(p + 8, _mm256_add_ps(_mm256_loadu_ps(p + 8), _mm256_mul_ps(ws, _mm256_loadu_ps(g + 8))));
}
// A 16 x 16 transpose: out[l * out_stride + r] = in[r * stride + l] for the input's rows r < rows, every
// l < 16 (lanes l >= lanes taken as 0: nothing past them is read, nothing past row `rows` is read or
// written). Channel rows of the output gradient to wide slots, and wide slots back to channel rows.
// (Four 8 x 8 transposes here.)
inline void transpose16(const float* in, int64_t stride, int rows, int lanes, float* out, int64_t out_stride) {
  for (int rh = 0; rh < 2; ++rh)
    for (int lh = 0; lh < 2; ++lh) {
      const int nl = lanes - 8 * lh < 0 ? 0 : (lanes - 8 * lh > 8 ? 8 : lanes - 8 * lh);
      __m256 r[8];
      for (int k = 0; k < 8; ++k) {
        const float* row = in + (8 * rh + k) * stride + 8 * lh;
        r[k] = 8 * rh + k >= rows ? _mm256_setzero_ps() : nl == 8 ? _mm256_loadu_ps(row) : load_n(row, nl).v;
      }
      __m256 t[8], u[8];
      for (int k = 0; k < 4; ++k) {
        t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
      }
      for (int k = 0; k < 2; ++k) {  // u[4k + i]: lane L holds column 4L + i of rows 4k .. 4k + 3
        u[4 * k + 0] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], _MM_SHUFFLE(3, 2, 3, 2));
      }
      const int nr = rows - 8 * rh < 0 ? 0 : (rows - 8 * rh > 8 ? 8 : rows - 8 * rh);
      if (!nr) continue;
      float* o = out + 8 * lh * out_stride + 8 * rh;
      auto put = [&](int l, __m256 v) { nr == 8 ? _mm256_storeu_ps(o + l * out_stride, v) : store_n(o + l * out_stride, {v}, nr); };
      for (int i = 0; i < 4; ++i) {
        put(i, _mm256_permute2f128_ps(u[i], u[4 + i], 0x20));
        put(4 + i, _mm256_permute2f128_ps(u[i], u[4 + i], 0x31));
      }
    }
}

// Images held as pixel slots (4 channels side by side), read for kLanes pixels at once: four vectors
// j = 0..3 of slots, vector j holding pixels j and j + 4 (128-bit lane k: pixel j + 4k). That order
// makes transpose4 and spread4 shuffles inside each 128-bit lane.
// Vector j: the slots at base + i[j + 4k] (i: offsets in floats; two 16-byte loads).
inline Vf slots4(const float* base, const int32_t* i, int j) { return {_mm256_loadu2_m128(base + i[j + 4], base + i[j])}; }
// The lanes of w that vector j of slots4 owns (lane j + 4k in its 128-bit lane k), each repeated over
// its slot's 4 floats, for j = 0..3: one in-lane shuffle each.
inline void spread4(Vf w, Vf out[4]) {
  out[0].v = _mm256_permute_ps(w.v, 0x00);
  out[1].v = _mm256_permute_ps(w.v, 0x55);
  out[2].v = _mm256_permute_ps(w.v, 0xaa);
  out[3].v = _mm256_permute_ps(w.v, 0xff);
}
// Four vectors of slots (slots4's order) to four vectors of one channel each, pixels in order.
inline void transpose4(Vf v[4]) {
  const __m256 t0 = _mm256_unpacklo_ps(v[0].v, v[1].v), t1 = _mm256_unpackhi_ps(v[0].v, v[1].v);
  const __m256 t2 = _mm256_unpacklo_ps(v[2].v, v[3].v), t3 = _mm256_unpackhi_ps(v[2].v, v[3].v);
  v[0].v = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  v[1].v = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  v[2].v = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  v[3].v = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// One row of corners of a block of m <= 16 consecutive pixels, in pixel slots: pixel j's left corner is
// slot j of p, its right corner slot j + 1; go holds the pixels' slots of the output gradient (pixel
// order), wl and wr their left and right weights (16 readable floats each). Slot j gets wl[j] * go[j],
// then wr[j - 1] * go[j - 1]: the scalar order (every left corner of the block before every right one).
// Plain loads and stores only, a pair of slots at a time and a lone last slot in 128 bits: masked
// stores (vmaskmovps) are microcoded on AMD Zen (a zero flow's warp backward, 16x3x224², took 12.0 ms
// with one per pair of slots, 7.8 ms without).
inline void slot_row_add(float* p, const float* go, const float* wl, const float* wr, int m) {
  const __m256i pair = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  __m256 prev_r = _mm256_setzero_ps();
  int k = 0;
  for (; 2 * k + 1 < m; ++k) {  // slots 2k, 2k + 1
    const __m256 g = _mm256_loadu_ps(go + 8 * k);
    const __m256 l = _mm256_mul_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(wl + 2 * k), pair), g);
    const __m256 r = _mm256_mul_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(wr + 2 * k), pair), g);
    __m256 acc = _mm256_add_ps(_mm256_loadu_ps(p + 8 * k), l);
    const __m256 shifted = _mm256_add_ps(acc, _mm256_permute2f128_ps(prev_r, r, 0x21));  // + r of slot - 1
    acc = k == 0 ? _mm256_blend_ps(acc, shifted, 0xf0) : shifted;  // slot 0 has no right corner before it
    _mm256_storeu_ps(p + 8 * k, acc);
    prev_r = r;
  }
  if (2 * k < m) {  // the lone slot 2k (m odd): its left corner, then the right one of slot 2k - 1
    const __m128 l = _mm_mul_ps(_mm_broadcast_ss(wl + 2 * k), _mm_loadu_ps(go + 8 * k));
    __m128 acc = _mm_add_ps(_mm_loadu_ps(p + 8 * k), l);
    if (k > 0) acc = _mm_add_ps(acc, _mm256_extractf128_ps(prev_r, 1));
    _mm_storeu_ps(p + 8 * k, acc);
  }
  slot_add(p + 4 * m, wr + m - 1, go + 4 * (m - 1));
}

}  // namespace avx2
}  // namespace simd
}  // namespace fastaug
FASTAUG_ISA_END

// ---- AVX-512 F/BW/VL/DQ: 16 lanes -------------------------------------------------------------------
FASTAUG_ISA_AVX512_BEGIN
namespace fastaug {
namespace simd {
namespace avx512 {

constexpr int kLanes = 16;
struct Vf {
  __m512 v;
};
struct Vi {
  __m512i v;
};
struct Mask {
  __mmask16 v;
};

inline Vf set1(float a) { return {_mm512_set1_ps(a)}; }
inline Vi set1i(int32_t a) { return {_mm512_set1_epi32(a)}; }
inline Vf zero() { return {_mm512_setzero_ps()}; }
inline Vi iota_i() { return {_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)}; }

inline Mask first_n(int n) { return {static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1u)}; }

inline Vf loadu(const float* p) { return {_mm512_loadu_ps(p)}; }
inline Vf load_n(const float* p, int n) { return {_mm512_maskz_loadu_ps(first_n(n).v, p)}; }
inline void storeu(float* p, Vf a) { _mm512_storeu_ps(p, a.v); }
inline void store_n(float* p, Vf a, int n) { _mm512_mask_storeu_ps(p, first_n(n).v, a.v); }
inline Vi loadu_i(const int32_t* p) { return {_mm512_loadu_si512(p)}; }
inline void storeu_i(int32_t* p, Vi a) { _mm512_storeu_si512(p, a.v); }

inline Vf operator+(Vf a, Vf b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vf operator-(Vf a, Vf b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline Vf operator*(Vf a, Vf b) { return {_mm512_mul_ps(a.v, b.v)}; }
// As in the AVX2 vocabulary, in one valignd. (Zero-masked, as pairs_at's inserts: the plain form trips
// GCC 12's -Wmaybe-uninitialized.)
template <int t>
inline Vf shifted(Vf lo, Vf hi) {
  static_assert(t > 0 && t < 16, "a shift inside one vector");
  return {_mm512_castsi512_ps(
      _mm512_maskz_alignr_epi32(0xffff, _mm512_castps_si512(hi.v), _mm512_castps_si512(lo.v), t))};
}
inline Vf operator/(Vf a, Vf b) { return {_mm512_div_ps(a.v, b.v)}; }
inline Vf operator-(Vf a) {
  return {_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a.v), _mm512_set1_epi32(INT32_MIN)))};
}
// (Zero-masked forms with a full mask here and below: the plain ones trip GCC 12's -Wmaybe-uninitialized.)
inline Vf floor(Vf a) { return {_mm512_maskz_roundscale_ps(0xffff, a.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)}; }
inline Vf fma(Vf a, Vf b, Vf c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }

inline Mask lt(Vf a, Vf b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
inline Mask le(Vf a, Vf b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ)}; }
inline Mask gt(Vf a, Vf b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ)}; }
inline Mask ge(Vf a, Vf b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GE_OQ)}; }
inline Mask eq(Vf a, Vf b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ)}; }
inline Mask operator&(Mask a, Mask b) { return {static_cast<__mmask16>(a.v & b.v)}; }
inline Mask operator|(Mask a, Mask b) { return {static_cast<__mmask16>(a.v | b.v)}; }
inline Mask andnot(Mask a, Mask b) { return {static_cast<__mmask16>(~a.v & b.v)}; }
inline bool all(Mask a) { return a.v == 0xffff; }
inline bool any(Mask a) { return a.v != 0; }
inline bool all_of(Mask m, Mask active) { return (m.v & active.v) == active.v; }
inline unsigned mask_bits(Mask a) { return a.v; }
inline Vf select(Mask m, Vf a, Vf b) { return {_mm512_mask_blend_ps(m.v, b.v, a.v)}; }
inline Vi select(Mask m, Vi a, Vi b) { return {_mm512_mask_blend_epi32(m.v, b.v, a.v)}; }

inline Vi operator+(Vi a, Vi b) { return {_mm512_add_epi32(a.v, b.v)}; }
inline Vi operator-(Vi a, Vi b) { return {_mm512_sub_epi32(a.v, b.v)}; }
inline Vi operator*(Vi a, Vi b) { return {_mm512_mullo_epi32(a.v, b.v)}; }
inline Vi operator&(Vi a, Vi b) { return {_mm512_and_si512(a.v, b.v)}; }
inline Vi min(Vi a, Vi b) { return {_mm512_maskz_min_epi32(0xffff, a.v, b.v)}; }
inline Vi max(Vi a, Vi b) { return {_mm512_maskz_max_epi32(0xffff, a.v, b.v)}; }
inline Mask gt(Vi a, Vi b) { return {_mm512_cmpgt_epi32_mask(a.v, b.v)}; }
inline Mask eq(Vi a, Vi b) { return {_mm512_cmpeq_epi32_mask(a.v, b.v)}; }
inline Vi trunc_i(Vf a) { return {_mm512_maskz_cvttps_epi32(0xffff, a.v)}; }
inline Vi broadcast_first(Vi a) { return {_mm512_maskz_permutexvar_epi32(0xffff, _mm512_setzero_si512(), a.v)}; }
inline int32_t first(Vi a) { return _mm512_cvtsi512_si32(a.v); }
inline Vf to_f(Vi a) { return {_mm512_maskz_cvtepi32_ps(0xffff, a.v)}; }

inline Vf gather(const float* base, Vi idx, Mask m) {
  return {_mm512_mask_i32gather_ps(_mm512_setzero_ps(), m.v, idx.v, base, 4)};
}
// (base[i[l]], base[i[l] + 1]) of lanes l .. l + 3 (l r l r l r l r): four 8-byte loads.
__attribute__((always_inline)) inline __m256d pairs4(const float* base, const int32_t* i, int l) {
  auto at = [&](int k) { return reinterpret_cast<const double*>(base + i[l + k]); };
  const __m128d lo = _mm_loadh_pd(_mm_load_sd(at(0)), at(1)), hi = _mm_loadh_pd(_mm_load_sd(at(2)), at(3));
  return _mm256_set_m128d(hi, lo);
}
// (base[idx], base[idx + 1]) of every lane, as in the AVX2 vocabulary: sixteen plain 8-byte loads,
// not two vgatherdpd. On AMD Zen 4 the gathers made the AVX-512 copy of the warp forward slower than
// the AVX2 copy (16x3x224²: 3.55 against 3.12 ms); the values read, and so the results, are the same.
// (Forced inline, as pairs4: GCC left both calls, whose results went through memory.)
__attribute__((always_inline)) inline void pairs_at(const float* base, const int32_t* i, Vf* left, Vf* right) {
  // (zero-masked inserts: the plain ones trip GCC 12's -Wuninitialized)
  const __m512d z = _mm512_setzero_pd();
  const __m512d a = _mm512_maskz_insertf64x4(0xff, _mm512_maskz_insertf64x4(0xff, z, pairs4(base, i, 0), 0),
                                             pairs4(base, i, 4), 1);  // pixels 0-7
  const __m512d b = _mm512_maskz_insertf64x4(0xff, _mm512_maskz_insertf64x4(0xff, z, pairs4(base, i, 8), 0),
                                             pairs4(base, i, 12), 1);  // 8-15
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  left->v = _mm512_permutex2var_ps(_mm512_castpd_ps(a), even, _mm512_castpd_ps(b));
  right->v = _mm512_permutex2var_ps(_mm512_castpd_ps(a), odd, _mm512_castpd_ps(b));
}
inline void gather_pairs(const float* base, Vi idx, Vf* left, Vf* right) {
  alignas(64) int32_t i[kLanes];
  _mm512_store_si512(i, idx.v);
  pairs_at(base, i, left, right);
}
// The lanes of m only, 0 elsewhere (as in the AVX2 vocabulary: their lanes read base[0] and base[1]).
inline void gather_pairs(const float* base, Vi idx, Mask m, Vf* left, Vf* right) {
  gather_pairs(base, {_mm512_maskz_mov_epi32(m.v, idx.v)}, left, right);
  left->v = _mm512_maskz_mov_ps(m.v, left->v);
  right->v = _mm512_maskz_mov_ps(m.v, right->v);
}

// Pixel slots, as in the AVX2 vocabulary (four 128-bit lanes here).
inline void interleave4(Vf a, Vf b, Vf c, Vf d, float* out) {
  const __m512 t0 = _mm512_maskz_unpacklo_ps(0xffff, a.v, b.v), t1 = _mm512_maskz_unpackhi_ps(0xffff, a.v, b.v);
  const __m512 t2 = _mm512_maskz_unpacklo_ps(0xffff, c.v, d.v), t3 = _mm512_maskz_unpackhi_ps(0xffff, c.v, d.v);
  const __m512 u0 = _mm512_maskz_shuffle_ps(0xffff, t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 u1 = _mm512_maskz_shuffle_ps(0xffff, t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 u2 = _mm512_maskz_shuffle_ps(0xffff, t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 u3 = _mm512_maskz_shuffle_ps(0xffff, t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  // 128-bit lane k of u_i is pixel 4k + i: gather lane k of u0..u3 for pixels 4k..4k+3.
  const __m512 e01 = _mm512_maskz_shuffle_f32x4(0xffff, u0, u1, _MM_SHUFFLE(1, 0, 1, 0));  // u0.0 u0.1 u1.0 u1.1
  const __m512 e23 = _mm512_maskz_shuffle_f32x4(0xffff, u2, u3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 f01 = _mm512_maskz_shuffle_f32x4(0xffff, u0, u1, _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 f23 = _mm512_maskz_shuffle_f32x4(0xffff, u2, u3, _MM_SHUFFLE(3, 2, 3, 2));
  _mm512_storeu_ps(out, _mm512_maskz_shuffle_f32x4(0xffff, e01, e23, _MM_SHUFFLE(2, 0, 2, 0)));       // pixels 0-3
  _mm512_storeu_ps(out + 16, _mm512_maskz_shuffle_f32x4(0xffff, e01, e23, _MM_SHUFFLE(3, 1, 3, 1)));  // 4-7
  _mm512_storeu_ps(out + 32, _mm512_maskz_shuffle_f32x4(0xffff, f01, f23, _MM_SHUFFLE(2, 0, 2, 0)));  // 8-11
  _mm512_storeu_ps(out + 48, _mm512_maskz_shuffle_f32x4(0xffff, f01, f23, _MM_SHUFFLE(3, 1, 3, 1)));  // 12-15
}
// p[0..3] += *w * g[0..3]: one pixel slot's read-add-write (a product, then a sum: no fused rounding).
inline void slot_add(float* p, const float* w, const float* g) {
  _mm_storeu_ps(p, _mm_add_ps(_mm_loadu_ps(p), _mm_mul_ps(_mm_broadcast_ss(w), _mm_loadu_ps(g))));
}

// Wide pixel slots, as in the AVX2 vocabulary (one 16-float read-add-write here).
inline void wide_add(float* p, const float* w, const float* g) {
  _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), _mm512_mul_ps(_mm512_set1_ps(*w), _mm512_loadu_ps(g))));
}
// As in the AVX2 vocabulary, in registers: pairs of rows interleaved, then groups of four, then the
// 128-bit lanes moved (64 shuffles).
inline void transpose16(const float* in, int64_t stride, int rows, int lanes, float* out, int64_t out_stride) {
  // (Masked loads and stores only where rows or lanes fall short: a masked load of data just stored,
  // a slot row of the caller's, waits for the store instead of taking its value forwarded.)
  const __mmask16 m = first_n(lanes).v, put = first_n(rows).v;
  __m512 r[16], t[16];
  for (int k = 0; k < 16; ++k)
    r[k] = k >= rows ? _mm512_setzero_ps() : lanes == 16 ? _mm512_loadu_ps(in + k * stride)
                                                          : _mm512_maskz_loadu_ps(m, in + k * stride);
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_maskz_unpacklo_ps(0xffff, r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_maskz_unpackhi_ps(0xffff, r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {  // r[4k + i]: 128-bit lane L holds column 4L + i of rows 4k .. 4k + 3
    r[4 * k + 0] = _mm512_maskz_shuffle_ps(0xffff, t[4 * k], t[4 * k + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * k + 1] = _mm512_maskz_shuffle_ps(0xffff, t[4 * k], t[4 * k + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * k + 2] = _mm512_maskz_shuffle_ps(0xffff, t[4 * k + 1], t[4 * k + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * k + 3] = _mm512_maskz_shuffle_ps(0xffff, t[4 * k + 1], t[4 * k + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {  // column 4L + i: lane L of r[i], r[4 + i], r[8 + i], r[12 + i]
    const __m512 a = _mm512_maskz_shuffle_f32x4(0xffff, r[i], r[4 + i], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 b = _mm512_maskz_shuffle_f32x4(0xffff, r[8 + i], r[12 + i], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 c = _mm512_maskz_shuffle_f32x4(0xffff, r[i], r[4 + i], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512 d = _mm512_maskz_shuffle_f32x4(0xffff, r[8 + i], r[12 + i], _MM_SHUFFLE(3, 2, 3, 2));
    auto store = [&](int l, __m512 v) {
      rows == 16 ? _mm512_storeu_ps(out + l * out_stride, v) : _mm512_mask_storeu_ps(out + l * out_stride, put, v);
    };
    store(i, _mm512_maskz_shuffle_f32x4(0xffff, a, b, _MM_SHUFFLE(2, 0, 2, 0)));
    store(4 + i, _mm512_maskz_shuffle_f32x4(0xffff, a, b, _MM_SHUFFLE(3, 1, 3, 1)));
    store(8 + i, _mm512_maskz_shuffle_f32x4(0xffff, c, d, _MM_SHUFFLE(2, 0, 2, 0)));
    store(12 + i, _mm512_maskz_shuffle_f32x4(0xffff, c, d, _MM_SHUFFLE(3, 1, 3, 1)));
  }
}

// Images held as pixel slots, read for kLanes pixels at once, as in the AVX2 vocabulary: vector j
// holds pixels j, j + 4, j + 8, j + 12 (128-bit lane k: pixel j + 4k, at base + i[j + 4k]); four
// 16-byte loads.
__attribute__((always_inline)) inline Vf slots4(const float* base, const int32_t* i, int j) {
  auto at = [&](int k) { return _mm_loadu_ps(base + i[j + 4 * k]); };
  __m512 v = _mm512_maskz_broadcast_f32x4(0xffff, at(0));  // (zero-masked: see pairs_at)
  v = _mm512_mask_broadcast_f32x4(v, 0x00f0, at(1));
  v = _mm512_mask_broadcast_f32x4(v, 0x0f00, at(2));
  return {_mm512_mask_broadcast_f32x4(v, 0xf000, at(3))};
}
inline void spread4(Vf w, Vf out[4]) {
  out[0].v = _mm512_maskz_permute_ps(0xffff, w.v, 0x00);
  out[1].v = _mm512_maskz_permute_ps(0xffff, w.v, 0x55);
  out[2].v = _mm512_maskz_permute_ps(0xffff, w.v, 0xaa);
  out[3].v = _mm512_maskz_permute_ps(0xffff, w.v, 0xff);
}
inline void transpose4(Vf v[4]) {
  const __m512 t0 = _mm512_maskz_unpacklo_ps(0xffff, v[0].v, v[1].v), t1 = _mm512_maskz_unpackhi_ps(0xffff, v[0].v, v[1].v);
  const __m512 t2 = _mm512_maskz_unpacklo_ps(0xffff, v[2].v, v[3].v), t3 = _mm512_maskz_unpackhi_ps(0xffff, v[2].v, v[3].v);
  v[0].v = _mm512_maskz_shuffle_ps(0xffff, t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  v[1].v = _mm512_maskz_shuffle_ps(0xffff, t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  v[2].v = _mm512_maskz_shuffle_ps(0xffff, t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  v[3].v = _mm512_maskz_shuffle_ps(0xffff, t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// One row of corners of a block of consecutive pixels in pixel slots, as in the AVX2 vocabulary.
inline void slot_row_add(float* p, const float* go, const float* wl, const float* wr, int m) {
  const __m512 wl16 = _mm512_loadu_ps(wl), wr16 = _mm512_loadu_ps(wr);
  __m512 prev_r = _mm512_setzero_ps();
  for (int k = 0; 4 * k < m; ++k) {  // slots 4k .. 4k + 3
    const int n = m - 4 * k >= 4 ? 4 : m - 4 * k;
    const __mmask16 mask = static_cast<__mmask16>(n == 4 ? 0xffff : (1u << (4 * n)) - 1u);
    const __m512i quad = _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                          _mm512_set1_epi32(4 * k));
    const __m512 g = _mm512_maskz_loadu_ps(mask, go + 16 * k);
    const __m512 l = _mm512_maskz_mul_ps(0xffff, _mm512_maskz_permutexvar_ps(0xffff, quad, wl16), g);
    const __m512 r = _mm512_maskz_mul_ps(0xffff, _mm512_maskz_permutexvar_ps(0xffff, quad, wr16), g);
    __m512 acc = _mm512_maskz_add_ps(0xffff, _mm512_maskz_loadu_ps(mask, p + 16 * k), l);
    // + r of slot - 1 (slot 0 of the block has no right corner before it)
    const __m512 shifted = _mm512_castsi512_ps(
        _mm512_maskz_alignr_epi32(0xffff, _mm512_castps_si512(r), _mm512_castps_si512(prev_r), 12));
    acc = _mm512_mask_add_ps(acc, k == 0 ? 0xfff0 : 0xffff, acc, shifted);
    _mm512_mask_storeu_ps(p + 16 * k, mask, acc);
    prev_r = r;
  }
  slot_add(p + 4 * m, wr + m - 1, go + 4 * (m - 1));
}

}  // namespace avx512
}  // namespace simd
}  // namespace fastaug
FASTAUG_ISA_END

#endif  // FASTAUG_X86_DISPATCH
