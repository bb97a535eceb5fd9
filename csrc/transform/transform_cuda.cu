// CUDA kernels of `transform`: the whole learned transformation of docs/design.md K2 in one pass. The
// per-pixel maths (eq. 20, bilinear sampling, the colour filter and their adjoints) is the host/device
// code of common/affine_flow.h, common/sampling.h and transform.h that the CPU kernels run too.
//
// Forward: one 32x8 block per output tile. The block box-filters the P = 18 (RGB) or 8 (grey) raw
// parameter maps of its tile (plus a (smooth - 1) halo) in shared memory, one map at a time, and keeps
// each pixel's P smoothed values in registers; each thread then computes its eq. 20 source location,
// samples every channel bilinearly and applies the colour filter (serial: to the samples; parallel:
// to x at the pixel, added to the samples). Parameters are read once; no smoothed map, flow field
// or intermediate image ever reaches global memory.
// Backward: the same tiling recomputes the smoothed values and the samples, writes the gradient of
// the smoothed maps (float, (N, P, H, W)) and, only when asked for, adds the gradient for x with
// atomics (the bilinear scatter; in parallel mode also the per-pixel colour term). A second tiled
// kernel applies the box filter's adjoint as a gather, so the parameter gradient is deterministic.
#include <ATen/OpMathType.h>
#include <ATen/native/cuda/KernelUtils.cuh>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/all.h>

#include "common/affine_flow.h"
#include "common/bilinear_cuda.cuh"
#include "common/box_filter_cuda.cuh"
#include "common/sampling.h"
#include "transform/transform.h"

namespace fastaug {
namespace {

template <typename scalar_t, int C>
__global__ void transform_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ params,
                                         scalar_t* __restrict__ out, int64_t N, int64_t H, int64_t W, int64_t k,
                                         bool serial, int64_t padding_mode) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int P = transform_params(C);
  acc_t* smem = box_tile_smem<acc_t>();
  const auto [i0, j0, i, j] = box_tile();
  const int64_t plane = H * W;
  for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
    acc_t sm[P];
    smooth_tile_maps<P, scalar_t, acc_t>(params, params, P, n, H, W, k, i0, j0, smem, sm);
    if (i < H && j < W) {
      acc_t ix, iy, mx, my;
      eq20_source<acc_t>(sm[0], sm[1], sm[2], sm[3], sm[4], sm[5], normalised_coordinate<acc_t>(i, H), i, j, H, W,
                         padding_mode, &ix, &iy, &mx, &my);
      const Corners<acc_t> kc = bilinear_corners(ix, iy, H, W);
      const scalar_t* xn = x + n * C * plane;
      const int64_t pix = i * W + j;
      acc_t y[C], src[C], o[C];
#pragma unroll
      for (int c = 0; c < C; ++c) {
        y[c] = bilinear_sample(xn + c * plane, kc);
        src[c] = serial ? y[c] : static_cast<acc_t>(xn[c * plane + pix]);
      }
      colour_filter<acc_t, C>(sm + kSpatialParams, sm + kSpatialParams + C * C, src, y, o);
      scalar_t* on = out + n * C * plane + pix;
#pragma unroll
      for (int c = 0; c < C; ++c) on[c * plane] = static_cast<scalar_t>(o[c]);
    }
  }
}

template <typename scalar_t, int C>
__global__ void transform_backward_kernel(const scalar_t* __restrict__ gout, const scalar_t* __restrict__ x,
                                          const scalar_t* __restrict__ params, scalar_t* __restrict__ gx,
                                          at::opmath_type<scalar_t>* __restrict__ G, int64_t N, int64_t H, int64_t W,
                                          int64_t k, bool serial, int64_t padding_mode) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int P = transform_params(C);
  acc_t* smem = box_tile_smem<acc_t>();
  const auto [i0, j0, i, j] = box_tile();
  const int64_t plane = H * W;
  const int64_t image_numel = C * plane;
  for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
    acc_t sm[P];
    smooth_tile_maps<P, scalar_t, acc_t>(params, params, P, n, H, W, k, i0, j0, smem, sm);
    if (i < H && j < W) {
      acc_t ix, iy, mx, my;
      const acc_t uy = normalised_coordinate<acc_t>(i, H);
      eq20_source<acc_t>(sm[0], sm[1], sm[2], sm[3], sm[4], sm[5], uy, i, j, H, W, padding_mode, &ix, &iy, &mx, &my);
      const Corners<acc_t> kc = bilinear_corners(ix, iy, H, W);
      const scalar_t* xn = x + n * image_numel;
      scalar_t* gxn = gx ? gx + n * image_numel : nullptr;
      const int64_t pix = i * W + j;
      const acc_t* cw = sm + kSpatialParams;
      acc_t v[C][4], g[C], src[C];
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const scalar_t* xc = xn + c * plane;
        corner_values(xc, kc, v[c]);
        acc_t y = 0;
#pragma unroll
        for (int q = 0; q < 4; ++q) y += kc.weight[q] * v[c][q];
        src[c] = serial ? y : static_cast<acc_t>(xc[pix]);
        g[c] = static_cast<acc_t>(gout[n * image_numel + c * plane + pix]);
      }
      acc_t* Gn = G + n * P * plane + pix;
      // Colour part: d/d(smoothed c_w[C c + q]) = g_c src_q, d/d(smoothed c_b[c]) = g_c.
      acc_t gcw[C * C], t[C];
      colour_filter_weight_grad<acc_t, C>(src, g, gcw);
#pragma unroll
      for (int p = 0; p < C * C; ++p) Gn[(kSpatialParams + p) * plane] = gcw[p];
#pragma unroll
      for (int c = 0; c < C; ++c) Gn[(kSpatialParams + C * C + c) * plane] = g[c];
      // C_w^T g: reaches the warped image (serial) or x at this pixel (parallel).
      colour_filter_input_grad<acc_t, C>(cw, g, t);
      acc_t gy[C];
#pragma unroll
      for (int q = 0; q < C; ++q) {
        if (serial) {
          gy[q] = g[q] + t[q];
        } else {
          gy[q] = g[q];
          if (gxn) at::native::fastAtomicAdd(gxn, q * plane + pix, image_numel, static_cast<scalar_t>(t[q]), true);
        }
      }
      // Bilinear backward: coordinate gradient over all channels, scatter into x.
      acc_t g_ix = 0, g_iy = 0;
#pragma unroll
      for (int c = 0; c < C; ++c)
        bilinear_backward_channel<scalar_t, acc_t>(v[c], gy[c], kc, gxn, c * plane, image_numel, &g_ix, &g_iy);
      acc_t gs[kSpatialParams];
      eq20_adjoint<acc_t>(g_ix * mx, g_iy * my, normalised_coordinate<acc_t>(j, W), uy, gs);
#pragma unroll
      for (int p = 0; p < kSpatialParams; ++p) Gn[p * plane] = gs[p];
    }
  }
}

at::Tensor transform_cuda(const at::Tensor& x_, const at::Tensor& params_, int64_t smooth, int64_t mode,
                          int64_t padding_mode) {
  check_transform_inputs(x_, params_, smooth, mode, padding_mode);
  check_cuda_grid(x_.size(2), x_.size(3), "transform");
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), params = params_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "transform_cuda", [&] {
    launch_box_tiles<at::opmath_type<scalar_t>>(
        C == 3 ? transform_forward_kernel<scalar_t, 3> : transform_forward_kernel<scalar_t, 1>, N, H, W, smooth,
        stream, x.data_ptr<scalar_t>(), params.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, H, W, smooth,
        mode == kSerial, padding_mode);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> transform_backward_cuda(const at::Tensor& grad_, const at::Tensor& x_,
                                                           const at::Tensor& params_, int64_t smooth, int64_t mode,
                                                           int64_t padding_mode, bool need_x_grad) {
  check_transform_inputs(x_, params_, smooth, mode, padding_mode, &grad_);
  check_cuda_grid(x_.size(2), x_.size(3), "transform");
  // the gradient for x is a scatter with float atomics: under torch.use_deterministic_algorithms(True)
  // this raises (or warns), as grid_sample's CUDA backward does
  if (need_x_grad) at::globalContext().alertNotDeterministic("fastaug::transform_backward_cuda (gradient for x)");
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), params = params_.contiguous(), grad = grad_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor gparams = at::empty_like(params);
  at::Tensor gx = need_x_grad ? at::zeros_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, gparams.zero_()};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "transform_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int P = static_cast<int>(params.size(1));
    at::Tensor G = smoothed_map_grad<acc_t>(x, P);
    launch_box_tiles<acc_t>(
        C == 3 ? transform_backward_kernel<scalar_t, 3> : transform_backward_kernel<scalar_t, 1>, N, H, W, smooth,
        stream, grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), params.data_ptr<scalar_t>(),
        need_x_grad ? gx.data_ptr<scalar_t>() : nullptr, G.data_ptr<acc_t>(), N, H, W, smooth, mode == kSerial,
        padding_mode);
    launch_box_adjoint<scalar_t>(G.data_ptr<acc_t>(), gparams.data_ptr<scalar_t>(), nullptr, P, P, N, H, W, smooth,
                                 stream);
  });
  return {gx, gparams};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CUDA, m) {
  m.impl("transform", &transform_cuda);
  m.impl("transform_backward", &transform_backward_cuda);
}

}  // namespace fastaug
