#include "core/mimi/streaming_conv_transpose.h"

#include <ATen/ATen.h>

#include <utility>

#include "core/kernels/few_row_linear.h"
#include "core/util/huge_pages.h"

namespace monologue::mimi {

StreamingConvTranspose1d::StreamingConvTranspose1d(at::Tensor weight, at::Tensor bias, int64_t stride,
                                                   int64_t groups)
    : weight_(std::move(weight)), bias_(std::move(bias)), stride_(stride), groups_(groups) {
  if (groups_ == 1 && weight_.size(2) == 2 * stride_) {
    // [C_out * k, C_in]: one GEMM gives every (output channel, tap) contribution of every input step; rows
    // are output columns, the layout kernels::FewRowLinear streams.
    gemm_weight_ = PlaceOnHugePages(weight_.reshape({weight_.size(0), -1}).t());
  }
}

at::Tensor StreamingConvTranspose1d::GemmStep(const at::Tensor& x, at::Tensor& partial,
                                              bool keep_tail) const {
  // With k = 2s, output sample t*s + r (0 <= r < s) is head(t)[r] + tail(t - 1)[r], where head and tail are
  // the first and second s taps of step t's contribution; tail(-1) is the carried partial.
  const int64_t b = x.size(0), t = x.size(2), cin = x.size(1), s = stride_;
  const int64_t cout = gemm_weight_.size(0) / (2 * s);
  const at::Tensor z =
      kernels::Linear(x.transpose(1, 2).reshape({b * t, cin}), gemm_weight_).view({b, t, cout, 2, s});
  const at::Tensor head = z.select(3, 0), tail = z.select(3, 1);  // [B, T, C_out, s]
  at::Tensor previous =
      partial.defined() ? partial.view({b, cout, 1, s}).permute({0, 2, 1, 3}) : at::Tensor();
  if (t > 1) {
    const at::Tensor shifted = tail.narrow(1, 0, t - 1);
    previous = previous.defined() ? at::cat({previous, shifted}, 1)
                                  : at::constant_pad_nd(shifted, {0, 0, 0, 0, 1, 0});
  }
  at::Tensor y = previous.defined() ? head + previous : head.clone();
  if (keep_tail) partial = tail.select(1, t - 1).contiguous();  // [B, C_out, s], no bias
  y = y.permute({0, 2, 1, 3}).reshape({b, cout, t * s});
  if (bias_.defined()) y = y + bias_.view({-1, 1});
  return y;
}

ConvTrState StreamingConvTranspose1d::InitState(int64_t batch) const {
  return ConvTrState{at::zeros({batch, out_channels(), overlap()}, weight_.options())};
}

void StreamingConvTranspose1d::Reset(ConvTrState& state, const at::Tensor& mask) const {
  state.partial = at::where(mask.view({-1, 1, 1}), at::zeros_like(state.partial), state.partial);
}

at::Tensor StreamingConvTranspose1d::Forward(const at::Tensor& x) const {
  if (gemm_weight_.defined()) {
    at::Tensor none;
    return GemmStep(x, none, /*keep_tail=*/false);
  }
  const int64_t stride[1] = {stride_}, zero[1] = {0}, one[1] = {1};
  at::Tensor y = at::conv_transpose1d(x, weight_, bias_, stride, zero, zero, groups_, one);
  const int64_t pt = overlap();
  return y.narrow(-1, 0, y.size(-1) - pt);
}

at::Tensor StreamingConvTranspose1d::Step(ConvTrState& state, const at::Tensor& x,
                                          const at::Tensor& exec_mask) const {
  if (gemm_weight_.defined()) {
    at::Tensor partial = state.partial;
    at::Tensor y = GemmStep(x, partial, /*keep_tail=*/true);
    state.partial =
        exec_mask.defined() ? at::where(exec_mask.view({-1, 1, 1}), partial, state.partial) : partial;
    return y;
  }
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
