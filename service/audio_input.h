// Turns the audio bytes of a stream (raw PCM16 / float32 at any rate and channel count, or a compressed
// container FFmpeg decodes incrementally) into 24 kHz mono float samples, chunk by chunk. Torch-free and
// gRPC-free (the service's reactor and the tests use it).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct SwrContext;

namespace monologue {

class AudioDecoder;

struct AudioInputFormat {
  enum class Encoding { kPcm16, kFloat32, kOggOpus, kContainerAuto };
  Encoding encoding = Encoding::kPcm16;
  int sample_rate = 24000;  // raw PCM only
  int channels = 1;         // raw PCM only
};

class AudioInput;

// Float audio is in [-1, 1]; a few times over is clipped speech, far beyond it is a wrong scale (int16 values
// sent as floats) that would be transcribed into noise words, so it is refused.
// (core/audio's kMaxDecodedSample, the same bound for decoded files).
inline constexpr float kMaxFloatSample = 64.0f;

// A stream's audio decoded outside its lock (see DecodeOutsideLock).
struct DecodedChunk {
  bool ready = false;  // decoding ran (false: no input to decode with, e.g. not configured yet)
  absl::Status status;
  std::vector<float> samples;
};

// Decodes `bytes` (or, with `finish`, flushes the end of the input) with the stream's `input`, holding
// the stream's `mu` only to copy the pointer: the model thread takes that lock after every step, and a
// slow container decode must not hold it. Reads of one stream never overlap, so its decoder has one user.
DecodedChunk DecodeOutsideLock(std::mutex& mu, const std::shared_ptr<AudioInput>& input, std::string_view bytes,
                               bool finish);

class AudioInput {
 public:
  // INVALID_ARGUMENT for a rate outside 8000..192000 or channels outside 1..8 (raw PCM). `name` labels
  // errors.
  static absl::StatusOr<std::unique_ptr<AudioInput>> Create(const AudioInputFormat& format,
                                                            const std::string& name, int target_rate = 24000);
  ~AudioInput();
  AudioInput(const AudioInput&) = delete;
  AudioInput& operator=(const AudioInput&) = delete;

  // Appends the samples the new bytes give (possibly none yet) to `out`. INVALID_ARGUMENT when the audio is
  // bad (non-finite floats, a stream the decoder rejects); errors are sticky.
  absl::Status Push(std::span<const uint8_t> bytes, std::vector<float>& out);
  // End of input: the remaining samples. INVALID_ARGUMENT for a partial sample left over (e.g. an odd byte
  // count for PCM16) or a compressed stream that holds no audio; none for no bytes at all (an empty stream).
  absl::Status Finish(std::vector<float>& out);

 private:
  AudioInput(const AudioInputFormat& format, std::string name, int target_rate);
  absl::Status Resample(const float* mono, int n, std::vector<float>& out);
  absl::Status DrainDecoder(std::vector<float>& out);

  AudioInputFormat format_;
  std::string name_;
  int target_rate_;
  std::vector<uint8_t> partial_;  // bytes of an incomplete PCM frame
  std::unique_ptr<AudioDecoder> decoder_;
  SwrContext* swr_ = nullptr;
  int64_t bytes_ = 0;
  int64_t frames_in_ = 0;  // raw PCM sample frames converted
  absl::Status error_;
};

}  // namespace monologue
