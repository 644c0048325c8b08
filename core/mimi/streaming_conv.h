// Causal streaming 1-D convolution (reference `StreamingConv1d`, moshi-reference.md §1.4): a buffer of the
// last `k_eff - stride` input samples is prepended to every chunk; offline calls run one chunk from a fresh
// buffer, so both paths share one implementation. `replicate` pads with the first input sample instead of
// zeros (re-armed by Reset).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace monologue::mimi {

struct ConvState {
  at::Tensor previous;  // [B, C_in, k_eff - stride]
  at::Tensor first;     // [B] bool: the next executed chunk re-arms replicate padding
};

class StreamingConv1d {
 public:
  StreamingConv1d() = default;
  // weight [C_out, C_in / groups, k]; bias [C_out] or undefined. `gemm` (groups 1 only): compute on the CPU
  // with kernels::DirectConv1d from 16 output steps per stream, and below as im2col + one GEMM, instead of
  // at::conv1d (faster for SEANet's shapes; same values up to float rounding, ~1e-6 relative).
  StreamingConv1d(at::Tensor weight, at::Tensor bias, int64_t stride, int64_t dilation, int64_t groups,
                  bool replicate, bool gemm = false);

  int64_t stride() const { return stride_; }
  int64_t in_channels() const { return weight_.size(1) * groups_; }
  int64_t out_channels() const { return weight_.size(0); }
  int64_t padding_total() const { return (weight_.size(2) - 1) * dilation_ + 1 - stride_; }

  ConvState InitState(int64_t batch) const;
  // Resets the slots where `mask` ([B] bool) is true.
  void Reset(ConvState& state, const at::Tensor& mask) const;
  // x [B, C_in, T], T a positive multiple of the stride -> [B, C_out, T / stride]. `exec_mask` ([B]
  // bool) undefined means every slot executes; slots where it is false keep their state.
  at::Tensor Step(ConvState& state, const at::Tensor& x, const at::Tensor& exec_mask = {}) const;
  // Whole signal from a fresh state.
  at::Tensor Forward(const at::Tensor& x) const;

  const at::Tensor& weight() const { return weight_; }

 private:
  // The convolution proper (no padding); on the GEMM path the output [B, C_out, T] is a channels-last view.
  at::Tensor Conv(const at::Tensor& input) const;
  // im2col: [B * T_out, C_in * k], column ci * k + j = tap j of input channel ci (the weight's own order).
  at::Tensor Columns(const at::Tensor& input, int64_t tout) const;

  // Stride 1, k > 1, many steps: one GEMM per tap on shifted views of the input (no im2col copy), the output
  // already in conv layout.
  at::Tensor TapGemms(const at::Tensor& input, int64_t tout) const;

  at::Tensor gemm_weight_;        // [C_in * k, C_out]
  std::vector<at::Tensor> taps_;  // per tap [C_out, C_in] (stride-1 GEMM convolutions with k > 1)
  at::Tensor weight_, bias_;
  int64_t stride_ = 1, dilation_ = 1, groups_ = 1;
  bool replicate_ = false;
  bool direct_ = false;  // kernels::DirectConv1d serves this convolution's long inputs (AVX2 CPUs, f32)
};

}  // namespace monologue::mimi
