// A model directory as released on Hugging Face: config.json (or the legacy Moshi 7B defaults when it is
// absent), the file names it points to, and the mode-specific sections. Mirrors the reference's
// `CheckpointInfo` + `get_moshi_lm` (moshi-reference.md §2.2).
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

// "moshi" | "stt" | "tts" | "hibiki".
const char* ModelTypeName(ModelType type);

// Reference default file names (loaders.py).
inline constexpr char kDefaultMoshiName[] = "model.safetensors";
inline constexpr char kDefaultMimiName[] = "tokenizer-e351c8d8-checkpoint125.safetensors";
inline constexpr char kDefaultTokenizerName[] = "tokenizer_spm_32k_3.model";

struct ModelConfig {
  ModelType model_type = ModelType::kMoshi;
  bool legacy = false;  // no config.json: built-in Moshi 7B defaults
  // File references exactly as written in config.json (plain names relative to the model directory,
  // `file://` paths, absolute paths or `hf://owner/repo/path`); resolve them with ResolveModelFile.
  std::string moshi_name = kDefaultMoshiName;
  std::string mimi_name = kDefaultMimiName;
  std::optional<std::string> mimi_config_name;
  std::string tokenizer_name = kDefaultTokenizerName;
  std::optional<std::string> lora_name;
  LmConfig lm;
  MimiConfig mimi;  // defaults, or mimi_config_name's values (filled by LoadModelConfig)
  nlohmann::json lm_gen_config = nlohmann::json::object();  // kwargs for the streaming generator
  nlohmann::json stt_config = nlohmann::json::object();     // {} when absent (reference default)
  nlohmann::json tts_config = nlohmann::json::object();     // {} when absent
  nlohmann::json model_id = nlohmann::json::object();       // {} when absent
  // LoRA settings popped by the reference loader.
  bool lora = false;
  int64_t lora_rank = 128;
  double lora_scaling = 2.0;
  // The model directory LoadModelConfig read (empty for ParseModelConfigJson): files resolve against it.
  std::filesystem::path dir;

  // Mimi codebooks the LM uses (CheckpointInfo.get_mimi): 8 for legacy, else max(dep_q, n_q - dep_q),
  // halved when tts_config.multistream is true.
  int64_t mimi_codebooks() const;
};

// Parses a config.json object the way `CheckpointInfo.from_hf_repo` + `get_moshi_lm` do: pops the
// non-architecture keys, drops `depformer_causal`, renames `demux_second_stream`, pops lora/lora_rank/
// lora_scaling, parses conditioners and fuser, and rejects unknown keys and wrong types with an
// INVALID_ARGUMENT naming the key and `source`. The Mimi config is left at its defaults (the caller loads
// mimi_config_name, see LoadModelConfig). Runs LmConfig::Validate.
absl::StatusOr<ModelConfig> ParseModelConfigJson(const nlohmann::json& json, const std::string& source);

// Reads `dir`/config.json (JSON syntax errors name the file, line and column) or, when absent, returns
// the legacy Moshi 7B configuration (legacy = true). Loads and validates mimi_config_name when set.
// NOT_FOUND when `dir` does not exist; INVALID_ARGUMENT when it is not a directory or has neither a
// config.json nor the legacy LM weights file.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& dir);

// Resolves a file reference from config.json: "file://PATH" -> PATH; an absolute path as is;
// "hf://owner/repo/path" -> the local Hugging Face cache
// ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)/models--owner--repo/snapshots/*/path;
// a plain name -> dir/name. NOT_FOUND (naming the reference and the paths tried) when the file is missing.
absl::StatusOr<std::filesystem::path> ResolveModelFile(const std::filesystem::path& dir,
                                                       const std::string& reference);

// The files a model directory's config names (LM weights, Mimi weights, text tokenizer, and the LoRA
// adapter when the config fuses one), resolved with ResolveModelFile. `lora_override` (a --lora file)
// takes the config's adapter's place. NOT_FOUND naming every missing file at once.
struct ModelFiles {
  std::filesystem::path lm, mimi, tokenizer;
  std::filesystem::path lora;  // empty: none
};
absl::StatusOr<ModelFiles> ResolveModelFiles(const std::filesystem::path& dir, const ModelConfig& config,
                                             const std::string& lora_override = "");

// Reads and parses a JSON file; syntax errors name the file, line and column.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::filesystem::path& path);

// A config.json for `config` in the released structure (only architecture keys that differ from
// nothing are omitted: every LmConfig key is written). Round-trips through ParseModelConfigJson.
nlohmann::json ModelConfigToJson(const ModelConfig& config);

}  // namespace monologue
