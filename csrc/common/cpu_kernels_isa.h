// One copy of the CPU kernels (common/cpu_kernels.h), compiled by cpu_kernels_{default,avx2,avx512}.cpp:
// each defines FASTAUG_ISA_NS (the copy's namespace), FASTAUG_ISA_SIMD (0: the scalar maths of
// sampling.h; 1: the vector mirror of it) and, when SIMD, FASTAUG_ISA_VEC (the simd_cpu.h namespace),
// then includes this file inside its target region. The per-row headers below are code for this
// inclusion only: they have no include guard and include nothing.
#ifndef FASTAUG_ISA_NS
#error "common/cpu_kernels_isa.h is included by common/cpu_kernels_<isa>.cpp only"
#endif

namespace fastaug {
namespace FASTAUG_ISA_NS {

#if FASTAUG_ISA_SIMD
namespace vec = ::fastaug::simd::FASTAUG_ISA_VEC;
#endif

#include "common/bilinear_row_cpu.h"
#include "common/box_filter_cpu.h"
#include "warp/warp_rows_cpu.h"
#include "transform/transform_cpu.h"

template <typename T>
constexpr cpu::KernelTable<T> make_table() {
  return {warp_forward<T>,      warp_backward<T>,      affine_forward<T>,   affine_backward<T>,
          appearance_forward<T>, appearance_backward<T>, transform_forward<T>, transform_backward<T>,
          add_bands<T>};
}

extern const cpu::KernelTable<float> kernels_f32 = make_table<float>();
#if !FASTAUG_ISA_SIMD
extern const cpu::KernelTable<double> kernels_f64 = make_table<double>();
#endif

}  // namespace FASTAUG_ISA_NS
}  // namespace fastaug
