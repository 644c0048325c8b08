#include "core/mimi/streaming_conv_transpose.h"

#include <ATen/ATen.h>

#include <utility>

namespace monologue::mimi {

StreamingConvTranspose1d::StreamingConvTranspose1d(at::Tensor weight, at::Tensor bias, int64_t stride,
                                                   int64_t groups)
    : weight_(std::move(weight)), bias_(std::move(bias)), stride_(stride), groups_(groups) {}

ConvTrState StreamingConvTranspose1d::InitState(int64_t batch) const {
  return ConvTrState{at::zeros({batch, out_channels(), overlap()}, weight_.options())};
}

void StreamingConvTranspose1d::Reset(ConvTrState& state, const at::Tensor& mask) const {
  state.partial = at::where(mask.view({-1, 1, 1}), at::zeros_like(state.partial), state.partial);
}

at::Tensor StreamingConvTranspose1d::Forward(const at::Tensor& x) const {
  const int64_t stride[1] = {stride_}, zero[1] = {0}, one[1] = {1};
  at::Tensor y = at::conv_transpose1d(x, weight_, bias_, stride, zero, zero, groups_, one);
  const int64_t pt = overlap();
  return y.narrow(-1, 0, y.size(-1) - pt);
}

at::Tensor StreamingConvTranspose1d::Step(ConvTrState& state, const at::Tensor& x,
                                          const at::Tensor& exec_mask) const {
  const int64_t stride[1] = {stride_}, zero[1] = {0}, one[1] = {1};
  at::Tensor y = at::conv_transpose1d(x, weight_, bias_, stride, zero, zero, groups_, one);
  const int64_t pt = overlap();
  if (pt == 0) return y;
  const int64_t n = y.size(-1);
  y.narrow(-1, 0, pt).add_(state.partial);
  at::Tensor tail = y.narrow(-1, n - pt, pt);
  if (bias_.defined()) tail = tail - bias_.view({-1, 1});
  if (exec_mask.defined()) {
    state.partial = at::where(exec_mask.view({-1, 1, 1}), tail, state.partial);
  } else {
    state.partial = tail.contiguous();
  }
  return y.narrow(-1, 0, n - pt);
}

}  // namespace monologue::mimi
