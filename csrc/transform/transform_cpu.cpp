// CPU kernels of `transform`: the whole learned transformation of docs/design.md K2 (box smoothing of the
// raw 18- or 8-channel map, eq. 20 flow, bilinear warp, colour filter) in one pass.
//
// Forward: parallel over (image, block of rows). The block's rows of all P parameter maps are smoothed
// into a thread-local buffer; per output row, the eq. 20 source points are computed once
// (common/affine_flow.h), every channel is sampled straight into the output row by the shared row
// sampler (common/bilinear_row_cpu.h) and the colour filter is applied in place (serial: on the
// warped row; parallel: on the unwarped row of x, added to the warped one).
// Backward: parallel over images (the gradient for x is a scatter; one image per thread keeps it
// race-free and deterministic). Per row: the colour backward gives the gradient of the smoothed colour
// maps and the gradient reaching the warped image, the bilinear backward gives the coordinate
// gradient (-> smoothed spatial maps) and, when asked for, scatters into x. Finally the box filter's
// adjoint (a gather) maps all P smoothed-map gradients to the raw parameters.
#include <ATen/Parallel.h>
#include <torch/all.h>

#include <vector>

#include "common/affine_flow.h"
#include "common/bilinear_row_cpu.h"
#include "common/box_filter_cpu.h"
#include "common/cpu_parallel.h"
#include "common/sampling.h"
#include "transform/transform.h"
#include "transform/transform_cpu.h"

namespace fastaug {
namespace {

using k2_cpu::colour_row;
using k2_cpu::colour_row_backward;

// Per-thread scratch for one output row: eq. 20 source coordinates, their padding derivatives,
// coordinate gradients, bilinear taps, and C rows for the warped image and its gradient.
template <typename T>
struct RowScratch {
  std::vector<T> ix, iy, mx, my, g_ix, g_iy, ybuf, gybuf;
  RowTaps<T> taps;
  RowScratch(int64_t W, int64_t C) : ix(W), iy(W), mx(W), my(W), g_ix(W), g_iy(W), ybuf(C * W), gybuf(C * W) {
    taps.resize(W);
  }
};

// Source coordinates (and d(ix)/d(s_x), d(iy)/d(s_y)) of output row i from the smoothed spatial maps
// sm (planes w0..w3, b0, b1 at stride ps), by eq. 20 (common/affine_flow.h).
template <typename T>
void row_coords(const T* sm, int64_t ps, int64_t i, int64_t H, int64_t W, int64_t padding_mode, RowScratch<T>& s) {
  const T uy = normalised_coordinate<T>(i, H);
  for (int64_t j = 0; j < W; ++j)
    eq20_source<T>(sm[j], sm[ps + j], sm[2 * ps + j], sm[3 * ps + j], sm[4 * ps + j], sm[5 * ps + j], uy, i, j, H,
                   W, padding_mode, &s.ix[j], &s.iy[j], &s.mx[j], &s.my[j]);
}

template <typename T, int C>
void transform_forward_impl(const T* x, const T* params, T* out, int64_t N, int64_t H, int64_t W, int64_t k,
                            int64_t mode, int64_t padding_mode) {
  constexpr int P = transform_params(C);
  const int64_t plane = H * W;
  const int64_t rows = rows_per_item(N, H), blocks = (H + rows - 1) / rows;
  at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
    RowScratch<T> s(W, 0);
    std::vector<T> hsum, sm;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / blocks, r0 = (item % blocks) * rows, r1 = std::min(H, r0 + rows);
      const T* planes[P];
      for (int p = 0; p < P; ++p) planes[p] = params + (n * P + p) * plane;
      smooth_rows<T>(planes, P, H, W, k, r0, r1, hsum, sm);
      const int64_t ps = (r1 - r0) * W;
      const T* xn = x + n * C * plane;
      T* on = out + n * C * plane;
      for (int64_t i = r0; i < r1; ++i) {
        const T* smr = sm.data() + (i - r0) * W;
        row_coords<T>(smr, ps, i, H, W, padding_mode, s);
        // Every channel sampled straight into the output row, then the colour filter in place.
        sample_row<T>(s.ix.data(), s.iy.data(), W, H, W, xn, C, on + i * W, plane, s.taps);
        const T* xr[C];
        const T* yr[C];
        T* orow[C];
        for (int c = 0; c < C; ++c) {
          xr[c] = xn + c * plane + i * W;
          yr[c] = orow[c] = on + c * plane + i * W;
        }
        colour_row<T, C>(yr, mode == kSerial ? yr : xr, smr + kSpatialParams * ps, ps, orow, W);
      }
    }
  });
}

template <typename T, int C>
void transform_backward_impl(const T* g, const T* x, const T* params, T* gx, T* gp, int64_t N, int64_t H, int64_t W,
                             int64_t k, int64_t mode, int64_t padding_mode) {
  constexpr int P = transform_params(C);
  constexpr int PG = kSpatialParams + C * C;  // maps whose smoothed values / gradients are needed
  const int64_t plane = H * W;
  const bool serial = mode == kSerial;
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    RowScratch<T> s(W, C);
    std::vector<T> hsum, sm, G(PG * plane), tmp(plane);
    for (int64_t n = begin; n < end; ++n) {
      // The smoothed c_b maps do not enter the backward, and d/d(smoothed c_b) is grad_out itself.
      const T* planes[PG];
      for (int p = 0; p < PG; ++p) planes[p] = params + (n * P + p) * plane;
      smooth_rows<T>(planes, PG, H, W, k, 0, H, hsum, sm);
      const T* xn = x + n * C * plane;
      const T* gn = g + n * C * plane;
      T* gxn = gx ? gx + n * C * plane : nullptr;
      for (int64_t i = 0; i < H; ++i) {
        const T* smr = sm.data() + i * W;
        T* Gr = G.data() + i * W;
        row_coords<T>(smr, plane, i, H, W, padding_mode, s);
        const T* gr[C];
        const T* src[C];
        T* gyr[C];
        for (int c = 0; c < C; ++c) {
          gr[c] = gn + c * plane + i * W;
          src[c] = serial ? s.ybuf.data() + c * W : xn + c * plane + i * W;
          gyr[c] = s.gybuf.data() + c * W;
        }
        // d(loss)/d(warped image) of this row, channel stride gy_stride.
        const T* gy;
        int64_t gy_stride;
        if (serial) {
          // out = y + C_w y + c_b: d/dy = g + C_w^T g; y is the warped row, recomputed.
          sample_row<T>(s.ix.data(), s.iy.data(), W, H, W, xn, C, s.ybuf.data(), W, s.taps);
          colour_row_backward<T, C>(gr, src, smr + kSpatialParams * plane, plane, Gr + kSpatialParams * plane,
                                    plane, gyr, /*add_identity=*/true, /*accumulate=*/false, W);
          gy = s.gybuf.data();
          gy_stride = W;
        } else {
          // out = y + C_w x + c_b: the colour term's gradient lands on x at this very pixel.
          T* gxr[C];
          for (int c = 0; c < C; ++c) gxr[c] = gxn ? gxn + c * plane + i * W : nullptr;
          colour_row_backward<T, C>(gr, src, smr + kSpatialParams * plane, plane, Gr + kSpatialParams * plane,
                                    plane, gxn ? gxr : nullptr, /*add_identity=*/false, /*accumulate=*/true, W);
          gy = gn + i * W;
          gy_stride = plane;
        }
        // Bilinear backward: coordinate gradient summed over channels, scatter into x.
        sample_row_backward<T>(s.ix.data(), s.iy.data(), W, H, W, xn, gy, gy_stride, C, s.g_ix.data(),
                               s.g_iy.data(), gxn, s.taps);
        const T uy = normalised_coordinate<T>(i, H);
        for (int64_t j = 0; j < W; ++j) {
          T gs[kSpatialParams];
          eq20_adjoint<T>(s.g_ix[j] * s.mx[j], s.g_iy[j] * s.my[j], normalised_coordinate<T>(j, W), uy, gs);
          for (int p = 0; p < kSpatialParams; ++p) Gr[p * plane + j] = gs[p];
        }
      }
      for (int p = 0; p < PG; ++p)
        box_filter_adjoint<T>(G.data() + p * plane, H, W, k, tmp.data(), gp + (n * P + p) * plane);
      for (int c = 0; c < C; ++c)
        box_filter_adjoint<T>(gn + c * plane, H, W, k, tmp.data(), gp + (n * P + PG + c) * plane);
    }
  });
}

at::Tensor transform_cpu(const at::Tensor& x_, const at::Tensor& params_, int64_t smooth, int64_t mode,
                         int64_t padding_mode) {
  check_transform_inputs(x_, params_, smooth, mode, padding_mode);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), params = params_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "transform_cpu", [&] {
    auto f = C == 3 ? transform_forward_impl<scalar_t, 3> : transform_forward_impl<scalar_t, 1>;
    f(x.data_ptr<scalar_t>(), params.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, H, W, smooth, mode,
      padding_mode);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> transform_backward_cpu(const at::Tensor& grad_, const at::Tensor& x_,
                                                          const at::Tensor& params_, int64_t smooth, int64_t mode,
                                                          int64_t padding_mode, bool need_x_grad) {
  check_transform_inputs(x_, params_, smooth, mode, padding_mode, &grad_);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), params = params_.contiguous(), grad = grad_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor gparams = at::empty_like(params);
  at::Tensor gx = need_x_grad ? at::zeros_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, gparams.zero_()};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "transform_backward_cpu", [&] {
    auto f = C == 3 ? transform_backward_impl<scalar_t, 3> : transform_backward_impl<scalar_t, 1>;
    f(grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), params.data_ptr<scalar_t>(),
      need_x_grad ? gx.data_ptr<scalar_t>() : nullptr, gparams.data_ptr<scalar_t>(), N, H, W, smooth, mode,
      padding_mode);
  });
  return {gx, gparams};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CPU, m) {
  m.impl("transform", &transform_cpu);
  m.impl("transform_backward", &transform_backward_cpu);
}

}  // namespace fastaug
