// Backward of one policy step for float images: d(loss)/d(input image) per op, shared by the CPU
// and CUDA kernels like policy_engine.h (include that first). SamplePairing's share for the partner
// image is computed by the launchers (a deterministic gather over the images that paired with it).
#pragma once

#include "policy/policy_engine.h"

namespace fastaug {
namespace policy {

// The adjoint of the SMOOTH filter (smooth_at) applied to plane t, at pixel (y, x): a border pixel's
// own value (border pixels are unfiltered), then (k / 13) t of each interior neighbour of the window
// (k = 5 at the centre, 1 elsewhere) in window order.
template <typename scalar_t, typename acc_t>
FA_ENGINE acc_t smooth_adjoint_at(const scalar_t* t, int64_t y, int64_t x, int64_t H, int64_t W) {
  const bool border = y == 0 || x == 0 || y == H - 1 || x == W - 1;
  acc_t adj = border ? ld<scalar_t, acc_t>(t, y * W + x) : acc_t(0);
  for (int64_t dy = -1; dy <= 1; ++dy) {
    const int64_t yy = y + dy;
    if (yy <= 0 || yy >= H - 1) continue;
    for (int64_t dx = -1; dx <= 1; ++dx) {
      const int64_t xx = x + dx;
      if (xx <= 0 || xx >= W - 1) continue;
      const acc_t k = (dy == 0 && dx == 0) ? acc_t(5) : acc_t(1);
      adj += k / acc_t(13) * ld<scalar_t, acc_t>(t, yy * W + xx);
    }
  }
  return adj;
}

// gx = d(loss)/d(src) for one image given g = d(loss)/d(dst). `tmp` is an image-sized buffer.
// SamplePairing's contribution to the partner is computed separately (pairs_grad).
template <typename scalar_t, typename Exec>
FA_ENGINE void step_backward(const Exec& ex, const scalar_t* g, const scalar_t* src, scalar_t* gx, scalar_t* tmp,
                             int64_t C, int64_t H, int64_t W, const Step& st) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t plane = H * W;
  switch (st.op) {
    case kShearX:
    case kShearY:
    case kTranslateX:
    case kTranslateY:
    case kRotate: {
      // Adjoint of nearest resampling as a gather: input pixel q collects g of every output pixel
      // whose source is q; those lie within +-2 pixels of the continuous preimage of q's centre.
      const Affine A = make_affine(st.op, st.m, st.s, H, W);
      ex.pixels(H, W, [&](int64_t qy, int64_t qx, int64_t q) {
        double px, py;
        affine_preimage(A, qx, qy, &px, &py);
        const int64_t bx = static_cast<int64_t>(::floor(px)), by = static_cast<int64_t>(::floor(py));
        acc_t acc[3] = {acc_t(0), acc_t(0), acc_t(0)};
        for (int64_t y = by - 2; y <= by + 2; ++y) {
          if (y < 0 || y >= H) continue;
          for (int64_t x = bx - 2; x <= bx + 2; ++x) {
            if (x < 0 || x >= W) continue;
            int64_t sx, sy;
            if (affine_source(A, x, y, H, W, &sx, &sy) && sx == qx && sy == qy)
              for (int64_t c = 0; c < C; ++c) acc[c] += ld<scalar_t, acc_t>(g, c * plane + y * W + x);
          }
        }
        for (int64_t c = 0; c < C; ++c) gx[c * plane + q] = static_cast<scalar_t>(acc[c]);
      });
      break;
    }
    case kAutoContrast:
    case kEqualize:
    case kPosterize:  // piecewise constant / histogram-defined: no gradient
      ex.elements(C, plane, [&](int64_t, int64_t i) { gx[i] = static_cast<scalar_t>(acc_t(0)); });
      break;
    case kInvert:
      ex.elements(C, plane, [&](int64_t, int64_t i) { gx[i] = static_cast<scalar_t>(-ld<scalar_t, acc_t>(g, i)); });
      break;
    case kSolarize: {
      const double t = solarize_threshold(st.m);
      ex.elements(C, plane, [&](int64_t, int64_t i) {
        const bool inv = static_cast<double>(quantise<acc_t>(ld<scalar_t, acc_t>(src, i))) >= t;
        const acc_t gi = ld<scalar_t, acc_t>(g, i);
        gx[i] = static_cast<scalar_t>(inv ? -gi : gi);
      });
      break;
    }
    case kContrast: {
      const acc_t mean = static_cast<acc_t>(grey_mean(ex, src, C, H, W));
      const acc_t f = static_cast<acc_t>(enhance_factor(st.m, st.s));
      const acc_t w[3] = {C == 3 ? acc_t(kLumaR) : acc_t(1), acc_t(kLumaG), acc_t(kLumaB)};
      double local[3] = {0, 0, 0};
      ex.elements(C, plane, [&](int64_t c, int64_t i) {
        const acc_t v = mean + f * (ld<scalar_t, acc_t>(src, i) - mean);
        if (v >= acc_t(0) && v <= acc_t(1)) local[c] += static_cast<double>(ld<scalar_t, acc_t>(g, i));
      });
      double total = 0;
      for (int64_t c = 0; c < C; ++c) total += ex.sum(local[c]);
      const acc_t share = static_cast<acc_t>(total / static_cast<double>(plane)) * (acc_t(1) - f);
      ex.elements(C, plane, [&](int64_t c, int64_t i) {
        const acc_t v = mean + f * (ld<scalar_t, acc_t>(src, i) - mean);
        const acc_t gp = (v >= acc_t(0) && v <= acc_t(1)) ? ld<scalar_t, acc_t>(g, i) : acc_t(0);
        gx[i] = static_cast<scalar_t>(f * gp + w[c] * share);
      });
      break;
    }
    case kColor: {
      const acc_t f = static_cast<acc_t>(enhance_factor(st.m, st.s));
      ex.pixels(H, W, [&](int64_t, int64_t, int64_t p) {
        if (C != 3) {
          gx[p] = g[p];
          return;
        }
        const acc_t r = ld<scalar_t, acc_t>(src, p), gr = ld<scalar_t, acc_t>(src, plane + p),
                    b = ld<scalar_t, acc_t>(src, 2 * plane + p);
        const acc_t grey = acc_t(kLumaR) * r + acc_t(kLumaG) * gr + acc_t(kLumaB) * b;
        const acc_t vals[3] = {r, gr, b};
        acc_t gp[3], sum = 0;
        for (int c = 0; c < 3; ++c) {
          const acc_t v = grey + f * (vals[c] - grey);
          gp[c] = (v >= acc_t(0) && v <= acc_t(1)) ? ld<scalar_t, acc_t>(g, c * plane + p) : acc_t(0);
          sum += gp[c];
        }
        const acc_t w[3] = {acc_t(kLumaR), acc_t(kLumaG), acc_t(kLumaB)};
        for (int c = 0; c < 3; ++c) gx[c * plane + p] = static_cast<scalar_t>(f * gp[c] + (acc_t(1) - f) * w[c] * sum);
      });
      break;
    }
    case kBrightness: {
      const acc_t f = static_cast<acc_t>(enhance_factor(st.m, st.s));
      ex.elements(C, plane, [&](int64_t, int64_t i) {
        const acc_t v = f * ld<scalar_t, acc_t>(src, i);
        gx[i] = static_cast<scalar_t>((v >= acc_t(0) && v <= acc_t(1)) ? f * ld<scalar_t, acc_t>(g, i) : acc_t(0));
      });
      break;
    }
    case kSharpness: {
      const acc_t f = static_cast<acc_t>(enhance_factor(st.m, st.s));
      // tmp = (1 - f) * g masked by the clamp; then gx = f * g' + adjoint of the smoothing applied to tmp.
      ex.pixels(H, W, [&](int64_t y, int64_t x, int64_t p) {
        for (int64_t c = 0; c < C; ++c) {
          const acc_t deg = smooth_at<scalar_t, acc_t>(src + c * plane, y, x, H, W);
          const acc_t v = deg + f * (ld<scalar_t, acc_t>(src, c * plane + p) - deg);
          tmp[c * plane + p] =
              static_cast<scalar_t>((v >= acc_t(0) && v <= acc_t(1)) ? ld<scalar_t, acc_t>(g, c * plane + p) : acc_t(0));
        }
      });
      ex.sync();
      ex.pixels(H, W, [&](int64_t y, int64_t x, int64_t p) {
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* t = tmp + c * plane;
          const acc_t gp = ld<scalar_t, acc_t>(t, p);
          const acc_t adj = smooth_adjoint_at<scalar_t, acc_t>(t, y, x, H, W);
          gx[c * plane + p] = static_cast<scalar_t>(f * gp + (acc_t(1) - f) * adj);
        }
      });
      break;
    }
    case kCutout: {
      const int64_t k = cutout_side(st.m, H, W);
      const int64_t y0 = st.cy - k / 2, x0 = st.cx - k / 2;
      ex.pixels(H, W, [&](int64_t y, int64_t x, int64_t p) {
        const bool in = y >= y0 && y < y0 + k && x >= x0 && x < x0 + k;
        for (int64_t c = 0; c < C; ++c)
          gx[c * plane + p] = in ? static_cast<scalar_t>(acc_t(0)) : g[c * plane + p];
      });
      break;
    }
    case kSamplePairing: {
      const acc_t w = static_cast<acc_t>(pairing_weight(st.m));
      ex.elements(C, plane, [&](int64_t, int64_t i) {
        gx[i] = static_cast<scalar_t>((acc_t(1) - w) * ld<scalar_t, acc_t>(g, i));
      });
      break;
    }
    default:
      ex.elements(C, plane, [&](int64_t, int64_t i) { gx[i] = g[i]; });
      break;
  }
  ex.sync();
}

}  // namespace policy
}  // namespace fastaug
