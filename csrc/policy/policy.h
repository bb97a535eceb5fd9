// Batched discrete policy ops (DESIGN.md K3): every image of a batch gets its own AutoAugment-style
// op and magnitude, and chains of L ops per image run in one call.
//
// Layout: the schemas live in csrc/fastaug.cpp; the per-image maths shared by CPU and CUDA in
// policy_math.h (op parameters, Pillow's affine / blend / LUT rules) and policy_engine.h (one image,
// one step, written against an "executor" that is a single CPU thread or a CUDA thread block) and
// policy_engine_backward.h (its gradient); policy_cpu.cpp and policy_cuda.cu launch them.
#pragma once

#include <torch/all.h>

#include "common/checks.h"

namespace fastaug {

// Op ids (DESIGN.md K3). kIdentity (-1) is fastaug's extension: "skip this chain position".
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

// Shape / dtype / device checks shared by both backends. The per-step parameter tensors are
// canonicalised by the Python layer: op (N, L) int64, magnitude and sign (N, L) float32,
// partner (N, L) int64, center (N, L, 2) int64; pairs is the (N, C, H, W) batch SamplePairing reads.
inline void check_policy_inputs(const at::Tensor& x, const at::Tensor& pairs, const at::Tensor& op,
                                const at::Tensor& magnitude, const at::Tensor& sign, const at::Tensor& partner,
                                const at::Tensor& center, int64_t fill) {
  check_dim(x, 4, "x");
  const auto st = x.scalar_type();
  TORCH_CHECK(st == at::kByte || at::isFloatingType(st), "x must be uint8 or floating point, got ", st);
  if (st != at::kByte) check_floating(x, "x");
  TORCH_CHECK(x.size(1) == 1 || x.size(1) == 3, "x must have 1 or 3 channels, got shape ", x.sizes());
  TORCH_CHECK(pairs.sizes() == x.sizes(), "pairs must have the shape of x ", x.sizes(), ", got ", pairs.sizes());
  check_same(x, "x", pairs, "pairs");
  check_dim(op, 2, "op");
  TORCH_CHECK(op.size(0) == x.size(0), "op must have shape (N, L) with N = ", x.size(0), ", got ", op.sizes());
  TORCH_CHECK(op.scalar_type() == at::kLong, "op must be int64, got ", op.scalar_type());
  TORCH_CHECK(magnitude.sizes() == op.sizes() && magnitude.scalar_type() == at::kFloat,
              "magnitude must be float32 of shape ", op.sizes(), ", got ", magnitude.scalar_type(), " ",
              magnitude.sizes());
  TORCH_CHECK(sign.sizes() == op.sizes() && sign.scalar_type() == at::kFloat, "sign must be float32 of shape ",
              op.sizes(), ", got ", sign.scalar_type(), " ", sign.sizes());
  TORCH_CHECK(partner.sizes() == op.sizes() && partner.scalar_type() == at::kLong,
              "partner must be int64 of shape ", op.sizes(), ", got ", partner.scalar_type(), " ", partner.sizes());
  TORCH_CHECK(center.dim() == 3 && center.size(0) == op.size(0) && center.size(1) == op.size(1) &&
                  center.size(2) == 2 && center.scalar_type() == at::kLong,
              "center must be int64 of shape (", op.size(0), ", ", op.size(1), ", 2), got ", center.scalar_type(),
              " ", center.sizes());
  for (const auto* t : {&op, &magnitude, &sign, &partner, &center})
    TORCH_CHECK(t->device() == x.device(), "policy parameters must be on the device of x (", x.device(),
                "), got ", t->device());
  TORCH_CHECK(fill >= 0 && fill <= 255, "fill must be in [0, 255], got ", fill);
}

// Value checks, run on the CPU (the CUDA kernel instead clamps every index it reads).
inline void check_policy_values(const at::Tensor& op, const at::Tensor& magnitude, const at::Tensor& partner,
                                int64_t N) {
  if (op.numel() == 0) return;
  const int64_t lo = op.min().item<int64_t>(), hi = op.max().item<int64_t>();
  TORCH_CHECK(lo >= kIdentity && hi < kNumPolicyOps, "op ids must be in [-1, 15], got values in [", lo, ", ", hi,
              "]");
  const bool mag_ok = magnitude.ge(0).logical_and(magnitude.le(1)).all().item<bool>();
  TORCH_CHECK(mag_ok, "magnitude must be in [0, 1]");
  const int64_t plo = partner.min().item<int64_t>(), phi = partner.max().item<int64_t>();
  TORCH_CHECK(plo >= 0 && phi < N, "partner indices must be in [0, ", N, "), got values in [", plo, ", ", phi, "]");
}

}  // namespace fastaug
