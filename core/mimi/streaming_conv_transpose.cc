#include "core/mimi/streaming_conv_transpose.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <utility>

#include "core/kernels/direct_conv1d.h"
#include "core/kernels/few_row_linear.h"
#include "core/util/huge_pages.h"

namespace monologue::mimi {
namespace {
// From this many input steps per stream the products come from kernels::DirectConv1d (a frame's last two
// transposed convolutions run 40 and 240 steps, arithmetic-bound); below, from the few-row sweep, which
// reads the larger weights of the first two (2 and 8 steps) once. Per stream, so independent of the batch.
constexpr int64_t kMinDirectSteps = 16;
}  // namespace

StreamingConvTranspose1d::StreamingConvTranspose1d(at::Tensor weight, at::Tensor bias, int64_t stride,
                                                   int64_t groups)
    : weight_(std::move(weight)), bias_(std::move(bias)), stride_(stride), groups_(groups) {
  if (groups_ == 1 && weight_.size(2) == 2 * stride_) {
    // [C_out * k, C_in]: one GEMM gives every (output channel, tap) contribution of every input step; rows
    // are output columns, the layout kernels::FewRowLinear streams.
    gemm_weight_ = PlaceOnHugePages(weight_.reshape({weight_.size(0), -1}).t());
    direct_ = kernels::HasDirectConvKernel() && gemm_weight_.device().is_cpu() &&
              gemm_weight_.scalar_type() == at::kFloat;
  }
}

at::Tensor StreamingConvTranspose1d::DirectStep(const at::Tensor& x, at::Tensor& partial,
                                                bool keep_tail) const {
  const int64_t b = x.size(0), t = x.size(2), s = stride_;
  const int64_t cout = gemm_weight_.size(0) / (2 * s);
  // z[b, co, h, r, i]: tap h * s + r of output channel co from input step i (h = 0: the head, 1: the tail).
  const at::Tensor z = kernels::DirectConv1d(x, gemm_weight_.unsqueeze(2), 1, 1, {});
  at::Tensor y = at::empty({b, cout, t * s}, x.options());
  at::Tensor carried = partial.defined() ? partial.contiguous() : at::Tensor();
  at::Tensor tail = keep_tail ? at::empty({b, cout, s}, x.options()) : at::Tensor();
  const at::Tensor bias = bias_.defined() ? bias_.contiguous() : at::Tensor();
  const float* zp = z.data_ptr<float>();
  const float* pp = carried.defined() ? carried.data_ptr<float>() : nullptr;
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  float* tp = keep_tail ? tail.data_ptr<float>() : nullptr;
  at::parallel_for(0, b * cout, 8, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float* head = zp + row * 2 * s * t;
      const float* next = head + s * t;
      float* out = yp + row * t * s;
      // Output sample i * s + r = (head(i)[r] + tail(i - 1)[r]) + bias, tail(-1) the carried partial: the
      // sums in GemmStep's order.
      for (int64_t r = 0; r < s; ++r) {
        const float before = pp != nullptr ? pp[row * s + r] : 0.f;
        const float add = bp != nullptr ? bp[row % cout] : 0.f;
        for (int64_t i = 0; i < t; ++i) {
          const float sum = head[r * t + i] + (i > 0 ? next[r * t + i - 1] : before);
          out[i * s + r] = bp != nullptr ? sum + add : sum;
        }
        if (tp != nullptr) tp[row * s + r] = next[r * t + t - 1];
      }
    }
  });
  if (keep_tail) partial = tail;
  return y;
}

at::Tensor StreamingConvTranspose1d::GemmStep(const at::Tensor& x, at::Tensor& partial,
                                              bool keep_tail) const {
  // With k = 2s, output sample t*s + r (0 <= r < s) is head(t)[r] + tail(t - 1)[r], where head and tail are
  // the first and second s taps of step t's contribution; tail(-1) is the carried partial.
  if (direct_ && x.size(2) >= kMinDirectSteps && kernels::ServesDirectConv(x)) {
    return DirectStep(x, partial, keep_tail);
  }
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
