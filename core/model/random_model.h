// Random-weight model directories in the released layout, for tests and benchmarks (no real weights exist
// here). Every tensor follows its TensorSpec init rule through DeterministicTensor (seed, tensor name), so
// the same seed gives the same bytes in C++ and in Python (tests/reference/detinit.py):
//   linear / conv weights: uniform with std 1/sqrt(fan_in); embeddings: uniform[-1, 1); norm scales: 1;
//   biases: 0; layer scales: their config value; learnt_padding: uniform * 0.2; VQ cluster_usage in
//   [0.5, 1.5), embedding_sum uniform[-1, 1), _initialized 1.
// LM weights are written in the requested dtype (bf16 like the released files, or f32 for tests) except
// condition_provider.* (always F32); Mimi is always F32. Tensors are streamed to disk one at a time, so a
// 15 GB Moshi 7B needs only its largest tensor in memory.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/model_config.h"
#include "core/model/checkpoint_schema.h"

namespace monologue {

struct RandomModelOptions {
  uint64_t seed = 0;
  at::ScalarType lm_dtype = at::kBFloat16;
  // Copied to the config's tokenizer_name when set; otherwise no tokenizer is written (noted).
  std::optional<std::filesystem::path> tokenizer;
  bool write_lm = true;
  bool write_mimi = true;
  bool config_only = false;  // only config.json (+ mimi_config.json)
};

struct GeneratedFile {
  std::filesystem::path path;
  uint64_t bytes = 0;
  std::string what;  // "config", "lm weights", ...
};

struct GeneratedModel {
  std::vector<GeneratedFile> files;
  std::vector<std::string> notes;  // e.g. "no tokenizer given: none written"
};

// The float32 values of one tensor under its init rule.
at::Tensor RandomTensorFor(const TensorSpec& spec, uint64_t seed);

// Every LM tensor of `config` in memory as a released checkpoint stores it: weights in `weight_dtype` (the
// released LM checkpoints: bf16), conditioners and buffers f32. Built tensor by tensor (a 7B model's f32
// values never exist all at once).
std::map<std::string, at::Tensor> RandomLmTensors(const LmConfig& config, uint64_t seed,
                                                  at::ScalarType weight_dtype = at::kBFloat16);

// Writes a safetensors file holding every spec (weights in `weight_dtype`, conditioners and buffers F32),
// streaming tensor by tensor.
absl::Status WriteRandomCheckpoint(const std::string& path, const std::vector<TensorSpec>& specs,
                                   uint64_t seed, at::ScalarType weight_dtype);

// Writes `out` (created if needed): config.json (omitted for a legacy config), mimi_config.json when
// config.mimi_config_name is set, the LM weights under moshi_name (unless mimi_only), the Mimi weights
// under mimi_name, and the tokenizer. File names must be plain relative names.
absl::StatusOr<GeneratedModel> WriteRandomModelDir(const ModelConfig& config, bool mimi_only,
                                                   const std::filesystem::path& out,
                                                   const RandomModelOptions& options);

}  // namespace monologue
