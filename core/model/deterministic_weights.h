// Counter-based pseudo-random tensors that Python (tests/reference/detinit.py) and C++ produce bit for
// bit: element i of tensor `name` is a function of (seed, FNV-1a(name), i) through splitmix64, mapped to an
// exact float32 in [-1, 1). Real-size reference fixtures therefore ship only their small inputs, outputs and
// the per-tensor (scale, offset) rule, never hundreds of MB of weights: the test regenerates the weights.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace monologue {

uint64_t Fnv1a64(std::string_view text);

// Uniform values in [-1, 1) with 24 bits of precision, exactly representable in float32.
void FillDeterministicUniform(uint64_t seed, std::string_view name, float* out, int64_t count);

// A float32 CPU tensor: offset + scale * uniform(seed, name), with the product and sum done in float32.
at::Tensor DeterministicTensor(uint64_t seed, std::string_view name, at::IntArrayRef shape, float scale,
                               float offset = 0.0f);

// The init rule a real-size fixture stores in its safetensors metadata instead of the weights (written by
// tests/reference/make_{mimi,lm}_fixtures.py through detinit.py): "seed" = the seed, and per tensor
// "init:NAME" = "SCALE OFFSET" (Python float reprs) and "shape:NAME" = "D0,D1,...". The numbers are parsed
// as double and narrowed to float32, as detinit.py's np.float32(scale) does.
class InitRuleMetadata {
 public:
  // DATA_LOSS when "seed" is missing or not a number; `source` names the file in errors.
  static absl::StatusOr<InitRuleMetadata> Parse(const std::map<std::string, std::string>& metadata,
                                                std::string source);

  uint64_t seed() const { return seed_; }
  // Every NAME with an "init:NAME" entry, sorted.
  std::vector<std::string> TensorNames() const;
  // Tensor `name` regenerated from its rule: NOT_FOUND when the metadata has no rule for it, DATA_LOSS when
  // the rule or shape does not parse.
  absl::StatusOr<at::Tensor> Tensor(const std::string& name) const;

 private:
  InitRuleMetadata(std::map<std::string, std::string> metadata, std::string source, uint64_t seed)
      : metadata_(std::move(metadata)), source_(std::move(source)), seed_(seed) {}

  std::map<std::string, std::string> metadata_;
  std::string source_;
  uint64_t seed_ = 0;
};

}  // namespace monologue
