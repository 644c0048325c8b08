// Convenience loaders: a Mimi checkpoint file (validated against the schema of its config first, so a file
// that is not a Mimi checkpoint gets one clear message listing what is wrong), and a random-weight Mimi of
// any config (benchmarks), with the checkpoint schema's deterministic init rules.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/config/mimi_config.h"
#include "core/mimi/mimi_model.h"

namespace monologue {

// `config_json` empty: the released architecture (MimiConfig defaults); otherwise a `mimi_config_name`
// style JSON file.
absl::StatusOr<MimiConfig> LoadMimiConfig(const std::string& config_json);

// Opens, validates (ExpectedMimiTensors) and loads `path`.
absl::StatusOr<MimiModel> LoadMimiFile(const std::string& path, const MimiConfig& config,
                                       c10::Device device = c10::Device(c10::kCPU));

// Random weights (RandomTensorFor over ExpectedMimiTensors(config)) without touching the disk.
absl::StatusOr<MimiModel> RandomMimi(const MimiConfig& config, uint64_t seed,
                                     c10::Device device = c10::Device(c10::kCPU));

}  // namespace monologue
