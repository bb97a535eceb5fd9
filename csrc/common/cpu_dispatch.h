// Run-time choice of the instruction set the CPU kernels run, and the switch that forces one.
//
// The float32 kernels of the sampling and learned-transformation families exist in three copies
// (common/cpu_kernels.h): `default` (baseline x86-64 or any other CPU: the scalar maths of
// sampling.h / affine_flow.h / transform.h, the code the CUDA kernels run), `avx2` (AVX2 + FMA,
// 8 lanes) and `avx512` (AVX-512 F/BW/VL/DQ, 16 lanes). All three compute every element with the
// same operations in the same order, so they give bit-identical results (tests/ops/test_cpu_dispatch.py).
// The copy is chosen once per process: the best the CPU supports, capped by the environment variable
// FASTAUG_CPU_CAPABILITY=default|avx2|avx512 (named after PyTorch's ATEN_CPU_CAPABILITY), read at
// the first kernel call. No -march flag is needed: each copy is compiled for its own target inside
// a FASTAUG_ISA_*_BEGIN / FASTAUG_ISA_END region.
#pragma once

#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTAUG_X86_DISPATCH 1
#endif

// Compile a function twice, for AVX2 and for baseline x86-64, picked once at load time (GCC/Clang
// ifunc) by the CPU alone; elsewhere a plain function. (The kernels themselves dispatch by
// cpu_capability(), which the switch caps; this stays for loops outside them.)
#if defined(FASTAUG_X86_DISPATCH) && defined(__linux__)
#define FASTAUG_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FASTAUG_AVX2_CLONES
#endif

// Regions of code compiled for one instruction set: every function *defined* between BEGIN and END
// gets the target (templates included; functions defined before it, e.g. the standard library's, do
// not, so no copy of them built for a newer CPU can leak into baseline code). Code in a region lives
// in a namespace of its own (isa_avx2, isa_avx512), so the copies never share a symbol.
#ifdef FASTAUG_X86_DISPATCH
#define FASTAUG_ISA_AVX2_BEGIN \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,bmi,bmi2,lzcnt,popcnt,f16c\")")
#define FASTAUG_ISA_AVX512_BEGIN                                                                  \
  _Pragma("GCC push_options")                                                                     \
      _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx2,fma,bmi,bmi2,lzcnt,popcnt,f16c\")")
#define FASTAUG_ISA_END _Pragma("GCC pop_options")
#endif

namespace fastaug {

// Ordered: a capability includes the ones below it.
enum class CpuCapability : int { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

inline const char* capability_name(CpuCapability c) {
  switch (c) {
    case CpuCapability::kAvx512:
      return "avx512";
    case CpuCapability::kAvx2:
      return "avx2";
    default:
      return "default";
  }
}

// What this CPU can run (and this build has code for).
inline CpuCapability cpu_supported_capability() {
#ifdef FASTAUG_X86_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return CpuCapability::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return CpuCapability::kAvx2;
#endif
  return CpuCapability::kDefault;
}

namespace detail {

// The capability asked for by FASTAUG_CPU_CAPABILITY (unset or empty: no cap); `ok` false on a value
// that names none.
inline CpuCapability requested_capability(bool* ok, std::string* value) {
  *ok = true;
  const char* env = std::getenv("FASTAUG_CPU_CAPABILITY");
  if (!env || !*env) return CpuCapability::kAvx512;
  const std::string v(env);
  *value = v;
  if (v == "default") return CpuCapability::kDefault;
  if (v == "avx2") return CpuCapability::kAvx2;
  if (v == "avx512") return CpuCapability::kAvx512;
  *ok = false;
  return CpuCapability::kDefault;
}

struct CapabilityChoice {
  CpuCapability capability;
  bool valid;
  std::string value;
  CapabilityChoice() {
    const CpuCapability want = requested_capability(&valid, &value);
    const CpuCapability have = cpu_supported_capability();
    capability = static_cast<int>(want) < static_cast<int>(have) ? want : have;
  }
};

inline const CapabilityChoice& capability_choice() {
  static const CapabilityChoice choice;  // read once per process
  return choice;
}

}  // namespace detail

// The instruction set the kernels run: the best supported, capped by FASTAUG_CPU_CAPABILITY. A value
// that names no capability is an error at every kernel call (a typo must not silently test the
// wrong path).
inline CpuCapability cpu_capability() {
  const detail::CapabilityChoice& c = detail::capability_choice();
  TORCH_CHECK(c.valid, "fastaug: FASTAUG_CPU_CAPABILITY must be default, avx2 or avx512, got '", c.value, "'");
  return c.capability;
}

}  // namespace fastaug
