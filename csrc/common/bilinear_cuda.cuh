// CUDA side of bilinear sampling shared by every family that warps: the per-pixel maths lives in
// sampling.h (host and device, exercised by the CPU kernels too); this adds the one piece the CPU
// does differently, the atomic scatter of the gradient for the image.
#pragma once

#include <ATen/native/cuda/KernelUtils.cuh>

#include <cstdint>

#include "common/sampling.h"

namespace fastaug {

// Backward of bilinear_sample for one channel of one pixel, given its corner values v (corner_values)
// and go = d(loss)/d(sample): adds go * d(sample)/d(ix) and go * d(sample)/d(iy) to *g_ix, *g_iy and,
// when gx is non-null, scatters go * weight into gx[base + offset] (atomics: other pixels may share
// the corners). gx points at the image, gx_numel is its size (fastAtomicAdd's bounds for half pairs).
template <typename scalar_t, typename acc_t>
__device__ inline void bilinear_backward_channel(const acc_t v[4], acc_t go, const Corners<acc_t>& k,
                                                 scalar_t* __restrict__ gx, int64_t base, int64_t gx_numel,
                                                 acc_t* g_ix, acc_t* g_iy) {
  acc_t d_ix, d_iy;
  bilinear_coordinate_grad(k, v, &d_ix, &d_iy);
  *g_ix += go * d_ix;
  *g_iy += go * d_iy;
  if (gx) {
#pragma unroll
    for (int q = 0; q < 4; ++q)
      if (k.valid[q])
        at::native::fastAtomicAdd(gx, base + k.offset[q], gx_numel, static_cast<scalar_t>(k.weight[q] * go), true);
  }
}

}  // namespace fastaug
