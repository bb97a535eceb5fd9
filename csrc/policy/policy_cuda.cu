// CUDA kernels of the policy ops: one thread block per image runs the image's whole chain in one
// launch (steps separated by __syncthreads; histograms in shared memory with integer atomics;
// reductions as fixed-shape warp-shuffle trees, so results are deterministic). No host round-trip.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/all.h>

#include <algorithm>

#define FA_ENGINE __device__ __forceinline__
#include "policy/policy_engine.h"
#include "policy/policy_engine_backward.h"

namespace fastaug {
namespace {

using policy::PolicyShared;

constexpr int kPolicyThreads = 512;  // a multiple of 32: the reductions assume full warps
constexpr int64_t kMaxBlocks = 1 << 20;

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MinOp {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return b < a ? b : a;
  }
};
struct MaxOp {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return b > a ? b : a;
  }
};

// The engine's executor for one thread block.
struct CudaExec {
  double* red;  // 32 shared slots, 8 bytes each

  __device__ int64_t tid() const { return threadIdx.x; }
  __device__ int64_t nthreads() const { return blockDim.x; }
  __device__ void sync() const { __syncthreads(); }

  template <typename T, typename Op>
  __device__ T reduce(T v, Op op, T identity) const {
    T* s = reinterpret_cast<T*>(red);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, off));
    __syncthreads();  // earlier readers of s are done
    if (lane == 0) s[warp] = v;
    __syncthreads();
    if (warp == 0) {
      T w = lane < nwarps ? s[lane] : identity;
      for (int off = 16; off > 0; off >>= 1) w = op(w, __shfl_down_sync(0xffffffffu, w, off));
      if (lane == 0) s[32 - 1] = w;
    }
    __syncthreads();
    return s[32 - 1];
  }
  __device__ long long sum(long long v) const { return reduce(v, SumOp(), 0LL); }
  __device__ double sum(double v) const { return reduce(v, SumOp(), 0.0); }
  __device__ float min(float v) const { return reduce(v, MinOp(), INFINITY); }
  __device__ float max(float v) const { return reduce(v, MaxOp(), -INFINITY); }
  __device__ double min(double v) const { return reduce(v, MinOp(), static_cast<double>(INFINITY)); }
  __device__ double max(double v) const { return reduce(v, MaxOp(), -static_cast<double>(INFINITY)); }
  __device__ void hist_add(int* h, int bin) const { atomicAdd(h + bin, 1); }

  // Pixel loops: 32-bit division when the plane fits (always, in practice), 64-bit otherwise.
  template <typename F>
  __device__ void pixels(int64_t H, int64_t W, F&& f) const {
    const int64_t n = H * W;
    if (n < (int64_t{1} << 31)) {
      const unsigned w = static_cast<unsigned>(W);
      for (unsigned p = threadIdx.x; p < static_cast<unsigned>(n); p += blockDim.x) {
        const unsigned y = p / w;
        f(static_cast<int64_t>(y), static_cast<int64_t>(p - y * w), static_cast<int64_t>(p));
      }
    } else {
      for (int64_t p = threadIdx.x; p < n; p += blockDim.x) f(p / W, p % W, p);
    }
  }
  template <typename F>
  __device__ void channel_pixels(int64_t C, int64_t H, int64_t W, F&& f) const {
    const int64_t plane = H * W;
    for (int64_t c = 0; c < C; ++c)
      pixels(H, W, [&](int64_t y, int64_t x, int64_t p) { f(c, y, x, c * plane + p); });
  }
  // Element loops, channel by channel (no division).
  template <typename F>
  __device__ void elements(int64_t C, int64_t plane, F&& f) const {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t j = threadIdx.x; j < plane; j += blockDim.x) f(c, c * plane + j);
  }
};

template <typename scalar_t>
__global__ void __launch_bounds__(kPolicyThreads)
    policy_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ pairs, scalar_t* out,
                          scalar_t* scratch, const int64_t* __restrict__ op, const float* __restrict__ mag,
                          const float* __restrict__ sign, const int64_t* __restrict__ partner,
                          const int64_t* __restrict__ center, int64_t N, int64_t L, int64_t C, int64_t H, int64_t W,
                          scalar_t fillv) {
  // red: one slot per warp for the reductions (the last slot also carries the result).
  __shared__ PolicyShared sh;
  __shared__ double red[32];
  const CudaExec ex{red};
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x)
    policy::run_chain<scalar_t>(ex, x, pairs, out, scratch, op, mag, sign, partner, center, n, N, L, C, H, W, fillv,
                                sh);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kPolicyThreads)
    policy_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x, scalar_t* __restrict__ gx,
                           scalar_t* __restrict__ tmp, const int64_t* __restrict__ op, const float* __restrict__ mag,
                           const float* __restrict__ sign, const int64_t* __restrict__ partner,
                           const int64_t* __restrict__ center, int64_t N, int64_t C, int64_t H, int64_t W) {
  __shared__ double red[32];
  const CudaExec ex{red};
  const int64_t chw = C * H * W;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const policy::Step st = policy::read_step(op, mag, sign, partner, center, n, N);
    policy::step_backward<scalar_t>(ex, g + n * chw, x + n * chw, gx + n * chw, tmp + n * chw, C, H, W, st);
  }
}

// grad of `pairs`: element (m, i) sums w_n g[n, i] over the images n that paired with m, in the
// order given by `order` (a stable sort of the partner keys): a deterministic gather.
template <typename scalar_t>
__global__ void pairs_grad_kernel(const scalar_t* __restrict__ g, scalar_t* __restrict__ gp,
                                  const int64_t* __restrict__ order, const int64_t* __restrict__ starts,
                                  const float* __restrict__ mag, int64_t N, int64_t chw) {
  using acc_t = typename policy::Acc<scalar_t>::type;
  const int64_t total = N * chw;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t m = idx / chw, i = idx % chw;
    acc_t acc = 0;
    for (int64_t j = starts[m]; j < starts[m + 1]; ++j) {
      const int64_t n = order[j];
      const float mm = mag[n];
      const float w = policy::pairing_weight(mm >= 0.0f ? (mm <= 1.0f ? mm : 1.0f) : 0.0f);
      acc += static_cast<acc_t>(w) * static_cast<acc_t>(g[n * chw + i]);
    }
    gp[idx] = static_cast<scalar_t>(acc);
  }
}

at::Tensor apply_ops_cuda(const at::Tensor& x_, const at::Tensor& pairs_, const at::Tensor& op_,
                          const at::Tensor& magnitude_, const at::Tensor& sign_, const at::Tensor& partner_,
                          const at::Tensor& center_, int64_t fill) {
  check_policy_inputs(x_, pairs_, op_, magnitude_, sign_, partner_, center_, fill);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), pairs = pairs_.contiguous(), op = op_.contiguous();
  const at::Tensor mag = magnitude_.contiguous(), sign = sign_.contiguous(), partner = partner_.contiguous();
  const at::Tensor center = center_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), L = op.size(1);
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  if (L == 0) return out.copy_(x);
  at::Tensor scratch = L > 1 ? at::empty_like(out) : at::Tensor();
  const auto stream = at::cuda::getCurrentCUDAStream();
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(N, kMaxBlocks));
  AT_DISPATCH_FLOATING_TYPES_AND3(at::kByte, at::kHalf, at::kBFloat16, x.scalar_type(), "apply_ops_cuda", [&] {
    policy_forward_kernel<scalar_t><<<blocks, kPolicyThreads, 0, stream>>>(
        x.data_ptr<scalar_t>(), pairs.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
        L > 1 ? scratch.data_ptr<scalar_t>() : nullptr, op.data_ptr<int64_t>(), mag.data_ptr<float>(),
        sign.data_ptr<float>(), partner.data_ptr<int64_t>(), center.data_ptr<int64_t>(), N, L, C, H, W,
        fill_value<scalar_t>(fill));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor> apply_ops_backward_cuda(const at::Tensor& grad_, const at::Tensor& x_,
                                                           const at::Tensor& pairs_, const at::Tensor& op_,
                                                           const at::Tensor& magnitude_, const at::Tensor& sign_,
                                                           const at::Tensor& partner_, const at::Tensor& center_,
                                                           int64_t fill, bool need_pairs_grad) {
  check_policy_backward_inputs(grad_, x_, pairs_, op_, magnitude_, sign_, partner_, center_, fill);
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous(), grad = grad_.contiguous(), op = op_.contiguous();
  const at::Tensor mag = magnitude_.contiguous(), sign = sign_.contiguous(), partner = partner_.contiguous();
  const at::Tensor center = center_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), chw = C * H * W;
  at::Tensor gx = at::empty_like(x);
  at::Tensor gp = need_pairs_grad ? at::empty_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, gp};
  at::Tensor tmp = at::empty_like(x);
  const auto stream = at::cuda::getCurrentCUDAStream();
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(N, kMaxBlocks));
  // Images that paired with m, in increasing n: a stable sort of the partner keys (N = "none").
  at::Tensor order, starts;
  if (need_pairs_grad) {
    const at::Tensor op0 = op.select(1, 0), part0 = partner.select(1, 0).clamp(0, N - 1);
    const at::Tensor key = at::where(op0 == static_cast<int64_t>(kSamplePairing), part0, at::full_like(part0, N));
    const auto sorted = key.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
    order = std::get<1>(sorted).contiguous();
    starts = at::searchsorted(std::get<0>(sorted).contiguous(), at::arange(N + 1, key.options())).contiguous();
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "apply_ops_backward_cuda", [&] {
    policy_backward_kernel<scalar_t><<<blocks, kPolicyThreads, 0, stream>>>(
        grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), tmp.data_ptr<scalar_t>(),
        op.data_ptr<int64_t>(), mag.data_ptr<float>(), sign.data_ptr<float>(), partner.data_ptr<int64_t>(),
        center.data_ptr<int64_t>(), N, C, H, W);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (need_pairs_grad) {
      const int64_t total = N * chw, threads = 256;
      const unsigned grid = static_cast<unsigned>(std::min<int64_t>((total + threads - 1) / threads, kMaxBlocks));
      pairs_grad_kernel<scalar_t><<<grid, threads, 0, stream>>>(grad.data_ptr<scalar_t>(), gp.data_ptr<scalar_t>(),
                                                                order.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
                                                                mag.data_ptr<float>(), N, chw);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {gx, gp};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CUDA, m) {
  m.impl("apply_ops", &apply_ops_cuda);
  m.impl("apply_ops_backward", &apply_ops_backward_cuda);
}

}  // namespace fastaug
