// CUDA building blocks for the replicate-padded box smoothing of parameter maps and its adjoint,
// tiled in shared memory (definition in box_filter.h), shared by the warp, appearance and transform
// kernels. A block of kTileW x kTileH threads owns an output tile; smoothing loads the tile plus a
// (k - 1) halo of one map at a time.
#pragma once

#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/box_filter.h"

namespace fastaug {

constexpr int kTileW = 32, kTileH = 8;  // one warp per tile row, 8 rows

// Windows up to this size are filtered directly: each thread reads its k x k window (L1-cached, the
// neighbours' windows overlap) with no shared memory and no barriers. Measured on an H100 at
// N=256 224x224, k=4, the tiled version's three barriers per plane left it latency-bound, and its
// adjoint cost more than the whole forward; wider windows keep the tiled path (cost k^2 vs 2k).
constexpr int64_t kDirectBoxMaxK = 8;

// Box-filtered value of one (H, W) plane at (i, j): rows of the window summed first, then the rows,
// like the CPU kernels. Reads are clamped, so any (i, j) is safe.
template <typename scalar_t, typename acc_t>
__device__ inline acc_t smooth_pixel_direct(const scalar_t* __restrict__ src, int64_t H, int64_t W, int64_t k,
                                            int64_t i, int64_t j) {
  const int64_t lo = box_lo(k), hi = box_hi(k);
  acc_t s = 0;
  if (i >= lo && i + hi < H && j >= lo && j + hi < W) {  // window inside the plane: no clamping
    const scalar_t* base = src + (i - lo) * W + (j - lo);
    for (int64_t di = 0; di < k; ++di) {
      const scalar_t* row = base + di * W;
      acc_t r = 0;
      for (int64_t dj = 0; dj < k; ++dj) r += static_cast<acc_t>(row[dj]);
      s += r;
    }
    return s / static_cast<acc_t>(k * k);
  }
  for (int64_t di = 0; di < k; ++di) {
    const scalar_t* row = src + clamp_index(i - lo + di, H) * W;
    acc_t r = 0;
    for (int64_t dj = 0; dj < k; ++dj) r += static_cast<acc_t>(row[clamp_index(j - lo + dj, W)]);
    s += r;
  }
  return s / static_cast<acc_t>(k * k);
}

// Adjoint of the box filter at (mi, mj) from G = d(loss)/d(smoothed plane), as a direct gather:
// inputs in [m - hi, m + lo] count once along an axis, except at the first/last row or column, which
// also collect the clamped taps (box_adjoint_count).
template <typename acc_t>
__device__ inline acc_t box_adjoint_pixel_direct(const acc_t* __restrict__ G, int64_t H, int64_t W, int64_t k,
                                                 int64_t mi, int64_t mj) {
  const int64_t lo = box_lo(k), hi = box_hi(k);
  const int64_t ib = mi - hi > 0 ? mi - hi : 0, ie = mi + lo < H - 1 ? mi + lo : H - 1;
  const int64_t jb = mj - hi > 0 ? mj - hi : 0, je = mj + lo < W - 1 ? mj + lo : W - 1;
  const bool row_inside = mi > 0 && mi < H - 1, col_inside = mj > 0 && mj < W - 1;
  acc_t s = 0;
  for (int64_t ii = ib; ii <= ie; ++ii) {
    const acc_t* row = G + ii * W;
    acc_t r = 0;
    if (col_inside) {
      for (int64_t jj = jb; jj <= je; ++jj) r += row[jj];
    } else {
      for (int64_t jj = jb; jj <= je; ++jj) r += static_cast<acc_t>(box_adjoint_count(jj, mj, W, lo, hi)) * row[jj];
    }
    s += row_inside ? r : static_cast<acc_t>(box_adjoint_count(ii, mi, H, lo, hi)) * r;
  }
  return s / static_cast<acc_t>(k * k);
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
  const bool direct = k <= kDirectBoxMaxK;  // uniform over the block: the tiled branch's barriers are safe
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const scalar_t* s = p < split ? src + (n * split + p) * plane : src2 + (n * (P - split) + (p - split)) * plane;
    out[p] = direct ? smooth_pixel_direct<scalar_t, acc_t>(s, H, W, k, i0 + threadIdx.y, j0 + threadIdx.x)
                    : smooth_tile_plane<scalar_t, acc_t>(s, H, W, k, i0, j0, smem);
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

// The direct adjoint: one thread per output pixel (x: pixels of a plane, y: the N * P planes).
template <typename scalar_t>
__global__ void box_adjoint_direct_kernel(const at::opmath_type<scalar_t>* __restrict__ G, scalar_t* __restrict__ dst,
                                          scalar_t* __restrict__ dst2, int P, int split, int64_t N, int64_t H,
                                          int64_t W, int64_t k) {
  const int64_t plane = H * W;
  const int64_t pix = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (pix >= plane) return;
  const int64_t i = pix / W, j = pix - (pix / W) * W;
  for (int64_t np = blockIdx.y; np < N * P; np += gridDim.y) {
    const int64_t n = np / P, p = np - n * P;
    const auto g = box_adjoint_pixel_direct(G + np * plane, H, W, k, i, j);
    scalar_t* d = p < split ? dst + (n * split + p) * plane : dst2 + (n * (P - split) + (p - split)) * plane;
    d[pix] = static_cast<scalar_t>(g);
  }
}

template <typename scalar_t>
inline void launch_box_adjoint(const at::opmath_type<scalar_t>* G, scalar_t* dst, scalar_t* dst2, int P, int split,
                               int64_t N, int64_t H, int64_t W, int64_t k, cudaStream_t stream) {
  using acc_t = at::opmath_type<scalar_t>;
  if (k <= kDirectBoxMaxK) {
    constexpr int threads = 256;
    const dim3 grid((unsigned)((H * W + threads - 1) / threads), (unsigned)std::min<int64_t>(N * P, 65535));
    box_adjoint_direct_kernel<scalar_t><<<grid, threads, 0, stream>>>(G, dst, dst2, P, split, N, H, W, k);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
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

}  // namespace fastaug
