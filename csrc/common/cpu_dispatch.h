// Run-time CPU dispatch for loops the compiler vectorises by itself.
#pragma once

// Compile a function twice, for AVX2 and for baseline x86-64, picked once at load time (GCC/Clang
// ifunc); elsewhere a plain function. Hand-written AVX2 (bilinear_row_cpu.h) dispatches explicitly.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define FASTAUG_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FASTAUG_AVX2_CLONES
#endif
