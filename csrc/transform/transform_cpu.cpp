// CPU entry points of `transform`: checks, allocation and the parallel run over items; the kernels
// themselves are in transform/transform_cpu.h, one copy per instruction set (common/cpu_kernels.h).
#include <ATen/Parallel.h>
#include <torch/all.h>

#include "common/cpu_kernels.h"
#include "common/cpu_parallel.h"
#include "transform/transform.h"

namespace fastaug {
namespace {

at::Tensor transform_cpu(const at::Tensor& x_, const at::Tensor& params_, int64_t smooth, int64_t mode,
                         int64_t padding_mode) {
  check_transform_inputs(x_, params_, smooth, mode, padding_mode);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), params = params_.contiguous();
  const int64_t P = params.size(1);
  at::Tensor out = at::empty(x.sizes(), x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "transform_cpu", [&] {
    cpu::OpArgs<scalar_t> a = cpu::image_args<scalar_t>(x, smooth);
    a.mode = mode;
    a.padding = padding_mode;
    a.maps = {{params.data_ptr<scalar_t>()}, {P}};
    a.out = out.data_ptr<scalar_t>();
    cpu::run_items(a, cpu::cpu_kernels<scalar_t>().transform_forward, P);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> transform_backward_cpu(const at::Tensor& grad_, const at::Tensor& x_,
                                                          const at::Tensor& params_, int64_t smooth, int64_t mode,
                                                          int64_t padding_mode, bool need_x_grad) {
  check_transform_inputs(x_, params_, smooth, mode, padding_mode, &grad_);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), params = params_.contiguous(), grad = grad_.contiguous();
  const int64_t P = params.size(1);
  at::Tensor gparams = at::empty(params.sizes(), params.options());
  at::Tensor gx = at::empty(need_x_grad ? x.sizes() : at::IntArrayRef{0}, x.options());
  if (x.numel() == 0) return {gx.zero_(), gparams.zero_()};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "transform_backward_cpu", [&] {
    const cpu::KernelTable<scalar_t>& k = cpu::cpu_kernels<scalar_t>();
    cpu::OpArgs<scalar_t> a = cpu::image_args<scalar_t>(x, smooth, need_x_grad);
    a.mode = mode;
    a.padding = padding_mode;
    a.maps = {{params.data_ptr<scalar_t>()}, {P}};
    a.gmaps = {{gparams.data_ptr<scalar_t>()}, {P}};
    a.grad = grad.data_ptr<scalar_t>();
    a.gx = need_x_grad ? gx.data_ptr<scalar_t>() : nullptr;
    cpu::run_items(a, k.transform_backward, 2 * P, k.add_bands);
  });
  return {gx, gparams};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CPU, m) {
  m.impl("transform", &transform_cpu);
  m.impl("transform_backward", &transform_backward_cpu);
}

}  // namespace fastaug
