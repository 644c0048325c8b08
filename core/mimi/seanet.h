// SEANet encoder and decoder (moshi-reference.md §1.2-1.3): causal convolutions, residual blocks with an
// identity shortcut, ELU, strided downsampling convolutions / upsampling transposed convolutions.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/mimi_config.h"
#include "core/mimi/streaming_conv.h"
#include "core/mimi/streaming_conv_transpose.h"
#include "core/mimi/weights.h"

namespace monologue::mimi {

struct SeanetState {
  std::vector<ConvState> convs;
  std::vector<ConvTrState> convtrs;
};

// One residual block: x + conv1(elu(conv0(elu(x)))).
struct SeanetResBlock {
  StreamingConv1d conv0, conv1;
};

class SeanetEncoder {
 public:
  // Weights under `prefix` ("encoder.model.").
  static absl::StatusOr<SeanetEncoder> Load(const WeightReader& weights, const SeanetConfig& config,
                                            const std::string& prefix);
  SeanetState InitState(int64_t batch) const;
  void Reset(SeanetState& state, const at::Tensor& mask) const;
  // [B, 1, T] -> [B, dimension, T / hop]; T a multiple of the hop.
  at::Tensor Step(SeanetState& state, const at::Tensor& x, const at::Tensor& exec_mask = {}) const;
  at::Tensor Forward(const at::Tensor& x) const;

 private:
  StreamingConv1d first_;
  std::vector<std::vector<SeanetResBlock>> blocks_;  // per stage
  std::vector<StreamingConv1d> downs_;               // per stage
  StreamingConv1d last_;
};

class SeanetDecoder {
 public:
  static absl::StatusOr<SeanetDecoder> Load(const WeightReader& weights, const SeanetConfig& config,
                                            const std::string& prefix);
  SeanetState InitState(int64_t batch) const;
  void Reset(SeanetState& state, const at::Tensor& mask) const;
  // [B, dimension, T] -> [B, 1, T * hop].
  at::Tensor Step(SeanetState& state, const at::Tensor& x, const at::Tensor& exec_mask = {}) const;
  at::Tensor Forward(const at::Tensor& x) const;

 private:
  StreamingConv1d first_;
  std::vector<StreamingConvTranspose1d> ups_;        // per stage
  std::vector<std::vector<SeanetResBlock>> blocks_;  // per stage
  StreamingConv1d last_;
};

}  // namespace monologue::mimi
