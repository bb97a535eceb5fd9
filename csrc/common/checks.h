// Input checks shared by the C++ entry points. The Python layer validates first with friendlier
// messages; these guarantee that a direct torch.ops.fastaug call can never read or write out of bounds.
#pragma once

#include <torch/all.h>

#include <string>

namespace fastaug {

inline void check_floating(const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), name, " must be a floating-point tensor, got ",
              t.scalar_type());
  TORCH_CHECK(t.device().is_cuda() || (t.scalar_type() != at::kHalf && t.scalar_type() != at::kBFloat16),
              name, ": float16/bfloat16 are supported on CUDA only; use float32 or float64 on CPU, got ",
              t.scalar_type());
}

inline void check_dim(const at::Tensor& t, int64_t dim, const char* name) {
  TORCH_CHECK(t.dim() == dim, name, " must be a ", dim, "-D tensor, got shape ", t.sizes());
}

inline void check_same(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  TORCH_CHECK(a.device() == b.device(), a_name, " and ", b_name, " must be on the same device, got ", a.device(),
              " and ", b.device());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), a_name, " and ", b_name, " must have the same dtype, got ",
              a.scalar_type(), " and ", b.scalar_type());
}

// t must be (N, channels, H, W) with N, H, W those of the image x.
inline void check_map(const at::Tensor& t, const char* name, int64_t channels, const at::Tensor& x) {
  check_dim(t, 4, name);
  TORCH_CHECK(t.size(0) == x.size(0) && t.size(1) == channels && t.size(2) == x.size(2) && t.size(3) == x.size(3),
              name, " must have shape (", x.size(0), ", ", channels, ", ", x.size(2), ", ", x.size(3), "), got ",
              t.sizes());
  check_same(x, "x", t, name);
}

inline void check_padding_mode(int64_t mode) {
  TORCH_CHECK(mode >= 0 && mode <= 2, "padding_mode must be 0 (zeros), 1 (border) or 2 (reflection), got ", mode);
}

}  // namespace fastaug
