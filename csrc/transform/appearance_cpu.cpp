// CPU kernels of `appearance`: out = x + C_w x + c_b per pixel, with box-smoothed c_w, c_b.
//
// Forward: parallel over (image, block of rows); the C*C + C parameter maps of the block's rows are
// smoothed into a thread-local buffer (never a full smoothed tensor), then each row is filtered.
// Backward: parallel over images; per row the gradient of the smoothed c_w maps is written to an image
// buffer (the c_b part is grad_out itself and is read in place), then the box filter's adjoint (a
// gather, deterministic) turns it into the gradient of the raw maps. The gradient for x is
// per-pixel (grad + C_w^T grad), so nothing is scattered.
#include <ATen/Parallel.h>
#include <torch/all.h>

#include <vector>

#include "common/box_filter_cpu.h"
#include "common/cpu_parallel.h"
#include "transform/transform.h"
#include "transform/transform_cpu.h"

namespace fastaug {
namespace {

using k2_cpu::colour_row;
using k2_cpu::colour_row_backward;

template <typename T, int C>
void appearance_forward_impl(const T* x, const T* cw, const T* cb, T* out, int64_t N, int64_t H, int64_t W,
                             int64_t k) {
  constexpr int P = colour_params(C);
  const int64_t plane = H * W;
  const int64_t rows = rows_per_item(N, H), blocks = (H + rows - 1) / rows;
  at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> hsum, sm;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / blocks, r0 = (item % blocks) * rows, r1 = std::min(H, r0 + rows);
      const T* planes[P];
      for (int p = 0; p < C * C; ++p) planes[p] = cw + (n * C * C + p) * plane;
      for (int c = 0; c < C; ++c) planes[C * C + c] = cb + (n * C + c) * plane;
      smooth_rows<T>(planes, P, H, W, k, r0, r1, hsum, sm);
      const int64_t ps = (r1 - r0) * W;
      for (int64_t i = r0; i < r1; ++i) {
        const T* xr[C];
        T* orow[C];
        for (int c = 0; c < C; ++c) {
          xr[c] = x + (n * C + c) * plane + i * W;
          orow[c] = out + (n * C + c) * plane + i * W;
        }
        colour_row<T, C>(xr, xr, sm.data() + (i - r0) * W, ps, orow, W);
      }
    }
  });
}

template <typename T, int C>
void appearance_backward_impl(const T* g, const T* x, const T* cw, const T* cb, T* gx, T* gcw, T* gcb, int64_t N,
                              int64_t H, int64_t W, int64_t k) {
  const int64_t plane = H * W;
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> hsum, sm, G(C * C * plane), tmp(plane);
    for (int64_t n = begin; n < end; ++n) {
      const T* planes[C * C];
      for (int p = 0; p < C * C; ++p) planes[p] = cw + (n * C * C + p) * plane;
      // Only the c_w maps enter the backward (c_b's smoothed values are not needed).
      if (gx) smooth_rows<T>(planes, C * C, H, W, k, 0, H, hsum, sm);
      for (int64_t i = 0; i < H; ++i) {
        const T* gr[C];
        const T* xr[C];
        T* gxr[C];
        for (int c = 0; c < C; ++c) {
          gr[c] = g + (n * C + c) * plane + i * W;
          xr[c] = x + (n * C + c) * plane + i * W;
          gxr[c] = gx ? gx + (n * C + c) * plane + i * W : nullptr;
        }
        colour_row_backward<T, C>(gr, xr, gx ? sm.data() + i * W : nullptr, plane, G.data() + i * W, plane,
                                  gx ? gxr : nullptr, /*add_identity=*/true, /*accumulate=*/false, W);
      }
      for (int p = 0; p < C * C; ++p)
        box_filter_adjoint<T>(G.data() + p * plane, H, W, k, tmp.data(), gcw + (n * C * C + p) * plane);
      for (int c = 0; c < C; ++c)  // d/d(smoothed c_b) is grad_out itself
        box_filter_adjoint<T>(g + (n * C + c) * plane, H, W, k, tmp.data(), gcb + (n * C + c) * plane);
    }
  });
}

at::Tensor appearance_cpu(const at::Tensor& x_, const at::Tensor& c_w_, const at::Tensor& c_b_, int64_t smooth) {
  check_appearance_inputs(x_, c_w_, c_b_, smooth);
  const at::Tensor x = x_.contiguous(), c_w = c_w_.contiguous(), c_b = c_b_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "appearance_cpu", [&] {
    auto f = C == 3 ? appearance_forward_impl<scalar_t, 3> : appearance_forward_impl<scalar_t, 1>;
    f(x.data_ptr<scalar_t>(), c_w.data_ptr<scalar_t>(), c_b.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, H, W,
      smooth);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> appearance_backward_cpu(const at::Tensor& grad_, const at::Tensor& x_,
                                                                       const at::Tensor& c_w_, const at::Tensor& c_b_,
                                                                       int64_t smooth, bool need_x_grad) {
  check_appearance_inputs(x_, c_w_, c_b_, smooth, &grad_);
  const at::Tensor x = x_.contiguous(), c_w = c_w_.contiguous(), c_b = c_b_.contiguous();
  const at::Tensor grad = grad_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor g_cw = at::empty_like(c_w), g_cb = at::empty_like(c_b);
  at::Tensor gx = need_x_grad ? at::empty_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, g_cw.zero_(), g_cb.zero_()};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "appearance_backward_cpu", [&] {
    auto f = C == 3 ? appearance_backward_impl<scalar_t, 3> : appearance_backward_impl<scalar_t, 1>;
    f(grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), c_w.data_ptr<scalar_t>(), c_b.data_ptr<scalar_t>(),
      need_x_grad ? gx.data_ptr<scalar_t>() : nullptr, g_cw.data_ptr<scalar_t>(), g_cb.data_ptr<scalar_t>(), N, H,
      W, smooth);
  });
  return {gx, g_cw, g_cb};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CPU, m) {
  m.impl("appearance", &appearance_cpu);
  m.impl("appearance_backward", &appearance_backward_cpu);
}

}  // namespace fastaug
