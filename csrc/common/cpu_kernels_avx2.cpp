// The AVX2 copy of the CPU kernels (common/cpu_kernels.h): float32, 8 lanes.
#include "common/cpu_kernels_deps.h"

#ifdef FASTAUG_X86_DISPATCH
FASTAUG_ISA_AVX2_BEGIN
#define FASTAUG_ISA_NS isa_avx2
#define FASTAUG_ISA_SIMD 1
#define FASTAUG_ISA_VEC avx2
#include "common/cpu_kernels_isa.h"
FASTAUG_ISA_END
#endif
