// One image, one step of a policy chain: the maths of every op, shared by the CPU and CUDA kernels.
//
// Every function here is written against an executor `ex` that is either one CPU thread (tid 0 of 1,
// sync is a no-op, reductions are the identity) or one CUDA thread block (block-strided loops,
// __syncthreads, deterministic tree reductions, shared-memory histograms). Include it after
// torch/all.h; define FA_ENGINE first (`inline` on the host, `__device__ __forceinline__` in .cu).
#pragma once

#include <cstdint>
#include <type_traits>

#include "policy/policy.h"
#include "policy/policy_math.h"

namespace fastaug {
namespace policy {

// Accumulation type: float for uint8 / float / half / bfloat16, double for double.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

template <typename scalar_t>
constexpr bool is_u8() {
  return std::is_same<scalar_t, uint8_t>::value;
}

// Per-image scratch: lives on the CPU thread's stack, or in CUDA shared memory.
struct PolicyShared {
  int hist[3 * 256];
  int lut[3 * 256];
  double lo[3], hi[3];
};

// One step's parameters, read (and made safe) once.
struct Step {
  int64_t op;
  float m, s;
  int64_t partner, cy, cx;
};

FA_ENGINE Step read_step(const int64_t* op, const float* mag, const float* sign, const int64_t* partner,
                         const int64_t* center, int64_t idx, int64_t N) {
  Step st;
  st.op = op[idx];
  if (st.op < kIdentity || st.op >= kNumPolicyOps) st.op = kIdentity;  // the CPU path rejects these earlier
  const float m = mag[idx];
  st.m = m >= 0.0f ? (m <= 1.0f ? m : 1.0f) : 0.0f;  // also maps NaN to 0
  st.s = sign[idx] < 0.0f ? -1.0f : 1.0f;
  int64_t p = partner[idx];
  st.partner = p < 0 ? 0 : (p >= N ? N - 1 : p);
  st.cy = center[2 * idx];
  st.cx = center[2 * idx + 1];
  return st;
}

template <typename scalar_t, typename acc_t>
FA_ENGINE acc_t ld(const scalar_t* p, int64_t i) {
  return static_cast<acc_t>(p[i]);
}

template <typename acc_t>
FA_ENGINE acc_t clamp01(acc_t v) {
  return v < acc_t(0) ? acc_t(0) : (v > acc_t(1) ? acc_t(1) : v);
}

// Blend of one value with its degenerate, in the image's dtype: uint8 the Pillow way (rounded),
// float exactly, clamped to [0, 1].
template <typename scalar_t, typename acc_t>
FA_ENGINE scalar_t blend_px(acc_t deg, acc_t img, float f) {
  if constexpr (is_u8<scalar_t>()) {
    return blend_u8(static_cast<float>(deg), static_cast<float>(img), f);
  } else {
    return static_cast<scalar_t>(clamp01<acc_t>(deg + static_cast<acc_t>(f) * (img - deg)));
  }
}

// Channel histograms of the image (quantised to 8-bit levels for float images) into sh.hist.
template <typename scalar_t, typename Exec>
FA_ENGINE void histograms(const Exec& ex, const scalar_t* src, int64_t C, int64_t plane, PolicyShared& sh) {
  using acc_t = typename Acc<scalar_t>::type;
  for (int64_t i = ex.tid(); i < 3 * 256; i += ex.nthreads()) sh.hist[i] = 0;
  ex.sync();
  ex.elements(C, plane, [&](int64_t c, int64_t i) {
    int v;
    if constexpr (is_u8<scalar_t>()) {
      v = src[i];
    } else {
      v = quantise<acc_t>(ld<scalar_t, acc_t>(src, i));
    }
    ex.hist_add(sh.hist + c * 256, v);
  });
  ex.sync();
}

// Apply the per-channel LUT sh.lut (values 0..255) to every pixel.
template <typename scalar_t, typename Exec>
FA_ENGINE void apply_lut(const Exec& ex, const scalar_t* src, scalar_t* dst, int64_t C, int64_t plane,
                         const PolicyShared& sh) {
  using acc_t = typename Acc<scalar_t>::type;
  ex.elements(C, plane, [&](int64_t c, int64_t i) {
    if constexpr (is_u8<scalar_t>()) {
      dst[i] = static_cast<uint8_t>(sh.lut[c * 256 + src[i]]);
    } else {
      const int q = quantise<acc_t>(ld<scalar_t, acc_t>(src, i));
      dst[i] = static_cast<scalar_t>(static_cast<acc_t>(sh.lut[c * 256 + q]) / acc_t(255));
    }
  });
}

// Fill every channel's LUT with level -> value(level), then apply it (uint8 pointwise ops).
template <typename Exec, typename F>
FA_ENGINE void fill_lut(const Exec& ex, PolicyShared& sh, F&& value) {
  for (int64_t i = ex.tid(); i < 3 * 256; i += ex.nthreads()) sh.lut[i] = value(static_cast<int>(i & 255));
  ex.sync();
}

// ImageOps.equalize's LUT for channel c from its histogram (one thread per channel).
FA_ENGINE void equalize_lut(PolicyShared& sh, int64_t c) {
  const int* h = sh.hist + c * 256;
  int* lut = sh.lut + c * 256;
  int64_t total = 0, nonzero = 0, last = 0;
  for (int i = 0; i < 256; ++i) {
    if (h[i]) {
      ++nonzero;
      last = h[i];
      total += h[i];
    }
  }
  const int64_t step = nonzero <= 1 ? 0 : (total - last) / 255;
  if (step == 0) {
    for (int i = 0; i < 256; ++i) lut[i] = i;
    return;
  }
  // lut[i] = min(n_i / step, 255) with n_i = step / 2 + sum_{j < i} h[j], tracked incrementally
  // (q = n / step, next = (q + 1) step) instead of 256 divisions.
  int64_t n = step / 2, q = 0, next = step;
  for (int i = 0; i < 256; ++i) {
    while (n >= next && q <= 255) {
      ++q;
      next += step;
    }
    lut[i] = static_cast<int>(q > 255 ? 255 : q);
    n += h[i];
  }
}

// ImageOps.autocontrast(cutoff=0)'s LUT for channel c with lowest / highest levels lo, hi.
FA_ENGINE void autocontrast_lut(PolicyShared& sh, int64_t c, int lo, int hi) {
  int* lut = sh.lut + c * 256;
  if (hi <= lo) {
    for (int i = 0; i < 256; ++i) lut[i] = i;
    return;
  }
  const double scale = 255.0 / static_cast<double>(hi - lo);
  const double offset = dmul(static_cast<double>(-lo), scale);
  for (int i = 0; i < 256; ++i) {
    int64_t v = static_cast<int64_t>(dadd(dmul(static_cast<double>(i), scale), offset));
    lut[i] = static_cast<int>(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
}

// Smoothed value (Pillow's SMOOTH: [[1,1,1],[1,5,1],[1,1,1]] / 13, border pixels unfiltered) of
// plane `p` at (y, x); uint8 rounds as Pillow's 3x3 filter does.
template <typename scalar_t, typename acc_t>
FA_ENGINE acc_t smooth_at(const scalar_t* p, int64_t y, int64_t x, int64_t H, int64_t W) {
  const int64_t i = y * W + x;
  if (y == 0 || x == 0 || y == H - 1 || x == W - 1) return ld<scalar_t, acc_t>(p, i);
  if constexpr (is_u8<scalar_t>()) {
    int s = 4 * p[i];
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) s += p[i + dy * W + dx];
    return static_cast<acc_t>((2 * s + 13) / 26);
  } else {
    acc_t s = acc_t(4) * ld<scalar_t, acc_t>(p, i);
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) s += ld<scalar_t, acc_t>(p, i + dy * W + dx);
    return s / acc_t(13);
  }
}

// Mean of the grey image (uint8: Pillow's L conversion and ImageStat mean rounded to an integer;
// float: the exact luma mean). All threads get the result.
template <typename scalar_t, typename Exec>
FA_ENGINE double grey_mean(const Exec& ex, const scalar_t* src, int64_t C, int64_t H, int64_t W) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t plane = H * W;
  if constexpr (is_u8<scalar_t>()) {
    long long local = 0;
    ex.pixels(H, W, [&](int64_t, int64_t, int64_t p) {
      local += C == 3 ? grey_u8(src[p], src[plane + p], src[2 * plane + p]) : src[p];
    });
    const long long total = ex.sum(local);
    const double mean = static_cast<double>(total) / static_cast<double>(plane);
    return static_cast<double>(static_cast<int64_t>(mean + 0.5));
  } else {
    double local = 0;
    ex.pixels(H, W, [&](int64_t, int64_t, int64_t p) {
      local += C == 3 ? static_cast<double>(acc_t(kLumaR) * ld<scalar_t, acc_t>(src, p) +
                                            acc_t(kLumaG) * ld<scalar_t, acc_t>(src, plane + p) +
                                            acc_t(kLumaB) * ld<scalar_t, acc_t>(src, 2 * plane + p))
                      : static_cast<double>(ld<scalar_t, acc_t>(src, p));
    });
    return ex.sum(local) / static_cast<double>(plane);
  }
}

// dst = op(src) for one image. `pair` is the partner image (SamplePairing); fillv the fill value in
// the image's scale. All threads of the executor call it; it ends with dst complete (synced).
template <typename scalar_t, typename Exec>
FA_ENGINE void apply_step(const Exec& ex, const scalar_t* src, scalar_t* dst, const scalar_t* pair, int64_t C,
                          int64_t H, int64_t W, const Step& st, scalar_t fillv, PolicyShared& sh) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t plane = H * W;
  const acc_t top = is_u8<scalar_t>() ? acc_t(255) : acc_t(1);
  switch (st.op) {
    case kShearX:
    case kShearY:
    case kTranslateX:
    case kTranslateY:
    case kRotate: {
      const Affine A = make_affine(st.op, st.m, st.s, H, W);
      ex.pixels(H, W, [&](int64_t y, int64_t x, int64_t p) {
        int64_t sx, sy;
        if (affine_source(A, x, y, H, W, &sx, &sy)) {
          const int64_t q = sy * W + sx;
          for (int64_t c = 0; c < C; ++c) dst[c * plane + p] = src[c * plane + q];
        } else {
          for (int64_t c = 0; c < C; ++c) dst[c * plane + p] = fillv;
        }
      });
      break;
    }
    case kAutoContrast: {
      if constexpr (is_u8<scalar_t>()) {
        histograms(ex, src, C, plane, sh);
        for (int64_t c = ex.tid(); c < C; c += ex.nthreads()) {
          int lo = 0, hi = 255;
          while (lo < 255 && sh.hist[c * 256 + lo] == 0) ++lo;
          while (hi > 0 && sh.hist[c * 256 + hi] == 0) --hi;
          autocontrast_lut(sh, c, lo, hi);
        }
        ex.sync();
        apply_lut(ex, src, dst, C, plane, sh);
      } else {
        for (int64_t c = 0; c < C; ++c) {
          acc_t lo = acc_t(INFINITY), hi = acc_t(-INFINITY);
          ex.pixels(H, W, [&](int64_t, int64_t, int64_t p) {
            const acc_t v = ld<scalar_t, acc_t>(src, c * plane + p);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
          });
          lo = ex.min(lo);
          hi = ex.max(hi);
          ex.pixels(H, W, [&](int64_t, int64_t, int64_t p) {
            const acc_t v = ld<scalar_t, acc_t>(src, c * plane + p);
            dst[c * plane + p] = hi > lo ? static_cast<scalar_t>(clamp01<acc_t>((v - lo) / (hi - lo)))
                                         : static_cast<scalar_t>(v);
          });
        }
      }
      break;
    }
    case kInvert:
      if constexpr (is_u8<scalar_t>()) {
        fill_lut(ex, sh, [](int v) { return 255 - v; });
        apply_lut(ex, src, dst, C, plane, sh);
      } else {
        ex.elements(C, plane, [&](int64_t, int64_t i) {
          dst[i] = static_cast<scalar_t>(top - ld<scalar_t, acc_t>(src, i));
        });
      }
      break;
    case kEqualize: {
      histograms(ex, src, C, plane, sh);
      for (int64_t c = ex.tid(); c < C; c += ex.nthreads()) equalize_lut(sh, c);
      ex.sync();
      apply_lut(ex, src, dst, C, plane, sh);
      break;
    }
    case kSolarize: {
      const double t = solarize_threshold(st.m);
      if constexpr (is_u8<scalar_t>()) {
        fill_lut(ex, sh, [&](int v) { return static_cast<double>(v) >= t ? 255 - v : v; });
        apply_lut(ex, src, dst, C, plane, sh);
      } else {
        ex.elements(C, plane, [&](int64_t, int64_t i) {
          const acc_t v = ld<scalar_t, acc_t>(src, i);
          dst[i] = static_cast<double>(quantise<acc_t>(v)) >= t ? static_cast<scalar_t>(top - v) : src[i];
        });
      }
      break;
    }
    case kPosterize: {
      const int mask = posterize_mask(st.m);
      if constexpr (is_u8<scalar_t>()) {
        fill_lut(ex, sh, [&](int v) { return v & mask; });
        apply_lut(ex, src, dst, C, plane, sh);
      } else {
        ex.elements(C, plane, [&](int64_t, int64_t i) {
          const int q = quantise<acc_t>(ld<scalar_t, acc_t>(src, i)) & mask;
          dst[i] = static_cast<scalar_t>(static_cast<acc_t>(q) / acc_t(255));
        });
      }
      break;
    }
    case kContrast: {
      const acc_t mean = static_cast<acc_t>(grey_mean(ex, src, C, H, W));
      const float f = enhance_factor(st.m, st.s);
      if constexpr (is_u8<scalar_t>()) {
        fill_lut(ex, sh, [&](int v) { return static_cast<int>(blend_u8(mean, static_cast<float>(v), f)); });
        apply_lut(ex, src, dst, C, plane, sh);
      } else {
        ex.elements(C, plane, [&](int64_t, int64_t i) {
          dst[i] = blend_px<scalar_t, acc_t>(mean, ld<scalar_t, acc_t>(src, i), f);
        });
      }
      break;
    }
    case kColor: {
      const float f = enhance_factor(st.m, st.s);
      if (C != 3) {  // the grey of a grey image is itself: identity
        ex.elements(C, plane, [&](int64_t, int64_t i) { dst[i] = src[i]; });
        break;
      }
      ex.pixels(H, W, [&](int64_t, int64_t, int64_t p) {
        acc_t grey;
        if constexpr (is_u8<scalar_t>()) {
          grey = static_cast<acc_t>(grey_u8(src[p], src[plane + p], src[2 * plane + p]));
        } else {
          grey = acc_t(kLumaR) * ld<scalar_t, acc_t>(src, p) + acc_t(kLumaG) * ld<scalar_t, acc_t>(src, plane + p) +
                 acc_t(kLumaB) * ld<scalar_t, acc_t>(src, 2 * plane + p);
        }
        for (int64_t c = 0; c < 3; ++c)
          dst[c * plane + p] = blend_px<scalar_t, acc_t>(grey, ld<scalar_t, acc_t>(src, c * plane + p), f);
      });
      break;
    }
    case kBrightness: {
      const float f = enhance_factor(st.m, st.s);
      if constexpr (is_u8<scalar_t>()) {
        fill_lut(ex, sh, [&](int v) { return static_cast<int>(blend_u8(0.0f, static_cast<float>(v), f)); });
        apply_lut(ex, src, dst, C, plane, sh);
      } else {
        ex.elements(C, plane, [&](int64_t, int64_t i) {
          dst[i] = blend_px<scalar_t, acc_t>(acc_t(0), ld<scalar_t, acc_t>(src, i), f);
        });
      }
      break;
    }
    case kSharpness: {
      const float f = enhance_factor(st.m, st.s);
      ex.channel_pixels(C, H, W, [&](int64_t c, int64_t y, int64_t x, int64_t i) {
        const acc_t deg = smooth_at<scalar_t, acc_t>(src + c * plane, y, x, H, W);
        dst[i] = blend_px<scalar_t, acc_t>(deg, ld<scalar_t, acc_t>(src, i), f);
      });
      break;
    }
    case kCutout: {
      const int64_t k = cutout_side(st.m, H, W);
      const int64_t y0 = st.cy - k / 2, x0 = st.cx - k / 2;
      ex.channel_pixels(C, H, W, [&](int64_t, int64_t y, int64_t x, int64_t i) {
        const bool in = y >= y0 && y < y0 + k && x >= x0 && x < x0 + k;
        dst[i] = in ? fillv : src[i];
      });
      break;
    }
    case kSamplePairing: {
      const float w = pairing_weight(st.m);
      ex.elements(C, plane, [&](int64_t, int64_t i) {
        if constexpr (is_u8<scalar_t>()) {
          dst[i] = blend_u8(static_cast<float>(src[i]), static_cast<float>(pair[i]), w);
        } else {
          const acc_t v = ld<scalar_t, acc_t>(src, i);
          dst[i] = static_cast<scalar_t>(v + static_cast<acc_t>(w) * (ld<scalar_t, acc_t>(pair, i) - v));
        }
      });
      break;
    }
    default:  // kIdentity
      ex.elements(C, plane, [&](int64_t, int64_t i) { dst[i] = src[i]; });
      break;
  }
  ex.sync();
}

// The whole chain of image n: step l reads the previous step's output (the input x for l = 0) and
// writes, alternately, `out` and `scratch` so that the last step lands in `out`. SamplePairing reads
// the partner's image in `pairs` (the batch as given, not the partner's augmented image).
template <typename scalar_t, typename Exec>
FA_ENGINE void run_chain(const Exec& ex, const scalar_t* x, const scalar_t* pairs, scalar_t* out, scalar_t* scratch,
                         const int64_t* op, const float* mag, const float* sign, const int64_t* partner,
                         const int64_t* center, int64_t n, int64_t N, int64_t L, int64_t C, int64_t H, int64_t W,
                         scalar_t fillv, PolicyShared& sh) {
  const int64_t chw = C * H * W;
  const scalar_t* src = x + n * chw;
  for (int64_t l = 0; l < L; ++l) {
    const Step st = read_step(op, mag, sign, partner, center, n * L + l, N);
    scalar_t* dst = ((L - 1 - l) % 2 == 0) ? out + n * chw : scratch + n * chw;
    apply_step(ex, src, dst, pairs + st.partner * chw, C, H, W, st, fillv, sh);
    src = dst;
  }
}

}  // namespace policy
}  // namespace fastaug
