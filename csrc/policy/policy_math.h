// Per-image parameters of the policy ops and Pillow's arithmetic, host and device alike.
//
// Pillow is the oracle (docs/design.md K3). The rules reproduced here, from Pillow's C sources:
// * Image.transform(AFFINE, NEAREST) with a shear or rotation runs in 16.16 fixed point
//   (libImaging/Geometry.c, affine_fixed): a_i -> FIX(a_i), the offsets get the half-pixel terms,
//   source pixel = (A2 + y A1 + x A0) >> 16. Pure translations take ImagingScaleAffine instead:
//   source = COORD(a2 + 0.5 + x) in double, COORD(v) = v < 0 ? -1 : (int)v.
// * Image.rotate builds its matrix in Python: angle % 360, -radians, round(cos/sin, 15), about
//   (W/2, H/2).
// * Every product and sum whose rounding decides a pixel is written with the *_rn helpers, so nvcc
//   cannot contract it into an FMA: CPU and CUDA give bit-identical uint8 results.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/host_device.h"

// The engine's arithmetic helpers: FASTAUG_HD, and never a call in device code.
#define FA_HD FASTAUG_HD_FORCEINLINE

namespace fastaug {
namespace policy {

FA_HD double dmul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
FA_HD double dadd(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
FA_HD float fmul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
FA_HD float fadd(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// Pillow's FIX(v): 16.16 fixed point, FLOOR(v * 65536 + 0.5).
FA_HD int64_t pil_fix(double v) {
  const double t = dadd(dmul(v, 65536.0), 0.5);
  return static_cast<int64_t>(::floor(t));
}
// Pillow's COORD(v).
FA_HD int64_t pil_coord(double v) { return v < 0.0 ? -1 : static_cast<int64_t>(v); }

// Python's round(v, 15) for |v| <= 1 (exact up to the last ulp, which FIX cannot see).
FA_HD double round15(double v) { return ::nearbyint(v * 1e15) / 1e15; }

// Python's float modulo (result has the sign of the divisor).
FA_HD double py_mod(double a, double b) {
  double m = ::fmod(a, b);
  if (m != 0.0) {
    if ((b < 0) != (m < 0)) m += b;
  } else {
    m = ::copysign(0.0, b);
  }
  return m;
}

// The sampling rule of one geometric op for one image. kind 0: identity; 1: fixed-point affine
// (shear, rotate); 2: double translation along x (v = a2); 3: along y.
struct Affine {
  int kind;
  int64_t a0, a1, a2, a3, a4, a5;
  double v;
};

constexpr double kTranslateFrac = 150.0 / 331.0;

// Parameters of op 0..4 at magnitude m with sign s (+-1), for an H x W image.
FA_HD Affine make_affine(int64_t op, float m, float s, int64_t H, int64_t W) {
  Affine A{0, 0, 0, 0, 0, 0, 0, 0.0};
  const double sg = s < 0 ? -1.0 : 1.0, md = static_cast<double>(m);
  if (op == 0 || op == 1) {  // shear: matrix (1, v, 0, 0, 1, 0) or (1, 0, 0, v, 1, 0)
    const double v = sg * dmul(0.3, md);
    if (v == 0.0) return A;
    A.kind = 1;
    A.a0 = 65536;
    A.a4 = 65536;
    if (op == 0) {
      A.a1 = pil_fix(v);
      A.a3 = 0;
      A.a2 = pil_fix(dadd(0.5, dmul(v, 0.5)));  // a2 + a0 / 2 + a1 / 2 with a2 = 0
      A.a5 = pil_fix(0.5);
    } else {
      A.a1 = 0;
      A.a3 = pil_fix(v);
      A.a2 = pil_fix(0.5);
      A.a5 = pil_fix(dadd(dmul(v, 0.5), 0.5));  // a5 + a3 / 2 + a4 / 2 with a5 = 0
    }
    return A;
  }
  if (op == 2 || op == 3) {  // translate: matrix (1, 0, v, 0, 1, 0) or (1, 0, 0, 0, 1, v)
    const double size = static_cast<double>(op == 2 ? W : H);
    const double v = sg * dmul(dmul(kTranslateFrac, size), md);
    if (v == 0.0) return A;
    A.kind = op == 2 ? 2 : 3;
    A.v = v;
    return A;
  }
  // rotate by s * 30 m degrees counter-clockwise about (W/2, H/2), as Image.rotate.
  const double angle = py_mod(sg * dmul(30.0, md), 360.0);
  if (angle == 0.0) return A;
  const double rad = -dmul(angle, 3.14159265358979323846 / 180.0);
  const double c = round15(::cos(rad)), sn = round15(::sin(rad)), msn = round15(-::sin(rad));
  const double cx = static_cast<double>(W) / 2.0, cy = static_cast<double>(H) / 2.0;
  const double m2 = dadd(dadd(dadd(dmul(c, -cx), dmul(sn, -cy)), 0.0), cx);
  const double m5 = dadd(dadd(dadd(dmul(msn, -cx), dmul(c, -cy)), 0.0), cy);
  A.kind = 1;
  A.a0 = pil_fix(c);
  A.a1 = pil_fix(sn);
  A.a3 = pil_fix(msn);
  A.a4 = pil_fix(c);
  A.a2 = pil_fix(dadd(dadd(m2, dmul(c, 0.5)), dmul(sn, 0.5)));
  A.a5 = pil_fix(dadd(dadd(m5, dmul(msn, 0.5)), dmul(c, 0.5)));
  return A;
}

// Source pixel of output (x, y), or false when it falls outside (the output is then the fill).
FA_HD bool affine_source(const Affine& A, int64_t x, int64_t y, int64_t H, int64_t W, int64_t* sx, int64_t* sy) {
  int64_t xi = x, yi = y;
  if (A.kind == 1) {
    xi = (A.a2 + y * A.a1 + x * A.a0) >> 16;  // arithmetic shift: floor, as Pillow's int >> 16
    yi = (A.a5 + y * A.a4 + x * A.a3) >> 16;
  } else if (A.kind == 2) {
    xi = pil_coord(dadd(dadd(A.v, 0.5), static_cast<double>(x)));
  } else if (A.kind == 3) {
    yi = pil_coord(dadd(dadd(A.v, 0.5), static_cast<double>(y)));
  }
  *sx = xi;
  *sy = yi;
  return xi >= 0 && xi < W && yi >= 0 && yi < H;
}

// Approximate output position whose source is pixel (qx, qy): the starting point of the gather that
// computes the adjoint of the nearest-neighbour resampling (candidates within +-2 are checked).
FA_HD void affine_preimage(const Affine& A, int64_t qx, int64_t qy, double* px, double* py) {
  if (A.kind == 1) {
    // Solve [a0 a1; a3 a4] (x, y) = 65536 (q + 0.5) - (a2, a5).
    const double a0 = static_cast<double>(A.a0), a1 = static_cast<double>(A.a1);
    const double a3 = static_cast<double>(A.a3), a4 = static_cast<double>(A.a4);
    const double bx = 65536.0 * (static_cast<double>(qx) + 0.5) - static_cast<double>(A.a2);
    const double by = 65536.0 * (static_cast<double>(qy) + 0.5) - static_cast<double>(A.a5);
    const double det = a0 * a4 - a1 * a3;
    *px = (a4 * bx - a1 * by) / det;
    *py = (a0 * by - a3 * bx) / det;
  } else {
    *px = static_cast<double>(qx) - (A.kind == 2 ? A.v : 0.0);
    *py = static_cast<double>(qy) - (A.kind == 3 ? A.v : 0.0);
  }
}

// Blend factor 1 + s * 0.9 m of Contrast, Color, Brightness, Sharpness.
FA_HD float enhance_factor(float m, float s) { return 1.0f + (s < 0 ? -1.0f : 1.0f) * (0.9f * m); }
// SamplePairing weight 0.4 m.
FA_HD float pairing_weight(float m) { return 0.4f * m; }
// Solarize threshold 256 (1 - m), on the 0..255 scale.
FA_HD double solarize_threshold(float m) { return 256.0 * (1.0 - static_cast<double>(m)); }
// Posterize keeps 8 - round(4 m) bits (round half to even, like torch.round); returns the bit mask.
FA_HD int posterize_mask(float m) {
  const int drop = static_cast<int>(::nearbyint(4.0 * static_cast<double>(m)));
  return (~((1 << drop) - 1)) & 0xFF;
}
// Cutout side round(0.2 min(H, W) m) (half up).
FA_HD int64_t cutout_side(float m, int64_t H, int64_t W) {
  const double side = 0.2 * static_cast<double>(H < W ? H : W) * static_cast<double>(m);
  return static_cast<int64_t>(::floor(side + 0.5));
}

// Blend of uint8 values the Image.blend way (in1 + alpha (in2 - in1) in float), rounded half up
// and clamped: within +-1 of Pillow, which truncates.
// floor(v + 0.5) clamped to [0, 255] equals trunc(clamp(v + 0.5, 0, 255)): branch-free and
// vectorisable (no libm floor call).
FA_HD uint8_t blend_u8(float deg, float img, float alpha) {
  float r = fadd(fadd(deg, fmul(alpha, img - deg)), 0.5f);
  r = r < 0.0f ? 0.0f : r;
  r = r > 255.0f ? 255.0f : r;
  return static_cast<uint8_t>(static_cast<int>(r));
}

// Pillow's RGB -> L: (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
FA_HD int grey_u8(int r, int g, int b) { return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16; }

// ITU-R 601-2 luma used for float images.
constexpr float kLumaR = 0.299f, kLumaG = 0.587f, kLumaB = 0.114f;

// Nearest 8-bit level of a float pixel in [0, 1] (the quantisation Equalize, Posterize and the
// Solarize threshold use on float images). NaN gives level 0, as CUDA's float-to-int conversion does
// (on the CPU that conversion is undefined, and Equalize indexes its histogram with the level).
template <typename acc_t>
FA_HD int quantise(acc_t v) {
  acc_t t = v * acc_t(255) + acc_t(0.5);
  t = t >= acc_t(0) ? t : acc_t(0);
  t = t > acc_t(255) ? acc_t(255) : t;
  return static_cast<int>(t);  // trunc == floor for t >= 0
}

}  // namespace policy
}  // namespace fastaug
