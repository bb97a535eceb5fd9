// CUDA building blocks for the replicate-padded box smoothing of parameter maps and its adjoint,
// tiled in shared memory (definition in box_filter.h). A block of kTileW x kTileH threads owns an
// output tile; smoothing loads the tile plus a (k - 1) halo of one map at a time.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/box_filter.h"

namespace fastaug {

constexpr int kTileW = 32, kTileH = 8;  // one warp per tile row, 8 rows

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
template <typename scalar_t, typename acc_t>
__device__ inline acc_t smooth_tile_plane(const scalar_t* __restrict__ src, int64_t H, int64_t W, int64_t k,
                                          int64_t i0, int64_t j0, acc_t* smem) {
  const int64_t lo = box_lo(k), th = kTileH + k - 1, tw = kTileW + k - 1;
  acc_t* tile = smem;
  acc_t* hsum = smem + th * tw;
  const int tid = threadIdx.y * kTileW + threadIdx.x;
  for (int64_t t = tid; t < th * tw; t += kTileW * kTileH) {
    const int64_t i = clamp_index(i0 - lo + t / tw, H), j = clamp_index(j0 - lo + t % tw, W);
    tile[t] = static_cast<acc_t>(src[i * W + j]);
  }
  __syncthreads();
  for (int64_t t = tid; t < th * kTileW; t += kTileW * kTileH) {
    const int64_t r = t / kTileW, c = t % kTileW;
    acc_t s = 0;
    for (int64_t d = 0; d < k; ++d) s += tile[r * tw + c + d];
    hsum[t] = s;
  }
  __syncthreads();
  acc_t s = 0;
  for (int64_t d = 0; d < k; ++d) s += hsum[(threadIdx.y + d) * kTileW + threadIdx.x];
  __syncthreads();  // the caller may reuse smem for the next plane
  return s / static_cast<acc_t>(k * k);
}

// Adjoint of the box filter for one (H, W) plane over this block's tile: returns
// d(loss)/d(raw map) at the calling thread's pixel from G = d(loss)/d(smoothed map) (acc_t plane).
// A gather, so deterministic. Every thread of the block must call it. smem as above.
template <typename acc_t>
__device__ inline acc_t box_adjoint_tile_plane(const acc_t* __restrict__ G, int64_t H, int64_t W, int64_t k,
                                               int64_t i0, int64_t j0, acc_t* smem) {
  const int64_t lo = box_lo(k), hi = box_hi(k), th = kTileH + k - 1, tw = kTileW + k - 1;
  acc_t* tile = smem;
  acc_t* hsum = smem + th * tw;
  const int tid = threadIdx.y * kTileW + threadIdx.x;
  // Inputs that reach outputs [i0, i0 + 8) x [j0, j0 + 32) lie in [i0 - hi, i0 + 7 + lo] x [j0 - hi, j0 + 31 + lo].
  for (int64_t t = tid; t < th * tw; t += kTileW * kTileH) {
    const int64_t r = i0 - hi + t / tw, c = j0 - hi + t % tw;
    tile[t] = (r >= 0 && r < H && c >= 0 && c < W) ? G[r * W + c] : acc_t(0);
  }
  __syncthreads();
  for (int64_t t = tid; t < th * kTileW; t += kTileW * kTileH) {
    const int64_t r = t / kTileW, m = j0 + t % kTileW;
    acc_t s = 0;
    if (m < W) {
      const int64_t jb = m - hi > 0 ? m - hi : 0, je = m + lo < W - 1 ? m + lo : W - 1;
      for (int64_t jj = jb; jj <= je; ++jj)
        s += static_cast<acc_t>(box_adjoint_count(jj, m, W, lo, hi)) * tile[r * tw + (jj - (j0 - hi))];
    }
    hsum[t] = s;
  }
  __syncthreads();
  const int64_t m = i0 + threadIdx.y;
  acc_t s = 0;
  if (m < H) {
    const int64_t ib = m - hi > 0 ? m - hi : 0, ie = m + lo < H - 1 ? m + lo : H - 1;
    for (int64_t ii = ib; ii <= ie; ++ii)
      s += static_cast<acc_t>(box_adjoint_count(ii, m, H, lo, hi)) * hsum[(ii - (i0 - hi)) * kTileW + threadIdx.x];
  }
  __syncthreads();
  return s / static_cast<acc_t>(k * k);
}

}  // namespace fastaug
