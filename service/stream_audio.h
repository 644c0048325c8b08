// Audio formats on the wire, shared by the service's streams: AudioFormat messages to AudioInput formats, and
// the encoder of the audio the server sends (PCM16 / float32 bytes, or Ogg/Opus pages as they complete).
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "monologue/v1/transcription.pb.h"
#include "service/audio_input.h"

namespace monologue {

// INVALID_ARGUMENT naming `field` for an unspecified or unknown encoding.
absl::StatusOr<AudioInputFormat> InputFormatFromProto(const monologue::v1::AudioFormat& format,
                                                      const std::string& field);

class AudioWriter;

// Encodes 24 kHz mono float frames for a stream: LINEAR_PCM_S16LE (also for UNSPECIFIED), FLOAT32_LE,
// OGG_OPUS. Encode returns the bytes ready to send (Ogg: the pages completed so far, possibly none).
class StreamAudioEncoder {
 public:
  static absl::StatusOr<std::unique_ptr<StreamAudioEncoder>> Create(monologue::v1::AudioEncoding encoding,
                                                                    const std::string& field);
  ~StreamAudioEncoder();
  monologue::v1::AudioEncoding encoding() const { return encoding_; }
  absl::StatusOr<std::string> Encode(std::span<const float> samples);
  absl::StatusOr<std::string> Finish();

  // The same as AudioChunk messages with their place in the output audio: a chunk once bytes are ready
  // (PCM: every call; Ogg: when a page completes, covering every sample since the previous chunk).
  absl::StatusOr<std::optional<monologue::v1::AudioChunk>> NextChunk(std::span<const float> samples);
  absl::StatusOr<std::optional<monologue::v1::AudioChunk>> LastChunk();
  double seconds() const { return seconds_; }  // output audio encoded so far

 private:
  std::optional<monologue::v1::AudioChunk> MakeChunk(std::string bytes);
  StreamAudioEncoder() = default;
  monologue::v1::AudioEncoding encoding_ = monologue::v1::LINEAR_PCM_S16LE;
  std::unique_ptr<AudioWriter> ogg_;
  std::string pending_;
  double seconds_ = 0;
  double chunk_start_ = 0;
};

}  // namespace monologue
