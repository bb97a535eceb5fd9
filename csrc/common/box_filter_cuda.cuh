// CUDA building blocks for the replicate-padded box smoothing of parameter maps and its adjoint,
// tiled in shared memory (definition in box_filter.h), shared by the warp, appearance and transform
// kernels. Smoothing: a block of kTileW x kTileH threads owns an output tile and loads the tile plus
// a (k - 1) halo of one map at a time. Adjoint: a direct gather per pixel for k <= 8, the same
// tiling for wider windows.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/box_filter.h"

namespace fastaug {

constexpr int kTileW = 32, kTileH = 8;  // one warp per tile row, 8 rows

// The adjoint runs as a direct gather for windows up to this size, with the window size a template
// parameter (loops unrolled, 32-bit offsets inside a plane): each thread reads its k x k window of
// G (L1-cached, neighbours overlap), no shared memory, no barriers. Measured on an H100 at N=256
// 224x224, k=4: the tiled adjoint (three barriers per plane) and a runtime-k direct gather both took
// longer than the whole forward. Wider windows use the tiled kernel (cost 2k per output, not k^2).
constexpr int64_t kDirectAdjointMaxK = 8;

// Adjoint of the box filter at (mi, mj) of one plane from G = d(loss)/d(smoothed plane): inputs in
// [m - hi, m + lo] count once along an axis, except at the first/last row or column, which also
// collect the clamped taps (box_adjoint_count). Summed along rows first, then over rows.
template <int K, typename acc_t>
__device__ inline acc_t box_adjoint_pixel_direct(const acc_t* __restrict__ G, int H, int W, int mi, int mj) {
  constexpr int lo = (K - 1) / 2, hi = K / 2;
  const bool row_inside = mi > 0 && mi < H - 1, col_inside = mj > 0 && mj < W - 1;
  acc_t s = 0;
#pragma unroll
  for (int di = 0; di < K; ++di) {
    const int ii = mi - hi + di;
    if (ii < 0 || ii >= H) continue;
    const acc_t* row = G + ii * W;
    acc_t r = 0;
    if (col_inside) {
#pragma unroll
      for (int dj = 0; dj < K; ++dj) {
        const int jj = mj - hi + dj;
        if (jj >= 0 && jj < W) r += row[jj];
      }
    } else {
#pragma unroll
      for (int dj = 0; dj < K; ++dj) {
        const int jj = mj - hi + dj;
        if (jj >= 0 && jj < W) r += static_cast<acc_t>(box_adjoint_count(jj, mj, W, lo, hi)) * row[jj];
      }
    }
    s += row_inside ? r : static_cast<acc_t>(box_adjoint_count(ii, mi, H, lo, hi)) * r;
  }
  return s / static_cast<acc_t>(K * K);
}

// Shared memory the tiled box kernels need (tile with halo + horizontal sums), in bytes.
template <typename acc_t>
inline size_t box_tile_smem_bytes(int64_t k) {
  const int64_t th = kTileH + k - 1, tw = kTileW + k - 1;
  return sizeof(acc_t) * (th * tw + th * kTileW);
}

// Opt a kernel in to more than 48 KiB of dynamic shared memory when a wide window needs it.
template <typename Kernel>
inline void allow_box_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

// Grid of tiles over (W, H) with images along z (grid-stride over N beyond 65535).
inline dim3 box_tile_grid(int64_t N, int64_t H, int64_t W) {
  return dim3((unsigned)((W + kTileW - 1) / kTileW), (unsigned)((H + kTileH - 1) / kTileH),
              (unsigned)std::min<int64_t>(N, 65535));
}

// This thread's place in a box-tile launch (launch_box_tiles): the block's tile origin (i0, j0) and
// the thread's pixel (i, j), which may lie past the image (such threads still help smooth the tile).
struct BoxTile {
  int64_t i0, j0, i, j;
};

__device__ inline BoxTile box_tile() {
  const int64_t i0 = (int64_t)blockIdx.y * kTileH, j0 = (int64_t)blockIdx.x * kTileW;
  return {i0, j0, i0 + threadIdx.y, j0 + threadIdx.x};
}

// The block's dynamic shared memory as acc_t: box_tile_smem_bytes<acc_t>(k) bytes (launch_box_tiles).
template <typename acc_t>
__device__ inline acc_t* box_tile_smem() {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  return reinterpret_cast<acc_t*>(smem_raw);
}

// The one launcher of every box-tile kernel (affine_flow_warp, appearance, transform; forward and
// backward): kernel(args...) on a box_tile_grid of kTileW x kTileH blocks, with the dynamic shared
// memory the tiled box filter needs for a `smooth`-wide window of acc_t, on `stream`.
template <typename acc_t, typename... Params, typename... Args>
inline void launch_box_tiles(void (*kernel)(Params...), int64_t N, int64_t H, int64_t W, int64_t smooth,
                             cudaStream_t stream, Args... args) {
  const size_t smem = box_tile_smem_bytes<acc_t>(smooth);
  allow_box_smem(kernel, smem);
  kernel<<<box_tile_grid(N, H, W), dim3(kTileW, kTileH), smem, stream>>>(args...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The buffer a box-tile backward kernel writes d(loss)/d(smoothed maps) into, before
// launch_box_adjoint maps it to the raw maps: (N, P, H, W) of the image x, in acc_t, fully written.
template <typename acc_t>
inline at::Tensor smoothed_map_grad(const at::Tensor& x, int64_t P) {
  return at::empty({x.size(0), P, x.size(2), x.size(3)}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
}

// Box-filter one (H, W) plane over this block's tile: returns the smoothed value at the calling
// thread's pixel (i0 + threadIdx.y, j0 + threadIdx.x) (clamped reads, so any thread may call).
// Every thread of the block must call it (it synchronises). smem: box_tile_smem_bytes<acc_t>(k).
// Tile-local indices are int and walk rows by kTileH and columns by kTileW: no divisions (a 64-bit
// division per element cost more than the filter itself).
template <typename scalar_t, typename acc_t>
__device__ inline acc_t smooth_tile_plane(const scalar_t* __restrict__ src, int64_t H, int64_t W, int64_t k64,
                                          int64_t i0, int64_t j0, acc_t* smem) {
  const int k = static_cast<int>(k64), lo = (k - 1) / 2, th = kTileH + k - 1, tw = kTileW + k - 1;
  const int tx = threadIdx.x, ty = threadIdx.y;
  acc_t* tile = smem;
  acc_t* hsum = smem + th * tw;
  for (int r = ty; r < th; r += kTileH) {
    const scalar_t* row = src + clamp_index(i0 - lo + r, H) * W;
    for (int c = tx; c < tw; c += kTileW) tile[r * tw + c] = static_cast<acc_t>(row[clamp_index(j0 - lo + c, W)]);
  }
  __syncthreads();
  for (int r = ty; r < th; r += kTileH) {
    const acc_t* t = tile + r * tw + tx;
    acc_t s = 0;
    for (int d = 0; d < k; ++d) s += t[d];
    hsum[r * kTileW + tx] = s;
  }
  __syncthreads();
  acc_t s = 0;
  for (int d = 0; d < k; ++d) s += hsum[(ty + d) * kTileW + tx];
  __syncthreads();  // the caller may reuse smem for the next plane
  return s / static_cast<acc_t>(k * k);
}

// Adjoint of the box filter for one (H, W) plane over this block's tile: returns
// d(loss)/d(raw map) at the calling thread's pixel from G = d(loss)/d(smoothed map) (acc_t plane).
// A gather, so deterministic. Every thread of the block must call it. smem as above.
// Away from the first and last row/column every input in the window counts once (the tile holds
// zeros outside the map), so only border pixels take the general box_adjoint_count path.
template <typename acc_t>
__device__ inline acc_t box_adjoint_tile_plane(const acc_t* __restrict__ G, int64_t H, int64_t W, int64_t k64,
                                               int64_t i0, int64_t j0, acc_t* smem) {
  const int k = static_cast<int>(k64), lo = (k - 1) / 2, hi = k / 2, th = kTileH + k - 1, tw = kTileW + k - 1;
  const int tx = threadIdx.x, ty = threadIdx.y;
  acc_t* tile = smem;
  acc_t* hsum = smem + th * tw;
  // Inputs that reach outputs [i0, i0 + 8) x [j0, j0 + 32) lie in [i0 - hi, i0 + 7 + lo] x [j0 - hi, j0 + 31 + lo].
  for (int r = ty; r < th; r += kTileH) {
    const int64_t gi = i0 - hi + r;
    const bool row_in = gi >= 0 && gi < H;
    for (int c = tx; c < tw; c += kTileW) {
      const int64_t gj = j0 - hi + c;
      tile[r * tw + c] = (row_in && gj >= 0 && gj < W) ? G[gi * W + gj] : acc_t(0);
    }
  }
  __syncthreads();
  const int64_t mj = j0 + tx;
  for (int r = ty; r < th; r += kTileH) {
    const acc_t* t = tile + r * tw;
    acc_t s = 0;
    if (mj > 0 && mj < W - 1) {
      for (int d = 0; d < k; ++d) s += t[tx + d];
    } else if (mj < W) {
      const int64_t jb = mj - hi > 0 ? mj - hi : 0, je = mj + lo < W - 1 ? mj + lo : W - 1;
      for (int64_t jj = jb; jj <= je; ++jj)
        s += static_cast<acc_t>(box_adjoint_count(jj, mj, W, lo, hi)) * t[jj - (j0 - hi)];
    }
    hsum[r * kTileW + tx] = s;
  }
  __syncthreads();
  const int64_t mi = i0 + ty;
  acc_t s = 0;
  if (mi > 0 && mi < H - 1) {
    for (int d = 0; d < k; ++d) s += hsum[(ty + d) * kTileW + tx];
  } else if (mi < H) {
    const int64_t ib = mi - hi > 0 ? mi - hi : 0, ie = mi + lo < H - 1 ? mi + lo : H - 1;
    for (int64_t ii = ib; ii <= ie; ++ii)
      s += static_cast<acc_t>(box_adjoint_count(ii, mi, H, lo, hi)) * hsum[(ii - (i0 - hi)) * kTileW + tx];
  }
  __syncthreads();
  return s / static_cast<acc_t>(k * k);
}

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
  acc_t* smem = box_tile_smem<acc_t>();
  const BoxTile t = box_tile();
  const int64_t plane = H * W;
  for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
    for (int p = 0; p < P; ++p) {
      const acc_t g = box_adjoint_tile_plane<acc_t>(G + (n * P + p) * plane, H, W, k, t.i0, t.j0, smem);
      scalar_t* d = p < split ? dst + (n * split + p) * plane : dst2 + (n * (P - split) + (p - split)) * plane;
      if (t.i < H && t.j < W) d[t.i * W + t.j] = static_cast<scalar_t>(g);
    }
  }
}

// The direct adjoint: one thread per output pixel (x: pixels of a plane, y: the N * P planes).
template <typename scalar_t, int K>
__global__ void box_adjoint_direct_kernel(const at::opmath_type<scalar_t>* __restrict__ G, scalar_t* __restrict__ dst,
                                          scalar_t* __restrict__ dst2, int P, int split, int64_t N, int H, int W) {
  const int plane = H * W;
  const int pix = blockIdx.x * blockDim.x + threadIdx.x;
  if (pix >= plane) return;
  const int i = pix / W, j = pix - i * W;
  for (int64_t np = blockIdx.y; np < N * P; np += gridDim.y) {
    const int64_t n = np / P;
    const int p = static_cast<int>(np - n * P);
    const auto g = box_adjoint_pixel_direct<K>(G + np * plane, H, W, i, j);
    scalar_t* d = p < split ? dst + (n * split + p) * plane : dst2 + (n * (P - split) + (p - split)) * plane;
    d[pix] = static_cast<scalar_t>(g);
  }
}

template <typename scalar_t, int K>
inline void launch_box_adjoint_direct(const at::opmath_type<scalar_t>* G, scalar_t* dst, scalar_t* dst2, int P,
                                      int split, int64_t N, int64_t H, int64_t W, cudaStream_t stream) {
  constexpr int threads = 256;
  const dim3 grid((unsigned)((H * W + threads - 1) / threads), (unsigned)std::min<int64_t>(N * P, 65535));
  box_adjoint_direct_kernel<scalar_t, K><<<grid, threads, 0, stream>>>(G, dst, dst2, P, split, N, (int)H, (int)W);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
inline void launch_box_adjoint(const at::opmath_type<scalar_t>* G, scalar_t* dst, scalar_t* dst2, int P, int split,
                               int64_t N, int64_t H, int64_t W, int64_t k, cudaStream_t stream) {
  using acc_t = at::opmath_type<scalar_t>;
  if (k <= kDirectAdjointMaxK && H * W < (int64_t{1} << 31)) {
    switch (k) {
      case 1: return launch_box_adjoint_direct<scalar_t, 1>(G, dst, dst2, P, split, N, H, W, stream);
      case 2: return launch_box_adjoint_direct<scalar_t, 2>(G, dst, dst2, P, split, N, H, W, stream);
      case 3: return launch_box_adjoint_direct<scalar_t, 3>(G, dst, dst2, P, split, N, H, W, stream);
      case 4: return launch_box_adjoint_direct<scalar_t, 4>(G, dst, dst2, P, split, N, H, W, stream);
      case 5: return launch_box_adjoint_direct<scalar_t, 5>(G, dst, dst2, P, split, N, H, W, stream);
      case 6: return launch_box_adjoint_direct<scalar_t, 6>(G, dst, dst2, P, split, N, H, W, stream);
      case 7: return launch_box_adjoint_direct<scalar_t, 7>(G, dst, dst2, P, split, N, H, W, stream);
      default: return launch_box_adjoint_direct<scalar_t, 8>(G, dst, dst2, P, split, N, H, W, stream);
    }
  }
  launch_box_tiles<acc_t>(box_adjoint_maps_kernel<scalar_t>, N, H, W, k, stream, G, dst, dst2, P, split, N, H, W, k);
}

inline void check_cuda_grid(int64_t H, int64_t W, const char* op) {
  TORCH_CHECK(H < 65535LL * kTileH && W < 65535LL * kTileW, op, ": image too large for the CUDA grid, got H=", H,
              ", W=", W);
}

}  // namespace fastaug
