// Named model configurations for the random-weight generator, tests and benchmarks.
//   Released architectures (config.json values of moshi-reference.md §2.5): moshi-7b (legacy layout, no
//   config.json), stt-1b-en_fr, stt-2.6b-en, tts-1.6b-en_fr, and mimi (the released Mimi alone).
//   Tiny ones for tests (2 layers, dims 32-64, card 64 = the tiny Mimi's bins, text_card 400 = the vocabulary of
//   tests/data/tokenizers/tiny_en_fr_400.model): tiny-moshi, tiny-moshi-8 (dep_q 8, n_q 16, the released
//   delays), tiny-stt, tiny-tts (each with the tiny Mimi through mimi_config_name "mimi_config.json"), and
//   tiny-mimi (the tiny Mimi alone).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/model_config.h"

namespace monologue {

struct ModelPreset {
  std::string name;
  std::string description;
  ModelConfig config;
  bool mimi_only = false;  // only a Mimi checkpoint (tiny-mimi, mimi)
};

std::vector<std::string> PresetNames();
absl::StatusOr<ModelPreset> GetPreset(std::string_view name);

// The tiny Mimi used by the tiny presets: released structure (ratios 8,6,5,4, 24 kHz, 12.5 Hz, 1920-sample
// frames) with n_filters 4, dimension 32, 2 transformer layers of d_model 32, 32 codebooks of 64 x 16.
MimiConfig TinyMimiConfig();

}  // namespace monologue
