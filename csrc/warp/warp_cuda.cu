// CUDA kernels of the flow warp family. The per-pixel maths (padding, bilinear corners and samples,
// eq. 20 and its adjoint) is the host/device code of common/sampling.h and common/affine_flow.h that
// the CPU kernels run too; this file holds the loops.
//
// warp: one thread per output pixel, looping over channels (coordinates and corners computed once).
// affine_flow_warp: one 32x8 block per output tile. The block box-filters the six raw parameter maps
// of its tile plus a (smooth - 1) halo in shared memory, one map at a time, keeps each pixel's six
// smoothed values in registers and samples: parameters are read once, no smoothed map ever reaches
// global memory. Its backward writes the per-pixel gradient of the smoothed maps (float, 6 x H x W)
// and a second tiled kernel applies the box filter's adjoint as a gather, so parameter gradients are
// deterministic. Only the gradient for x uses atomics (it is a scatter), and only when asked for.
#include <ATen/OpMathType.h>
#include <ATen/native/cuda/KernelUtils.cuh>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/all.h>

#include <algorithm>

#include "common/affine_flow.h"
#include "common/bilinear_cuda.cuh"
#include "common/box_filter.h"
#include "common/box_filter_cuda.cuh"
#include "common/sampling.h"
#include "warp/warp.h"

namespace fastaug {
namespace {

constexpr int kThreads = 256;
constexpr int kAffineParams = kSpatialParams;

int64_t blocks_for(int64_t n) {
  const int64_t max_blocks = 65535LL * 8;  // grid-stride loops cover the rest
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, max_blocks));
}

// Accumulates d(loss)/d(ix), d(loss)/d(iy) for one pixel over all channels and scatters into gx.
template <typename scalar_t, typename acc_t>
__device__ inline void backward_pixel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ gout,
                                      scalar_t* __restrict__ gx, int64_t C, int64_t plane, int64_t pix,
                                      const Corners<acc_t>& k, acc_t* g_ix, acc_t* g_iy, int64_t gx_numel) {
  acc_t gi_x = 0, gi_y = 0;
  for (int64_t c = 0; c < C; ++c) {
    acc_t v[4];
    corner_values(x + c * plane, k, v);
    bilinear_backward_channel<scalar_t, acc_t>(v, static_cast<acc_t>(gout[c * plane + pix]), k, gx, c * plane,
                                               gx_numel, &gi_x, &gi_y);
  }
  *g_ix = gi_x;
  *g_iy = gi_y;
}

// ------------------------------------------------------------------------------------------------
// warp

template <typename scalar_t>
__global__ void warp_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ flow,
                                    scalar_t* __restrict__ out, int64_t N, int64_t C, int64_t H, int64_t W,
                                    int64_t padding_mode, bool align_corners) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t plane = H * W, total = N * plane;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = idx / plane, pix = idx % plane, i = pix / W, j = pix % W;
    const scalar_t* f = flow + n * 2 * plane + pix;
    acc_t ix, iy, mx, my;
    flow_source<acc_t>(static_cast<acc_t>(f[0]), static_cast<acc_t>(f[plane]), i, j, H, W, padding_mode,
                       align_corners, &ix, &iy, &mx, &my);
    const Corners<acc_t> k = bilinear_corners(ix, iy, H, W);
    const scalar_t* xn = x + n * C * plane;
    scalar_t* on = out + n * C * plane + pix;
    for (int64_t c = 0; c < C; ++c) on[c * plane] = static_cast<scalar_t>(bilinear_sample(xn + c * plane, k));
  }
}

template <typename scalar_t>
__global__ void warp_backward_kernel(const scalar_t* __restrict__ gout, const scalar_t* __restrict__ x,
                                     const scalar_t* __restrict__ flow, scalar_t* __restrict__ gx,
                                     scalar_t* __restrict__ gflow, int64_t N, int64_t C, int64_t H, int64_t W,
                                     int64_t padding_mode, bool align_corners) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t plane = H * W, total = N * plane;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = idx / plane, pix = idx % plane, i = pix / W, j = pix % W;
    const scalar_t* f = flow + n * 2 * plane + pix;
    acc_t ix, iy, mx, my;
    flow_source<acc_t>(static_cast<acc_t>(f[0]), static_cast<acc_t>(f[plane]), i, j, H, W, padding_mode,
                       align_corners, &ix, &iy, &mx, &my);
    const Corners<acc_t> k = bilinear_corners(ix, iy, H, W);
    acc_t g_ix, g_iy;
    backward_pixel<scalar_t, acc_t>(x + n * C * plane, gout + n * C * plane, gx ? gx + n * C * plane : nullptr, C,
                                    plane, pix, k, &g_ix, &g_iy, C * plane);
    gflow[n * 2 * plane + pix] = static_cast<scalar_t>(g_ix * mx);
    gflow[n * 2 * plane + plane + pix] = static_cast<scalar_t>(g_iy * my);
  }
}

at::Tensor warp_cuda(const at::Tensor& x_, const at::Tensor& flow_, int64_t padding_mode, bool align_corners) {
  check_warp_inputs(x_, flow_, padding_mode);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), flow = flow_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "warp_cuda", [&] {
    warp_forward_kernel<scalar_t><<<blocks_for(N * H * W), kThreads, 0, stream>>>(
        x.data_ptr<scalar_t>(), flow.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, C, H, W, padding_mode,
        align_corners);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor> warp_backward_cuda(const at::Tensor& grad_, const at::Tensor& x_,
                                                      const at::Tensor& flow_, int64_t padding_mode,
                                                      bool align_corners, bool need_x_grad) {
  check_warp_inputs(x_, flow_, padding_mode, &grad_);
  // the gradient for x is a scatter with float atomics: under torch.use_deterministic_algorithms(True)
  // this raises (or warns), as grid_sample's CUDA backward does
  if (need_x_grad) at::globalContext().alertNotDeterministic("fastaug::warp_backward_cuda (gradient for x)");
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), flow = flow_.contiguous(), grad = grad_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor gflow = at::empty_like(flow);
  at::Tensor gx = need_x_grad ? at::zeros_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, gflow.zero_()};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "warp_backward_cuda", [&] {
    warp_backward_kernel<scalar_t><<<blocks_for(N * H * W), kThreads, 0, stream>>>(
        grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), flow.data_ptr<scalar_t>(),
        need_x_grad ? gx.data_ptr<scalar_t>() : nullptr, gflow.data_ptr<scalar_t>(), N, C, H, W, padding_mode,
        align_corners);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {gx, gflow};
}

// ------------------------------------------------------------------------------------------------
// affine_flow_warp

template <typename scalar_t>
__global__ void affine_flow_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ s_w,
                                           const scalar_t* __restrict__ s_b, scalar_t* __restrict__ out, int64_t N,
                                           int64_t C, int64_t H, int64_t W, int64_t k, int64_t padding_mode) {
  using acc_t = at::opmath_type<scalar_t>;
  acc_t* smem = box_tile_smem<acc_t>();
  const auto [i0, j0, i, j] = box_tile();
  const int64_t plane = H * W;
  for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
    acc_t sm[kAffineParams];
    smooth_tile_maps<kAffineParams, scalar_t, acc_t>(s_w, s_b, 4, n, H, W, k, i0, j0, smem, sm);
    if (i < H && j < W) {
      acc_t ix, iy, mx, my;
      eq20_source<acc_t>(sm[0], sm[1], sm[2], sm[3], sm[4], sm[5], normalised_coordinate<acc_t>(i, H), i, j, H, W,
                         padding_mode, &ix, &iy, &mx, &my);
      const Corners<acc_t> kc = bilinear_corners(ix, iy, H, W);
      const scalar_t* xn = x + n * C * plane;
      scalar_t* on = out + n * C * plane + i * W + j;
      for (int64_t c = 0; c < C; ++c) on[c * plane] = static_cast<scalar_t>(bilinear_sample(xn + c * plane, kc));
    }
  }
}

// Writes g_smooth[n, p, i, j] = d(loss)/d(smoothed param p at (i, j)), and scatters into gx.
template <typename scalar_t>
__global__ void affine_flow_backward_kernel(const scalar_t* __restrict__ gout, const scalar_t* __restrict__ x,
                                            const scalar_t* __restrict__ s_w, const scalar_t* __restrict__ s_b,
                                            scalar_t* __restrict__ gx, at::opmath_type<scalar_t>* __restrict__ g_smooth,
                                            int64_t N, int64_t C, int64_t H, int64_t W, int64_t k,
                                            int64_t padding_mode) {
  using acc_t = at::opmath_type<scalar_t>;
  acc_t* smem = box_tile_smem<acc_t>();
  const auto [i0, j0, i, j] = box_tile();
  const int64_t plane = H * W;
  for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
    acc_t sm[kAffineParams];
    smooth_tile_maps<kAffineParams, scalar_t, acc_t>(s_w, s_b, 4, n, H, W, k, i0, j0, smem, sm);
    if (i < H && j < W) {
      acc_t ix, iy, mx, my;
      const acc_t uy = normalised_coordinate<acc_t>(i, H);
      eq20_source<acc_t>(sm[0], sm[1], sm[2], sm[3], sm[4], sm[5], uy, i, j, H, W, padding_mode, &ix, &iy, &mx, &my);
      const Corners<acc_t> kc = bilinear_corners(ix, iy, H, W);
      const int64_t pix = i * W + j;
      acc_t g_ix, g_iy;
      backward_pixel<scalar_t, acc_t>(x + n * C * plane, gout + n * C * plane, gx ? gx + n * C * plane : nullptr,
                                      C, plane, pix, kc, &g_ix, &g_iy, C * plane);
      acc_t g[kAffineParams];
      eq20_adjoint<acc_t>(g_ix * mx, g_iy * my, normalised_coordinate<acc_t>(j, W), uy, g);
      acc_t* G = g_smooth + n * kAffineParams * plane + pix;
#pragma unroll
      for (int p = 0; p < kAffineParams; ++p) G[p * plane] = g[p];
    }
  }
}

at::Tensor affine_flow_warp_cuda(const at::Tensor& x_, const at::Tensor& s_w_, const at::Tensor& s_b_, int64_t smooth,
                                 int64_t padding_mode) {
  check_affine_flow_inputs(x_, s_w_, s_b_, smooth, padding_mode);
  check_cuda_grid(x_.size(2), x_.size(3), "affine_flow_warp");
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), s_w = s_w_.contiguous(), s_b = s_b_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "affine_flow_warp_cuda", [&] {
    launch_box_tiles<at::opmath_type<scalar_t>>(affine_flow_forward_kernel<scalar_t>, N, H, W, smooth, stream,
                                                x.data_ptr<scalar_t>(), s_w.data_ptr<scalar_t>(),
                                                s_b.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, C, H, W, smooth,
                                                padding_mode);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> affine_flow_warp_backward_cuda(
    const at::Tensor& grad_, const at::Tensor& x_, const at::Tensor& s_w_, const at::Tensor& s_b_, int64_t smooth,
    int64_t padding_mode, bool need_x_grad) {
  check_affine_flow_inputs(x_, s_w_, s_b_, smooth, padding_mode, &grad_);
  check_cuda_grid(x_.size(2), x_.size(3), "affine_flow_warp");
  if (need_x_grad) {  // the scatter with float atomics, as in warp_backward_cuda
    at::globalContext().alertNotDeterministic("fastaug::affine_flow_warp_backward_cuda (gradient for x)");
  }
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), s_w = s_w_.contiguous(), s_b = s_b_.contiguous();
  const at::Tensor grad = grad_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor g_sw = at::empty_like(s_w), g_sb = at::empty_like(s_b);
  at::Tensor gx = need_x_grad ? at::zeros_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, g_sw.zero_(), g_sb.zero_()};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "affine_flow_warp_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor g_smooth = smoothed_map_grad<acc_t>(x, kAffineParams);
    launch_box_tiles<acc_t>(affine_flow_backward_kernel<scalar_t>, N, H, W, smooth, stream, grad.data_ptr<scalar_t>(),
                            x.data_ptr<scalar_t>(), s_w.data_ptr<scalar_t>(), s_b.data_ptr<scalar_t>(),
                            need_x_grad ? gx.data_ptr<scalar_t>() : nullptr, g_smooth.data_ptr<acc_t>(), N, C, H, W,
                            smooth, padding_mode);
    launch_box_adjoint<scalar_t>(g_smooth.data_ptr<acc_t>(), g_sw.data_ptr<scalar_t>(), g_sb.data_ptr<scalar_t>(),
                                 kAffineParams, 4, N, H, W, smooth, stream);
  });
  return {gx, g_sw, g_sb};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CUDA, m) {
  m.impl("warp", &warp_cuda);
  m.impl("warp_backward", &warp_backward_cuda);
  m.impl("affine_flow_warp", &affine_flow_warp_cuda);
  m.impl("affine_flow_warp_backward", &affine_flow_warp_backward_cuda);
}

}  // namespace fastaug
