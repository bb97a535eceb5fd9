// CPU kernels of the flow warp family.
//
// Each output row is processed in two steps: its source coordinates (padding applied) are computed
// into a small buffer, then csrc/common/bilinear_row_cpu.h turns them into bilinear taps and samples
// every channel (AVX2 gathers for float32 where the CPU has them). Forwards, and backwards that need
// no gradient for x, run in parallel over (image, block of rows). The gradient for x is a scatter
// that may land anywhere in the image, so when it is asked for the backward runs one image per
// thread: race-free and deterministic without atomics.
#include <ATen/Parallel.h>
#include <torch/all.h>

#include <algorithm>
#include <vector>

#include "common/affine_flow.h"
#include "common/bilinear_row_cpu.h"
#include "common/box_filter.h"
#include "common/box_filter_cpu.h"
#include "common/cpu_dispatch.h"
#include "common/cpu_parallel.h"
#include "common/sampling.h"
#include "warp/warp.h"

namespace fastaug {
namespace {

// Per-thread scratch for one output row.
template <typename T>
struct RowScratch {
  std::vector<T> ix, iy, mult_x, mult_y, g_ix, g_iy;
  RowTaps<T> taps;
  explicit RowScratch(int64_t W) : ix(W), iy(W), mult_x(W), mult_y(W), g_ix(W), g_iy(W) { taps.resize(W); }
};

// Sample all C channels of image x at the row's coordinates into out (channel stride H * W).
template <typename T>
void sample_row(const T* x, int64_t C, int64_t H, int64_t W, RowScratch<T>& s, T* out) {
  fastaug::sample_row(s.ix.data(), s.iy.data(), W, H, W, x, C, out, H * W, s.taps);
}

// Backward of sample_row: s.g_ix / s.g_iy receive d(loss)/d(source coordinate) for the row, and gx
// (if non-null) the scattered gradient for x. gout points at the row in channel 0 (stride H * W).
template <typename T>
void sample_row_backward(const T* x, const T* gout, int64_t C, int64_t H, int64_t W, RowScratch<T>& s, T* gx) {
  fastaug::sample_row_backward(s.ix.data(), s.iy.data(), W, H, W, x, gout, H * W, C, s.g_ix.data(), s.g_iy.data(),
                               gx, s.taps);
}

// Source coordinates (and their padding derivatives) of output row i: (j + flow_x, i + flow_y),
// by sampling.h's flow_source (the CUDA kernels' maths).
template <typename T>
FASTAUG_AVX2_CLONES void warp_row_coords(const T* fx, const T* fy, int64_t i, int64_t H, int64_t W,
                                         int64_t padding_mode, bool align_corners, RowScratch<T>& s) {
  for (int64_t j = 0; j < W; ++j)
    flow_source(fx[j], fy[j], i, j, H, W, padding_mode, align_corners, &s.ix[j], &s.iy[j], &s.mult_x[j],
                &s.mult_y[j]);
}

at::Tensor warp_cpu(const at::Tensor& x_, const at::Tensor& flow_, int64_t padding_mode, bool align_corners) {
  check_warp_inputs(x_, flow_, padding_mode);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), flow = flow_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), plane = H * W;
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  const RowBlocks split(N, H, false);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "warp_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* fp = flow.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, N * split.blocks, grain_for(split.rows * W * C), [&](int64_t begin, int64_t end) {
      RowScratch<scalar_t> s(W);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t n = item / split.blocks, r0 = (item % split.blocks) * split.rows;
        const scalar_t* fxn = fp + n * 2 * plane;
        for (int64_t i = r0; i < std::min(H, r0 + split.rows); ++i) {
          warp_row_coords<scalar_t>(fxn + i * W, fxn + plane + i * W, i, H, W, padding_mode, align_corners, s);
          sample_row<scalar_t>(xp + n * C * plane, C, H, W, s, op + n * C * plane + i * W);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> warp_backward_cpu(const at::Tensor& grad_, const at::Tensor& x_,
                                                     const at::Tensor& flow_, int64_t padding_mode,
                                                     bool align_corners, bool need_x_grad) {
  check_warp_inputs(x_, flow_, padding_mode, &grad_);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), flow = flow_.contiguous(), grad = grad_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), plane = H * W;
  at::Tensor gflow = at::empty_like(flow);
  at::Tensor gx = need_x_grad ? at::zeros_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, gflow.zero_()};
  const RowBlocks split(N, H, need_x_grad);  // the x-gradient scatter needs whole images per thread
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "warp_backward_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* fp = flow.data_ptr<scalar_t>();
    const scalar_t* gp = grad.data_ptr<scalar_t>();
    scalar_t* gfp = gflow.data_ptr<scalar_t>();
    scalar_t* gxp = need_x_grad ? gx.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, N * split.blocks, grain_for(split.rows * W * C), [&](int64_t begin, int64_t end) {
      RowScratch<scalar_t> s(W);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t n = item / split.blocks, r0 = (item % split.blocks) * split.rows;
        const scalar_t* fxn = fp + n * 2 * plane;
        scalar_t* gfn = gfp + n * 2 * plane;
        for (int64_t i = r0; i < std::min(H, r0 + split.rows); ++i) {
          warp_row_coords<scalar_t>(fxn + i * W, fxn + plane + i * W, i, H, W, padding_mode, align_corners, s);
          sample_row_backward<scalar_t>(xp + n * C * plane, gp + n * C * plane + i * W, C, H, W, s,
                                        gxp ? gxp + n * C * plane : nullptr);
          for (int64_t j = 0; j < W; ++j) {
            gfn[i * W + j] = s.g_ix[j] * s.mult_x[j];
            gfn[plane + i * W + j] = s.g_iy[j] * s.mult_y[j];
          }
        }
      }
    });
  });
  return {gx, gflow};
}

// ------------------------------------------------------------------------------------------------
// affine_flow_warp: smooth the 6 raw parameter maps, then sample at s = u + S_w u + s_b.

constexpr int kAffineParams = kSpatialParams;  // w0 w1 w2 w3 (row-major 2x2) then b0 b1

// Smoothed parameter maps (w0..w3, b0, b1) of rows [r0, r1) of image n: sm[p * (r1 - r0) * W + ...].
template <typename T>
void smooth_affine_rows(const T* s_w, const T* s_b, int64_t H, int64_t W, int64_t k, int64_t r0, int64_t r1,
                        std::vector<T>& hsum, std::vector<T>& sm) {
  const int64_t plane = H * W;
  const T* planes[kAffineParams] = {s_w, s_w + plane, s_w + 2 * plane, s_w + 3 * plane, s_b, s_b + plane};
  smooth_rows<T>(planes, kAffineParams, H, W, k, r0, r1, hsum, sm);
}

// Source coordinates of output row i from the smoothed parameters `sm` (6 rows of W, stride pstride)
// by eq. 20 (common/affine_flow.h); mult_x/y receive d(pixel coordinate)/d(s_x), d/d(s_y), padding
// included.
template <typename T>
FASTAUG_AVX2_CLONES void affine_row_coords(const T* sm, int64_t pstride, int64_t i, int64_t H, int64_t W,
                                           int64_t padding_mode, RowScratch<T>& s) {
  const T uy = normalised_coordinate<T>(i, H);
  for (int64_t j = 0; j < W; ++j)
    eq20_source<T>(sm[j], sm[pstride + j], sm[2 * pstride + j], sm[3 * pstride + j], sm[4 * pstride + j],
                   sm[5 * pstride + j], uy, i, j, H, W, padding_mode, &s.ix[j], &s.iy[j], &s.mult_x[j],
                   &s.mult_y[j]);
}

// d(loss)/d(smoothed params) of row i from d(loss)/d(source coordinate), into G (6 planes, stride
// pstride), by the adjoint of eq. 20.
template <typename T>
FASTAUG_AVX2_CLONES void affine_param_grads_row(const RowScratch<T>& s, int64_t i, int64_t H, int64_t W, T* G,
                                                int64_t pstride) {
  const T uy = normalised_coordinate<T>(i, H);
  for (int64_t j = 0; j < W; ++j) {
    T g[kAffineParams];
    eq20_adjoint<T>(s.g_ix[j] * s.mult_x[j], s.g_iy[j] * s.mult_y[j], normalised_coordinate<T>(j, W), uy, g);
    for (int p = 0; p < kAffineParams; ++p) G[p * pstride + j] = g[p];
  }
}

at::Tensor affine_flow_warp_cpu(const at::Tensor& x_, const at::Tensor& s_w_, const at::Tensor& s_b_,
                                int64_t smooth, int64_t padding_mode) {
  check_affine_flow_inputs(x_, s_w_, s_b_, smooth, padding_mode);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), s_w = s_w_.contiguous(), s_b = s_b_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), plane = H * W;
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  const RowBlocks split(N, H, false);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "affine_flow_warp_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* wp = s_w.data_ptr<scalar_t>();
    const scalar_t* bp = s_b.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, N * split.blocks, grain_for(split.rows * W * (C + kAffineParams)), [&](int64_t begin,
                                                                                               int64_t end) {
      RowScratch<scalar_t> s(W);
      std::vector<scalar_t> hsum, sm;
      for (int64_t item = begin; item < end; ++item) {
        const int64_t n = item / split.blocks, r0 = (item % split.blocks) * split.rows;
        const int64_t r1 = std::min(H, r0 + split.rows);
        smooth_affine_rows<scalar_t>(wp + n * 4 * plane, bp + n * 2 * plane, H, W, smooth, r0, r1, hsum, sm);
        for (int64_t i = r0; i < r1; ++i) {
          affine_row_coords<scalar_t>(sm.data() + (i - r0) * W, (r1 - r0) * W, i, H, W, padding_mode, s);
          sample_row<scalar_t>(xp + n * C * plane, C, H, W, s, op + n * C * plane + i * W);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> affine_flow_warp_backward_cpu(
    const at::Tensor& grad_, const at::Tensor& x_, const at::Tensor& s_w_, const at::Tensor& s_b_, int64_t smooth,
    int64_t padding_mode, bool need_x_grad) {
  check_affine_flow_inputs(x_, s_w_, s_b_, smooth, padding_mode, &grad_);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), s_w = s_w_.contiguous(), s_b = s_b_.contiguous();
  const at::Tensor grad = grad_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), plane = H * W;
  at::Tensor g_sw = at::empty_like(s_w), g_sb = at::empty_like(s_b);
  at::Tensor gx = need_x_grad ? at::zeros_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, g_sw.zero_(), g_sb.zero_()};
  // One image per task: the box filter's adjoint mixes rows, and the x gradient is a scatter.
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "affine_flow_warp_backward_cpu", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    const T* wp = s_w.data_ptr<T>();
    const T* bp = s_b.data_ptr<T>();
    const T* gp = grad.data_ptr<T>();
    T* gwp = g_sw.data_ptr<T>();
    T* gbp = g_sb.data_ptr<T>();
    T* gxp = need_x_grad ? gx.data_ptr<T>() : nullptr;
    at::parallel_for(0, N, grain_for(plane * (C + kAffineParams)), [&](int64_t begin, int64_t end) {
      RowScratch<T> s(W);
      std::vector<T> hsum, sm, g_smooth(kAffineParams * plane), tmp(plane);
      for (int64_t n = begin; n < end; ++n) {
        smooth_affine_rows<T>(wp + n * 4 * plane, bp + n * 2 * plane, H, W, smooth, 0, H, hsum, sm);
        for (int64_t i = 0; i < H; ++i) {
          affine_row_coords<T>(sm.data() + i * W, plane, i, H, W, padding_mode, s);
          sample_row_backward<T>(xp + n * C * plane, gp + n * C * plane + i * W, C, H, W, s,
                                 gxp ? gxp + n * C * plane : nullptr);
          affine_param_grads_row<T>(s, i, H, W, g_smooth.data() + i * W, plane);
        }
        for (int p = 0; p < kAffineParams; ++p) {
          T* dst = p < 4 ? gwp + (n * 4 + p) * plane : gbp + (n * 2 + p - 4) * plane;
          box_filter_adjoint<T>(g_smooth.data() + p * plane, H, W, smooth, tmp.data(), dst);
        }
      }
    });
  });
  return {gx, g_sw, g_sb};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CPU, m) {
  m.impl("warp", &warp_cpu);
  m.impl("warp_backward", &warp_backward_cpu);
  m.impl("affine_flow_warp", &affine_flow_warp_cpu);
  m.impl("affine_flow_warp_backward", &affine_flow_warp_backward_cpu);
}

}  // namespace fastaug
