// A model directory as released on Hugging Face: config.json (or the legacy Moshi 7B defaults when it is
// absent), the file names it points to, and the mode-specific sections. Mirrors the reference's
// `CheckpointInfo` (moshi-reference.md §2.2).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/config/lm_config.h"
#include "core/config/mimi_config.h"
#include "nlohmann/json.hpp"

namespace monologue {

enum class ModelType { kMoshi, kStt, kTts, kHibiki };

struct ModelConfig {
  ModelType model_type = ModelType::kMoshi;
  bool legacy = false;  // no config.json: built-in Moshi 7B defaults
  std::string moshi_name = "model.safetensors";
  std::string mimi_name = "tokenizer-e351c8d8-checkpoint125.safetensors";
  std::optional<std::string> mimi_config_name;
  std::string tokenizer_name = "tokenizer_spm_32k_3.model";
  std::optional<std::string> lora_name;
  LmConfig lm;
  MimiConfig mimi;             // defaults, or mimi_config_name's values
  nlohmann::json lm_gen_config = nlohmann::json::object();  // kwargs for the streaming generator
  nlohmann::json stt_config;   // null when absent
  nlohmann::json tts_config;   // null when absent
  nlohmann::json model_id;     // null when absent
  // LoRA settings popped by the reference loader.
  bool lora = false;
  int64_t lora_rank = 128;
  double lora_scaling = 2.0;
};
}  // namespace monologue
