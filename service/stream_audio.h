// Audio formats on the wire, shared by the service's streams: AudioFormat messages to AudioInput formats, and
// the encoder of the audio the server sends (PCM16 / float32 bytes, or Ogg/Opus pages as they complete).
#pragma once

#include <memory>
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

 private:
  StreamAudioEncoder() = default;
  monologue::v1::AudioEncoding encoding_ = monologue::v1::LINEAR_PCM_S16LE;
  std::unique_ptr<AudioWriter> ogg_;
  std::string pending_;
};

}  // namespace monologue
