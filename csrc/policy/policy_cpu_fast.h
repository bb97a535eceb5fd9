// CPU fast paths of the policy ops: one image, one step, as row loops that run near memory speed.
//
// The shared engine (policy_engine.h) is the reference and the CUDA path; this header computes the
// same values bit for bit on the CPU, only faster:
// * geometric ops: Pillow's nearest sampling with the in-bounds span of each row found once, so the
//   inner loop has no bounds test: whole-row copies for the translations and ShearX (their source is
//   a shifted row); ShearY on uint8 with AVX-512 as column shifts (one masked load per run of columns
//   with the same shift); otherwise a table of source offsets per row (16.16 fixed point, as Pillow's
//   affine_fixed) gathered for every channel (AVX2 gathers; a uint8 RGB image packed a pixel to a
//   word, one gather for its three channels); rows of up to 64 pixels fill the image once first
//   instead of filling each row's ends;
// * point ops on uint8: Invert, Posterize and Solarize as their rules in byte loops; AutoContrast,
//   Equalize, Contrast and Brightness through one 256-entry table per channel built with the engine's
//   rules, applied in one pass (AVX2 VPSHUFB rows, AVX-512 VBMI byte permutes); AutoContrast needs
//   only each channel's min and max, Equalize a histogram;
// * uint8 blends (Color, Sharpness, SamplePairing): the engine's float arithmetic in AVX2 / AVX-512
//   lanes (policy_cpu_simd.h; no clamp where the factor is in [0, 1]);
// * float point ops, Color and Sharpness: the engine's rules as loops the compiler vectorises;
// * Cutout: a copy and a filled rectangle; identity: a copy;
// * everything else (float Contrast, Brightness, Invert, SamplePairing) runs the engine's own loops.
// policy_cpu.cpp compiles all of it once per instruction-set level (policy_cpu_isa.h).
// Include after torch/all.h, with FA_ENGINE defined (`inline`).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "policy/policy_cpu_isa.h"
#include "policy/policy_engine.h"
#include "policy/policy_engine_backward.h"

#include "policy/policy_cpu_simd.h"

// Plain inline: policy_cpu.cpp's per-level entry points are `flatten`, which inlines all of this
// (always_inline here would stop GCC from flattening the engine calls inside).
#define FA_CPU inline

namespace fastaug {
namespace policy {

// The engine's executor for one CPU thread: loops run in order, sync and reductions are no-ops.
struct CpuExec {
  int64_t tid() const { return 0; }
  int64_t nthreads() const { return 1; }
  void sync() const {}
  template <typename T>
  T sum(T v) const {
    return v;
  }
  template <typename T>
  T min(T v) const {
    return v;
  }
  template <typename T>
  T max(T v) const {
    return v;
  }
  void hist_add(int* h, int bin) const { ++h[bin]; }
  template <typename F>
  void pixels(int64_t H, int64_t W, F&& f) const {
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) f(y, x, y * W + x);
  }
  template <typename F>
  void channel_pixels(int64_t C, int64_t H, int64_t W, F&& f) const {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) f(c, y, x, (c * H + y) * W + x);
  }
  template <typename F>
  void elements(int64_t C, int64_t plane, F&& f) const {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = c * plane; i < (c + 1) * plane; ++i) f(c, i);
  }
};

namespace cpu {

// One thread's buffers, allocated once per task and reused for every image and step.
template <typename T>
struct Scratch {
  std::vector<T> image;       // the chain's second image (ping-pong with the output); the backward's
                              // temporary image and, after it, 2 (H + W) entries (Sharpness)
  std::vector<int64_t> xtab;  // translations: source column of every output column (-1: outside)
  std::vector<int64_t> ytab;  // ... and source row of every output row
  std::vector<int32_t> off32;  // one row's source offsets (fixed-point affine, small images)
  std::vector<int64_t> off64;  // ... for images whose fixed-point coordinates overflow int32
#ifdef FASTAUG_POLICY_SIMD
  std::vector<simd::ShiftRun> runs;  // ShearY on uint8 with AVX-512: the runs of each 64-column chunk
  std::vector<int32_t> first;        // ... chunk c's runs are [first[c], first[c + 1])
  // ShearY on uint8 with AVX2 (simd::ColumnRuns), sized on first use
  std::vector<int64_t> col_off;
  std::vector<uint8_t> col_mask;
#endif
  Scratch(int64_t chw, int64_t H, int64_t W, bool chain)
      : image(chain ? chw + 2 * (H + W) : 0), xtab(W), ytab(H), off32(W), off64(W)
#ifdef FASTAUG_POLICY_SIMD
        , runs(W), first((W + 63) / 64 + 1)
#endif
        , plane_(H * W)
  {}
  // One row's offsets in the index type I (int32_t or int64_t).
  template <typename I>
  I* offsets() {
    if constexpr (std::is_same<I, int32_t>::value) {
      return off32.data();
    } else {
      return off64.data();
    }
  }
  // A uint8 RGB image's pixels, one 32-bit word each (pack_rgb), for the affine gathers; allocated on
  // first use (most calls have no such step) and left uninitialised.
  uint32_t* packed() {
    if (!packed_) packed_.reset(new uint32_t[static_cast<size_t>(plane_)]);
    return packed_.get();
  }

 private:
  int64_t plane_;
  std::unique_ptr<uint32_t[]> packed_;
};

// Row-sized fills and copies. Short spans (rows of small images) with a few fixed-size, possibly
// overlapping moves, as libc does after its call overhead, which would dominate 32-pixel rows;
// long ones with memcpy / memset.
template <size_t K>
FA_CPU void move_ends(const uint8_t* s, uint8_t* d, int64_t n) {  // K <= n <= 2K
  uint8_t a[K], b[K];
  std::memcpy(a, s, K);
  std::memcpy(b, s + n - K, K);
  std::memcpy(d, a, K);
  std::memcpy(d + n - K, b, K);
}

FA_CPU void copy_bytes(const uint8_t* s, uint8_t* d, int64_t n) {
  if (n >= 64) {
    std::memcpy(d, s, static_cast<size_t>(n));
  } else if (n >= 32) {
    move_ends<32>(s, d, n);
  } else if (n >= 16) {
    move_ends<16>(s, d, n);
  } else if (n >= 8) {
    move_ends<8>(s, d, n);
  } else if (n >= 4) {
    move_ends<4>(s, d, n);
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = s[i];
  }
}

template <typename T>
FA_CPU void fill_span(T* d, int64_t n, T v) {
  if (n <= 0) return;
  if constexpr (sizeof(T) == 1) {
    if (n <= 64) {
      uint8_t row[64];
      std::memset(row, static_cast<int>(v), 64);  // a constant-size fill: a few vector stores
      copy_bytes(row, reinterpret_cast<uint8_t*>(d), n);
    } else {
      std::memset(d, static_cast<int>(v), static_cast<size_t>(n));
    }
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = v;
  }
}

template <typename T>
FA_CPU void copy_span(const T* s, T* d, int64_t n) {
  if (n <= 0) return;
  if constexpr (sizeof(T) == 1) {
    copy_bytes(reinterpret_cast<const uint8_t*>(s), reinterpret_cast<uint8_t*>(d), n);
  } else {
    std::memcpy(d, s, static_cast<size_t>(n) * sizeof(T));
  }
}

// ---- geometric ops -----------------------------------------------------------------------------------

// Rows up to this many pixels: an op that fills the parts of its rows outside the source fills the
// whole image first (one long fill) and then writes only each row's inside, since two short fills
// per row and channel cost more (96 rows of a 3x32x32 image: a third of a rotation's time).
constexpr int64_t kShortRow = 64;

// Source column of every output column and source row of every output row (-1: outside) of a
// translation, from the engine's own coordinates, each axis checked on its own.
FA_CPU void separable_tables(const Affine& A, int64_t H, int64_t W, int64_t* xt, int64_t* yt) {
  int64_t sx, sy;
  for (int64_t x = 0; x < W; ++x) {
    affine_source(A, x, 0, H, W, &sx, &sy);
    xt[x] = sx >= 0 && sx < W ? sx : -1;
  }
  for (int64_t y = 0; y < H; ++y) {
    affine_source(A, 0, y, H, W, &sx, &sy);
    yt[y] = sy >= 0 && sy < H ? sy : -1;
  }
}

// Source offset (-1: outside) of every pixel of output row y of a fixed-point affine (Pillow's
// affine_fixed), in one vectorisable loop; I = int32 when every coordinate fits (fixed_fits_int32).
template <typename I>
FA_CPU void fixed_row_offsets(const Affine& A, int64_t y, int64_t H, int64_t W, I* __restrict__ off) {
  const I a0 = static_cast<I>(A.a0), a3 = static_cast<I>(A.a3), Wi = static_cast<I>(W), Hi = static_cast<I>(H);
  const I bx = static_cast<I>(A.a2 + y * A.a1), by = static_cast<I>(A.a5 + y * A.a4);
  for (int64_t k = 0; k < W; ++k) {
    const I xi = (bx + static_cast<I>(k) * a0) >> 16;  // arithmetic shift: floor, as Pillow
    const I yi = (by + static_cast<I>(k) * a3) >> 16;
    off[k] = (xi >= 0 && xi < Wi && yi >= 0 && yi < Hi) ? yi * Wi + xi : I(-1);
  }
}

// Translations (kinds 2, 3): the source column depends on x only and the source row on y only.
// Both maps are monotone, so the in-bounds columns are one span [xs, xe) and the rows one span
// [ys, ye); inside them the maps are almost always shifts (one flat copy per channel), else a copy
// or gather per row through the tables.
template <typename T>
FA_CPU void resample_separable(const Affine& A, const T* src, T* dst, int64_t C, int64_t H, int64_t W, T fillv,
                               Scratch<T>& sc) {
  int64_t* xt = sc.xtab.data();
  int64_t* yt = sc.ytab.data();
  separable_tables(A, H, W, xt, yt);
  int64_t xs = 0, xe = W;
  while (xs < W && xt[xs] < 0) ++xs;
  while (xe > xs && xt[xe - 1] < 0) --xe;
  int64_t ys = 0, ye = H;
  while (ys < H && yt[ys] < 0) ++ys;
  while (ye > ys && yt[ye - 1] < 0) --ye;
  bool shift = true, rows_shift = true;
  for (int64_t x = xs; x < xe; ++x) shift = shift && xt[x] == xt[xs] + (x - xs);
  for (int64_t y = ys; y < ye; ++y) rows_shift = rows_shift && yt[y] == yt[ys] + (y - ys);
  const int64_t plane = H * W;
  if (shift && rows_shift && xs < xe && ys < ye) {
    // Shifts: output rows [ys, ye) as one flat copy per channel (the columns outside [xs, xe) receive
    // pixels of the neighbouring rows, all inside the source plane, filled next), then the fills.
    const int64_t k = (yt[ys] - ys) * W + (xt[xs] - xs);  // source offset - output offset, inside the span
    const int64_t begin = ys * W + xs, end = (ye - 1) * W + xe;
    if (xe - xs < W && W <= kShortRow) {  // short rows: a fill between every two would cost more
      fill_span(dst, C * plane, fillv);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = ys; y < ye; ++y)
          copy_span(src + c * plane + y * W + xs + k, dst + c * plane + y * W + xs, xe - xs);
      return;
    }
    for (int64_t c = 0; c < C; ++c) {
      T* d = dst + c * plane;
      copy_span(src + c * plane + begin + k, d + begin, end - begin);
      fill_span(d, begin, fillv);
      fill_span(d + end, plane - end, fillv);
      if (xe - xs < W)
        for (int64_t y = ys; y + 1 < ye; ++y) fill_span(d + y * W + xe, W - xe + xs, fillv);
    }
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t y = 0; y < H; ++y) {
      T* d = dst + c * plane + y * W;
      if (yt[y] < 0 || xs >= xe) {
        fill_span(d, W, fillv);
        continue;
      }
      const T* s = src + c * plane + yt[y] * W;
      fill_span(d, xs, fillv);
      if (shift) {
        copy_span(s + xt[xs], d + xs, xe - xs);
      } else {
        for (int64_t x = xs; x < xe; ++x) d[x] = xt[x] >= 0 ? s[xt[x]] : fillv;
      }
      fill_span(d + xe, W - xe, fillv);
    }
  }
}

// Fixed-point affine with a0 = 1 and a3 = 0 (ShearX): source column (a2 + y a1 + x 2^16) >> 16 =
// x + ((a2 + y a1) >> 16) and source row (a5 + y a4) >> 16: every output row is a shifted source row.
template <typename T>
FA_CPU void resample_row_shift(const Affine& A, const T* src, T* dst, int64_t C, int64_t H, int64_t W, T fillv) {
  const int64_t plane = H * W;
  const bool prefilled = W <= kShortRow;  // see resample_fixed
  if (prefilled) fill_span(dst, C * plane, fillv);
  for (int64_t y = 0; y < H; ++y) {
    const int64_t yi = (A.a5 + y * A.a4) >> 16;
    const int64_t sh = (A.a2 + y * A.a1) >> 16;
    const int64_t xs = std::min<int64_t>(W, std::max<int64_t>(0, -sh));
    const int64_t xe = std::max<int64_t>(0, std::min<int64_t>(W, W - sh));
    const bool row_in = yi >= 0 && yi < H && xs < xe;
    for (int64_t c = 0; c < C; ++c) {
      T* d = dst + c * plane + y * W;
      if (!row_in) {
        if (!prefilled) fill_span(d, W, fillv);
        continue;
      }
      if (!prefilled) fill_span(d, xs, fillv);
      copy_span(src + c * plane + yi * W + xs + sh, d + xs, xe - xs);
      if (!prefilled) fill_span(d + xe, W - xe, fillv);
    }
  }
}

// One output row of every channel from the row's source offsets (all valid on [ks, ke), within
// [lo, hi]).
template <typename T, typename I, CpuIsa isa>
FA_CPU void gather_row(const T* src, T* dst, int64_t C, int64_t plane, const I* __restrict__ off, int64_t ks,
                       int64_t ke, int64_t lo, int64_t hi) {
#ifdef FASTAUG_POLICY_SIMD
  if constexpr (isa != CpuIsa::kDefault && std::is_same<I, int32_t>::value) {
    if (!std::is_same<T, uint8_t>::value || plane >= 4) {
      // uint8: a word read must stay inside the image. Every plane but the last has the next plane
      // after it; the last reads forwards if no offset is within 3 of its end, else backwards if no
      // offset is within 3 of its start, else (tiny rows) per pixel.
      for (int64_t c = 0; c < C; ++c) {
        const T* s = src + c * plane;
        T* d = dst + c * plane;
        if (!std::is_same<T, uint8_t>::value || c < C - 1 || hi + 3 < plane) {
          simd::gather(s, false, off, d, ks, ke);
        } else if (lo >= 3) {
          simd::gather(s - 3, true, off, d, ks, ke);
        } else {
          for (int64_t k = ks; k < ke; ++k) d[k] = s[off[k]];
        }
      }
      return;
    }
  }
#endif
  if (C == 3) {
    const T *__restrict__ s0 = src, *__restrict__ s1 = src + plane, *__restrict__ s2 = src + 2 * plane;
    T *__restrict__ d0 = dst, *__restrict__ d1 = dst + plane, *__restrict__ d2 = dst + 2 * plane;
    for (int64_t k = ks; k < ke; ++k) {
      const I o = off[k];
      d0[k] = s0[o];
      d1[k] = s1[o];
      d2[k] = s2[o];
    }
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    const T* __restrict__ s = src + c * plane;
    T* __restrict__ d = dst + c * plane;
    for (int64_t k = ks; k < ke; ++k) d[k] = s[off[k]];
  }
}

// Pixel p of three uint8 planes as word p: its levels in bytes 0, 1, 2.
template <CpuIsa isa>
FA_CPU void pack_rgb(const uint8_t* __restrict__ r, const uint8_t* __restrict__ g, const uint8_t* __restrict__ b,
                     uint32_t* __restrict__ packed, int64_t n) {
  int64_t done = 0;
#ifdef FASTAUG_POLICY_SIMD
  if constexpr (isa != CpuIsa::kDefault) done = simd::pack_rgb(r, g, b, packed, n);
#endif
  for (int64_t p = done; p < n; ++p)
    packed[p] = static_cast<uint32_t>(r[p]) | (static_cast<uint32_t>(g[p]) << 8) | (static_cast<uint32_t>(b[p]) << 16);
}

// General fixed-point affine (ShearY, Rotate), Pillow's affine_fixed: per row, the source offset of
// every pixel in one vectorisable pass (index type I: int32 when every coordinate fits), the
// in-bounds span (one interval: both source coordinates are monotone along the row), then a gather
// per channel with no bounds test (hardware gathers from AVX2 on). A uint8 RGB image is first packed
// one pixel to a word (Scratch::packed), so that one gather reads all three channels: a third of the
// loads, which bound the per-channel gathers.
template <typename T, typename I, CpuIsa isa>
FA_CPU void resample_fixed(const Affine& A, const T* src, T* dst, int64_t C, int64_t H, int64_t W, T fillv,
                           Scratch<T>& sc) {
  const int64_t plane = H * W;
  const I a0 = static_cast<I>(A.a0), a3 = static_cast<I>(A.a3);
  I* __restrict__ off = sc.template offsets<I>();
#ifdef FASTAUG_POLICY_SIMD
  constexpr bool kPacked = isa != CpuIsa::kDefault && std::is_same<T, uint8_t>::value && std::is_same<I, int32_t>::value;
#else
  constexpr bool kPacked = false;
#endif
  uint32_t* packed = nullptr;
  if constexpr (kPacked) {
    if (C == 3) {
      packed = sc.packed();
      pack_rgb<isa>(src, src + plane, src + 2 * plane, packed, plane);
    }
  }
  // Short rows: one fill of the whole image, overwritten inside each row's span, costs less than two
  // short fills per row and channel (a third of a 32x32 rotation's time).
  const bool prefilled = W <= kShortRow;
  if (prefilled) fill_span(dst, C * plane, fillv);
  for (int64_t y = 0; y < H; ++y) {
    const I bx = static_cast<I>(A.a2 + y * A.a1), by = static_cast<I>(A.a5 + y * A.a4);
    fixed_row_offsets(A, y, H, W, off);
    int64_t ks = 0, ke = W;
    while (ks < W && off[ks] < 0) ++ks;
    while (ke > ks && off[ke - 1] < 0) --ke;
    if (ks < ke) {
      // Both source coordinates are monotone along the row: their extremes are at the span's ends.
      const int64_t x0 = (bx + static_cast<I>(ks) * a0) >> 16, x1 = (bx + static_cast<I>(ke - 1) * a0) >> 16;
      const int64_t y0 = (by + static_cast<I>(ks) * a3) >> 16, y1 = (by + static_cast<I>(ke - 1) * a3) >> 16;
      const int64_t lo = std::min(y0, y1) * W + std::min(x0, x1), hi = std::max(y0, y1) * W + std::max(x0, x1);
      bool gathered = false;
#ifdef FASTAUG_POLICY_SIMD
      if constexpr (kPacked) {
        if (packed) {
          T *d0 = dst + y * W, *d1 = d0 + plane, *d2 = d1 + plane;
          for (int64_t k = simd::gather_rgb(packed, off, d0, d1, d2, ks, ke); k < ke; ++k) {
            const uint32_t v = packed[off[k]];
            d0[k] = static_cast<T>(v);
            d1[k] = static_cast<T>(v >> 8);
            d2[k] = static_cast<T>(v >> 16);
          }
          gathered = true;
        }
      }
#endif
      if (!gathered) gather_row<T, I, isa>(src, dst + y * W, C, plane, off, ks, ke, lo, hi);
    }
    if (!prefilled) {
      for (int64_t c = 0; c < C; ++c) {
        T* d = dst + c * plane + y * W;
        fill_span(d, ks, fillv);
        fill_span(d + ke, W - ke, fillv);
      }
    }
  }
}

#ifdef FASTAUG_POLICY_SIMD
// Fixed-point affine with a0 = 1, a1 = 0, a4 = 1 and 0 <= a2 < 1 (ShearY): source column
// (a2 + x 2^16) >> 16 = x and source row (a5 + y 2^16 + x a3) >> 16 = y + t_x, t_x = (a5 + x a3) >> 16:
// every output column is a source column shifted by t_x rows. uint8 with AVX-512: per 64-column chunk,
// one masked load per run of equal t_x instead of a gather per pixel.
FA_CPU bool is_column_shift(const Affine& A) {
  return A.a0 == 65536 && A.a1 == 0 && A.a4 == 65536 && A.a2 >= 0 && A.a2 < 65536;
}

FA_CPU void resample_column_shift(const Affine& A, const uint8_t* src, uint8_t* dst, int64_t C, int64_t H, int64_t W,
                                  uint8_t fillv, Scratch<uint8_t>& sc) {
  simd::ShiftRun* runs = sc.runs.data();
  int32_t* first = sc.first.data();
  int32_t n = 0;
  for (int64_t x0 = 0, c = 0; x0 < W; x0 += 64, ++c) {
    first[c] = n;
    const int64_t len = std::min<int64_t>(64, W - x0);
    for (int64_t k = 0; k < len;) {
      const int64_t t = (A.a5 + (x0 + k) * A.a3) >> 16, start = k;
      while (k < len && ((A.a5 + (x0 + k) * A.a3) >> 16) == t) ++k;  // t_x is monotone: one run per value
      const uint64_t bits = (k - start == 64 ? ~0ULL : ((1ULL << (k - start)) - 1)) << start;
      runs[n++] = {t, bits};
    }
    first[c + 1] = n;
  }
  const int64_t plane = H * W;
  if (W <= 64 && n > 0) {
    // One chunk: the rows whose runs all read inside the image need no test per run (t is monotone, so
    // its extremes are the first and last runs').
    const int64_t t_lo = std::min(runs[0].t, runs[n - 1].t), t_hi = std::max(runs[0].t, runs[n - 1].t);
    const int64_t y0 = std::min(H, std::max<int64_t>(0, -t_lo)), y1 = std::max(y0, std::min(H, H - t_hi));
    for (int64_t c = 0; c < C; ++c) {
      const uint8_t* s = src + c * plane;
      uint8_t* d = dst + c * plane;
      for (int64_t y = 0; y < y0; ++y) simd::column_shift_row(s, d + y * W, y, H, W, runs, first, fillv);
      simd::column_shift_rows_inside(s, d, y0, y1, W, runs, n);
      for (int64_t y = y1; y < H; ++y) simd::column_shift_row(s, d + y * W, y, H, W, runs, first, fillv);
    }
    return;
  }
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      simd::column_shift_row(src + c * plane, dst + c * plane + y * W, y, H, W, runs, first, fillv);
}

// ShearY on uint8 with AVX2 (W >= 32): the runs of each 32-column chunk (simd::ColumnRuns), then the
// rows, those whose every run reads inside the image without range tests. Every chunk gets the same
// number of runs, its last one repeated (blending the same bytes again changes nothing): a loop whose
// count changes from chunk to chunk mispredicts its exit at almost every chunk (2x the time).
FA_CPU void resample_column_shift_avx2(const Affine& A, const uint8_t* src, uint8_t* dst, int64_t C, int64_t H,
                                       int64_t W, uint8_t fillv, Scratch<uint8_t>& sc) {
  const int64_t chunks = (W + 31) / 32;
  sc.col_off.resize(static_cast<size_t>(32 * chunks));
  sc.col_mask.resize(static_cast<size_t>(32 * 32 * chunks));
  // First pass: the most runs any chunk has (t_x has one slope everywhere; the chunks differ only in
  // where its steps fall, so their counts differ by one or two).
  auto t_at = [&](int64_t x) { return (A.a5 + x * A.a3) >> 16; };
  auto start = [&](int64_t c) { return 32 * c + 32 <= W ? 32 * c : W - 32; };
  int64_t per = 1;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t x0 = start(c);
    int64_t runs = 1;
    for (int64_t k = 1; k < 32; ++k) runs += t_at(x0 + k) != t_at(x0 + k - 1);
    per = std::max(per, runs);
  }
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t x0 = start(c);
    int64_t j = c * per;
    for (int64_t k = 0; k < 32; ++j) {  // runs [k, e) of equal t: t_x is monotone
      const int64_t t = t_at(x0 + k);
      int64_t e = k + 1;
      while (e < 32 && t_at(x0 + e) == t) ++e;
      sc.col_off[j] = t * W;
      for (int64_t i = 0; i < 32; ++i) sc.col_mask[32 * j + i] = i >= k && i < e ? 0xFF : 0;
      k = e;
    }
    for (; j < (c + 1) * per; ++j) {  // repeat the last run
      sc.col_off[j] = sc.col_off[j - 1];
      std::memcpy(&sc.col_mask[32 * j], &sc.col_mask[32 * (j - 1)], 32);
    }
  }
  const simd::ColumnRuns runs{sc.col_off.data(), sc.col_mask.data(), per, chunks};
  // t is monotone in x: its extremes are the first and last columns'.
  const int64_t t_lo = std::min(t_at(0), t_at(W - 1)), t_hi = std::max(t_at(0), t_at(W - 1));
  const int64_t y0 = std::min(H, std::max<int64_t>(0, -t_lo)), y1 = std::max(y0, std::min(H, H - t_hi));
  const int64_t plane = H * W;
  for (int64_t c = 0; c < C; ++c) {
    const uint8_t* s = src + c * plane;
    uint8_t* d = dst + c * plane;
    for (int64_t y = 0; y < y0; ++y) simd::column_shift_row<false>(s, d + y * W, y, H, W, runs, fillv);
    for (int64_t y = y0; y < y1; ++y) simd::column_shift_row<true>(s, d + y * W, y, H, W, runs, fillv);
    for (int64_t y = y1; y < H; ++y) simd::column_shift_row<false>(s, d + y * W, y, H, W, runs, fillv);
  }
}
#endif

// True when every fixed-point coordinate of an H x W output, and every source offset, fits in int32.
FA_CPU bool fixed_fits_int32(const Affine& A, int64_t H, int64_t W) {
  auto mag = [](int64_t v) { return v < 0 ? -v : v; };
  const int64_t lim = (int64_t(1) << 31) - 1;
  const int64_t bx = mag(A.a2) + (H - 1) * mag(A.a1) + (W - 1) * mag(A.a0);
  const int64_t by = mag(A.a5) + (H - 1) * mag(A.a4) + (W - 1) * mag(A.a3);
  return bx < lim && by < lim && H * W < lim;
}

template <typename T, CpuIsa isa>
FA_CPU void geometric(const Step& st, const T* src, T* dst, int64_t C, int64_t H, int64_t W, T fillv,
                      Scratch<T>& sc) {
  const Affine A = make_affine(st.op, st.m, st.s, H, W);
  if (A.kind == 0) {
    copy_span(src, dst, C * H * W);
  } else if (A.kind != 1) {
    resample_separable(A, src, dst, C, H, W, fillv, sc);
  } else if (A.a0 == 65536 && A.a3 == 0) {
    resample_row_shift(A, src, dst, C, H, W, fillv);
#ifdef FASTAUG_POLICY_SIMD
  } else if (isa == CpuIsa::kAvx512 && std::is_same<T, uint8_t>::value && is_column_shift(A)) {
    if constexpr (std::is_same<T, uint8_t>::value) resample_column_shift(A, src, dst, C, H, W, fillv, sc);
  } else if (isa == CpuIsa::kAvx2 && std::is_same<T, uint8_t>::value && is_column_shift(A) && W >= 32) {
    if constexpr (std::is_same<T, uint8_t>::value) resample_column_shift_avx2(A, src, dst, C, H, W, fillv, sc);
#endif
  } else if (fixed_fits_int32(A, H, W)) {
    resample_fixed<T, int32_t, isa>(A, src, dst, C, H, W, fillv, sc);
  } else {
    resample_fixed<T, int64_t, isa>(A, src, dst, C, H, W, fillv, sc);
  }
}

// ---- Cutout ---------------------------------------------------------------------------------------------

// The image, then the square rows [cy - k/2, cy - k/2 + k) x columns [cx - k/2, ...), clipped, set to fill.
template <typename T>
FA_CPU void cutout(const Step& st, const T* src, T* dst, int64_t C, int64_t H, int64_t W, T fillv) {
  const int64_t plane = H * W;
  copy_span(src, dst, C * plane);
  const int64_t k = cutout_side(st.m, H, W);
  const int64_t y0 = st.cy - k / 2, x0 = st.cx - k / 2;
  const int64_t ya = std::max<int64_t>(y0, 0), yb = std::min<int64_t>(y0 + k, H);
  const int64_t xa = std::max<int64_t>(x0, 0), xb = std::min<int64_t>(x0 + k, W);
  if (ya >= yb || xa >= xb) return;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = ya; y < yb; ++y) fill_span(dst + c * plane + y * W + xa, xb - xa, fillv);
}

// ---- uint8 point ops: one table per channel ---------------------------------------------------------------

FA_CPU void lut_apply_portable(const uint8_t* __restrict__ s, uint8_t* __restrict__ d, int64_t n,
                               const uint8_t* __restrict__ lut) {
  for (int64_t i = 0; i < n; ++i) d[i] = lut[s[i]];
}

template <CpuIsa isa>
FA_CPU void lut_apply(const uint8_t* s, uint8_t* d, int64_t n, const uint8_t* lut) {
#ifdef FASTAUG_POLICY_SIMD
  if constexpr (isa == CpuIsa::kAvx512) {
    simd::lut_apply_vbmi(s, d, n, lut);
    return;
  }
  if constexpr (isa == CpuIsa::kAvx2) {
    simd::lut_apply(s, d, n, lut);
    return;
  }
#endif
  lut_apply_portable(s, d, n, lut);
}

// Invert, Posterize and Solarize in closed form, their tables' rules as loops the compiler vectorises
// (a byte operation or two per byte; the tables' lookups take about 1.5 vector operations per byte on
// AVX2, two loads and a store per byte in scalar code); false for any other op. Same bytes as the tables.
FA_CPU bool point_rule_u8(const Step& st, const uint8_t* __restrict__ s, uint8_t* __restrict__ d, int64_t n) {
  switch (st.op) {
    case kInvert:
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(255 - s[i]);
      return true;
    case kPosterize: {
      const uint8_t mask = static_cast<uint8_t>(posterize_mask(st.m));
      for (int64_t i = 0; i < n; ++i) d[i] = s[i] & mask;
      return true;
    }
    case kSolarize: {
      // An integer level v is >= t exactly when v >= ceil(t); none is when ceil(t) > 255 (or t is NaN).
      const double first = std::ceil(solarize_threshold(st.m));
      if (!(first <= 255.0)) {
        copy_span(s, d, n);
        return true;
      }
      const uint8_t lo = first <= 0.0 ? 0 : static_cast<uint8_t>(first);
      for (int64_t i = 0; i < n; ++i) d[i] = s[i] >= lo ? static_cast<uint8_t>(255 - s[i]) : s[i];
      return true;
    }
    default:
      return false;
  }
}

// Channel histogram (ImageOps.equalize's), in four sub-histograms so that runs of equal pixels do
// not serialise on one counter.
FA_CPU void histogram_u8(const uint8_t* __restrict__ s, int64_t n, int* __restrict__ h) {
  int part[4][256] = {};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++part[0][s[i]];
    ++part[1][s[i + 1]];
    ++part[2][s[i + 2]];
    ++part[3][s[i + 3]];
  }
  for (; i < n; ++i) ++part[0][s[i]];
  for (int v = 0; v < 256; ++v) h[v] = part[0][v] + part[1][v] + part[2][v] + part[3][v];
}

// The engine's equalize_lut (ImageOps.equalize: lut[i] = min(n_i / step, 255), n_i = step / 2 +
// sum_{j < i} h[j], step = (total - last nonzero bin) // 255) without its data-dependent loop, whose
// mispredicted branches cost more than the rest of a small image: the quotients as one vector loop
// of rounded divisions, whose floor is exact: a quotient n / step below the integer k is at least
// 1 / step below it, more than half an ulp of k while n + step < 2^p (p = 24 for float, 53 for
// double; n <= total + step here).
// lut[i] = min(floor(n_i / step), 255), the quotients in F (exact: see below), the counts in I.
template <typename F, typename I, CpuIsa isa = CpuIsa::kDefault>
FA_CPU void equalize_quotients(const int* __restrict__ h, int64_t step, uint8_t* __restrict__ lut) {
  alignas(64) F n[256];
  bool done = false;
#ifdef FASTAUG_POLICY_SIMD
  if constexpr (isa == CpuIsa::kAvx512 && std::is_same<F, float>::value) {
    simd::prefix_counts256(h, static_cast<int>(step / 2), n);
    done = true;
  }
#endif
  if (!done) {
    I acc = static_cast<I>(step / 2);
    for (int i = 0; i < 256; ++i) {
      n[i] = static_cast<F>(acc);
      acc += h[i];
    }
  }
  const F sf = static_cast<F>(step);
  for (int i = 0; i < 256; ++i) {
    const F q = n[i] / sf;
    lut[i] = static_cast<uint8_t>(static_cast<int>(q < F(255) ? q : F(255)));  // the form vminps computes
  }
}

// `total`: the pixel count; `last`: the count of the last non-empty bin; `single`: at most one non-empty bin.
template <CpuIsa isa = CpuIsa::kDefault>
FA_CPU void equalize_lut_u8(const int* __restrict__ h, int64_t total, int64_t last, bool single,
                            uint8_t* __restrict__ lut) {
  const int64_t step = single ? 0 : (total - last) / 255;
  if (step == 0) {
    for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(i);
    return;
  }
  if (total + step < (int64_t(1) << 24)) {  // every image up to 8 million pixels a plane
    equalize_quotients<float, int32_t, isa>(h, step, lut);
  } else {
    equalize_quotients<double, int64_t>(h, step, lut);
  }
}

// The same from the histogram alone.
FA_CPU void equalize_lut_u8(const int* __restrict__ h, uint8_t* __restrict__ lut) {
  int64_t total = 0, last = 0, nonzero = 0;
  for (int i = 0; i < 256; ++i) {
    total += h[i];
    nonzero += h[i] != 0;
    last = h[i] != 0 ? h[i] : last;
  }
  equalize_lut_u8(h, total, last, nonzero <= 1, lut);
}

// The lowest and highest value of a channel (vectorised).
FA_CPU void minmax_u8(const uint8_t* __restrict__ s, int64_t n, int* lo_out, int* hi_out) {
  uint8_t lo = 255, hi = 0;
  for (int64_t i = 0; i < n; ++i) {
    lo = s[i] < lo ? s[i] : lo;
    hi = s[i] > hi ? s[i] : hi;
  }
  *lo_out = lo;
  *hi_out = hi;
}

// The engine's autocontrast_lut: lut[i] = clamp(trunc(i scale + offset), 0, 255) with the same
// double products, as one vector loop (truncating to int32 is safe: |i scale + offset| <= 65025).
FA_CPU void autocontrast_lut_u8(int lo, int hi, uint8_t* __restrict__ lut) {
  if (hi <= lo) {
    for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(i);
    return;
  }
  const double scale = 255.0 / static_cast<double>(hi - lo);
  const double offset = dmul(static_cast<double>(-lo), scale);
  for (int i = 0; i < 256; ++i) {
    int v = static_cast<int>(dadd(dmul(static_cast<double>(i), scale), offset));
    v = v > 0 ? v : 0;
    v = v < 255 ? v : 255;
    lut[i] = static_cast<uint8_t>(v);
  }
}

// Sum over pixels of Pillow's L value (RGB) or of the pixel (grey): the numerator of the engine's
// grey_mean, in blocks whose 32-bit lane sums cannot overflow.
template <CpuIsa isa = CpuIsa::kDefault>
FA_CPU int64_t grey_total_u8(const uint8_t* src, int64_t C, int64_t plane) {
  constexpr int64_t kBlock = int64_t(1) << 22;  // 255 * 2^22 < 2^32
  const uint8_t *__restrict__ r = src, *__restrict__ g = src + plane, *__restrict__ b = src + 2 * plane;
  int64_t total = 0, start = 0;
#ifdef FASTAUG_POLICY_SIMD
  if constexpr (isa == CpuIsa::kAvx512) {
    if (C == 3) start = simd::grey_total512(r, g, b, plane, &total);
  }
  if constexpr (isa == CpuIsa::kAvx2) {
    if (C == 3) start = simd::grey_total(r, g, b, plane, &total);
  }
#endif
  for (int64_t p0 = start; p0 < plane; p0 += kBlock) {
    const int64_t p1 = std::min(plane, p0 + kBlock);
    uint32_t acc = 0;
    if (C == 3) {
      for (int64_t p = p0; p < p1; ++p) acc += static_cast<uint32_t>(grey_u8(r[p], g[p], b[p]));
    } else {
      for (int64_t p = p0; p < p1; ++p) acc += r[p];
    }
    total += acc;
  }
  return total;
}

// lut[v] = blend_u8(deg, v, f): the blend of every level with a fixed degenerate.
template <CpuIsa isa>
FA_CPU void blend_lut_u8(float deg, float f, uint8_t* lut) {
#ifdef FASTAUG_POLICY_SIMD
  if constexpr (isa != CpuIsa::kDefault) {
    simd::blend_lut(deg, f, lut);
    return;
  }
#endif
  for (int v = 0; v < 256; ++v) lut[v] = blend_u8(deg, static_cast<float>(v), f);
}

// Tables of the uint8 point ops that need one (Invert, Posterize and Solarize run point_rule_u8
// instead); false for any other op. Each rule is the engine's (apply_step).
//
// slope[k] is table k's real slope where the op's rule is a line before its roundings (Brightness,
// Contrast, AutoContrast), NaN where it is not (Equalize): the hint apply_tables_u8 fits lines with.
template <CpuIsa isa>
FA_CPU bool point_luts_u8(const Step& st, const uint8_t* src, int64_t C, int64_t H, int64_t W, uint8_t* lut,
                          double* slope, bool* shared, PolicyShared& sh) {
  const int64_t plane = H * W;
  *shared = true;  // one table for every channel
  switch (st.op) {
    case kBrightness: {
      const float f = enhance_factor(st.m, st.s);
      blend_lut_u8<isa>(0.0f, f, lut);
      slope[0] = f;
      return true;
    }
    case kContrast: {
      // grey_mean's rounding: the mean of the L image rounded half up to an integer.
      const double mean = static_cast<double>(grey_total_u8<isa>(src, C, plane)) / static_cast<double>(plane);
      const float deg = static_cast<float>(static_cast<double>(static_cast<int64_t>(mean + 0.5)));
      const float f = enhance_factor(st.m, st.s);
      blend_lut_u8<isa>(deg, f, lut);
      slope[0] = f;
      return true;
    }
    case kAutoContrast: {
      // The lowest and highest non-empty histogram bins are the channel's min and max.
      *shared = false;
      for (int64_t c = 0; c < C; ++c) {
        int lo, hi;
        minmax_u8(src + c * plane, plane, &lo, &hi);
        autocontrast_lut_u8(lo, hi, lut + c * 256);
        slope[c] = hi > lo ? 255.0 / static_cast<double>(hi - lo) : 1.0;
      }
      return true;
    }
    case kEqualize: {
      *shared = false;
      // The counts Equalize's step needs: the total is the plane; the last non-empty bin, found from
      // the top (a few bins, against a pass over the pixels for the channel's maximum: 5 % of the op
      // at 224x224 on Zen 3); a single bin when it holds every pixel.
      for (int64_t c = 0; c < C; ++c) {
        int* h = sh.hist + c * 256;
        histogram_u8(src + c * plane, plane, h);
        int hi = 255;
        while (hi > 0 && h[hi] == 0) --hi;
        equalize_lut_u8<isa>(h, plane, h[hi], h[hi] == plane, lut + c * 256);
        slope[c] = std::numeric_limits<double>::quiet_NaN();
      }
      return true;
    }
    default:
      return false;
  }
}

// dst = the tables of point_luts_u8 applied to src, channel c through table c (or table 0 when shared).
// On AVX2 a table that is an integer line (simd::fit_line: checked at every level, so the same bytes) is
// applied as that line, at half the lookup's vector operations; AVX-512 VBMI's lookup is faster still.
template <CpuIsa isa>
FA_CPU void apply_tables_u8(const uint8_t* src, uint8_t* dst, int64_t C, int64_t plane, const uint8_t* lut,
                            const double* slope, bool shared) {
  const int64_t tables = shared ? 1 : C;
  for (int64_t k = 0; k < tables; ++k) {
    const uint8_t* t = lut + k * 256;
    const int64_t c0 = shared ? 0 : k, c1 = shared ? C : k + 1;
#ifdef FASTAUG_POLICY_SIMD
    if constexpr (isa == CpuIsa::kAvx2) {
      simd::LineFit fit;
      if (simd::fit_line(t, slope[k], &fit)) {
        for (int64_t c = c0; c < c1; ++c) simd::line_apply(src + c * plane, dst + c * plane, plane, fit);
        continue;
      }
    }
#endif
    for (int64_t c = c0; c < c1; ++c) lut_apply<isa>(src + c * plane, dst + c * plane, plane, t);
  }
}

// ---- uint8 blends with a per-pixel degenerate ---------------------------------------------------------
// Each is a loop over restrict-qualified rows, the shape GCC vectorises (three outputs derived from one
// pointer inside the loop are not); the per-pixel arithmetic is policy_math.h's.

// Color: blend with Pillow's L of the pixel.
FA_CPU void color_rows_u8(const uint8_t* __restrict__ r, const uint8_t* __restrict__ g,
                          const uint8_t* __restrict__ b, uint8_t* __restrict__ dr, uint8_t* __restrict__ dg,
                          uint8_t* __restrict__ db, int64_t begin, int64_t end, float f) {
  for (int64_t p = begin; p < end; ++p) {
    const float grey = static_cast<float>(grey_u8(r[p], g[p], b[p]));
    dr[p] = blend_u8(grey, static_cast<float>(r[p]), f);
    dg[p] = blend_u8(grey, static_cast<float>(g[p]), f);
    db[p] = blend_u8(grey, static_cast<float>(b[p]), f);
  }
}

template <CpuIsa isa>
FA_CPU void color_u8(const uint8_t* src, uint8_t* dst, int64_t plane, float f) {
  const uint8_t *r = src, *g = src + plane, *b = src + 2 * plane;
  uint8_t *dr = dst, *dg = dst + plane, *db = dst + 2 * plane;
  int64_t done = 0;
#ifdef FASTAUG_POLICY_SIMD
  if constexpr (isa == CpuIsa::kAvx512) done = simd::color512(r, g, b, dr, dg, db, plane, f);
  if constexpr (isa == CpuIsa::kAvx2) done = simd::color(r, g, b, dr, dg, db, plane, f);
#endif
  color_rows_u8(r, g, b, dr, dg, db, done, plane, f);
}

// SamplePairing: blend of the image with its partner.
FA_CPU void pairing_rows_u8(const uint8_t* __restrict__ s, const uint8_t* __restrict__ q, uint8_t* __restrict__ d,
                            int64_t begin, int64_t end, float w) {
  for (int64_t i = begin; i < end; ++i) d[i] = blend_u8(static_cast<float>(s[i]), static_cast<float>(q[i]), w);
}

template <CpuIsa isa>
FA_CPU void pairing_u8(const uint8_t* s, const uint8_t* q, uint8_t* d, int64_t n, float w) {
  int64_t done = 0;
#ifdef FASTAUG_POLICY_SIMD
  if constexpr (isa == CpuIsa::kAvx512) done = simd::pairing512(s, q, d, n, w);
  if constexpr (isa == CpuIsa::kAvx2) done = simd::pairing(s, q, d, n, w);
#endif
  pairing_rows_u8(s, q, d, done, n, w);
}

// Sharpness: SMOOTH = (sum of the 3x3 window + 4 centre) / 13 rounded the way the engine's smooth_at
// rounds, (2S + 13) / 26, then the blend; border rows and columns unfiltered. One flat loop over the
// plane's interior rows (short rows would leave most pixels to the vector loop's scalar remainder);
// the border columns it computes from the neighbouring rows' pixels are then overwritten.
FA_CPU void sharpness_span_u8(const uint8_t* __restrict__ s, uint8_t* __restrict__ d, int64_t begin, int64_t end,
                              int64_t W, float f) {
  for (int64_t i = begin; i < end; ++i) {
    const int S = s[i - W - 1] + s[i - W] + s[i - W + 1] + s[i - 1] + 5 * s[i] + s[i + 1] + s[i + W - 1] + s[i + W] +
                  s[i + W + 1];
    d[i] = blend_u8(static_cast<float>((2 * S + 13) / 26), static_cast<float>(s[i]), f);
  }
}

template <CpuIsa isa>
FA_CPU void sharpness_u8(const uint8_t* src, uint8_t* dst, int64_t C, int64_t H, int64_t W, float f) {
  const int64_t plane = H * W;
  if (H < 3 || W < 3) {  // every pixel is a border pixel
    copy_span(src, dst, C * plane);
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    const uint8_t* s = src + c * plane;
    uint8_t* d = dst + c * plane;
    int64_t done = W + 1;
#ifdef FASTAUG_POLICY_SIMD
    if constexpr (isa == CpuIsa::kAvx512) done = simd::sharpness512(s, d, W + 1, plane - W - 1, W, f);
    if constexpr (isa == CpuIsa::kAvx2) done = simd::sharpness(s, d, W + 1, plane - W - 1, W, f);
#endif
    sharpness_span_u8(s, d, done, plane - W - 1, W, f);
    copy_span(s, d, W);
    copy_span(s + plane - W, d + plane - W, W);
    for (int64_t y = 1; y < H - 1; ++y) {
      d[y * W] = s[y * W];
      d[y * W + W - 1] = s[y * W + W - 1];
    }
  }
}

// ---- float images ---------------------------------------------------------------------------------------
// The engine's float rules (T = float or double computes in T) as loops GCC vectorises; each
// product and sum is the engine's, in the same order.

// GCC vectorises none of quantise's or Solarize's selects on floats under the default -ftrapping-math
// ("control flow in loop": an arm or compare that may raise a flag is not if-converted), so the float
// point ops ran one pixel at a time (Solarize 30x a copy at 224x224). These helpers write the selects
// as bit masks, which it vectorises; same values as the selects, signed zeros and NaN included.
template <typename T>
using BitsOf = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;

// a where `take` else b, chosen bitwise.
template <typename T>
FA_CPU T select_bits(bool take, T a, T b) {
  BitsOf<T> x, y;
  std::memcpy(&x, &a, sizeof(T));
  std::memcpy(&y, &b, sizeof(T));
  const BitsOf<T> m = BitsOf<T>(0) - static_cast<BitsOf<T>>(take);
  const BitsOf<T> r = (x & m) | (y & ~m);
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}

// policy_math.h's quantise (v 255 + 0.5 clamped to [0, 255], NaN to 0, truncated): `t >= 0 ? t : 0`
// as a mask (which keeps -0.0 and drops NaN, as the select does), then `t > 255 ? 255 : t` as
// `t < 255 ? t : 255` (equal once t is not NaN: both give 255 at 255).
template <typename T>
FA_CPU int quantise_level(T v) {
  T t = v * T(255) + T(0.5);
  t = select_bits(t >= T(0), t, T(0));
  t = t < T(255) ? t : T(255);
  return static_cast<int>(t);
}

// Solarize: the engine compares the pixel's 8-bit level q with t in double; for an integer q,
// double(q) >= t exactly when q >= ceil(t) (t is finite), an integer comparison.
template <typename T>
FA_CPU void solarize_f(const T* __restrict__ s, T* __restrict__ d, int64_t n, float m) {
  const int t = static_cast<int>(::ceil(solarize_threshold(m)));
  for (int64_t i = 0; i < n; ++i) d[i] = select_bits(quantise_level(s[i]) >= t, static_cast<T>(T(1) - s[i]), s[i]);
}

template <typename T>
FA_CPU void posterize_f(const T* __restrict__ s, T* __restrict__ d, int64_t n, float m) {
  const int mask = posterize_mask(m);
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(static_cast<T>(quantise_level(s[i]) & mask) / T(255));
}

// Equalize: histogram of the 8-bit levels, equalize_lut_u8, the level's value / 255; the levels of a
// block are computed in one vectorised loop for each pass.
template <typename T>
FA_CPU void equalize_f(const T* s, T* d, int64_t n, PolicyShared& sh) {
  constexpr int64_t kBlock = 1024;
  int32_t q[kBlock];
  int* h = sh.hist;
  for (int v = 0; v < 256; ++v) h[v] = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = std::min(kBlock, n - b);
    for (int64_t i = 0; i < m; ++i) q[i] = quantise_level<T>(s[b + i]);
    for (int64_t i = 0; i < m; ++i) ++h[q[i]];
  }
  uint8_t lut[256];
  equalize_lut_u8(h, lut);
  T value[256];
  for (int v = 0; v < 256; ++v) value[v] = static_cast<T>(static_cast<T>(lut[v]) / T(255));
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = std::min(kBlock, n - b);
    for (int64_t i = 0; i < m; ++i) q[i] = quantise_level<T>(s[b + i]);
    for (int64_t i = 0; i < m; ++i) d[b + i] = value[q[i]];
  }
}

// AutoContrast: the channel's min and max as the engine's sequential `v < lo ? v : lo` finds them, in
// 16 interleaved lanes. The lanes agree with the sequence except on which zero (+0 or -0) is the
// extreme when the extreme is zero: the sequence keeps the first zero it meets, so that is taken.
template <typename T>
FA_CPU void minmax_f(const T* __restrict__ s, int64_t n, T* lo_out, T* hi_out) {
  constexpr int kLanes = 16;
  T lo[kLanes], hi[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    lo[j] = T(INFINITY);
    hi[j] = T(-INFINITY);
  }
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      lo[j] = s[i + j] < lo[j] ? s[i + j] : lo[j];
      hi[j] = s[i + j] > hi[j] ? s[i + j] : hi[j];
    }
  T l = T(INFINITY), u = T(-INFINITY);
  for (; i < n; ++i) {
    l = s[i] < l ? s[i] : l;
    u = s[i] > u ? s[i] : u;
  }
  for (int j = 0; j < kLanes; ++j) {
    l = lo[j] < l ? lo[j] : l;
    u = hi[j] > u ? hi[j] : u;
  }
  if (l == T(0))
    for (int64_t k = 0; k < n; ++k)
      if (s[k] == T(0)) {
        l = s[k];
        break;
      }
  if (u == T(0))
    for (int64_t k = 0; k < n; ++k)
      if (s[k] == T(0)) {
        u = s[k];
        break;
      }
  *lo_out = l;
  *hi_out = u;
}

template <typename T>
FA_CPU void autocontrast_f(const T* __restrict__ s, T* __restrict__ d, int64_t n) {
  T lo, hi;
  minmax_f(s, n, &lo, &hi);
  if (hi > lo) {
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(clamp01<T>((s[i] - lo) / (hi - lo)));
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = s[i];
  }
}

// Color: luma ((R r + G g) + B b) and the clamped blend of every channel with it.
template <typename T>
FA_CPU void color_f(const T* __restrict__ r, const T* __restrict__ g, const T* __restrict__ b, T* __restrict__ dr,
                    T* __restrict__ dg, T* __restrict__ db, int64_t n, float f) {
  for (int64_t p = 0; p < n; ++p) {
    const T grey = T(kLumaR) * r[p] + T(kLumaG) * g[p] + T(kLumaB) * b[p];
    dr[p] = blend_px<T, T>(grey, r[p], f);
    dg[p] = blend_px<T, T>(grey, g[p], f);
    db[p] = blend_px<T, T>(grey, b[p], f);
  }
}

// Sharpness: smooth_at's sum (4 centre, then the window row by row) / 13 and the blend, over flat
// indices [begin, end); border pixels blend with themselves (the engine's deg = the pixel).
// smooth_at's value at flat index i of a pixel with a full window: 4 centre, then the window row by
// row, / 13.
template <typename T>
FA_CPU T smooth_interior(const T* __restrict__ s, int64_t i, int64_t W) {
  T a = T(4) * s[i];
  a += s[i - W - 1];
  a += s[i - W];
  a += s[i - W + 1];
  a += s[i - 1];
  a += s[i];
  a += s[i + 1];
  a += s[i + W - 1];
  a += s[i + W];
  a += s[i + W + 1];
  return a / T(13);
}

template <typename T>
FA_CPU void sharpness_span_f(const T* __restrict__ s, T* __restrict__ d, int64_t begin, int64_t end, int64_t W,
                             float f) {
  for (int64_t i = begin; i < end; ++i) d[i] = blend_px<T, T>(smooth_interior(s, i, W), s[i], f);
}

template <typename T>
FA_CPU void sharpness_border_f(const T* __restrict__ s, T* __restrict__ d, int64_t begin, int64_t end, float f) {
  for (int64_t i = begin; i < end; ++i) d[i] = blend_px<T, T>(s[i], s[i], f);
}

template <typename T>
FA_CPU void sharpness_f(const T* src, T* dst, int64_t C, int64_t H, int64_t W, float f) {
  const int64_t plane = H * W;
  if (H < 3 || W < 3) {
    sharpness_border_f(src, dst, 0, C * plane, f);
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    const T* s = src + c * plane;
    T* d = dst + c * plane;
    sharpness_span_f(s, d, W + 1, plane - W - 1, W, f);
    sharpness_border_f(s, d, 0, W + 1, f);
    sharpness_border_f(s, d, plane - W - 1, plane, f);
    for (int64_t y = 1; y < H - 1; ++y) {
      sharpness_border_f(s, d, y * W - 1, y * W + 1, f);  // the last pixel of row y - 1, the first of row y
    }
  }
}

// The float ops above; false for the others (they run the engine's loops).
template <typename T>
FA_CPU bool step_float(const T* src, T* dst, int64_t C, int64_t H, int64_t W, const Step& st, PolicyShared& sh) {
  const int64_t plane = H * W;
  switch (st.op) {
    case kSolarize:
      solarize_f(src, dst, C * plane, st.m);
      return true;
    case kPosterize:
      posterize_f(src, dst, C * plane, st.m);
      return true;
    case kEqualize:
      for (int64_t c = 0; c < C; ++c) equalize_f(src + c * plane, dst + c * plane, plane, sh);
      return true;
    case kAutoContrast:
      for (int64_t c = 0; c < C; ++c) autocontrast_f(src + c * plane, dst + c * plane, plane);
      return true;
    case kColor:  // C == 3 here
      color_f(src, src + plane, src + 2 * plane, dst, dst + plane, dst + 2 * plane, plane, enhance_factor(st.m, st.s));
      return true;
    case kSharpness:
      sharpness_f(src, dst, C, H, W, enhance_factor(st.m, st.s));
      return true;
    default:
      return false;
  }
}

// ---- backward ----------------------------------------------------------------------------------------

// Adjoint of a geometric op as a scatter: gx[source(p)] += g[p] over the output pixels p in raster
// order. The engine gathers instead: for each source pixel q, the output pixels of a 5 x 5 window
// around q's preimage whose source is q, in raster order, from +0 -- the same terms added in the same
// order, at the cost of one forward pass instead of 25 source computations per pixel.
template <typename T>
FA_CPU void geometric_backward(const Step& st, const T* g, T* gx, int64_t C, int64_t H, int64_t W, Scratch<T>& sc) {
  const Affine A = make_affine(st.op, st.m, st.s, H, W);
  const int64_t plane = H * W;
  for (int64_t i = 0; i < C * plane; ++i) gx[i] = T(0);
  if (A.kind == 0) {
    for (int64_t i = 0; i < C * plane; ++i) gx[i] += g[i];
    return;
  }
  if (A.kind != 1) {
    int64_t* xt = sc.xtab.data();
    int64_t* yt = sc.ytab.data();
    separable_tables(A, H, W, xt, yt);
    for (int64_t y = 0; y < H; ++y) {
      if (yt[y] < 0) continue;
      for (int64_t x = 0; x < W; ++x) {
        if (xt[x] < 0) continue;
        for (int64_t c = 0; c < C; ++c) gx[c * plane + yt[y] * W + xt[x]] += g[c * plane + y * W + x];
      }
    }
    return;
  }
  int64_t* off = sc.off64.data();
  for (int64_t y = 0; y < H; ++y) {
    fixed_row_offsets(A, y, H, W, off);
    for (int64_t k = 0; k < W; ++k) {
      if (off[k] < 0) continue;
      for (int64_t c = 0; c < C; ++c) gx[c * plane + off[k]] += g[c * plane + y * W + k];
    }
  }
}

// Solarize: -g where the forward inverted (the 8-bit level at or above the threshold; solarize_f).
template <typename T>
FA_CPU void solarize_backward_f(const T* __restrict__ g, const T* __restrict__ s, T* __restrict__ d, int64_t n,
                                float m) {
  const int t = static_cast<int>(::ceil(solarize_threshold(m)));
  for (int64_t i = 0; i < n; ++i) d[i] = select_bits(quantise_level(s[i]) >= t, static_cast<T>(-g[i]), g[i]);
}

// Color (RGB): per pixel the engine's luma, clamp masks, their sum (in channel order) and the two terms.
template <typename T>
FA_CPU void color_backward_f(const T* __restrict__ r, const T* __restrict__ gr, const T* __restrict__ b,
                             const T* __restrict__ g0, const T* __restrict__ g1, const T* __restrict__ g2,
                             T* __restrict__ x0, T* __restrict__ x1, T* __restrict__ x2, int64_t n, T f) {
  const T one_f = T(1) - f;
  for (int64_t p = 0; p < n; ++p) {
    const T grey = T(kLumaR) * r[p] + T(kLumaG) * gr[p] + T(kLumaB) * b[p];
    const T v0 = grey + f * (r[p] - grey), v1 = grey + f * (gr[p] - grey), v2 = grey + f * (b[p] - grey);
    const T p0 = select_bits((v0 >= T(0)) & (v0 <= T(1)), g0[p], T(0));
    const T p1 = select_bits((v1 >= T(0)) & (v1 <= T(1)), g1[p], T(0));
    const T p2 = select_bits((v2 >= T(0)) & (v2 <= T(1)), g2[p], T(0));
    T sum = 0;
    sum += p0;
    sum += p1;
    sum += p2;
    x0[p] = f * p0 + one_f * T(kLumaR) * sum;
    x1[p] = f * p1 + one_f * T(kLumaG) * sum;
    x2[p] = f * p2 + one_f * T(kLumaB) * sum;
  }
}

// Contrast: the engine's sums in double keep their order (one sequential sum per channel; the
// channels' sums interleaved, which hides the additions' latency), the rest vectorises.
template <typename T>
FA_CPU void contrast_backward_f(const T* g, const T* src, T* gx, int64_t C, int64_t H, int64_t W, const Step& st) {
  const int64_t plane = H * W;
  const T mean = static_cast<T>(grey_mean(CpuExec{}, src, C, H, W));
  const T f = static_cast<T>(enhance_factor(st.m, st.s));
  const T w[3] = {C == 3 ? T(kLumaR) : T(1), T(kLumaG), T(kLumaB)};
  // Adding +0 where the engine adds nothing is exact (a sum started at +0 is never -0); the term is
  // selected with an integer mask (select_bits), since the compiler turns a select of doubles into a
  // branch that random clamps mispredict.
  auto term = [&](T v, T gi) { return select_bits((v >= T(0)) & (v <= T(1)), static_cast<double>(gi), 0.0); };
  double local[3] = {0, 0, 0};
  if (C == 3) {
    for (int64_t i = 0; i < plane; ++i)
      for (int64_t c = 0; c < 3; ++c) local[c] += term(mean + f * (src[c * plane + i] - mean), g[c * plane + i]);
  } else {
    for (int64_t i = 0; i < plane; ++i) local[0] += term(mean + f * (src[i] - mean), g[i]);
  }
  double total = 0;
  for (int64_t c = 0; c < C; ++c) total += local[c];
  const T share = static_cast<T>(total / static_cast<double>(plane)) * (T(1) - f);
  for (int64_t c = 0; c < C; ++c) {
    const T* __restrict__ s = src + c * plane;
    const T* __restrict__ gc = g + c * plane;
    T* __restrict__ d = gx + c * plane;
    const T wc = w[c];
    for (int64_t i = 0; i < plane; ++i) {
      const T v = mean + f * (s[i] - mean);
      const T gp = select_bits((v >= T(0)) & (v <= T(1)), gc[i], T(0));
      d[i] = f * gp + wc * share;
    }
  }
}

// fn(i) for the flat index of every border pixel (rows 0 and H - 1, columns 0 and W - 1), once each.
template <typename F>
FA_CPU void for_border(int64_t H, int64_t W, F&& fn) {
  for (int64_t x = 0; x < W; ++x) fn(x);
  for (int64_t y = 1; y < H - 1; ++y) {
    fn(y * W);
    if (W > 1) fn(y * W + W - 1);
  }
  if (H > 1)
    for (int64_t x = 0; x < W; ++x) fn((H - 1) * W + x);
}

// Sharpness: the engine's two passes. tmp = g where the blend is inside [0, 1] (smooth_at's sum, in its
// order, on the interior as one flat loop, the border pixels after); then gx = f g' + (1 - f) adj with
// adj the SMOOTH filter's adjoint. The engine's adj of an interior pixel adds, from +0 and in window
// order, the terms of its interior neighbours; with the border of tmp zeroed all nine terms can be
// added (+0 to a sum started at +0 changes nothing), one flat loop. Border pixels: the engine's rule.
template <typename T>
FA_CPU void sharpness_mask_span_f(const T* __restrict__ s, const T* __restrict__ g, T* __restrict__ t, int64_t begin,
                                  int64_t end, int64_t W, T f) {
  for (int64_t i = begin; i < end; ++i) {
    const T deg = smooth_interior(s, i, W);
    const T v = deg + f * (s[i] - deg);
    t[i] = select_bits((v >= T(0)) & (v <= T(1)), g[i], T(0));
  }
}

template <typename T>
FA_CPU void sharpness_adjoint_span_f(const T* __restrict__ t, T* __restrict__ d, int64_t begin, int64_t end, int64_t W,
                                     T f) {
  const T c1 = T(1) / T(13), c5 = T(5) / T(13), one_f = T(1) - f;
  for (int64_t i = begin; i < end; ++i) {
    T adj = T(0);
    adj += c1 * t[i - W - 1];
    adj += c1 * t[i - W];
    adj += c1 * t[i - W + 1];
    adj += c1 * t[i - 1];
    adj += c5 * t[i];
    adj += c1 * t[i + 1];
    adj += c1 * t[i + W - 1];
    adj += c1 * t[i + W];
    adj += c1 * t[i + W + 1];
    d[i] = f * t[i] + one_f * adj;
  }
}

template <typename T>
FA_CPU void sharpness_backward_f(const T* g, const T* src, T* gx, T* tmp, int64_t C, int64_t H, int64_t W,
                                 const Step& st) {
  const int64_t plane = H * W;
  const T f = static_cast<T>(enhance_factor(st.m, st.s));
  for (int64_t c = 0; c < C; ++c) {
    const T* s = src + c * plane;
    const T* gc = g + c * plane;
    T* t = tmp + c * plane;
    T* d = gx + c * plane;
    auto mask_border = [&](int64_t i) {  // smooth_at of a border pixel is the pixel
      const T v = s[i] + f * (s[i] - s[i]);
      t[i] = select_bits((v >= T(0)) & (v <= T(1)), gc[i], T(0));
    };
    if (H >= 3 && W >= 3) sharpness_mask_span_f(s, gc, t, W + 1, plane - W - 1, W, f);
    for_border(H, W, mask_border);
    if (H >= 3 && W >= 3) {
      // The border of tmp, kept aside and zeroed for the interior pass.
      T* keep = tmp + C * plane;  // 2 (H + W) entries after the image (Scratch::image has room)
      int64_t nk = 0;
      for (int64_t x = 0; x < W; ++x) {
        keep[nk++] = t[x];
        keep[nk++] = t[plane - W + x];
        t[x] = t[plane - W + x] = T(0);
      }
      for (int64_t y = 1; y < H - 1; ++y) {
        keep[nk++] = t[y * W];
        keep[nk++] = t[y * W + W - 1];
        t[y * W] = t[y * W + W - 1] = T(0);
      }
      sharpness_adjoint_span_f(t, d, W + 1, plane - W - 1, W, f);
      nk = 0;
      for (int64_t x = 0; x < W; ++x) {
        t[x] = keep[nk++];
        t[plane - W + x] = keep[nk++];
      }
      for (int64_t y = 1; y < H - 1; ++y) {
        t[y * W] = keep[nk++];
        t[y * W + W - 1] = keep[nk++];
      }
    }
    // Border pixels. Two away from the corners, an edge pixel's window holds three interior pixels,
    // all of weight 1, in window order: the row (or column) next to it.
    const T c1 = T(1) / T(13), one_f = T(1) - f;
    auto edge = [&](int64_t i, int64_t a, int64_t b, int64_t c) {
      T adj = t[i];
      adj += c1 * t[a];
      adj += c1 * t[b];
      adj += c1 * t[c];
      d[i] = f * t[i] + one_f * adj;
    };
    for_border(H, W, [&](int64_t i) {
      const int64_t y = i / W, x = i % W;
      {
        if (H >= 5 && W >= 5 && (y == 0 || y == H - 1) && x >= 2 && x < W - 2) {
          const int64_t n = y == 0 ? i + W : i - W;  // the pixel in the row next to the edge
          edge(i, n - 1, n, n + 1);
        } else if (H >= 5 && W >= 5 && (x == 0 || x == W - 1) && y >= 2 && y < H - 2) {
          const int64_t n = x == 0 ? i + 1 : i - 1;  // the column next to the edge
          edge(i, n - W, n, n + W);
        } else {
          d[i] = f * t[i] + one_f * smooth_adjoint_at<T, T>(t, y, x, H, W);
        }
      }
    });
  }
}

// gx = d(loss)/d(src) of one step, bit-identical to the engine's step_backward (which runs the ops
// without a fast path here). `tmp`: an image-sized buffer.
template <typename T>
FA_CPU void step_backward(const T* g, const T* src, T* gx, T* tmp, int64_t C, int64_t H, int64_t W, const Step& st,
                          Scratch<T>& sc) {
  const int64_t plane = H * W;
  switch (st.op) {
    case kShearX:
    case kShearY:
    case kTranslateX:
    case kTranslateY:
    case kRotate:
      geometric_backward(st, g, gx, C, H, W, sc);
      return;
    case kColor:
      if (C != 3) break;
      color_backward_f(src, src + plane, src + 2 * plane, g, g + plane, g + 2 * plane, gx, gx + plane, gx + 2 * plane,
                       plane, static_cast<T>(enhance_factor(st.m, st.s)));
      return;
    case kContrast:
      contrast_backward_f(g, src, gx, C, H, W, st);
      return;
    case kSolarize:
      solarize_backward_f(g, src, gx, C * plane, st.m);
      return;
    case kSharpness:
      sharpness_backward_f(g, src, gx, tmp, C, H, W, st);
      return;
    default:
      break;
  }
  policy::step_backward(CpuExec{}, g, src, gx, tmp, C, H, W, st);
}


// ---- one step ------------------------------------------------------------------------------------------

// dst = op(src) for one image, bit-identical to the engine's apply_step with the CPU executor.
template <typename T, CpuIsa isa>
FA_CPU void step(const T* src, T* dst, const T* pair, int64_t C, int64_t H, int64_t W, const Step& st, T fillv,
                 PolicyShared& sh, Scratch<T>& sc) {
  const int64_t plane = H * W;
  switch (st.op) {
    case kShearX:
    case kShearY:
    case kTranslateX:
    case kTranslateY:
    case kRotate:
      geometric<T, isa>(st, src, dst, C, H, W, fillv, sc);
      return;
    case kCutout:
      cutout(st, src, dst, C, H, W, fillv);
      return;
    case kIdentity:
      copy_span(src, dst, C * plane);
      return;
    case kColor:
      if (C != 3) {  // the grey of a grey image is itself
        copy_span(src, dst, C * plane);
        return;
      }
      break;
    default:
      break;
  }
  if constexpr (std::is_same<T, uint8_t>::value) {
    switch (st.op) {
      case kColor:  // C == 3 here
        color_u8<isa>(src, dst, plane, enhance_factor(st.m, st.s));
        return;
      case kSamplePairing:
        pairing_u8<isa>(src, pair, dst, C * plane, pairing_weight(st.m));
        return;
      case kSharpness:
        sharpness_u8<isa>(src, dst, C, H, W, enhance_factor(st.m, st.s));
        return;
      default:
        break;
    }
    if (point_rule_u8(st, src, dst, C * plane)) return;
    alignas(64) uint8_t lut[3 * 256];
    double slope[3];
    bool shared = true;
    if (point_luts_u8<isa>(st, src, C, H, W, lut, slope, &shared, sh)) {
      apply_tables_u8<isa>(src, dst, C, plane, lut, slope, shared);
      return;
    }
  }
  if constexpr (!std::is_same<T, uint8_t>::value) {
    if (step_float(src, dst, C, H, W, st, sh)) return;
  }
  apply_step(CpuExec{}, src, dst, pair, C, H, W, st, fillv, sh);
}

}  // namespace cpu
}  // namespace policy
}  // namespace fastaug
