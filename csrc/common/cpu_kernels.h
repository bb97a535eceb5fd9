// The CPU kernels of the sampling and learned-transformation families (warp, affine_flow_warp,
// appearance, transform), as the torch-facing files (warp/warp_cpu.cpp, transform/*_cpu.cpp) see them:
// one argument block per call, and a table of entry points per instruction set.
//
// How the kernels are built: the per-row code (common/bilinear_row_cpu.h, common/box_filter_cpu.h,
// warp/warp_rows_cpu.h, transform/transform_cpu.h) is compiled three times, once per instruction set
// (common/cpu_kernels_isa.h, included by cpu_kernels_{default,avx2,avx512}.cpp inside their target
// regions). The default copy runs the scalar maths of sampling.h / affine_flow.h / transform.h, the
// code the CUDA kernels run; the AVX2 and AVX-512 copies (float32) mirror it lane by lane with the
// same operations in the same order, so every copy returns the same bits. cpu_kernels<T>() picks the
// copy once (common/cpu_dispatch.h); float64 always runs the default copy.
//
// Work split: an op's work is a list of items, each a block of `rows` consecutive rows of one image
// (`blocks` items per image). The split is a function of the shape alone (cpu_parallel.h), never of the
// thread count: the gradient for x is a scatter whose sums depend on it. Each item owns its rows of
// that gradient; it scatters into a private band of rows around them (ScatterBand), copies its own rows
// out, and a second pass adds the other rows of every band to their owners in item order. Results are therefore
// bit-identical for every thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/cpu_dispatch.h"

namespace fastaug {
namespace cpu {

// A set of (H, W) maps per image spread over up to two tensors (affine_flow_warp's s_w and s_b,
// appearance's c_w and c_b): map p of image n.
template <typename T>
struct MapSet {
  T* base[2] = {nullptr, nullptr};
  int64_t count[2] = {0, 0};
  T* map(int64_t n, int64_t p, int64_t plane) const {
    return p < count[0] ? base[0] + (n * count[0] + p) * plane : base[1] + (n * count[1] + p - count[0]) * plane;
  }
};

// Scratch a kernel's task keeps on its thread from call to call when large (pixel slots, bordered
// copies of kCacheFromBytes or more): the task takes the thread's (take: left empty there) and gives it
// back at its end (give) unless larger than kKeepBytes. Large buffers allocated fresh per call come
// from the kernel as new pages, each faulted in on first touch: 15 MB a call, a third of a warp
// backward's time at 1x3x1024². Small ones are allocated per call as before: glibc reuses their memory
// without faults, and reusing one fixed buffer measured slower there (16x3x224² backward +5-12 %,
// placement against the other buffers, not profiled further). Two tasks alive at once on one thread
// (none here) would each still get a buffer: the second an empty one.
struct ScratchSizes {
  static constexpr size_t kCacheFromBytes = size_t(4) << 20, kKeepBytes = size_t(64) << 20;
};
template <typename Payload>
struct ThreadCache : ScratchSizes {
  static void take(Payload& p) { std::swap(p, cached()); }
  static void give(Payload& p, size_t bytes) {
    if (bytes <= kKeepBytes) std::swap(p, cached());
  }

 private:
  static Payload& cached() {
    static thread_local Payload p;
    return p;
  }
};

// What one item scatters into the gradient for x when its image is split into several items. Rows near
// its own are held in a window [wlo, whi) (its rows plus `margin` on each side; row y of channel c at
// data[(c * (whi - wlo) + y - wlo) * W]), addressed like the image itself and zeroed as far as the flow
// reaches ([lo, hi)); rows past the window (a flow reaching further than the margin) in lists grown on
// demand (above[(d * C + c) * W ...] is row wlo - 1 - d, below[...] row whi + d). The item copies its
// own rows to the gradient; the others are added by a second pass.
template <typename T>
struct ScatterBand {
  std::unique_ptr<T[]> data;
  int64_t wlo = 0, whi = 0, lo = 0, hi = 0;
  std::vector<T> above, below;
  int64_t n_above = 0, n_below = 0;

  // The window of an item of rows [r0, r1), its own rows zeroed unless `zero_own` is false (the SIMD
  // copies' slot bands, which write them: claim).
  void reset(int64_t r0, int64_t r1, int64_t margin, int64_t C, int64_t H, int64_t W, bool zero_own = true) {
    wlo = std::max<int64_t>(0, r0 - margin);
    whi = std::min<int64_t>(H, r1 + margin);
    data.reset(new T[static_cast<size_t>((whi - wlo) * C * W)]);
    lo = hi = r0;
    if (zero_own) zero_rows(r0, r1 - 1, C, W);
    n_above = n_below = 0;
  }
  // Rows [ylo, yhi) of the window, which the caller writes whole (a slot band's rows, its item's own rows
  // included), counted as held; rows between them and those held so far are zeroed.
  void claim(int64_t ylo, int64_t yhi, int64_t C, int64_t W) {
    if (lo == hi) {
      lo = ylo;
      hi = yhi;
      return;
    }
    if (ylo > hi) zero_rows(hi, ylo - 1, C, W);
    if (yhi < lo) zero_rows(yhi, lo - 1, C, W);
    lo = std::min(lo, ylo);
    hi = std::max(hi, yhi);
  }
  T* window(int64_t c, int64_t W) const { return data.get() + c * (whi - wlo) * W; }
  // Rows [ylo, yhi] of the window zeroed (a no-op for rows already zeroed).
  void zero_rows(int64_t ylo, int64_t yhi, int64_t C, int64_t W) {
    ylo = std::max(ylo, wlo);
    yhi = std::min(yhi, whi - 1);
    if (ylo > yhi) return;
    if (lo == hi) lo = hi = ylo;
    for (int64_t c = 0; c < C; ++c) {
      T* w = window(c, W) - wlo * W;  // row y at w + y * W
      if (ylo < lo) std::memset(w + ylo * W, 0, sizeof(T) * (lo - ylo) * W);  // all-zero bits: +0.0
      if (yhi >= hi) std::memset(w + hi * W, 0, sizeof(T) * (yhi + 1 - hi) * W);
    }
    lo = std::min(lo, ylo);
    hi = std::max(hi, yhi + 1);
  }
  // Start of row y (outside the window), channel c.
  T* overflow_row(int64_t y, int64_t c, int64_t C, int64_t W) {
    if (y < wlo) return grow(above, n_above, wlo - 1 - y, C, W) + c * W;
    return grow(below, n_below, y - whi, C, W) + c * W;
  }

 private:
  static T* grow(std::vector<T>& buf, int64_t& rows, int64_t d, int64_t C, int64_t W) {
    if (d >= rows) {
      const int64_t want = d + 1;
      if (static_cast<int64_t>(buf.size()) < want * C * W) buf.resize(std::max(want, 2 * rows) * C * W);
      std::fill(buf.begin() + rows * C * W, buf.begin() + want * C * W, T(0));
      rows = want;
    }
    return buf.data() + d * C * W;
  }
};

// Everything one call of a kernel needs. Maps: warp's flow, affine_flow_warp's (s_w, s_b), appearance's
// (c_w, c_b), transform's params; gmaps: their gradients (backward). gx, band: the gradient for x and
// one ScatterBand per item (backward with need_x_grad, images split). Tensors are contiguous NCHW.
template <typename T>
struct OpArgs {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t smooth = 1, padding = 0, mode = 0;
  bool align_corners = false;
  const T* x = nullptr;
  const T* grad = nullptr;  // grad_out (backward)
  T* out = nullptr;         // forward output
  T* gx = nullptr;          // gradient for x (backward; null when not needed)
  MapSet<const T> maps;
  MapSet<T> gmaps;
  int64_t rows = 1, blocks = 1;  // the split: items of `rows` rows, `blocks` per image
  ScatterBand<T>* band = nullptr;  // one per item (blocks > 1 and gx)
  int64_t items() const { return N * blocks; }
};

// A kernel processes items [begin, end) of its call.
template <typename T>
using ItemKernel = void (*)(const OpArgs<T>&, int64_t begin, int64_t end);

// The entry points of one copy.
template <typename T>
struct KernelTable {
  ItemKernel<T> warp_forward, warp_backward;
  ItemKernel<T> affine_forward, affine_backward;
  ItemKernel<T> appearance_forward, appearance_backward;
  ItemKernel<T> transform_forward, transform_backward;
  // Second pass of a split x-gradient scatter: adds every item's band into the rows the items
  // [begin, end) own, in item order.
  ItemKernel<T> add_bands;
};

}  // namespace cpu

// The copies (common/cpu_kernels_{default,avx2,avx512}.cpp).
namespace isa_default {
extern const cpu::KernelTable<float> kernels_f32;
extern const cpu::KernelTable<double> kernels_f64;
}  // namespace isa_default
#ifdef FASTAUG_X86_DISPATCH
namespace isa_avx2 {
extern const cpu::KernelTable<float> kernels_f32;
}
namespace isa_avx512 {
extern const cpu::KernelTable<float> kernels_f32;
}
#endif

namespace cpu {

// The copy for capability c (float32) / the default copy (float64).
inline const KernelTable<float>& kernels_for(CpuCapability c, float*) {
#ifdef FASTAUG_X86_DISPATCH
  if (c == CpuCapability::kAvx512) return isa_avx512::kernels_f32;
  if (c == CpuCapability::kAvx2) return isa_avx2::kernels_f32;
#endif
  (void)c;
  return isa_default::kernels_f32;
}
inline const KernelTable<double>& kernels_for(CpuCapability, double*) { return isa_default::kernels_f64; }

// The copy the kernels run (the switch read once; an invalid FASTAUG_CPU_CAPABILITY raises here).
template <typename T>
const KernelTable<T>& cpu_kernels() {
  return kernels_for(cpu_capability(), static_cast<T*>(nullptr));
}

}  // namespace cpu
}  // namespace fastaug
