// Last-layer influence family (docs/design.md K4): the softmax cross-entropy Hessian-vector product of a
// last linear layer and the per-sample influence objective s·∇l = δᵀ S h̃.
//
// Both ops are "GEMM, fused per-sample softmax step, GEMM". The GEMMs go to ATen (MKL/oneDNN on CPU,
// cuBLAS on CUDA); the step in between is ours: one pass over the (N, K·C) intermediate, done by a
// vectorised parallel loop on CPU (influence_cpu.cpp) and a warp-per-row kernel on CUDA
// (influence_cuda.cu). The GEMM drivers below are shared by both backends and take the fused step as
// a callable. Schemas live in csrc/fastaug.cpp.
//
// Layout: h (N, D) features, p (N, C) probabilities, v (K, C, D+1) directions = [W | b] blocks,
// s (C, D+1) the influence direction S = reshape(s_val), target (N,) int64 labels.
#pragma once

#include <torch/all.h>

#include <cmath>
#include <functional>
#include <string>
#include <tuple>

#include "common/checks.h"

namespace fastaug {

// Every tensor argument of last_layer_hvp: h (N, D) floating; p (N, C), v (K, C, D+1) and weight (N)
// of the dtype and device of h.
inline void check_hvp_inputs(const at::Tensor& h, const at::Tensor& p, const at::Tensor& v,
                             const c10::optional<at::Tensor>& weight, double scale, double damping) {
  check_floating(h, "h");
  check_dim(h, 2, "h");
  const int64_t N = h.size(0), D = h.size(1);
  check_like(p, "p", {N, kAnySize}, h, "h");
  check_like(v, "v", {kAnySize, p.size(1), D + 1}, h, "h");
  if (weight.has_value() && weight->defined()) check_like(*weight, "weight", {N}, h, "h");
  TORCH_CHECK(damping >= 0, "fastaug: damping must be >= 0, got ", damping);
  TORCH_CHECK(std::isfinite(scale) && std::isfinite(damping), "fastaug: scale and damping must be finite");
}

// Every tensor argument of influence_score (and its backward's grad, (N,) of the dtype of logits):
// h (N, D) floating; logits (N, C) and s (C, D+1) floating on the device of h (on CPU also of its
// dtype; CUDA mixes dtypes, accumulating in float32); target (N,) int64.
inline void check_score_inputs(const at::Tensor& h, const at::Tensor& logits, const at::Tensor& target,
                               const at::Tensor& s, const at::Tensor* grad = nullptr) {
  check_floating(h, "h");
  check_dim(h, 2, "h");
  const int64_t N = h.size(0), D = h.size(1);
  const bool cpu = h.device().is_cpu();
  check_floating(logits, "logits");
  check_arg(logits, "logits", {N, kAnySize}, cpu ? h.scalar_type() : logits.scalar_type(), h.device(), "h");
  check_floating(s, "s");
  check_arg(s, "s", {logits.size(1), D + 1}, cpu ? h.scalar_type() : s.scalar_type(), h.device(), "h");
  check_arg(target, "target", {N}, at::kLong, h.device(), "h");
  if (grad) check_arg(*grad, "grad", {N}, logits.scalar_type(), h.device(), "logits");
}

// The fused step of the HVP: u (N, K*C) in place. When `bias` (K*C) is defined the step first adds
// it to every row (the GEMM before it then needs no broadcast copy of the bias); then
// R_ik = coef_i · p_i ⊙ (u_ik − p_i·u_ik) with coef_i = scale · weight_i (weight may be undefined).
// Returns the column sums of R (the bias column of HV), or an undefined tensor when the backend
// leaves that reduction to the driver.
using HvpStep = std::function<at::Tensor(at::Tensor& u, const at::Tensor& bias, const at::Tensor& p,
                                         const at::Tensor& weight, int64_t K, double scale)>;

// HV = scale · Σ_i w_i R_i h̃_iᵀ + damping · V for K directions at once, two GEMMs and one fused pass.
// step_adds_bias: the step adds the bias row itself (CPU: saves a pass over the (N, K·C) matrix);
// otherwise the first GEMM does (cuBLAS folds it in as beta = 1).
inline at::Tensor last_layer_hvp_driver(const at::Tensor& h_, const at::Tensor& p_, const at::Tensor& v_,
                                        const c10::optional<at::Tensor>& weight_, double scale, double damping,
                                        const HvpStep& step, bool step_adds_bias) {
  check_hvp_inputs(h_, p_, v_, weight_, scale, damping);
  const at::Tensor h = h_.contiguous(), p = p_.contiguous(), v = v_.contiguous();
  const at::Tensor weight = (weight_.has_value() && weight_->defined()) ? weight_->contiguous() : at::Tensor();
  const int64_t N = h.size(0), D = h.size(1), C = p.size(1), K = v.size(0);
  at::Tensor out = damping != 0 ? v * damping : at::zeros_like(v);
  if (K == 0 || C == 0 || N == 0) return out;
  const at::Tensor v2 = v.view({K * C, D + 1});
  const at::Tensor v_w = v2.narrow(1, 0, D), v_b = v2.select(1, D);
  // U = V H̃ᵀ for every direction at once: (N, D) · (D, K·C) plus the bias row.
  at::Tensor u = step_adds_bias ? at::mm(h, v_w.t()) : at::addmm(v_b, h, v_w.t()).contiguous();
  const at::Tensor col_sums = step(u, step_adds_bias ? v_b.contiguous() : at::Tensor(), p, weight, K, scale);
  at::Tensor out2 = out.view({K * C, D + 1});
  at::Tensor out_w = out2.narrow(1, 0, D);
  // R H: (K·C, N) · (N, D). (Splitting this long reduction over sample blocks with a batched GEMM
  // was measured on an H100 and was slower than cuBLAS's own choice at every benchmark size.)
  out_w.addmm_(u.t(), h);
  out2.select(1, D).add_(col_sums.defined() ? col_sums : u.sum(0));  // R 1: the bias column
  return out;
}

// The fused steps of the influence objective.
// forward: score_i = δ_iᵀ q_i with p_i = softmax(z_i), δ_i = p_i − e_{y_i}, q = S h̃ (N, C).
using ScoreStep = std::function<at::Tensor(const at::Tensor& q, const at::Tensor& logits, const at::Tensor& target)>;
// backward: grad_logits_i = g_i · p_i ⊙ (q_i − p_i·q_i), coef_i = g_i · δ_i (so grad_h = coef · S_W).
using ScoreBackStep = std::function<std::tuple<at::Tensor, at::Tensor>(
    const at::Tensor& grad, const at::Tensor& q, const at::Tensor& logits, const at::Tensor& target)>;

// q = h S_Wᵀ + s_b, computed in the GEMM dtype of h (float32 accumulation inside cuBLAS for half).
inline at::Tensor score_q(const at::Tensor& h, const at::Tensor& s) {
  const int64_t D = h.size(1);
  const at::Tensor sh = s.to(h.scalar_type());
  return at::addmm(sh.select(1, D), h, sh.narrow(1, 0, D).t());
}

inline at::Tensor influence_score_driver(const at::Tensor& h_, const at::Tensor& logits_, const at::Tensor& target_,
                                         const at::Tensor& s_, const ScoreStep& step) {
  check_score_inputs(h_, logits_, target_, s_);
  const at::Tensor h = h_.contiguous(), logits = logits_.contiguous(), target = target_.contiguous();
  const at::Tensor q = score_q(h, s_.contiguous()).to(logits.scalar_type());
  return step(q, logits, target);
}

inline std::tuple<at::Tensor, at::Tensor> influence_score_backward_driver(
    const at::Tensor& grad_, const at::Tensor& h_, const at::Tensor& logits_, const at::Tensor& target_,
    const at::Tensor& s_, const ScoreBackStep& step) {
  check_score_inputs(h_, logits_, target_, s_, &grad_);
  const at::Tensor h = h_.contiguous(), logits = logits_.contiguous(), target = target_.contiguous();
  const at::Tensor s = s_.contiguous();
  const at::Tensor q = score_q(h, s).to(logits.scalar_type());
  at::Tensor grad_logits, coef;
  std::tie(grad_logits, coef) = step(grad_.contiguous(), q, logits, target);
  // grad_h = coef · S_W: (N, C) · (C, D) in the dtype of h.
  const int64_t D = h.size(1);
  at::Tensor grad_h = at::mm(coef.to(h.scalar_type()), s.to(h.scalar_type()).narrow(1, 0, D));
  return {grad_h, grad_logits};
}

}  // namespace fastaug
