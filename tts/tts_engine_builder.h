// Building a TtsEngine from models already in memory (random weights for benchmarks). Uses libtorch types:
// not for torch-free code (front ends use TtsEngine::Load).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/config/model_config.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_model.h"
#include "core/text/text_tokenizer.h"
#include "tts/tts_engine.h"

namespace monologue {

struct TtsEngineBuilder {
  // `config`: a TTS config (tts_config, conditioners); `lm` and `mimi` on the same device; the tokenizer may
  // be smaller than the model's text vocabulary (benchmarks). options.device / dtype are ignored.
  static absl::StatusOr<std::unique_ptr<TtsEngine>> Create(const ModelConfig& config,
                                                           std::shared_ptr<const LmModel> lm,
                                                           const MimiModel& mimi,
                                                           std::shared_ptr<const TextTokenizer> tokenizer,
                                                           const TtsEngineOptions& options);
  // (internal) The common end of Load and Create: `shared` holds the models, tokenizer, device, options.
  static absl::StatusOr<std::unique_ptr<TtsEngine>> Finish(std::shared_ptr<TtsSession::EngineState> shared,
                                                           const ModelConfig& config, const std::string& model_dir);
};

}  // namespace monologue
