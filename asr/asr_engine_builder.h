// Building an AsrEngine from models already in memory (random weights for benchmarks, models shared with
// other engines). Uses libtorch types: not for torch-free code (the service uses AsrEngine::Load).
#pragma once

#include <c10/core/ScalarType.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "asr/asr_engine.h"
#include "core/config/model_config.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_model.h"
#include "core/text/text_tokenizer.h"

namespace monologue {

struct AsrEngineBuilder {
  // `config`: an STT config (stt_config, lm_gen_config, mimi_codebooks); `lm` and `mimi` on the same device;
  // `tokenizer` may be null (then sessions produce no text or word events, only text_tokens(), VAD and End).
  // options.device / options.dtype are ignored (the models' own are used).
  static absl::StatusOr<std::unique_ptr<AsrEngine>> Create(const ModelConfig& config,
                                                           std::shared_ptr<const LmModel> lm,
                                                           const MimiModel& mimi,
                                                           std::shared_ptr<const TextTokenizer> tokenizer,
                                                           const AsrEngineOptions& options);

  // (internal) The common end of Load and Create.
  static absl::StatusOr<std::unique_ptr<AsrEngine>> Finish(std::shared_ptr<AsrSession::EngineState> shared,
                                                           const ModelConfig& config,
                                                           const AsrEngineOptions& options,
                                                           const std::string& model_dir, double delay,
                                                           double prefix, at::ScalarType dtype);
};

}  // namespace monologue
