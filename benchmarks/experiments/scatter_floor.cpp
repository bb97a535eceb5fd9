// The floor of the image gradient's scatter on this CPU: the additions of fastaug's CPU warp backward
// (common/bilinear_row_cpu.h, scatter_block: blocks of 16 pixels, left corners then right corners)
// and nothing else -- no taps, no gathers of x, no weights to compute -- into N images of C planes of
// H x W, each image's gradient zeroed first, sources displaced by `scale` pixels of noise per pixel
// (0: every pixel on its own corner, the vector path's case).
//
//   g++ -O2 -o /tmp/scatter_floor benchmarks/experiments/scatter_floor.cpp && /tmp/scatter_floor 0 3
//
// Prints the best of 15 runs per scale and its cost per addition (N*C*H*W*4 additions), to hold
// against benchmarks/experiments/warp_backward_breakdown.py's "x grad ns/add" (RESULTS.md).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

constexpr int kN = 16, kC = 3, kH = 224, kW = 224, kBlock = 16;

// One plane's additions, in the kernel's order: per block, corners 0 and 2 of every pixel, then 1 and 3.
__attribute__((noinline)) void scatter_plane(float* g, const int32_t* off, const float* w, int pixels) {
  const float *w0 = w, *w1 = w + pixels, *w2 = w + 2 * pixels, *w3 = w + 3 * pixels;
  for (int j0 = 0; j0 < pixels; j0 += kBlock) {
    for (int l = j0; l < j0 + kBlock; ++l) {
      float* p = g + off[l];
      p[0] += w0[l];
      p[kW] += w2[l];
    }
    for (int l = j0; l < j0 + kBlock; ++l) {
      float* p = g + off[l];
      p[1] += w1[l];
      p[kW + 1] += w3[l];
    }
  }
}

int main(int argc, char** argv) {
  const int plane = kH * kW;
  std::vector<float> grad(static_cast<size_t>(kN) * kC * plane + kW + 1), weights(4 * plane);
  std::vector<int32_t> off(static_cast<size_t>(kN) * plane);
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  for (float& v : weights) v = uniform(rng);
  for (int a = 1; a < argc; ++a) {
    const float scale = static_cast<float>(std::atof(argv[a]));
    std::normal_distribution<float> noise(0.f, scale > 0 ? scale : 1.f);
    for (int n = 0; n < kN; ++n)
      for (int i = 0; i < kH; ++i)
        for (int j = 0; j < kW; ++j) {
          // corner 0 of the source, kept where all four corners are inside (the all-valid blocks)
          int x0 = static_cast<int>(j + (scale > 0 ? noise(rng) : 0.f));
          int y0 = static_cast<int>(i + (scale > 0 ? noise(rng) : 0.f));
          x0 = std::min(std::max(x0, 0), kW - 2);
          y0 = std::min(std::max(y0, 0), kH - 2);
          off[static_cast<size_t>(n) * plane + i * kW + j] = y0 * kW + x0;
        }
    double best = 1e30;
    for (int run = 0; run < 15; ++run) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int n = 0; n < kN; ++n) {
        float* g = grad.data() + static_cast<size_t>(n) * kC * plane;
        std::memset(g, 0, sizeof(float) * kC * plane);
        for (int c = 0; c < kC; ++c) scatter_plane(g + c * plane, off.data() + static_cast<size_t>(n) * plane,
                                                   weights.data(), plane);
      }
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("scale %.1f px: %.2f ms for %dx%dx%dx%d, %.2f ns per addition\n", scale, best, kN, kC, kH, kW,
                best * 1e6 / (4.0 * kN * kC * plane));
  }
  return 0;
}
