// Flag parsing shared by the `monologue bench` subcommands: batch lists, dtype, device, and which model to
// time (a directory, a config.json with random weights, or a named preset).
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/model_config.h"

namespace monologue::cli {

// "1,8" -> {1, 8}; every size >= 1.
absl::StatusOr<std::vector<int64_t>> ParseBatchList(const std::string& flag);
// "f32" | "bf16" | "f16".
absl::StatusOr<c10::ScalarType> ParseDtypeFlag(const std::string& flag);
// "cpu" | "cuda" | "cuda:N", and CUDA only when a device is present.
absl::StatusOr<c10::Device> ParseDeviceFlag(const std::string& flag);

struct BenchModel {
  ModelConfig config;
  std::string source;  // for the report: the directory, or "<file> (random weights)", or "preset <name> ..."
};
// Exactly one of the three must be non-empty.
absl::StatusOr<BenchModel> ResolveBenchModel(const std::string& model_dir, const std::string& config_file,
                                             const std::string& preset);

}  // namespace monologue::cli
