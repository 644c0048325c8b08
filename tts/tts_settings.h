// What a TTS model's config.json says about synthesis (tts_config and the conditioners), read and checked
// once: TtsEngine's loading derives its model info from it, and TtsEngine::CheckConfig (`monologue info`)
// runs the same checks without loading weights.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/model_config.h"

namespace monologue::tts {

struct TtsSettings {
  double audio_delay_seconds = 0;  // tts_config.audio_delay
  int second_stream_ahead = 0;     // words the text stream runs ahead of the audio
  int max_speakers = 5;            // speaker slots of the speaker_wavs conditioner
  int speaker_dim = 0;             // a voice's embedding width (speaker_wavs' dim)
  std::vector<double> cfg_values;  // a CFG-distilled model's guidance coefficients (empty: not distilled)
  std::string voice_suffix;        // ".<sig>@<epoch>.safetensors" of the voices made for it ("" unknown)
};

// The settings, or an error naming `source` (the config.json path), the key and its value: missing or
// out-of-range tts_config numbers, a non-numeric CFG value, multistream models, unsupported conditioners and
// models without speaker_wavs.
absl::StatusOr<TtsSettings> ReadTtsSettings(const ModelConfig& config, const std::string& source);

}  // namespace monologue::tts
