// The floor of the image gradient's scatter on this CPU: the additions of fastaug's CPU warp backward
// (common/bilinear_row_cpu.h, scatter_block: blocks of 16 pixels, left corners then right corners)
// into N images of C planes of H x W, each image's gradient zeroed first, sources displaced by `scale`
// pixels of noise per pixel (0: every pixel on its own corner, the vector path's case). Three programs:
//   additions only   plane by plane, the weights precomputed: no taps, no reads of x;
//   + weights        the kernel's structure, block by block and channel by channel, each block's
//                    weights (bilinear weight times the output gradient) computed before its additions;
//   + reads of x     and the four corners of x read for the coordinate gradient, as the kernel does.
// and two other orders of the same additions (each element gets the same ones; only their order changes):
//   pairs, even/odd  a pixel's left and right corners added as one 8-byte pair (half the loads and
//                    stores), the even pixels of a block before the odd ones (neighbours' pairs overlap
//                    by one float; pixel-major order would stall store forwarding on every pixel).
//   AVX-512 scatter  (where the CPU has AVX-512 CD) per block, per corner, the 16 pixels' additions as one
//                    vgatherdps, add, vscatterdps; lanes that share a slot (vpconflictd) wait for a later
//                    round, so each slot still takes its additions in pixel order within a corner, but the
//                    corners go 0, 2, 1, 3 for the whole block (corner-major): another order, for timing.
// An argument "sD" instead of "D" draws a smooth flow: D px of noise on a 16x coarser grid, bilinearly
// upsampled (a registration field), instead of D px of noise per pixel.
//
//   g++ -O2 -ffp-contract=off -o /tmp/scatter_floor benchmarks/experiments/scatter_floor.cpp && /tmp/scatter_floor 0 1 3 s3
//
// Prints the best of 10 runs per program and scale and its cost per addition (N*C*H*W*4 additions),
// to hold against benchmarks/experiments/warp_backward_breakdown.py's "x grad ns/add" (RESULTS.md).
#include <emmintrin.h>  // SSE2, every x86-64 CPU: the 8-byte pair loads and stores
#include <immintrin.h>  // the AVX-512 program, compiled for its own target and run only where supported

#include <algorithm>
#include <cmath>
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

// [p[0], p[1]] += [w[0], w[1]] as one 8-byte load, add and store.
inline void pair_add(float* p, const float* w) {
  const __m128 v = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(p)));
  const __m128 a = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(w)));
  _mm_store_sd(reinterpret_cast<double*>(p), _mm_castps_pd(_mm_add_ps(v, a)));
}

// The same additions as scatter_plane, paired: per block, the even pixels' pairs (top, then bottom), then
// the odd pixels'. wp holds each pixel's weights interleaved (w0 w1 w2 w3).
__attribute__((noinline)) void scatter_plane_pairs(float* g, const int32_t* off, const float* wp, int pixels) {
  for (int j0 = 0; j0 < pixels; j0 += kBlock)
    for (int parity = 0; parity < 2; ++parity)
      for (int l = j0 + parity; l < j0 + kBlock; l += 2) {
        float* p = g + off[l];
        pair_add(p, wp + 4 * l);
        pair_add(p + kW, wp + 4 * l + 2);
      }
}

// scatter_plane's additions by AVX-512 gathers and scatters: per block and corner (0, 2, 1, 3), the lanes
// whose slot no earlier pending lane shares (vpconflictd) gathered, added and scattered, round after round.
__attribute__((noinline, target("avx512f,avx512cd"))) void scatter_plane_avx512(float* g, const int32_t* off,
                                                                                const float* w, int pixels) {
  static_assert(kBlock == 16, "one vector of 16 lanes per block");
  const int32_t corner[4] = {0, kW, 1, kW + 1};
  const int weight[4] = {0, 2, 1, 3};
  for (int j0 = 0; j0 < pixels; j0 += kBlock) {
    const __m512i o = _mm512_loadu_si512(off + j0);
    const __m512i earlier = _mm512_conflict_epi32(o);  // lane l: the lanes before it with the same slot
    for (int k = 0; k < 4; ++k) {
      const __m512i idx = _mm512_add_epi32(o, _mm512_set1_epi32(corner[k]));
      const __m512 v = _mm512_loadu_ps(w + weight[k] * pixels + j0);
      for (__mmask16 todo = 0xffff; todo;) {
        const __mmask16 ready = _mm512_mask_testn_epi32_mask(todo, earlier, _mm512_set1_epi32(todo));
        const __m512 sum = _mm512_add_ps(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), ready, idx, g, 4), v);
        _mm512_mask_i32scatter_ps(g, ready, idx, sum, 4);
        todo &= static_cast<__mmask16>(~ready);
      }
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
  std::vector<float> grad(kN * image + kW + 1), x(kN * image + kW + 1), gout(kN * image), weights(4 * plane),
      interleaved(4 * plane);
  std::vector<int32_t> off(static_cast<size_t>(kN) * plane);
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  for (float& v : weights) v = uniform(rng);
  for (float& v : x) v = uniform(rng);
  for (float& v : gout) v = uniform(rng);
  for (int l = 0; l < plane; ++l)
    for (int q = 0; q < 4; ++q) interleaved[4 * l + q] = weights[q * plane + l];
  float sink = 0.f;
  for (int a = 1; a < argc; ++a) {
    const bool smooth = argv[a][0] == 's';
    const float scale = static_cast<float>(std::atof(argv[a] + (smooth ? 1 : 0)));
    std::normal_distribution<float> noise(0.f, scale > 0 ? scale : 1.f);
    constexpr int kCoarse = kH / 16 + 2;  // the smooth flow's grid (kH == kW)
    std::vector<float> cx(kCoarse * kCoarse), cy(kCoarse * kCoarse);
    // Bilinear upsampling of a coarse map at pixel (i, j).
    auto upsampled = [&](const std::vector<float>& m, int i, int j) {
      const int a0 = i / 16, b0 = j / 16;
      const float ti = (i % 16) / 16.f, tj = (j % 16) / 16.f;
      const float* r0 = m.data() + a0 * kCoarse + b0;
      const float* r1 = r0 + kCoarse;
      return (1 - ti) * ((1 - tj) * r0[0] + tj * r0[1]) + ti * ((1 - tj) * r1[0] + tj * r1[1]);
    };
    for (int n = 0; n < kN; ++n) {
      for (float& v : cx) v = scale > 0 ? noise(rng) : 0.f;
      for (float& v : cy) v = scale > 0 ? noise(rng) : 0.f;
      for (int i = 0; i < kH; ++i)
        for (int j = 0; j < kW; ++j) {
          const float dx = smooth ? upsampled(cx, i, j) : (scale > 0 ? noise(rng) : 0.f);
          const float dy = smooth ? upsampled(cy, i, j) : (scale > 0 ? noise(rng) : 0.f);
          // corner 0 of the source, kept where all four corners are inside (the all-valid blocks)
          int x0 = static_cast<int>(std::floor(j + dx));
          int y0 = static_cast<int>(std::floor(i + dy));
          x0 = std::min(std::max(x0, 0), kW - 2);
          y0 = std::min(std::max(y0, 0), kH - 2);
          off[static_cast<size_t>(n) * plane + i * kW + j] = y0 * kW + x0;
        }
    }
    const char* names[5] = {"additions only", "+ weights", "+ reads of x", "pairs, even/odd", "AVX-512 scatter"};
    const int programs = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") ? 5 : 4;
    for (int program = 0; program < programs; ++program) {
      double best = 1e30;
      for (int run = 0; run < 10; ++run) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int n = 0; n < kN; ++n) {
          float* g = grad.data() + n * image;
          const int32_t* o = off.data() + static_cast<size_t>(n) * plane;
          std::memset(g, 0, sizeof(float) * image);
          if (program == 0)
            for (int c = 0; c < kC; ++c) scatter_plane(g + c * plane, o, weights.data(), plane);
          else if (program == 3)
            for (int c = 0; c < kC; ++c) scatter_plane_pairs(g + c * plane, o, interleaved.data(), plane);
          else if (program == 4)
            for (int c = 0; c < kC; ++c) scatter_plane_avx512(g + c * plane, o, weights.data(), plane);
          else
            sink += scatter_blocks(g, x.data() + n * image, gout.data() + n * image, o, weights.data(), plane,
                                   program == 2);
        }
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf("%s %.1f px, %-15s: %.2f ms for %dx%dx%dx%d, %.2f ns per addition\n", smooth ? "smooth" : "noise",
                  scale, names[program], best, kN, kC, kH, kW, best * 1e6 / (4.0 * kN * kC * plane));
    }
    if (programs == 5) {  // the vector program adds the same terms: equal sums up to their order's rounding
      std::vector<float> a(plane + kW + 1, 0.f), b(plane + kW + 1, 0.f);
      scatter_plane(a.data(), off.data(), weights.data(), plane);
      scatter_plane_avx512(b.data(), off.data(), weights.data(), plane);
      double worst = 0;
      for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / (std::fabs(a[i]) + 1e-6));
      std::printf("  AVX-512 scatter against additions only, largest relative difference: %.1e\n", worst);
    }
  }
  return sink == 12345.f;  // keeps the reads of x
}
