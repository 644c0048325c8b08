// Voices of the DSM TTS models by name or path: the kyutai/tts-voices naming (NAME<voice_suffix>, e.g.
// "expresso/ex03-ex01_happy_001_channel1_334s.wav" + ".1e68beda@240.safetensors"), resolved under a voices
// folder or the repo's snapshot in the local Hugging Face cache (fetched from the Hub when missing, where this
// build can), with the closest names in the error when a name is unknown. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace monologue {

// A voice by path or name. `voice` ending in ".safetensors" is a file path (tried as given, then under
// `voices_dir`); otherwise `voices_dir`/<voice><voice_suffix>. `voices_dir` empty: the kyutai/tts-voices
// snapshot in the local Hugging Face cache. NOT_FOUND naming the closest voices.
absl::StatusOr<std::string> ResolveVoice(const std::string& voice, const std::string& voices_dir,
                                         const std::string& voice_suffix);
// Every voice name under `voices_dir` (empty: the kyutai/tts-voices snapshot in the HF cache) with that
// suffix (sorted).
std::vector<std::string> ListVoices(const std::string& voices_dir, const std::string& voice_suffix);

}  // namespace monologue
