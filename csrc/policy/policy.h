// Batched discrete policy ops (docs/design.md K3): every image of a batch gets its own AutoAugment-style
// op and magnitude, and chains of L ops per image run in one call.
//
// Layout: the schemas live in csrc/fastaug.cpp; the per-image maths shared by CPU and CUDA in
// policy_math.h (op parameters, Pillow's affine / blend / LUT rules) and policy_engine.h (one image,
// one step, written against an "executor" that is a single CPU thread or a CUDA thread block) and
// policy_engine_backward.h (its gradient); policy_cpu.cpp and policy_cuda.cu launch them.
#pragma once

#include <torch/all.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/checks.h"

namespace fastaug {

// Op ids (docs/design.md K3). kIdentity (-1) is fastaug's extension: "skip this chain position".
enum PolicyOp : int64_t {
  kIdentity = -1,
  kShearX = 0,
  kShearY = 1,
  kTranslateX = 2,
  kTranslateY = 3,
  kRotate = 4,
  kAutoContrast = 5,
  kInvert = 6,
  kEqualize = 7,
  kSolarize = 8,
  kPosterize = 9,
  kContrast = 10,
  kColor = 11,
  kBrightness = 12,
  kSharpness = 13,
  kCutout = 14,
  kSamplePairing = 15,
};
constexpr int64_t kNumPolicyOps = 16;

// Every tensor argument of apply_ops / apply_ops_backward, both backends. The per-step parameter
// tensors are canonicalised by the Python layer: op (N, L) int64, magnitude and sign (N, L) float32,
// partner (N, L) int64, center (N, L, 2) int64; pairs is the (N, C, H, W) batch SamplePairing reads.
// One plane must have fewer than 2^31 pixels: the histograms (Equalize, AutoContrast) count in 32 bits.
inline void check_policy_inputs(const at::Tensor& x, const at::Tensor& pairs, const at::Tensor& op,
                                const at::Tensor& magnitude, const at::Tensor& sign, const at::Tensor& partner,
                                const at::Tensor& center, int64_t fill, const at::Tensor* grad_out = nullptr) {
  TORCH_CHECK(x.defined(), "fastaug: x must be a defined tensor");
  const auto st = x.scalar_type();
  TORCH_CHECK(st == at::kByte || at::isFloatingType(st), "fastaug: x must be uint8 or floating point, got ", st);
  if (st != at::kByte) check_floating(x, "x");
  TORCH_CHECK(x.device().is_cpu() || x.device().is_cuda(), "fastaug: x must be a CPU or CUDA tensor, got ",
              x.device());
  check_dim(x, 4, "x");
  TORCH_CHECK(x.size(1) == 1 || x.size(1) == 3, "fastaug: x must have 1 or 3 channels, got shape ", x.sizes());
  TORCH_CHECK(x.numel() == 0 || x.size(2) * x.size(3) < (int64_t(1) << 31),
              "fastaug: apply_ops counts the pixels of a plane in 32 bits; got H * W = ", x.size(2), " * ", x.size(3));
  const int64_t N = x.size(0);
  check_like(pairs, "pairs", {N, x.size(1), x.size(2), x.size(3)}, x, "x");
  check_arg(op, "op", {N, kAnySize}, at::kLong, x.device(), "x");
  const int64_t L = op.size(1);
  // Their shapes follow op's (N, L); op is on the device of x.
  check_arg(magnitude, "magnitude", {N, L}, at::kFloat, x.device(), "op");
  check_arg(sign, "sign", {N, L}, at::kFloat, x.device(), "op");
  check_arg(partner, "partner", {N, L}, at::kLong, x.device(), "op");
  check_arg(center, "center", {N, L, 2}, at::kLong, x.device(), "op");
  if (grad_out) check_grad_out(*grad_out, x);
  TORCH_CHECK(fill >= 0 && fill <= 255, "fastaug: fill must be in [0, 255], got ", fill);
}

// apply_ops_backward's arguments: those of apply_ops plus grad_out, a floating-point image (uint8 has
// no gradient) and one step per call (the Python layer splits longer chains).
inline void check_policy_backward_inputs(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& pairs,
                                         const at::Tensor& op, const at::Tensor& magnitude, const at::Tensor& sign,
                                         const at::Tensor& partner, const at::Tensor& center, int64_t fill) {
  check_policy_inputs(x, pairs, op, magnitude, sign, partner, center, fill, &grad_out);
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "fastaug: apply_ops_backward: x must be floating point");
  TORCH_CHECK(op.size(1) == 1, "fastaug: apply_ops_backward handles one step (op of shape (N, 1)), got ",
              op.sizes(), "; fastaug.apply_ops splits longer chains into steps when gradients are needed");
}

// The value the geometric ops and Cutout write, in the image's scale: fill itself for uint8, else
// fill / 255 computed in double and rounded once to scalar_t. Computed on the host and passed to both
// backends' kernels, so a float64 image gets the same (exact double) fill on CPU and CUDA.
template <typename scalar_t>
scalar_t fill_value(int64_t fill) {
  if constexpr (std::is_same<scalar_t, uint8_t>::value) {
    return static_cast<uint8_t>(fill);
  } else {
    return static_cast<scalar_t>(static_cast<double>(fill) / 255.0);
  }
}

// Value checks, run on the CPU over the raw values (op, magnitude, sign, partner: contiguous CPU tensors
// of apply_ops' dtypes) in one pass each; the CUDA kernel instead clamps every index it reads (and
// apply_ops checks the values in Python there).
inline void check_policy_values(const at::Tensor& op, const at::Tensor& magnitude, const at::Tensor& sign,
                                const at::Tensor& partner, int64_t N) {
  const int64_t n = op.numel();
  if (n == 0) return;
  const int64_t* o = op.data_ptr<int64_t>();
  const float* m = magnitude.data_ptr<float>();
  const float* s = sign.data_ptr<float>();
  const int64_t* p = partner.data_ptr<int64_t>();
  int64_t lo = o[0], hi = o[0], plo = p[0], phi = p[0];
  bool mag_ok = true, sign_ok = true;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, o[i]);
    hi = std::max(hi, o[i]);
    plo = std::min(plo, p[i]);
    phi = std::max(phi, p[i]);
    mag_ok = mag_ok && m[i] >= 0.0f && m[i] <= 1.0f;  // NaN fails too
    sign_ok = sign_ok && s[i] == s[i];                 // a NaN sign would silently count as +1
  }
  TORCH_CHECK(lo >= kIdentity && hi < kNumPolicyOps, "op ids must be in [-1, 15], got values in [", lo, ", ", hi,
              "]");
  TORCH_CHECK(mag_ok, "magnitude must be in [0, 1]");
  TORCH_CHECK(sign_ok, "sign must not be NaN");
  TORCH_CHECK(plo >= 0 && phi < N, "partner indices must be in [0, ", N, "), got values in [", plo, ", ", phi, "]");
}

}  // namespace fastaug
