// Causal streaming 1-D transposed convolution (reference `StreamingConvTranspose1d`, moshi-reference.md
// §1.4): offline, the full transposed conv with the last `k - stride` samples trimmed; streaming, the
// overlapping tail (without bias) is carried in `partial` and added to the next chunk's head.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace monologue::mimi {

struct ConvTrState {
  at::Tensor partial;  // [B, C_out, k - stride]
};

class StreamingConvTranspose1d {
 public:
  StreamingConvTranspose1d() = default;
  // weight [C_in, C_out / groups, k]; bias [C_out] or undefined.
  StreamingConvTranspose1d(at::Tensor weight, at::Tensor bias, int64_t stride, int64_t groups);

  int64_t stride() const { return stride_; }
  int64_t out_channels() const { return weight_.size(1) * groups_; }
  int64_t overlap() const { return weight_.size(2) - stride_; }

  ConvTrState InitState(int64_t batch) const;
  void Reset(ConvTrState& state, const at::Tensor& mask) const;
  // x [B, C_in, T] -> [B, C_out, T * stride].
  at::Tensor Step(ConvTrState& state, const at::Tensor& x, const at::Tensor& exec_mask = {}) const;
  // Offline: [B, C_in, T] -> [B, C_out, T * stride] (right-trimmed).
  at::Tensor Forward(const at::Tensor& x) const;

 private:
  // The k == 2 * stride, groups == 1 case as one GEMM plus an overlap-add (much faster on CPU than
  // ATen's slow_conv_transpose for short inputs). `partial` [B, C_out, s]: carried in (undefined = zeros)
  // and, with keep_tail, replaced by the new tail.
  at::Tensor GemmStep(const at::Tensor& x, at::Tensor& partial, bool keep_tail) const;
  // GemmStep with the products from kernels::DirectConv1d (gemm_weight_ as a 1-tap convolution, which gives
  // them in [B, C_out * k, T] layout) and the overlap-add in one pass.
  at::Tensor DirectStep(const at::Tensor& x, at::Tensor& partial, bool keep_tail) const;

  at::Tensor gemm_weight_;  // [C_out * k, C_in] when the GEMM path applies
  bool direct_ = false;     // kernels::DirectConv1d gives gemm_weight_'s products for long inputs (AVX2 CPUs)
  at::Tensor weight_, bias_;
  int64_t stride_ = 1, groups_ = 1;
};

}  // namespace monologue::mimi
