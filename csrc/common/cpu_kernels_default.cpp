// The default copy of the CPU kernels (common/cpu_kernels.h): baseline instruction set, the scalar
// maths of sampling.h, float32 and float64.
#include "common/cpu_kernels_deps.h"

#define FASTAUG_ISA_NS isa_default
#define FASTAUG_ISA_SIMD 0
#include "common/cpu_kernels_isa.h"
