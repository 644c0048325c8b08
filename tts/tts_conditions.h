// (internal) The LM conditions of a synthesis slot: the LUT conditioners ("control", the distilled "cfg"
// value) and the speaker_wavs tensor conditioner built from voice files, plus the null conditions idle slots
// and real-CFG null rows hold. Uses libtorch.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/lm/lm_model.h"
#include "tts/tts_engine.h"

namespace monologue::tts {

// What the conditions of a slot depend on.
struct ConditionContext {
  const LmModel* lm = nullptr;
  int64_t max_speakers = 0;
  int64_t voice_frames = 0;
  bool real_cfg = false;
  double default_cfg = 1.0;  // the engine's cfg_coef (sessions that set none)
  c10::Device device = c10::Device(c10::kCPU);
};

// The distilled cfg condition's value for a coefficient, as the reference formats it ("{:.1f}").
std::string CfgValue(double coef);

// A voice file's `speaker_wavs` [1, dim, frames] as f32; INVALID_ARGUMENT naming the file for anything else.
absl::StatusOr<at::Tensor> LoadVoice(const std::string& path, int64_t dim, int64_t frames);

// The conditions of one slot: the conditional row, then (real CFG) the null row.
absl::StatusOr<LmFusedConditions> SlotConditions(const ConditionContext& context, const TtsSessionOptions& options,
                                                 const std::vector<at::Tensor>& voices);

// Null conditions for `rows` rows (what idle slots hold).
absl::StatusOr<LmFusedConditions> NullConditions(const ConditionContext& context, int64_t rows);

}  // namespace monologue::tts
