// CUDA building blocks shared by appearance_cuda.cu and transform_cuda.cu.
#pragma once

#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>

#include "common/box_filter_cuda.cuh"
#include "transform/transform.h"

namespace fastaug {
namespace k2_cuda {

// Smoothed values of P consecutive raw maps at this thread's pixel of the block's tile; plane p of
// image n is src + (n * P + p) * plane (or, past `split`, src2 + (n * (P - split) + p - split) * plane).
// Every thread of the block must call it (it synchronises).
template <int P, typename scalar_t, typename acc_t>
__device__ inline void smooth_tile_maps(const scalar_t* __restrict__ src, const scalar_t* __restrict__ src2,
                                        int split, int64_t n, int64_t H, int64_t W, int64_t k, int64_t i0,
                                        int64_t j0, acc_t* smem, acc_t out[P]) {
  const int64_t plane = H * W;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const scalar_t* s = p < split ? src + (n * split + p) * plane : src2 + (n * (P - split) + (p - split)) * plane;
    out[p] = smooth_tile_plane<scalar_t, acc_t>(s, H, W, k, i0, j0, smem);
  }
}

// d(loss)/d(raw maps) from G = d(loss)/d(smoothed maps) (acc_t, (N, P, H, W)) through the box
// filter's adjoint, a gather: deterministic. Planes p < split go to dst (N, split, H, W), the others
// to dst2 (N, P - split, H, W).
template <typename scalar_t>
__global__ void box_adjoint_maps_kernel(const at::opmath_type<scalar_t>* __restrict__ G, scalar_t* __restrict__ dst,
                                        scalar_t* __restrict__ dst2, int P, int split, int64_t N, int64_t H,
                                        int64_t W, int64_t k) {
  using acc_t = at::opmath_type<scalar_t>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  acc_t* smem = reinterpret_cast<acc_t*>(smem_raw);
  const int64_t i0 = (int64_t)blockIdx.y * kTileH, j0 = (int64_t)blockIdx.x * kTileW, plane = H * W;
  const int64_t i = i0 + threadIdx.y, j = j0 + threadIdx.x;
  for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
    for (int p = 0; p < P; ++p) {
      const acc_t g = box_adjoint_tile_plane<acc_t>(G + (n * P + p) * plane, H, W, k, i0, j0, smem);
      scalar_t* d = p < split ? dst + (n * split + p) * plane : dst2 + (n * (P - split) + (p - split)) * plane;
      if (i < H && j < W) d[i * W + j] = static_cast<scalar_t>(g);
    }
  }
}

template <typename scalar_t>
inline void launch_box_adjoint(const at::opmath_type<scalar_t>* G, scalar_t* dst, scalar_t* dst2, int P, int split,
                               int64_t N, int64_t H, int64_t W, int64_t k, cudaStream_t stream) {
  using acc_t = at::opmath_type<scalar_t>;
  const size_t smem = box_tile_smem_bytes<acc_t>(k);
  allow_box_smem(box_adjoint_maps_kernel<scalar_t>, smem);
  box_adjoint_maps_kernel<scalar_t><<<box_tile_grid(N, H, W), dim3(kTileW, kTileH), smem, stream>>>(
      G, dst, dst2, P, split, N, H, W, k);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

inline void check_cuda_grid(int64_t H, int64_t W, const char* op) {
  TORCH_CHECK(H < 65535LL * kTileH && W < 65535LL * kTileW, op, ": image too large for the CUDA grid, got H=", H,
              ", W=", W);
}

}  // namespace k2_cuda
}  // namespace fastaug
