// The fastaug operator library: every op's schema, in one place, plus the pybind11 module that
// carries build information and the eager path's entry points (csrc/eager.cpp). Kernels register
// themselves per backend next to their code (csrc/<family>/<family>_cpu.cpp,
// csrc/<family>/<family>_cuda.cu); fake kernels and autograd are registered from Python
// (fastaug/ops/<family>.py).
#include <torch/extension.h>

#include "common/box_filter.h"
#include "common/cpu_dispatch.h"
#include "eager.h"

#ifndef FASTAUG_TORCH_VERSION
#define FASTAUG_TORCH_VERSION "unknown"
#endif

TORCH_LIBRARY(fastaug, m) {
  // ---- K1/K2 flow warp family (csrc/warp; docs/design.md K1, K2) ------------------------------------------------------
  // padding_mode: 0 zeros, 1 border, 2 reflection (csrc/common/sampling.h).
  m.def("warp(Tensor x, Tensor flow, int padding_mode, bool align_corners) -> Tensor");
  m.def(
      "warp_backward(Tensor grad_out, Tensor x, Tensor flow, int padding_mode, bool align_corners, "
      "bool need_x_grad) -> (Tensor, Tensor)");
  m.def("affine_flow_warp(Tensor x, Tensor s_w, Tensor s_b, int smooth, int padding_mode) -> Tensor");
  m.def(
      "affine_flow_warp_backward(Tensor grad_out, Tensor x, Tensor s_w, Tensor s_b, int smooth, "
      "int padding_mode, bool need_x_grad) -> (Tensor, Tensor, Tensor)");

  // ---- K3 batched discrete policy ops (csrc/policy) ----------------------------------------------
  // op (N, L) int64 in [-1, 15] (-1: identity), magnitude / sign (N, L) float32, partner (N, L) int64,
  // center (N, L, 2) int64 (row, col) of Cutout; pairs: the batch SamplePairing reads; fill in [0, 255].
  m.def(
      "apply_ops(Tensor x, Tensor pairs, Tensor op, Tensor magnitude, Tensor sign, Tensor partner, "
      "Tensor center, int fill) -> Tensor");
  m.def(
      "apply_ops_backward(Tensor grad_out, Tensor x, Tensor pairs, Tensor op, Tensor magnitude, Tensor sign, "
      "Tensor partner, Tensor center, int fill, bool need_pairs_grad) -> (Tensor, Tensor)");
  // ---- K2 learned transformation family (csrc/transform) ---------------------------------------
  // mode: 0 parallel, 1 serial (csrc/transform/transform.h). params: s_w 4, s_b 2, c_w C*C, c_b C.
  m.def("appearance(Tensor x, Tensor c_w, Tensor c_b, int smooth) -> Tensor");
  m.def(
      "appearance_backward(Tensor grad_out, Tensor x, Tensor c_w, Tensor c_b, int smooth, bool need_x_grad) "
      "-> (Tensor, Tensor, Tensor)");
  m.def("transform(Tensor x, Tensor params, int smooth, int mode, int padding_mode) -> Tensor");
  m.def(
      "transform_backward(Tensor grad_out, Tensor x, Tensor params, int smooth, int mode, int padding_mode, "
      "bool need_x_grad) -> (Tensor, Tensor)");
  // ---- K4 last-layer influence family (csrc/influence) -----------------------------------------
  // h (N, D) features, p (N, C) probabilities, v (K, C, D+1) directions [W | b]; returns
  // HV = scale * sum_i weight_i (h~_i h~_i^T kron A_i) V + damping * V, shape (K, C, D+1).
  m.def("last_layer_hvp(Tensor h, Tensor p, Tensor v, Tensor? weight, float scale, float damping) -> Tensor");
  // score_i = delta_i^T S h~_i with delta_i = softmax(logits_i) - onehot(target_i), s (C, D+1).
  m.def("influence_score(Tensor h, Tensor logits, Tensor target, Tensor s) -> Tensor");
  // Returns (grad_h, grad_logits).
  m.def(
      "influence_score_backward(Tensor grad, Tensor h, Tensor logits, Tensor target, Tensor s) -> "
      "(Tensor, Tensor)");
}

namespace {

pybind11::dict build_info() {
  pybind11::dict info;
  info["torch_version"] = FASTAUG_TORCH_VERSION;
#ifdef FASTAUG_WITH_CUDA
  info["cuda"] = true;
  info["cuda_archs"] = FASTAUG_CUDA_ARCHS;
#else
  info["cuda"] = false;
  info["cuda_archs"] = "";
#endif
  // The copy of the CPU kernels this process runs (common/cpu_dispatch.h) and the best this CPU has.
  const fastaug::detail::CapabilityChoice& cpu = fastaug::detail::capability_choice();
  info["cpu_capability"] = cpu.valid ? fastaug::capability_name(cpu.capability) : "invalid";
  info["cpu_supported"] = fastaug::capability_name(fastaug::cpu_supported_capability());
  return info;
}

// Limits the Python layer validates against, so that each lives in one place (the C++ that needs it).
pybind11::dict limits() {
  pybind11::dict d;
  d["max_smooth"] = fastaug::kMaxSmooth;
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, module) {
  module.doc() = "fastaug compiled kernels (ops are registered under torch.ops.fastaug)";
  module.def("build_info", &build_info,
             "Dict with the torch version fastaug was built against, whether CUDA kernels are compiled, "
             "and the CUDA architectures they target.");
  module.def("limits", &limits, "Dict of the limits the kernels enforce (max_smooth: the widest box window).");
  fastaug::bind_eager_ops(module);
}
