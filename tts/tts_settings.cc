#include "tts/tts_settings.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace monologue::tts {
namespace {

// A number from tts_config (`fallback` when absent) within [min, max]; the error names the key and its value.
absl::StatusOr<double> TtsNumber(const ModelConfig& config, const char* key, double fallback, double min,
                                 double max, const std::string& source) {
  if (!config.tts_config.contains(key)) return fallback;
  const auto& v = config.tts_config.at(key);
  if (!v.is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": tts_config.", key, " must be a number"));
  }
  const double value = v.get<double>();
  if (!(value >= min && value <= max)) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": tts_config.", key, " must be from ", min,
                                                   " to ", max, " (got ", v.dump(), ")"));
  }
  return value;
}

}  // namespace

absl::StatusOr<TtsSettings> ReadTtsSettings(const ModelConfig& config, const std::string& source) {
  TtsSettings s;
  if (!config.tts_config.contains("audio_delay")) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": tts_config.audio_delay is missing"));
  }
  // Bounds far beyond the released model's (1.28 s, 2 words, 5 speakers), short of what would fail
  // mid-stream: the delay is in seconds of audio, the speakers size every voice's cross-attention memory.
  ASSIGN_OR_RETURN(s.audio_delay_seconds, TtsNumber(config, "audio_delay", 0, 0, 60, source));
  ASSIGN_OR_RETURN(double ahead, TtsNumber(config, "second_stream_ahead", 0, 0, 1000, source));
  ASSIGN_OR_RETURN(double max_speakers, TtsNumber(config, "max_speakers", 5, 1, 64, source));
  s.second_stream_ahead = static_cast<int>(ahead);
  s.max_speakers = static_cast<int>(max_speakers);
  if (config.tts_config.value("multistream", false)) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": tts_config.multistream models are not supported (no released model uses it)"));
  }
  const auto& conditioners = config.lm.conditioners;
  if (auto cfg = conditioners.find("cfg"); cfg != conditioners.end()) {
    for (const std::string& v : cfg->second.possible_values) {
      double value = 0;
      if (!absl::SimpleAtod(v, &value) || !std::isfinite(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": conditioners.cfg possible value '", v,
                         "' is not a number (a CFG-distilled model's values are "
                         "its guidance coefficients, e.g. \"2.0\")"));
      }
      s.cfg_values.push_back(value);
    }
  }
  if (config.model_id.contains("sig") && config.model_id.contains("epoch")) {
    const auto& sig = config.model_id.at("sig");
    const auto& epoch = config.model_id.at("epoch");
    s.voice_suffix =
        absl::StrCat(".", sig.is_string() ? sig.get<std::string>() : sig.dump(), "@",
                     epoch.is_string() ? epoch.get<std::string>() : epoch.dump(), ".safetensors");
  }
  for (const auto& [name, cc] : conditioners) {
    if (cc.type == ConditionerConfig::Type::kTensor && name != "speaker_wavs") {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": unsupported tensor conditioner '", name, "'"));
    }
  }
  const auto speaker = conditioners.find("speaker_wavs");
  if (speaker == conditioners.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source,
        ": this TTS model has no speaker_wavs conditioner; models conditioned by an audio prefix "
        "(e.g. kyutai/tts-0.75b-en-public) are not supported yet"));
  }
  s.speaker_dim = static_cast<int>(speaker->second.dim);
  return s;
}

}  // namespace monologue::tts
