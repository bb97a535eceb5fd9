// CPU kernels of the policy ops: one image per work item (at::parallel_for over the batch), each
// running its whole chain in thread-local buffers, with the engine's single-thread executor.
#include <ATen/Parallel.h>
#include <torch/all.h>

#include <algorithm>
#include <vector>

#include "common/cpu_parallel.h"

#define FA_ENGINE inline
#include "policy/policy_engine.h"
#include "policy/policy_engine_backward.h"

namespace fastaug {
namespace {

using policy::PolicyShared;

// The engine's executor for one CPU thread: loops run in order, sync and reductions are no-ops.
struct CpuExec {
  static constexpr bool kSerial = true;  // the engine may use its plain row-loop fast paths
  int64_t tid() const { return 0; }
  int64_t nthreads() const { return 1; }
  void sync() const {}
  template <typename T>
  T sum(T v) const {
    return v;
  }
  template <typename T>
  T min(T v) const {
    return v;
  }
  template <typename T>
  T max(T v) const {
    return v;
  }
  void hist_add(int* h, int bin) const { ++h[bin]; }
  template <typename F>
  void pixels(int64_t H, int64_t W, F&& f) const {
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) f(y, x, y * W + x);
  }
  template <typename F>
  void channel_pixels(int64_t C, int64_t H, int64_t W, F&& f) const {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) f(c, y, x, (c * H + y) * W + x);
  }
  template <typename F>
  void elements(int64_t C, int64_t plane, F&& f) const {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = c * plane; i < (c + 1) * plane; ++i) f(c, i);
  }
};

at::Tensor apply_ops_cpu(const at::Tensor& x_, const at::Tensor& pairs_, const at::Tensor& op_,
                         const at::Tensor& magnitude_, const at::Tensor& sign_, const at::Tensor& partner_,
                         const at::Tensor& center_, int64_t fill) {
  check_policy_inputs(x_, pairs_, op_, magnitude_, sign_, partner_, center_, fill);
  const at::Tensor x = x_.contiguous(), pairs = pairs_.contiguous(), op = op_.contiguous();
  const at::Tensor mag = magnitude_.contiguous(), sign = sign_.contiguous(), partner = partner_.contiguous();
  const at::Tensor center = center_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), L = op.size(1), chw = C * H * W;
  check_policy_values(op, mag, partner, N);
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  if (L == 0) return out.copy_(x);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kByte, x.scalar_type(), "apply_ops_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* pp = pairs.data_ptr<scalar_t>();
    scalar_t* op_out = out.data_ptr<scalar_t>();
    const scalar_t fillv = fill_value<scalar_t>(fill);
    at::parallel_for(0, N, grain_for(chw), [&](int64_t begin, int64_t end) {
      CpuExec ex;
      PolicyShared sh;
      // The chain ping-pongs between out[n] and a scratch image; offset the scratch so that
      // scratch + n * chw is this thread's buffer.
      std::vector<scalar_t> buf(L > 1 ? chw : 0);
      for (int64_t n = begin; n < end; ++n) {
        scalar_t* scratch = L > 1 ? buf.data() - n * chw : nullptr;
        policy::run_chain<scalar_t>(ex, xp, pp, op_out, scratch, op.data_ptr<int64_t>(), mag.data_ptr<float>(),
                                    sign.data_ptr<float>(), partner.data_ptr<int64_t>(), center.data_ptr<int64_t>(),
                                    n, N, L, C, H, W, fillv, sh);
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> apply_ops_backward_cpu(const at::Tensor& grad_, const at::Tensor& x_,
                                                          const at::Tensor& pairs_, const at::Tensor& op_,
                                                          const at::Tensor& magnitude_, const at::Tensor& sign_,
                                                          const at::Tensor& partner_, const at::Tensor& center_,
                                                          int64_t fill, bool need_pairs_grad) {
  check_policy_backward_inputs(grad_, x_, pairs_, op_, magnitude_, sign_, partner_, center_, fill);
  const at::Tensor x = x_.contiguous(), grad = grad_.contiguous(), op = op_.contiguous();
  const at::Tensor mag = magnitude_.contiguous(), sign = sign_.contiguous(), partner = partner_.contiguous();
  const at::Tensor center = center_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), chw = C * H * W;
  check_policy_values(op, mag, partner, N);
  at::Tensor gx = at::empty_like(x);
  at::Tensor gp = need_pairs_grad ? at::zeros_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, gp};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "apply_ops_backward_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* gp_in = grad.data_ptr<scalar_t>();
    scalar_t* gxp = gx.data_ptr<scalar_t>();
    const int64_t* opp = op.data_ptr<int64_t>();
    const float* magp = mag.data_ptr<float>();
    const float* signp = sign.data_ptr<float>();
    const int64_t* partp = partner.data_ptr<int64_t>();
    const int64_t* cenp = center.data_ptr<int64_t>();
    at::parallel_for(0, N, grain_for(chw), [&](int64_t begin, int64_t end) {
      CpuExec ex;
      std::vector<scalar_t> tmp(chw);
      for (int64_t n = begin; n < end; ++n) {
        const policy::Step st = policy::read_step(opp, magp, signp, partp, cenp, n, N);
        policy::step_backward<scalar_t>(ex, gp_in + n * chw, xp + n * chw, gxp + n * chw, tmp.data(), C, H, W, st);
      }
    });
    if (need_pairs_grad) {
      // Partner m receives w_n g_n from every image n that paired with it, summed in order of n.
      scalar_t* gpp = gp.data_ptr<scalar_t>();
      at::parallel_for(0, N, grain_for(chw), [&](int64_t begin, int64_t end) {
        for (int64_t m = begin; m < end; ++m) {
          scalar_t* dst = gpp + m * chw;
          for (int64_t n = 0; n < N; ++n) {
            const policy::Step st = policy::read_step(opp, magp, signp, partp, cenp, n, N);
            if (st.op != kSamplePairing || st.partner != m) continue;
            const scalar_t w = static_cast<scalar_t>(policy::pairing_weight(st.m));
            const scalar_t* g = gp_in + n * chw;
            for (int64_t i = 0; i < chw; ++i) dst[i] += w * g[i];
          }
        }
      });
    }
  });
  return {gx, gp};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CPU, m) {
  m.impl("apply_ops", &apply_ops_cpu);
  m.impl("apply_ops_backward", &apply_ops_backward_cpu);
}

}  // namespace fastaug
