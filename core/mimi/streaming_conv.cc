#include "core/mimi/streaming_conv.h"

#include <ATen/ATen.h>

#include <utility>

#include "core/kernels/direct_conv1d.h"
#include "core/kernels/few_row_linear.h"
#include "core/util/huge_pages.h"

namespace monologue::mimi {
namespace {
// Below this many input channels a tap's GEMM is too thin (the encoder's first convolution has one channel);
// im2col's single GEMM stays.
constexpr int64_t kMinTapChannels = 16;
// From this many output steps per stream the direct kernel computes the convolution
// (kernels/direct_conv1d.h); below, the few-row sweep or ATen's GEMM does. A streaming frame's SEANet layers
// run 1920, 240, 40, 8 and 2 steps: the first three are arithmetic-bound, the last two bound by reading their
// (larger) weights. The choice depends on the steps of one stream only, so a stream's values do not depend on
// the batch size.
constexpr int64_t kMinDirectSteps = 16;
}  // namespace

StreamingConv1d::StreamingConv1d(at::Tensor weight, at::Tensor bias, int64_t stride, int64_t dilation,
                                 int64_t groups, bool replicate, bool gemm)
    : weight_(std::move(weight)),
      bias_(std::move(bias)),
      stride_(stride),
      dilation_(dilation),
      groups_(groups),
      replicate_(replicate) {
  // The direct kernel reads the weight as it is: stride 1 (any dilation), or a kernel that is a whole number
  // of strides (on the input split into phases).
  direct_ = gemm && groups_ == 1 && kernels::HasDirectConvKernel() && weight_.device().is_cpu() &&
            weight_.scalar_type() == at::kFloat && weight_.is_contiguous() &&
            (stride_ == 1 || (dilation_ == 1 && weight_.size(2) % stride_ == 0));
  if (gemm && groups_ == 1) {
    if (stride_ == 1 && weight_.size(2) > 1 && weight_.size(1) >= kMinTapChannels) {
      // One [C_out, C_in] matrix per tap (TapGemms); the im2col layout below is then never used.
      for (int64_t j = 0; j < weight_.size(2); ++j) taps_.push_back(PlaceOnHugePages(weight_.select(2, j)));
    } else {
      // [C_in * k, C_out]: row ci * k + j holds tap j of input channel ci, matching the unfolded columns.
      gemm_weight_ = PlaceOnHugePages(weight_.reshape({weight_.size(0), -1}).t());
    }
  }
}

at::Tensor StreamingConv1d::TapGemms(const at::Tensor& input, int64_t tout) const {
  const int64_t b = input.size(0);
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty({b, out_channels(), tout}, input.options());
  for (int64_t i = 0; i < b; ++i) {
    const at::Tensor xi = x.select(0, i);  // [C_in, T_in]: each tap reads a shifted [C_in, T_out] view of it
    at::Tensor yi = y.select(0, i);
    at::mm_out(yi, taps_[0], xi.narrow(1, 0, tout));
    for (size_t j = 1; j < taps_.size(); ++j) {
      yi.addmm_(taps_[j], xi.narrow(1, static_cast<int64_t>(j) * dilation_, tout));
    }
  }
  if (bias_.defined()) y.add_(bias_.view({-1, 1}));
  return y;
}

at::Tensor StreamingConv1d::Conv(const at::Tensor& input) const {
  const int64_t keff = (weight_.size(2) - 1) * dilation_ + 1;
  const int64_t tout = (input.size(2) - keff) / stride_ + 1;
  if (direct_ && tout >= kMinDirectSteps && kernels::ServesDirectConv(input)) {
    if (stride_ == 1) return kernels::DirectConv1d(input, weight_, 1, dilation_, bias_);
    // The steps the output reads, (tout - 1) * stride + k, are a whole number of phases (k a multiple of the
    // stride), whatever the input's length.
    const at::Tensor used = input.narrow(2, 0, (tout - 1) * stride_ + weight_.size(2));
    return kernels::DirectConv1d(kernels::SplitPhases(used, stride_), weight_, stride_, 1, bias_);
  }
  if (groups_ == 1 && kernels::ServesFewRows(input, input.size(0) * tout)) {
    // Few output steps (the deep layers of a streaming frame): one sweep over the weights.
    return kernels::FewRowLinear(Columns(input, tout), weight_.view({weight_.size(0), -1}), bias_)
        .view({input.size(0), tout, -1})
        .permute({0, 2, 1});
  }
  if (gemm_weight_.defined() && weight_.size(2) == 1 && stride_ == 1) {
    // A 1x1 convolution over many steps: W [C_out, C_in] times each batch row's [C_in, T] gives the output in
    // conv layout directly (no transposed copy of the input, no permuted output).
    const at::Tensor w = weight_.select(2, 0);
    at::Tensor y = at::matmul(w, input);
    if (bias_.defined()) y.add_(bias_.view({-1, 1}));
    return y;
  }
  if (!taps_.empty()) return TapGemms(input, tout);
  if (!gemm_weight_.defined()) {
    const int64_t stride[1] = {stride_}, padding[1] = {0}, dilation[1] = {dilation_};
    return at::conv1d(input, weight_, bias_, stride, padding, dilation, groups_);
  }
  // im2col + one GEMM: faster than ATen's CPU convolutions for these short, wide inputs.
  const at::Tensor cols = Columns(input, tout);
  const at::Tensor y = bias_.defined() ? at::addmm(bias_, cols, gemm_weight_) : at::mm(cols, gemm_weight_);
  return y.view({input.size(0), tout, -1}).permute({0, 2, 1});
}

at::Tensor StreamingConv1d::Columns(const at::Tensor& input, int64_t tout) const {
  const int64_t b = input.size(0), cin = input.size(1), k = weight_.size(2);
  const int64_t keff = (k - 1) * dilation_ + 1;
  at::Tensor cols;
  if (k == 1) {
    cols = input.narrow(2, 0, (tout - 1) * stride_ + 1).slice(2, 0, c10::nullopt, stride_).transpose(1, 2);
  } else {
    cols = input.unfold(2, keff, stride_);  // [B, C_in, T_out, k_eff]
    if (dilation_ > 1) cols = cols.slice(3, 0, c10::nullopt, dilation_);
    cols = cols.permute({0, 2, 1, 3});
  }
  return cols.reshape({b * tout, cin * k});
}

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
  at::Tensor y = Conv(input);
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
