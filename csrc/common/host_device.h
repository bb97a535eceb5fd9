// FASTAUG_HD marks the per-element maths both backends run (padding, bilinear corners and gradients,
// eq. 20, the colour filter, the box filter's counts, the policy ops' Pillow arithmetic):
// __host__ __device__ under nvcc and nothing for the C++ compiler, so the CPU kernels call the very
// functions the CUDA kernels do and the CPU tests exercise the GPU's maths.
// FASTAUG_HD_FORCEINLINE also forces inlining in device code, for helpers that must never become
// calls (the policy ops' rounding-exact arithmetic).
#pragma once

#ifdef __CUDACC__
#define FASTAUG_HD __host__ __device__
#define FASTAUG_HD_FORCEINLINE __host__ __device__ __forceinline__
#else
#define FASTAUG_HD
#define FASTAUG_HD_FORCEINLINE inline
#endif
