#include "core/mimi/streaming_conv.h"

#include <ATen/ATen.h>

#include <utility>

namespace monologue::mimi {

StreamingConv1d::StreamingConv1d(at::Tensor weight, at::Tensor bias, int64_t stride, int64_t dilation,
                                 int64_t groups, bool replicate)
    : weight_(std::move(weight)),
      bias_(std::move(bias)),
      stride_(stride),
      dilation_(dilation),
      groups_(groups),
      replicate_(replicate) {}

ConvState StreamingConv1d::InitState(int64_t batch) const {
  ConvState s;
  s.previous = at::zeros({batch, in_channels(), padding_total()}, weight_.options());
  s.first = at::ones({batch}, weight_.options().dtype(at::kBool));
  return s;
}

void StreamingConv1d::Reset(ConvState& state, const at::Tensor& mask) const {
  state.previous = at::where(mask.view({-1, 1, 1}), at::zeros_like(state.previous), state.previous);
  state.first = at::where(mask, at::ones_like(state.first), state.first);
}

at::Tensor StreamingConv1d::Step(ConvState& state, const at::Tensor& x, const at::Tensor& exec_mask) const {
  const int64_t tp = state.previous.size(-1);
  const bool masked = exec_mask.defined();
  at::Tensor input = x;
  if (tp > 0) {
    if (replicate_) {
      at::Tensor arm = state.first.view({-1, 1, 1});
      if (masked) arm = arm & exec_mask.view({-1, 1, 1});
      state.previous = at::where(arm, x.narrow(-1, 0, 1), state.previous);
    }
    input = at::cat({state.previous, x}, -1);
  }
  const int64_t stride[1] = {stride_}, padding[1] = {0}, dilation[1] = {dilation_};
  at::Tensor y = at::conv1d(input, weight_, bias_, stride, padding, dilation, groups_);
  if (tp > 0) {
    at::Tensor tail = input.narrow(-1, input.size(-1) - tp, tp);
    if (masked) {
      state.previous = at::where(exec_mask.view({-1, 1, 1}), tail, state.previous);
    } else {
      state.previous = tail.contiguous();
    }
    if (replicate_) {
      state.first = masked ? at::where(exec_mask, at::zeros_like(state.first), state.first)
                           : at::zeros_like(state.first);
    }
  }
  return y;
}

at::Tensor StreamingConv1d::Forward(const at::Tensor& x) const {
  ConvState state = InitState(x.size(0));
  return Step(state, x);
}

}  // namespace monologue::mimi
