// CPU entry points of `appearance`: checks, allocation and the parallel run over items; the kernels
// themselves are in transform/transform_cpu.h, one copy per instruction set (common/cpu_kernels.h).
#include <ATen/Parallel.h>
#include <torch/all.h>

#include "common/cpu_kernels.h"
#include "common/cpu_parallel.h"
#include "transform/transform.h"

namespace fastaug {
namespace {

at::Tensor appearance_cpu(const at::Tensor& x_, const at::Tensor& c_w_, const at::Tensor& c_b_, int64_t smooth) {
  check_appearance_inputs(x_, c_w_, c_b_, smooth);
  const at::Tensor x = x_.contiguous(), c_w = c_w_.contiguous(), c_b = c_b_.contiguous();
  const int64_t C = x.size(1);
  at::Tensor out = at::empty(x.sizes(), x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "appearance_cpu", [&] {
    cpu::OpArgs<scalar_t> a = cpu::image_args<scalar_t>(x, smooth);
    a.maps = {{c_w.data_ptr<scalar_t>(), c_b.data_ptr<scalar_t>()}, {C * C, C}};
    a.out = out.data_ptr<scalar_t>();
    cpu::run_items(a, cpu::cpu_kernels<scalar_t>().appearance_forward, colour_params(static_cast<int>(C)));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> appearance_backward_cpu(const at::Tensor& grad_, const at::Tensor& x_,
                                                                       const at::Tensor& c_w_, const at::Tensor& c_b_,
                                                                       int64_t smooth, bool need_x_grad) {
  check_appearance_inputs(x_, c_w_, c_b_, smooth, &grad_);
  const at::Tensor x = x_.contiguous(), c_w = c_w_.contiguous(), c_b = c_b_.contiguous();
  const at::Tensor grad = grad_.contiguous();
  const int64_t C = x.size(1);
  at::Tensor g_cw = at::empty(c_w.sizes(), c_w.options()), g_cb = at::empty(c_b.sizes(), c_b.options());
  at::Tensor gx = at::empty(need_x_grad ? x.sizes() : at::IntArrayRef{0}, x.options());
  if (x.numel() == 0) return {gx, g_cw.zero_(), g_cb.zero_()};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "appearance_backward_cpu", [&] {
    cpu::OpArgs<scalar_t> a = cpu::image_args<scalar_t>(x, smooth);
    a.maps = {{c_w.data_ptr<scalar_t>(), c_b.data_ptr<scalar_t>()}, {C * C, C}};
    a.gmaps = {{g_cw.data_ptr<scalar_t>(), g_cb.data_ptr<scalar_t>()}, {C * C, C}};
    a.grad = grad.data_ptr<scalar_t>();
    a.gx = need_x_grad ? gx.data_ptr<scalar_t>() : nullptr;  // per pixel: no scatter
    cpu::run_items(a, cpu::cpu_kernels<scalar_t>().appearance_backward, 2 * colour_params(static_cast<int>(C)));
  });
  return {gx, g_cw, g_cb};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CPU, m) {
  m.impl("appearance", &appearance_cpu);
  m.impl("appearance_backward", &appearance_backward_cpu);
}

}  // namespace fastaug
