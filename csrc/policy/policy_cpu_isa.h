// Which CPU path apply_ops takes: the instruction-set level of its fast kernels (chosen at run time,
// so one portable build uses AVX2 / AVX-512 where the CPU has them) and a switch back to the shared
// engine, the code the CUDA kernel runs (tests compare every path against it).
//
// Environment, read at every call so that one test process can run every path:
// * FASTAUG_CPU_CAPABILITY = default | avx2 | avx512 caps the level (like ATen's ATEN_CPU_CAPABILITY;
//   a level the CPU lacks falls back to the best one it has): the switch of every CPU kernel family,
//   parsed by common/cpu_dispatch.h. The image kernels read it once per process, apply_ops at every
//   call (one test process runs each of its paths).
// * FASTAUG_POLICY_CPU_ENGINE = 1 runs every step through policy_engine.h's CPU executor instead.
#pragma once

#include <c10/util/Exception.h>

#include "common/cpu_dispatch.h"

#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define FASTAUG_POLICY_X86 1
#endif

namespace fastaug {
namespace policy {

// kAvx512 means AVX-512 F/BW/VL plus VBMI (byte permutes: the 256-entry table lookups).
enum class CpuIsa : int { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

inline CpuIsa detected_cpu_isa() {
#ifdef FASTAUG_POLICY_X86
  static const CpuIsa isa = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi"))
      return CpuIsa::kAvx512;
    if (__builtin_cpu_supports("avx2")) return CpuIsa::kAvx2;
    return CpuIsa::kDefault;
  }();
  return isa;
#else
  return CpuIsa::kDefault;
#endif
}

// The level the kernels use now: the detected one, capped by FASTAUG_CPU_CAPABILITY through the one
// parser every CPU kernel family shares (common/cpu_dispatch.h); apply_ops reads it at every call.
inline CpuIsa policy_cpu_isa() {
  const CpuIsa best = detected_cpu_isa();
  bool ok = true;
  std::string value;
  const CpuCapability want = ::fastaug::detail::requested_capability(&ok, &value);
  TORCH_CHECK(ok, "fastaug: FASTAUG_CPU_CAPABILITY must be default, avx2 or avx512, got '", value, "'");
  const int cap = static_cast<int>(want);  // CpuCapability and CpuIsa share their order and values
  return cap < static_cast<int>(best) ? static_cast<CpuIsa>(cap) : best;
}

// True when FASTAUG_POLICY_CPU_ENGINE=1 asks for the shared engine on the CPU.
inline bool policy_cpu_engine_forced() {
  const char* env = std::getenv("FASTAUG_POLICY_CPU_ENGINE");
  return env != nullptr && std::strcmp(env, "1") == 0;
}

}  // namespace policy
}  // namespace fastaug
