// The floor of the image gradient's scatter on this CPU: the additions of fastaug's CPU warp backward
// (common/bilinear_row_cpu.h, scatter_block: blocks of 16 pixels, left corners then right corners)
// into N images of C planes of H x W, each image's gradient zeroed first, sources displaced by `scale`
// pixels of noise per pixel (0: every pixel on its own corner, the vector path's case). Three programs:
//   additions only   plane by plane, the weights precomputed: no taps, no reads of x;
//   + weights        the kernel's structure, block by block and channel by channel, each block's
//                    weights (bilinear weight times the output gradient) computed before its additions;
//   + reads of x     and the four corners of x read for the coordinate gradient, as the kernel does.
//
//   g++ -O2 -ffp-contract=off -o /tmp/scatter_floor benchmarks/experiments/scatter_floor.cpp && /tmp/scatter_floor 0 1 3
//
// Prints the best of 10 runs per program and scale and its cost per addition (N*C*H*W*4 additions),
// to hold against benchmarks/experiments/warp_backward_breakdown.py's "x grad ns/add" (RESULTS.md).
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

// The kernel's structure: per block of pixels, per channel, the weights into a small array (and with
// `read_x` the corner values of x for the coordinate gradient, summed into the return value), then the
// additions in scatter_plane's order.
__attribute__((noinline)) float scatter_blocks(float* g, const float* x, const float* gout, const int32_t* off,
                                               const float* w, int pixels, bool read_x) {
  float acc = 0.f;
  for (int j0 = 0; j0 < pixels; j0 += kBlock)
    for (int c = 0; c < kC; ++c) {
      float* gc = g + c * pixels;
      const float* xc = x + c * pixels;
      alignas(64) float wg[4][kBlock];
      for (int l = 0; l < kBlock; ++l) {
        const float go = gout[c * pixels + j0 + l];
        if (read_x) {
          const float* q = xc + off[j0 + l];
          acc += go * ((q[1] - q[0]) + (q[kW + 1] - q[kW]));
        }
        for (int k = 0; k < 4; ++k) wg[k][l] = w[k * pixels + j0 + l] * go;
      }
      for (int l = 0; l < kBlock; ++l) {
        float* p = gc + off[j0 + l];
        p[0] += wg[0][l];
        p[kW] += wg[2][l];
      }
      for (int l = 0; l < kBlock; ++l) {
        float* p = gc + off[j0 + l];
        p[1] += wg[1][l];
        p[kW + 1] += wg[3][l];
      }
    }
  return acc;
}

int main(int argc, char** argv) {
  const int plane = kH * kW;
  const size_t image = static_cast<size_t>(kC) * plane;
  std::vector<float> grad(kN * image + kW + 1), x(kN * image + kW + 1), gout(kN * image), weights(4 * plane);
  std::vector<int32_t> off(static_cast<size_t>(kN) * plane);
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  for (float& v : weights) v = uniform(rng);
  for (float& v : x) v = uniform(rng);
  for (float& v : gout) v = uniform(rng);
  float sink = 0.f;
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
    const char* names[3] = {"additions only", "+ weights", "+ reads of x"};
    for (int program = 0; program < 3; ++program) {
      double best = 1e30;
      for (int run = 0; run < 10; ++run) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int n = 0; n < kN; ++n) {
          float* g = grad.data() + n * image;
          const int32_t* o = off.data() + static_cast<size_t>(n) * plane;
          std::memset(g, 0, sizeof(float) * image);
          if (program == 0)
            for (int c = 0; c < kC; ++c) scatter_plane(g + c * plane, o, weights.data(), plane);
          else
            sink += scatter_blocks(g, x.data() + n * image, gout.data() + n * image, o, weights.data(), plane,
                                   program == 2);
        }
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf("scale %.1f px, %-14s: %.2f ms for %dx%dx%dx%d, %.2f ns per addition\n", scale, names[program], best,
                  kN, kC, kH, kW, best * 1e6 / (4.0 * kN * kC * plane));
    }
  }
  return sink == 12345.f;  // keeps the reads of x
}
