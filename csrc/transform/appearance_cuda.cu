// CUDA kernels of `appearance`: out = x + C_w x + c_b per pixel with box-smoothed c_w, c_b (the colour
// filter and its adjoint are transform.h's host/device code, which the CPU kernels run too).
//
// Forward: one 32x8 block per output tile; the block box-filters the C*C + C raw maps of its tile (plus
// a (smooth - 1) halo) in shared memory one map at a time, keeps each pixel's smoothed values in
// registers and filters: no smoothed map reaches global memory. Backward: the same tiling writes the
// gradient of the smoothed maps (float, (N, C*C + C, H, W)) and the gradient for x, which is per-pixel
// (grad + C_w^T grad): no atomics at all. A second tiled kernel applies the box filter's adjoint as a
// gather, so the parameter gradients are deterministic.
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/all.h>

#include "common/box_filter_cuda.cuh"
#include "transform/transform.h"

namespace fastaug {
namespace {

template <typename scalar_t, int C>
__global__ void appearance_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ c_w,
                                          const scalar_t* __restrict__ c_b, scalar_t* __restrict__ out, int64_t N,
                                          int64_t H, int64_t W, int64_t k) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int P = colour_params(C);
  acc_t* smem = box_tile_smem<acc_t>();
  const auto [i0, j0, i, j] = box_tile();
  const int64_t plane = H * W;
  for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
    acc_t sm[P];
    smooth_tile_maps<P, scalar_t, acc_t>(c_w, c_b, C * C, n, H, W, k, i0, j0, smem, sm);
    if (i < H && j < W) {
      const int64_t base = n * C * plane + i * W + j;
      acc_t v[C], o[C];
#pragma unroll
      for (int c = 0; c < C; ++c) v[c] = static_cast<acc_t>(x[base + c * plane]);
      colour_filter<acc_t, C>(sm, sm + C * C, v, v, o);
#pragma unroll
      for (int c = 0; c < C; ++c) out[base + c * plane] = static_cast<scalar_t>(o[c]);
    }
  }
}

// G[n, C*c + q] = g_c x_q, G[n, C*C + c] = g_c; gx_q = g_q + sum_c cw[C*c + q] g_c.
template <typename scalar_t, int C>
__global__ void appearance_backward_kernel(const scalar_t* __restrict__ gout, const scalar_t* __restrict__ x,
                                           const scalar_t* __restrict__ c_w, scalar_t* __restrict__ gx,
                                           at::opmath_type<scalar_t>* __restrict__ G, int64_t N, int64_t H,
                                           int64_t W, int64_t k) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int P = colour_params(C);
  acc_t* smem = box_tile_smem<acc_t>();
  const auto [i0, j0, i, j] = box_tile();
  const int64_t plane = H * W;
  for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
    acc_t cw[C * C];
    if (gx) smooth_tile_maps<C * C, scalar_t, acc_t>(c_w, c_w, C * C, n, H, W, k, i0, j0, smem, cw);
    if (i < H && j < W) {
      const int64_t pix = i * W + j, base = n * C * plane + pix;
      acc_t g[C], v[C];
#pragma unroll
      for (int c = 0; c < C; ++c) {
        g[c] = static_cast<acc_t>(gout[base + c * plane]);
        v[c] = static_cast<acc_t>(x[base + c * plane]);
      }
      acc_t* Gn = G + n * P * plane + pix;
      acc_t gcw[C * C];
      colour_filter_weight_grad<acc_t, C>(v, g, gcw);
#pragma unroll
      for (int p = 0; p < C * C; ++p) Gn[p * plane] = gcw[p];
#pragma unroll
      for (int c = 0; c < C; ++c) Gn[(C * C + c) * plane] = g[c];
      if (gx) {
        acc_t t[C];
        colour_filter_input_grad<acc_t, C>(cw, g, t);
#pragma unroll
        for (int q = 0; q < C; ++q) gx[base + q * plane] = static_cast<scalar_t>(g[q] + t[q]);
      }
    }
  }
}

at::Tensor appearance_cuda(const at::Tensor& x_, const at::Tensor& c_w_, const at::Tensor& c_b_, int64_t smooth) {
  check_appearance_inputs(x_, c_w_, c_b_, smooth);
  check_cuda_grid(x_.size(2), x_.size(3), "appearance");
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), c_w = c_w_.contiguous(), c_b = c_b_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "appearance_cuda", [&] {
    launch_box_tiles<at::opmath_type<scalar_t>>(
        C == 3 ? appearance_forward_kernel<scalar_t, 3> : appearance_forward_kernel<scalar_t, 1>, N, H, W, smooth,
        stream, x.data_ptr<scalar_t>(), c_w.data_ptr<scalar_t>(), c_b.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
        N, H, W, smooth);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> appearance_backward_cuda(const at::Tensor& grad_, const at::Tensor& x_,
                                                                        const at::Tensor& c_w_, const at::Tensor& c_b_,
                                                                        int64_t smooth, bool need_x_grad) {
  check_appearance_inputs(x_, c_w_, c_b_, smooth, &grad_);
  check_cuda_grid(x_.size(2), x_.size(3), "appearance");
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), c_w = c_w_.contiguous(), c_b = c_b_.contiguous();
  const at::Tensor grad = grad_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor g_cw = at::empty_like(c_w), g_cb = at::empty_like(c_b);
  at::Tensor gx = need_x_grad ? at::empty_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, g_cw.zero_(), g_cb.zero_()};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "appearance_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int P = static_cast<int>(C * C + C);
    at::Tensor G = smoothed_map_grad<acc_t>(x, P);
    launch_box_tiles<acc_t>(
        C == 3 ? appearance_backward_kernel<scalar_t, 3> : appearance_backward_kernel<scalar_t, 1>, N, H, W, smooth,
        stream, grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), c_w.data_ptr<scalar_t>(),
        need_x_grad ? gx.data_ptr<scalar_t>() : nullptr, G.data_ptr<acc_t>(), N, H, W, smooth);
    launch_box_adjoint<scalar_t>(G.data_ptr<acc_t>(), g_cw.data_ptr<scalar_t>(), g_cb.data_ptr<scalar_t>(), P,
                                 static_cast<int>(C * C), N, H, W, smooth, stream);
  });
  return {gx, g_cw, g_cb};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CUDA, m) {
  m.impl("appearance", &appearance_cuda);
  m.impl("appearance_backward", &appearance_backward_cuda);
}

}  // namespace fastaug
