// CUDA kernels of the last-layer influence family: the fused per-sample softmax steps between the two
// cuBLAS GEMMs of influence.h.
//
// Every step works on short rows (C classes, or K·C for the HVP): a group of G lanes (G = 4..32, the
// smallest power of two >= C, capped at a warp) owns one row, so a warp handles 32 / G rows at once
// and small-C rows still fill the warp. Per row: the lanes stride over the C entries, reduce with
// shuffles inside their group, then write. The loops are warp-uniform, so full-mask shuffles are safe.
// Accumulation is in at::opmath_type (float32 for float16/bfloat16, float64 for float64).
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/all.h>

#include <algorithm>
#include <limits>

#include "influence/influence.h"

namespace fastaug {
namespace {

constexpr int kThreads = 256;

template <int G, typename T>
__device__ inline T group_sum(T v) {
#pragma unroll
  for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int G, typename T>
__device__ inline T group_max(T v) {
#pragma unroll
  for (int o = G / 2; o > 0; o >>= 1) {
    const T other = __shfl_xor_sync(0xffffffffu, v, o);
    v = other > v ? other : v;
  }
  return v;
}

// Grid-stride over groups of rows: yields the row of this lane's group (may be >= rows: inactive).
struct RowLoop {
  int64_t first, stride;
};

template <int G>
__device__ inline RowLoop row_loop() {
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  constexpr int kRowsPerWarp = 32 / G;
  return {warp * kRowsPerWarp, warps * kRowsPerWarp};
}

// HVP step: rows of u (N·K rows of C), R = coef_i · p_i ⊙ (u − p_i·u) in place.
template <int G, typename scalar_t>
__global__ void hvp_step_kernel(scalar_t* __restrict__ u, const scalar_t* __restrict__ p,
                                const scalar_t* __restrict__ weight, int64_t rows, int64_t K, int64_t C,
                                at::opmath_type<scalar_t> scale) {
  using acc_t = at::opmath_type<scalar_t>;
  const int sub = (threadIdx.x & 31) % G, slot = (threadIdx.x & 31) / G;
  const RowLoop loop = row_loop<G>();
  for (int64_t base = loop.first; base < rows; base += loop.stride) {
    const int64_t r = base + slot;
    const bool active = r < rows;
    const int64_t i = active ? r / K : 0;
    const scalar_t* pi = p + i * C;
    scalar_t* ur = u + (active ? r : 0) * C;
    acc_t dot = 0;
    if (active)
      for (int64_t c = sub; c < C; c += G) dot += static_cast<acc_t>(pi[c]) * static_cast<acc_t>(ur[c]);
    dot = group_sum<G>(dot);
    if (active) {
      const acc_t coef = weight ? scale * static_cast<acc_t>(weight[i]) : scale;
      for (int64_t c = sub; c < C; c += G) {
        const acc_t pc = static_cast<acc_t>(pi[c]);
        ur[c] = static_cast<scalar_t>(coef * pc * (static_cast<acc_t>(ur[c]) - dot));
      }
    }
  }
}

// Row softmax statistics of z: max m and 1 / Σ exp(z − m), shared by the group.
template <int G, typename scalar_t, typename acc_t>
__device__ inline void softmax_stats(const scalar_t* z, int64_t C, int sub, bool active, acc_t* m_out,
                                     acc_t* inv_out) {
  acc_t m = -std::numeric_limits<acc_t>::infinity();
  if (active)
    for (int64_t c = sub; c < C; c += G) {
      const acc_t v = static_cast<acc_t>(z[c]);
      m = v > m ? v : m;
    }
  m = group_max<G>(m);
  acc_t sum = 0;
  if (active)
    for (int64_t c = sub; c < C; c += G) sum += exp(static_cast<acc_t>(z[c]) - m);
  sum = group_sum<G>(sum);
  *m_out = m;
  *inv_out = acc_t(1) / sum;
}

// Σ_c exp(z_c − m) q_c of a row (the unnormalised p·q, shared by the group) with its softmax statistics:
// the common start of the score and its backward.
template <int G, typename scalar_t, typename acc_t>
__device__ inline acc_t softmax_weighted_sum(const scalar_t* z, const scalar_t* q, int64_t C, int sub, bool active,
                                             acc_t* m, acc_t* inv) {
  softmax_stats<G>(z, C, sub, active, m, inv);
  acc_t dot = 0;
  if (active)
    for (int64_t c = sub; c < C; c += G) dot += exp(static_cast<acc_t>(z[c]) - *m) * static_cast<acc_t>(q[c]);
  return group_sum<G>(dot);
}

template <int G, typename scalar_t>
__global__ void score_kernel(const scalar_t* __restrict__ q, const scalar_t* __restrict__ logits,
                             const int64_t* __restrict__ target, scalar_t* __restrict__ out, int64_t N, int64_t C) {
  using acc_t = at::opmath_type<scalar_t>;
  const int sub = (threadIdx.x & 31) % G, slot = (threadIdx.x & 31) / G;
  const RowLoop loop = row_loop<G>();
  for (int64_t base = loop.first; base < N; base += loop.stride) {
    const int64_t i = base + slot;
    const bool active = i < N;
    const int64_t row = active ? i : 0;
    const scalar_t* z = logits + row * C;
    const scalar_t* qi = q + row * C;
    acc_t m, inv;
    const acc_t dot = softmax_weighted_sum<G>(z, qi, C, sub, active, &m, &inv);
    if (active && sub == 0) {
      const int64_t y = target[i];
      out[i] = (y < 0 || y >= C) ? static_cast<scalar_t>(std::numeric_limits<acc_t>::quiet_NaN())
                                 : static_cast<scalar_t>(dot * inv - static_cast<acc_t>(qi[y]));
    }
  }
}

template <int G, typename scalar_t>
__global__ void score_backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ q,
                                      const scalar_t* __restrict__ logits, const int64_t* __restrict__ target,
                                      scalar_t* __restrict__ grad_logits, scalar_t* __restrict__ coef, int64_t N,
                                      int64_t C) {
  using acc_t = at::opmath_type<scalar_t>;
  const int sub = (threadIdx.x & 31) % G, slot = (threadIdx.x & 31) / G;
  const RowLoop loop = row_loop<G>();
  for (int64_t base = loop.first; base < N; base += loop.stride) {
    const int64_t i = base + slot;
    const bool active = i < N;
    const int64_t row = active ? i : 0;
    const scalar_t* z = logits + row * C;
    const scalar_t* qi = q + row * C;
    acc_t m, inv;
    const acc_t dot = softmax_weighted_sum<G>(z, qi, C, sub, active, &m, &inv) * inv;  // p·q
    if (active) {
      const int64_t y = target[i];
      const bool bad = y < 0 || y >= C;
      const acc_t g = static_cast<acc_t>(grad[i]);
      const acc_t nan = std::numeric_limits<acc_t>::quiet_NaN();
      for (int64_t c = sub; c < C; c += G) {
        const acc_t pc = exp(static_cast<acc_t>(z[c]) - m) * inv;
        const acc_t gl = g * pc * (static_cast<acc_t>(qi[c]) - dot);    // g · A_i q_i
        const acc_t cf = g * (pc - (c == y ? acc_t(1) : acc_t(0)));     // g · (p − e_y)
        grad_logits[i * C + c] = static_cast<scalar_t>(bad ? nan : gl);
        coef[i * C + c] = static_cast<scalar_t>(bad ? nan : cf);
      }
    }
  }
}

int group_for(int64_t C) {
  if (C <= 4) return 4;
  if (C <= 8) return 8;
  if (C <= 16) return 16;
  return 32;
}

int64_t blocks_for(int64_t rows, int G) {
  const int64_t rows_per_block = (kThreads / 32) * (32 / G);
  const int64_t max_blocks = 65535LL * 8;  // grid-stride loops cover the rest
  return std::max<int64_t>(1, std::min<int64_t>((rows + rows_per_block - 1) / rows_per_block, max_blocks));
}

// Calls launch.template operator()<G>() for the group size that fits C.
#define FASTAUG_DISPATCH_GROUP(C, ...)                 \
  switch (group_for(C)) {                              \
    case 4: { constexpr int G = 4; __VA_ARGS__(); break; }   \
    case 8: { constexpr int G = 8; __VA_ARGS__(); break; }   \
    case 16: { constexpr int G = 16; __VA_ARGS__(); break; } \
    default: { constexpr int G = 32; __VA_ARGS__(); break; } \
  }

// The bias is already in u (cuBLAS adds it as beta = 1); the column sums are left to the driver.
at::Tensor hvp_step_cuda(at::Tensor& u, const at::Tensor& bias, const at::Tensor& p, const at::Tensor& weight,
                         int64_t K, double scale) {
  TORCH_INTERNAL_ASSERT(!bias.defined());
  const int64_t rows = u.size(0) * K, C = p.size(1);
  if (rows == 0 || C == 0) return at::Tensor();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, u.scalar_type(), "last_layer_hvp_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    scalar_t* up = u.data_ptr<scalar_t>();
    const scalar_t* pp = p.data_ptr<scalar_t>();
    const scalar_t* wp = weight.defined() ? weight.data_ptr<scalar_t>() : nullptr;
    FASTAUG_DISPATCH_GROUP(C, [&] {
      hvp_step_kernel<G, scalar_t><<<blocks_for(rows, G), kThreads, 0, stream>>>(up, pp, wp, rows, K, C,
                                                                                  static_cast<acc_t>(scale));
    });
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return at::Tensor();
}

at::Tensor score_step_cuda(const at::Tensor& q, const at::Tensor& logits, const at::Tensor& target) {
  const int64_t N = logits.size(0), C = logits.size(1);
  at::Tensor out = at::empty({N}, logits.options());
  if (N == 0) return out;
  if (C == 0) return out.fill_(std::numeric_limits<double>::quiet_NaN());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "influence_score_cuda", [&] {
    const scalar_t* qp = q.data_ptr<scalar_t>();
    const scalar_t* zp = logits.data_ptr<scalar_t>();
    const int64_t* tp = target.data_ptr<int64_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    FASTAUG_DISPATCH_GROUP(C, [&] {
      score_kernel<G, scalar_t><<<blocks_for(N, G), kThreads, 0, stream>>>(qp, zp, tp, op, N, C);
    });
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor> score_back_step_cuda(const at::Tensor& grad, const at::Tensor& q,
                                                        const at::Tensor& logits, const at::Tensor& target) {
  const int64_t N = logits.size(0), C = logits.size(1);
  at::Tensor grad_logits = at::empty_like(logits), coef = at::empty_like(logits);
  if (N == 0 || C == 0) return {grad_logits, coef};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "influence_score_backward_cuda",
                                  [&] {
    const scalar_t* gp = grad.data_ptr<scalar_t>();
    const scalar_t* qp = q.data_ptr<scalar_t>();
    const scalar_t* zp = logits.data_ptr<scalar_t>();
    const int64_t* tp = target.data_ptr<int64_t>();
    scalar_t* glp = grad_logits.data_ptr<scalar_t>();
    scalar_t* cp = coef.data_ptr<scalar_t>();
    FASTAUG_DISPATCH_GROUP(C, [&] {
      score_backward_kernel<G, scalar_t><<<blocks_for(N, G), kThreads, 0, stream>>>(gp, qp, zp, tp, glp, cp, N, C);
    });
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grad_logits, coef};
}

at::Tensor last_layer_hvp_cuda(const at::Tensor& h, const at::Tensor& p, const at::Tensor& v,
                               const c10::optional<at::Tensor>& weight, double scale, double damping) {
  check_hvp_inputs(h, p, v, weight, scale, damping);  // before the guard: h may be the CPU argument
  const c10::cuda::CUDAGuard guard(h.device());
  return last_layer_hvp_driver(h, p, v, weight, scale, damping, hvp_step_cuda, /*step_adds_bias=*/false);
}

at::Tensor influence_score_cuda(const at::Tensor& h, const at::Tensor& logits, const at::Tensor& target,
                                const at::Tensor& s) {
  check_score_inputs(h, logits, target, s);  // before the guard: h may be the CPU argument
  const c10::cuda::CUDAGuard guard(h.device());
  return influence_score_driver(h, logits, target, s, score_step_cuda);
}

std::tuple<at::Tensor, at::Tensor> influence_score_backward_cuda(const at::Tensor& grad, const at::Tensor& h,
                                                                 const at::Tensor& logits, const at::Tensor& target,
                                                                 const at::Tensor& s) {
  check_score_inputs(h, logits, target, s, &grad);  // before the guard: h may be the CPU argument
  const c10::cuda::CUDAGuard guard(h.device());
  return influence_score_backward_driver(grad, h, logits, target, s, score_back_step_cuda);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CUDA, m) {
  m.impl("last_layer_hvp", &last_layer_hvp_cuda);
  m.impl("influence_score", &influence_score_cuda);
  m.impl("influence_score_backward", &influence_score_backward_cuda);
}

}  // namespace fastaug
