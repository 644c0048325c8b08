// Building a DialogueEngine from models already in memory (random weights for benchmarks). Uses libtorch
// types: not for torch-free code (the CLI and the service use DialogueEngine::Load).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "core/config/model_config.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_model.h"
#include "core/text/text_tokenizer.h"
#include "dialogue/dialogue_engine.h"

namespace monologue {

struct DialogueEngineBuilder {
  // `config`: a Moshi config (lm_gen_config, mimi_codebooks); `lm` and `mimi` on the same device; `tokenizer`
  // may be null (then sessions produce no kText events). options.device / options.dtype are ignored.
  static absl::StatusOr<std::unique_ptr<DialogueEngine>> Create(
      const ModelConfig& config, std::shared_ptr<const LmModel> lm, const MimiModel& mimi,
      std::shared_ptr<const TextTokenizer> tokenizer, const DialogueEngineOptions& options);

  // (internal) The common end of Load and Create.
  static absl::StatusOr<std::unique_ptr<DialogueEngine>> Finish(
      std::shared_ptr<DialogueSession::EngineState> shared, const ModelConfig& config,
      const DialogueEngineOptions& options, const std::string& model_dir, const std::string& dtype_name);
};

}  // namespace monologue
