// CPU kernels of the policy ops. Forward: every image runs its whole chain in one task, through the
// fast paths of policy_cpu_fast.h compiled once per instruction-set level and picked at run time
// (policy_cpu_isa.h), or through the shared engine when FASTAUG_POLICY_CPU_ENGINE=1. Images are handed
// to the threads in small chunks from a shared counter, so a batch of cheap and dear ops keeps every
// thread busy; each image's result depends on nothing but its inputs, so the output is the same for
// any number of threads. Backward: the same split and levels, the fast paths of policy_cpu_fast.h
// where an op has one, else the engine's step_backward.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 warns that the undefined pass-through operand of AVX-512 intrinsics (_mm512_cvtepu8_epi32 and
// others) "may be used uninitialized" once they are inlined into a function with an optimize
// attribute (GCC bug 105593); the location it blames is in the system header, hence file-wide.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <ATen/Parallel.h>
#include <torch/all.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "common/cpu_parallel.h"

#define FA_ENGINE inline
#include "policy/policy_cpu_fast.h"
#include "policy/policy_engine.h"
#include "policy/policy_engine_backward.h"

namespace fastaug {
namespace {

using policy::CpuExec;
using policy::CpuIsa;
using policy::PolicyShared;

// One apply_ops call, as raw pointers.
template <typename T>
struct ChainArgs {
  const T* x;
  const T* pairs;
  T* out;
  const int64_t *op, *partner, *center;
  const float *mag, *sign;
  int64_t N, L, C, H, W;
  T fillv;
};

// Images [begin, end): each step reads the previous step's output (x for the first) and writes
// alternately the output and the scratch image, so that the last lands in the output. Identity steps
// (a skipped op of a probability-gated policy) are left out rather than copied: same values, one
// pass fewer each.
template <typename T, CpuIsa isa>
FA_CPU void run_images(const ChainArgs<T>& a, int64_t begin, int64_t end, policy::cpu::Scratch<T>& sc) {
  const int64_t chw = a.C * a.H * a.W;
  PolicyShared sh;
  for (int64_t n = begin; n < end; ++n) {
    int64_t left = 0;  // steps that change the image
    for (int64_t l = 0; l < a.L; ++l)
      left += policy::read_step(a.op, a.mag, a.sign, a.partner, a.center, n * a.L + l, a.N).op != kIdentity;
    const T* src = a.x + n * chw;
    if (left == 0) {
      policy::cpu::copy_span(src, a.out + n * chw, chw);
      continue;
    }
    for (int64_t l = 0; l < a.L; ++l) {
      const policy::Step st = policy::read_step(a.op, a.mag, a.sign, a.partner, a.center, n * a.L + l, a.N);
      if (st.op == kIdentity) continue;
      T* dst = (--left % 2 == 0) ? a.out + n * chw : sc.image.data();
      policy::cpu::step<T, isa>(src, dst, a.pairs + st.partner * chw, a.C, a.H, a.W, st, a.fillv, sh, sc);
      src = dst;
    }
  }
}

// The shared engine's chain (the reference the fast paths are tested against).
template <typename T>
void run_images_engine(const ChainArgs<T>& a, int64_t begin, int64_t end, policy::cpu::Scratch<T>& sc) {
  const int64_t chw = a.C * a.H * a.W;
  PolicyShared sh;
  for (int64_t n = begin; n < end; ++n) {
    T* scratch = a.L > 1 ? sc.image.data() - n * chw : nullptr;  // scratch + n * chw is this buffer
    policy::run_chain<T>(CpuExec{}, a.x, a.pairs, a.out, scratch, a.op, a.mag, a.sign, a.partner, a.center, n, a.N,
                         a.L, a.C, a.H, a.W, a.fillv, sh);
  }
}

// One apply_ops_backward call (one step per image), as raw pointers.
template <typename T>
struct BackwardArgs {
  const T* g;
  const T* x;
  T* gx;
  const int64_t *op, *partner, *center;
  const float *mag, *sign;
  int64_t N, C, H, W;
};

// d(loss)/d(x) of images [begin, end); sc.image is the engine's temporary image.
template <typename T, CpuIsa isa>
FA_CPU void backward_images(const BackwardArgs<T>& a, int64_t begin, int64_t end, policy::cpu::Scratch<T>& sc) {
  const int64_t chw = a.C * a.H * a.W;
  for (int64_t n = begin; n < end; ++n) {
    const policy::Step st = policy::read_step(a.op, a.mag, a.sign, a.partner, a.center, n, a.N);
    policy::cpu::step_backward(a.g + n * chw, a.x + n * chw, a.gx + n * chw, sc.image.data(), a.C, a.H, a.W, st, sc);
  }
}

// The engine's backward for every op (the reference of the fast paths).
template <typename T>
void backward_images_engine(const BackwardArgs<T>& a, int64_t begin, int64_t end, policy::cpu::Scratch<T>& sc) {
  const int64_t chw = a.C * a.H * a.W;
  for (int64_t n = begin; n < end; ++n) {
    const policy::Step st = policy::read_step(a.op, a.mag, a.sign, a.partner, a.center, n, a.N);
    policy::step_backward<T>(CpuExec{}, a.g + n * chw, a.x + n * chw, a.gx + n * chw, sc.image.data(), a.C, a.H,
                             a.W, st);
  }
}

// A batch runner: images [begin, end) of a call, with one thread's scratch.
template <template <typename> class Args, typename T>
using Images = void (*)(const Args<T>&, int64_t, int64_t, policy::cpu::Scratch<T>&);

// run_images and backward_images once per instruction-set level. flatten inlines the whole step (engine loops included)
// so that it is vectorised for the level (AVX-512 preferring 256-bit vectors: with 64 uint8 lanes a
// 32- or 224-pixel row would leave up to 63 pixels to the scalar remainder; its byte tables are
// hand-written 512-bit code); fp-contract=off because GCC fuses a product and a sum into
// an FMA wherever the target has one (AVX-512, most non-x86 CPUs), and its single rounding would
// change the blends' results (the engine rounds every product, as the CUDA kernel does).
#if defined(__GNUC__) && !defined(__clang__)
#define FA_LEVEL(...) __attribute__((__VA_ARGS__ flatten, optimize("fp-contract=off")))
#elif defined(__GNUC__) || defined(__clang__)
#define FA_LEVEL(...) __attribute__((__VA_ARGS__ flatten))
#else
#define FA_LEVEL(...)
#endif
#define FA_LEVEL_FN(Args, T, name, body, level, ...)                                             \
  FA_LEVEL(__VA_ARGS__)                                                                          \
  void name(const Args<T>& a, int64_t b, int64_t e, policy::cpu::Scratch<T>& sc) {               \
    body<T, level>(a, b, e, sc);                                                                 \
  }
#if defined(FASTAUG_POLICY_X86)
#define FA_DEFINE_LEVELS(Args, T, name, body)                                                                    \
  FA_LEVEL_FN(Args, T, name##_default, body, CpuIsa::kDefault)                                                   \
  FA_LEVEL_FN(Args, T, name##_avx2, body, CpuIsa::kAvx2, target("avx2,bmi,bmi2,popcnt"), )                       \
  FA_LEVEL_FN(Args, T, name##_avx512, body, CpuIsa::kAvx512,                                                     \
              target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx2,bmi,bmi2,popcnt,prefer-vector-width=256"), ) \
  Images<Args, T> pick_##name(CpuIsa isa) {                                                                      \
    return isa == CpuIsa::kAvx512 ? name##_avx512 : (isa == CpuIsa::kAvx2 ? name##_avx2 : name##_default);      \
  }
#else
#define FA_DEFINE_LEVELS(Args, T, name, body)                                                                    \
  FA_LEVEL_FN(Args, T, name##_default, body, CpuIsa::kDefault)                                                   \
  Images<Args, T> pick_##name(CpuIsa) { return name##_default; }
#endif

FA_DEFINE_LEVELS(ChainArgs, uint8_t, run_u8, run_images)
FA_DEFINE_LEVELS(ChainArgs, float, run_f32, run_images)
FA_DEFINE_LEVELS(ChainArgs, double, run_f64, run_images)
FA_DEFINE_LEVELS(BackwardArgs, float, backward_f32, backward_images)
FA_DEFINE_LEVELS(BackwardArgs, double, backward_f64, backward_images)

template <typename T>
Images<ChainArgs, T> pick_level(CpuIsa isa) {
  if constexpr (std::is_same<T, uint8_t>::value) {
    return pick_run_u8(isa);
  } else if constexpr (std::is_same<T, float>::value) {
    return pick_run_f32(isa);
  } else {
    return pick_run_f64(isa);
  }
}

template <typename T>
Images<BackwardArgs, T> pick_backward_level(CpuIsa isa) {
  if constexpr (std::is_same<T, float>::value) {
    return pick_backward_f32(isa);
  } else {
    return pick_backward_f64(isa);
  }
}

// Every image of the batch through `run`: inline for small batches, else threads taking chunks of
// images from a shared counter (chunks of about grain_for's size, at least 8 per thread). Each
// thread has its own scratch (with an image-sized buffer when `image`).
template <template <typename> class Args, typename T>
void run_batch(const Args<T>& a, Images<Args, T> run, bool image) {
  const int64_t N = a.N, chw = a.C * a.H * a.W;
  const int64_t grain = grain_for(chw);
  const int64_t tasks = std::min<int64_t>(at::get_num_threads(), (N + grain - 1) / grain);
  if (tasks <= 1 || at::in_parallel_region()) {
    policy::cpu::Scratch<T> sc(chw, a.H, a.W, image);
    run(a, 0, N, sc);
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(grain, N / (8 * tasks)));
  std::atomic<int64_t> next{0};
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    policy::cpu::Scratch<T> sc(chw, a.H, a.W, image);
    for (;;) {
      const int64_t i = next.fetch_add(chunk);
      if (i >= N) break;
      run(a, i, std::min(N, i + chunk), sc);
    }
  });
}

at::Tensor apply_ops_cpu(const at::Tensor& x_, const at::Tensor& pairs_, const at::Tensor& op_,
                         const at::Tensor& magnitude_, const at::Tensor& sign_, const at::Tensor& partner_,
                         const at::Tensor& center_, int64_t fill) {
  check_policy_inputs(x_, pairs_, op_, magnitude_, sign_, partner_, center_, fill);
  const at::Tensor x = x_.contiguous(), pairs = pairs_.contiguous(), op = op_.contiguous();
  const at::Tensor mag = magnitude_.contiguous(), sign = sign_.contiguous(), partner = partner_.contiguous();
  const at::Tensor center = center_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), L = op.size(1);
  check_policy_values(op, mag, sign, partner, N);
  at::Tensor out = at::empty({N, C, H, W}, x.options());
  if (out.numel() == 0) return out;
  if (L == 0) return out.copy_(x);
  const bool engine = policy::policy_cpu_engine_forced();
  const CpuIsa isa = policy::policy_cpu_isa();
  AT_DISPATCH_FLOATING_TYPES_AND(at::kByte, x.scalar_type(), "apply_ops_cpu", [&] {
    const ChainArgs<scalar_t> a{x.data_ptr<scalar_t>(),    pairs.data_ptr<scalar_t>(),  out.data_ptr<scalar_t>(),
                                op.data_ptr<int64_t>(),    partner.data_ptr<int64_t>(), center.data_ptr<int64_t>(),
                                mag.data_ptr<float>(),     sign.data_ptr<float>(),      N,
                                L,                         C,                           H,
                                W,                         fill_value<scalar_t>(fill)};
    run_batch<ChainArgs, scalar_t>(a, engine ? &run_images_engine<scalar_t> : pick_level<scalar_t>(isa), L > 1);
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
  check_policy_values(op, mag, sign, partner, N);
  at::Tensor gx = at::empty_like(x);
  at::Tensor gp = need_pairs_grad ? at::zeros_like(x) : at::empty({0}, x.options());
  if (x.numel() == 0) return {gx, gp};
  const bool engine = policy::policy_cpu_engine_forced();
  const CpuIsa isa = policy::policy_cpu_isa();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "apply_ops_backward_cpu", [&] {
    const scalar_t* gp_in = grad.data_ptr<scalar_t>();
    const int64_t* opp = op.data_ptr<int64_t>();
    const float* magp = mag.data_ptr<float>();
    const float* signp = sign.data_ptr<float>();
    const int64_t* partp = partner.data_ptr<int64_t>();
    const int64_t* cenp = center.data_ptr<int64_t>();
    const BackwardArgs<scalar_t> a{gp_in, x.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), opp, partp, cenp,
                                   magp, signp, N, C, H, W};
    run_batch<BackwardArgs, scalar_t>(
        a, engine ? &backward_images_engine<scalar_t> : pick_backward_level<scalar_t>(isa), true);
    if (need_pairs_grad) {
      // Partner m receives w_n g_n from every image n that paired with it, summed in order of n: the
      // images that paired with m listed in increasing n (a counting sort of their partners).
      std::vector<int64_t> first(N + 1, 0), order;
      std::vector<float> weight(N);
      for (int64_t n = 0; n < N; ++n) {
        const policy::Step st = policy::read_step(opp, magp, signp, partp, cenp, n, N);
        weight[n] = st.op == kSamplePairing ? policy::pairing_weight(st.m) : -1.0f;
        if (st.op == kSamplePairing) ++first[st.partner + 1];
      }
      for (int64_t m = 0; m < N; ++m) first[m + 1] += first[m];
      order.resize(first[N]);
      std::vector<int64_t> fill_at(first.begin(), first.end() - 1);
      for (int64_t n = 0; n < N; ++n)
        if (weight[n] >= 0.0f) order[fill_at[policy::read_step(opp, magp, signp, partp, cenp, n, N).partner]++] = n;
      scalar_t* gpp = gp.data_ptr<scalar_t>();
      at::parallel_for(0, N, grain_for(chw), [&](int64_t begin, int64_t end) {
        for (int64_t m = begin; m < end; ++m) {
          scalar_t* dst = gpp + m * chw;
          for (int64_t j = first[m]; j < first[m + 1]; ++j) {
            const scalar_t w = static_cast<scalar_t>(weight[order[j]]);
            const scalar_t* g = gp_in + order[j] * chw;
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
