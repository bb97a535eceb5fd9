// The graph an image op builds on the eager path (fastaug/ops/_eager.py) when one is needed: a C++
// torch::autograd::Function whose forward calls the op below the Autograd key and whose backward is
// the formula of the op's registered autograd (fastaug/ops/<family>.py, `_<op>_backward`):
//
//   saved: the op's tensor arguments (its leading Spec::kTensors) and its other arguments;
//   backward: `<op>_backward(grad, arguments..., need_x_grad = needs_input_grad[0])`, one gradient per
//             tensor argument, kept where that argument needs one;
//
// the backward op called below the Autograd key unless a graph of the gradient is being built
// (create_graph), which that op's own registered autograd then records (fastaug/ops/_higher_order.py):
// what _eager.BackwardOp does. Through Python's autograd.Function (a Python forward, setup_context and
// backward) the same formula cost 4-6 us more a forward and backward (1x8x8 warp: 36 against 31 us).
// The registered path (torch.ops.fastaug.<op>, compile, functorch, autocast) keeps its Python formula;
// tests/ops/test_eager_path.py holds the two to the same values and gradients, second order included.
#pragma once

#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/extension.h>

#include "eager.h"

#include <array>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace fastaug {
namespace eager {

// Spec: kForward and kBackward, the ops' qualified names; kTensors, how many leading arguments are
// tensors; Grads, the backward op's result (one gradient per tensor argument). A...: the forward op's
// arguments (its schema's, csrc/fastaug.cpp).
template <typename Spec, typename... A>
struct ImageOpGraph : public torch::autograd::Function<ImageOpGraph<Spec, A...>> {
  static constexpr size_t kTensors = Spec::kTensors;
  using Args = std::tuple<std::decay_t<A>...>;
  using Grads = typename Spec::Grads;
  static_assert(kTensors >= 1 && kTensors <= sizeof...(A) && std::tuple_size<Grads>::value == kTensors,
                "one gradient per leading tensor argument");
  static_assert(sizeof...(A) <= 8, "saved_key() names eight arguments");

  // (Called from the bindings only, with the GIL held, which call_below_autograd releases.)
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, A... args) {
    save(ctx, std::forward_as_tuple(args...), std::index_sequence_for<A...>{});
    return call_below_autograd<at::Tensor, A...>(forward_op(), args...);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const Grads g = call_backward(ctx, grads[0], saved, std::index_sequence_for<A...>{});
    torch::autograd::variable_list out(sizeof...(A));  // undefined for the other arguments
    keep_needed(ctx, g, out, std::make_index_sequence<kTensors>{});
    return out;
  }

 private:
  static const c10::TypedOperatorHandle<at::Tensor(A...)>& forward_op() {
    static const auto op =
        c10::Dispatcher::singleton().findSchemaOrThrow(Spec::kForward, "").template typed<at::Tensor(A...)>();
    return op;
  }
  static const c10::TypedOperatorHandle<Grads(const at::Tensor&, A..., bool)>& backward_op() {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow(Spec::kBackward, "")
                               .template typed<Grads(const at::Tensor&, A..., bool)>();
    return op;
  }
  // Where argument i (not a tensor) is kept in ctx->saved_data.
  static const std::string& saved_key(size_t i) {
    static const std::array<std::string, 8> keys = {"0", "1", "2", "3", "4", "5", "6", "7"};
    return keys[i];
  }
  template <typename Tuple, size_t... I>
  static void save(torch::autograd::AutogradContext* ctx, const Tuple& args, std::index_sequence<I...>) {
    torch::autograd::variable_list tensors;
    tensors.reserve(kTensors);
    auto one = [&](auto index, const auto& value) {
      if constexpr (decltype(index)::value < kTensors)
        tensors.push_back(value);
      else
        ctx->saved_data[saved_key(decltype(index)::value)] = value;
    };
    (one(std::integral_constant<size_t, I>{}, std::get<I>(args)), ...);
    ctx->save_for_backward(tensors);
  }
  template <size_t I>
  static std::tuple_element_t<I, Args> saved_arg(torch::autograd::AutogradContext* ctx,
                                                 const torch::autograd::variable_list& saved) {
    if constexpr (I < kTensors)
      return saved[I];
    else
      return ctx->saved_data.at(saved_key(I)).template to<std::tuple_element_t<I, Args>>();
  }
  template <size_t... I>
  static Grads call_backward(torch::autograd::AutogradContext* ctx, const at::Tensor& grad,
                             const torch::autograd::variable_list& saved, std::index_sequence<I...>) {
    const bool need_x = ctx->needs_input_grad(0);
    if (at::GradMode::is_enabled()) return backward_op().call(grad, saved_arg<I>(ctx, saved)..., need_x);
    at::AutoDispatchBelowAutograd below;
    return backward_op().call(grad, saved_arg<I>(ctx, saved)..., need_x);
  }
  template <size_t... I>
  static void keep_needed(torch::autograd::AutogradContext* ctx, const Grads& g, torch::autograd::variable_list& out,
                          std::index_sequence<I...>) {
    ((out[I] = ctx->needs_input_grad(I) ? std::get<I>(g) : at::Tensor()), ...);
  }
};

// The image ops (their schemas: csrc/fastaug.cpp).
using Grads2 = std::tuple<at::Tensor, at::Tensor>;
using Grads3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
struct Warp {
  static constexpr const char* kForward = "fastaug::warp";
  static constexpr const char* kBackward = "fastaug::warp_backward";
  static constexpr size_t kTensors = 2;  // x, flow
  using Grads = Grads2;
};
struct AffineFlowWarp {
  static constexpr const char* kForward = "fastaug::affine_flow_warp";
  static constexpr const char* kBackward = "fastaug::affine_flow_warp_backward";
  static constexpr size_t kTensors = 3;  // x, s_w, s_b
  using Grads = Grads3;
};
struct Appearance {
  static constexpr const char* kForward = "fastaug::appearance";
  static constexpr const char* kBackward = "fastaug::appearance_backward";
  static constexpr size_t kTensors = 3;  // x, c_w, c_b
  using Grads = Grads3;
};
struct Transform {
  static constexpr const char* kForward = "fastaug::transform";
  static constexpr const char* kBackward = "fastaug::transform_backward";
  static constexpr size_t kTensors = 2;  // x, params
  using Grads = Grads2;
};

}  // namespace eager
}  // namespace fastaug
