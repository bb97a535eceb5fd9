// CPU entry points of the flow warp family: checks, allocation and the parallel run over items; the
// kernels themselves are warp/warp_rows_cpu.h, one copy per instruction set (common/cpu_kernels.h).
#include <ATen/Parallel.h>
#include <torch/all.h>

#include "common/affine_flow.h"
#include "common/cpu_kernels.h"
#include "common/cpu_parallel.h"
#include "warp/warp.h"

namespace fastaug {
namespace {

at::Tensor warp_cpu(const at::Tensor& x_, const at::Tensor& flow_, int64_t padding_mode, bool align_corners) {
  check_warp_inputs(x_, flow_, padding_mode);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), flow = flow_.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "warp_cpu", [&] {
    cpu::OpArgs<scalar_t> a = cpu::image_args<scalar_t>(x, 1);
    a.padding = padding_mode;
    a.align_corners = align_corners;
    a.maps = {{flow.data_ptr<scalar_t>()}, {2}};
    a.out = out.data_ptr<scalar_t>();
    cpu::run_items(a, cpu::cpu_kernels<scalar_t>().warp_forward, 2);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> warp_backward_cpu(const at::Tensor& grad_, const at::Tensor& x_,
                                                     const at::Tensor& flow_, int64_t padding_mode,
                                                     bool align_corners, bool need_x_grad) {
  check_warp_inputs(x_, flow_, padding_mode, &grad_);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), flow = flow_.contiguous(), grad = grad_.contiguous();
  at::Tensor gflow = at::empty(flow.sizes(), flow.options());
  // Every row of gx is zeroed by the item that owns it (common/cpu_kernels.h).
  at::Tensor gx = at::empty(need_x_grad ? x.sizes() : at::IntArrayRef{0}, x.options());
  if (x.numel() == 0) return {gx.zero_(), gflow.zero_()};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "warp_backward_cpu", [&] {
    const cpu::KernelTable<scalar_t>& k = cpu::cpu_kernels<scalar_t>();
    cpu::OpArgs<scalar_t> a = cpu::image_args<scalar_t>(x, 1, need_x_grad);
    a.padding = padding_mode;
    a.align_corners = align_corners;
    a.maps = {{flow.data_ptr<scalar_t>()}, {2}};
    a.gmaps = {{gflow.data_ptr<scalar_t>()}, {2}};
    a.grad = grad.data_ptr<scalar_t>();
    a.gx = need_x_grad ? gx.data_ptr<scalar_t>() : nullptr;
    cpu::run_items(a, k.warp_backward, 4, k.add_bands);
  });
  return {gx, gflow};
}

at::Tensor affine_flow_warp_cpu(const at::Tensor& x_, const at::Tensor& s_w_, const at::Tensor& s_b_,
                                int64_t smooth, int64_t padding_mode) {
  check_affine_flow_inputs(x_, s_w_, s_b_, smooth, padding_mode);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), s_w = s_w_.contiguous(), s_b = s_b_.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "affine_flow_warp_cpu", [&] {
    cpu::OpArgs<scalar_t> a = cpu::image_args<scalar_t>(x, smooth);
    a.padding = padding_mode;
    a.maps = {{s_w.data_ptr<scalar_t>(), s_b.data_ptr<scalar_t>()}, {4, 2}};
    a.out = out.data_ptr<scalar_t>();
    cpu::run_items(a, cpu::cpu_kernels<scalar_t>().affine_forward, kSpatialParams);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> affine_flow_warp_backward_cpu(
    const at::Tensor& grad_, const at::Tensor& x_, const at::Tensor& s_w_, const at::Tensor& s_b_, int64_t smooth,
    int64_t padding_mode, bool need_x_grad) {
  check_affine_flow_inputs(x_, s_w_, s_b_, smooth, padding_mode, &grad_);
  check_cpu_plane(x_);
  const at::Tensor x = x_.contiguous(), s_w = s_w_.contiguous(), s_b = s_b_.contiguous();
  const at::Tensor grad = grad_.contiguous();
  at::Tensor g_sw = at::empty(s_w.sizes(), s_w.options()), g_sb = at::empty(s_b.sizes(), s_b.options());
  at::Tensor gx = at::empty(need_x_grad ? x.sizes() : at::IntArrayRef{0}, x.options());
  if (x.numel() == 0) return {gx.zero_(), g_sw.zero_(), g_sb.zero_()};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "affine_flow_warp_backward_cpu", [&] {
    const cpu::KernelTable<scalar_t>& k = cpu::cpu_kernels<scalar_t>();
    cpu::OpArgs<scalar_t> a = cpu::image_args<scalar_t>(x, smooth, need_x_grad);
    a.padding = padding_mode;
    a.maps = {{s_w.data_ptr<scalar_t>(), s_b.data_ptr<scalar_t>()}, {4, 2}};
    a.gmaps = {{g_sw.data_ptr<scalar_t>(), g_sb.data_ptr<scalar_t>()}, {4, 2}};
    a.grad = grad.data_ptr<scalar_t>();
    a.gx = need_x_grad ? gx.data_ptr<scalar_t>() : nullptr;
    cpu::run_items(a, k.affine_backward, 2 * kSpatialParams, k.add_bands);
  });
  return {gx, g_sw, g_sb};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastaug, CPU, m) {
  m.impl("warp", &warp_cpu);
  m.impl("warp_backward", &warp_backward_cpu);
  m.impl("affine_flow_warp", &affine_flow_warp_cpu);
  m.impl("affine_flow_warp_backward", &affine_flow_warp_backward_cpu);
}

}  // namespace fastaug
