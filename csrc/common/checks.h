// Input checks shared by every C++ entry point, forward and backward. The Python layer validates
// first with friendlier messages; these guarantee that a direct torch.ops.fastaug call can never
// read or write out of bounds: every tensor argument of every op goes through check_arg (device,
// dtype and every size), and each family's size limits are checked before anything is allocated
// or copied (so absurd sizes fail fast instead of attempting a huge allocation).
#pragma once

#include <torch/all.h>

#include <initializer_list>
#include <sstream>
#include <string>

namespace fastaug {

// A size that check_arg accepts whatever it is.
constexpr int64_t kAnySize = -1;

inline std::string describe_sizes(std::initializer_list<int64_t> sizes) {
  std::ostringstream s;
  s << "(";
  int64_t i = 0;
  for (int64_t v : sizes) {
    if (i++) s << ", ";
    if (v == kAnySize)
      s << "*";
    else
      s << v;
  }
  s << ")";
  return s.str();
}

// The one check of a tensor argument: defined, on `device`, of `dtype`, with exactly `sizes.size()`
// dimensions of the given sizes (kAnySize: any). `like` names the argument the expectations come
// from, for the messages ("... on cuda:0 (like x)").
inline void check_arg(const at::Tensor& t, const char* name, std::initializer_list<int64_t> sizes,
                      at::ScalarType dtype, const at::Device& device, const char* like = nullptr) {
  // The messages are only formatted when a check fails (TORCH_CHECK evaluates them lazily): the
  // successful path costs a few comparisons and no allocation.
  const char* ref0 = like ? " (like " : "";
  const char* ref1 = like ? like : "";
  const char* ref2 = like ? ")" : "";
  TORCH_CHECK(t.defined(), "fastaug: ", name, " must be a defined tensor");
  TORCH_CHECK(t.device() == device, "fastaug: ", name, " must be on ", device, ref0, ref1, ref2, ", got ",
              t.device());
  TORCH_CHECK(t.scalar_type() == dtype, "fastaug: ", name, " must be ", dtype, ref0, ref1, ref2, ", got ",
              t.scalar_type());
  bool ok = t.dim() == static_cast<int64_t>(sizes.size());
  int64_t d = 0;
  for (int64_t v : sizes) {
    if (!ok) break;
    ok = v == kAnySize || t.size(d) == v;
    ++d;
  }
  TORCH_CHECK(ok, "fastaug: ", name, " must have shape ", describe_sizes(sizes), ref0, ref1, ref2, ", got ",
              t.sizes());
}

// t must have the dtype and device of `like` and the given sizes.
inline void check_like(const at::Tensor& t, const char* name, std::initializer_list<int64_t> sizes,
                       const at::Tensor& like, const char* like_name) {
  check_arg(t, name, sizes, like.scalar_type(), like.device(), like_name);
}

// The image-like argument every other argument is compared with: defined, `dim`-D, floating point
// (float16/bfloat16 on CUDA only), on the CPU or a CUDA device.
inline void check_floating(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.defined(), "fastaug: ", name, " must be a defined tensor");
  TORCH_CHECK(t.device().is_cpu() || t.device().is_cuda(), "fastaug: ", name,
              " must be a CPU or CUDA tensor, got ", t.device());
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "fastaug: ", name, " must be a floating-point tensor, got ",
              t.scalar_type());
  TORCH_CHECK(t.device().is_cuda() || (t.scalar_type() != at::kHalf && t.scalar_type() != at::kBFloat16),
              "fastaug: ", name, ": float16/bfloat16 are supported on CUDA only; use float32 or float64 on CPU, got ",
              t.scalar_type());
}

inline void check_dim(const at::Tensor& t, int64_t dim, const char* name) {
  TORCH_CHECK(t.dim() == dim, "fastaug: ", name, " must be a ", dim, "-D tensor, got shape ", t.sizes());
}

// A floating-point (N, C, H, W) image.
inline void check_image(const at::Tensor& x, const char* name = "x") {
  check_floating(x, name);
  check_dim(x, 4, name);
}

// t must be (N, channels, H, W) with N, H, W, dtype and device those of the image x.
inline void check_map(const at::Tensor& t, const char* name, int64_t channels, const at::Tensor& x) {
  check_like(t, name, {x.size(0), channels, x.size(2), x.size(3)}, x, "x");
}

// grad_out of an op whose output has the shape, dtype and device of x.
inline void check_grad_out(const at::Tensor& grad, const at::Tensor& x) {
  check_like(grad, "grad_out", {x.size(0), x.size(1), x.size(2), x.size(3)}, x, "x");
}

inline void check_padding_mode(int64_t mode) {
  TORCH_CHECK(mode >= 0 && mode <= 2, "fastaug: padding_mode must be 0 (zeros), 1 (border) or 2 (reflection), got ",
              mode);
}

// The CPU samplers index one H x W plane with 32-bit offsets (AVX2 gathers); checked before any
// allocation.
inline void check_cpu_plane(const at::Tensor& x) {
  if (!x.device().is_cpu() || x.numel() == 0) return;
  const int64_t H = x.size(2), W = x.size(3);
  TORCH_CHECK(H < (int64_t(1) << 31) && W < (int64_t(1) << 31) && H * W < (int64_t(1) << 31),
              "fastaug: the CPU kernels index one image plane with 32 bits; got H * W = ", H, " * ", W);
}

}  // namespace fastaug
