// Incremental RIFF/WAVE writer, mono, 16-bit PCM or 32-bit float.
//
// The header is written first with the streaming sizes 0xFFFFFFFF ("data runs to the end of the file",
// understood by FFmpeg, SoX and most players), every Write is flushed to the OS, and Close patches the real
// RIFF / fact / data sizes when the output is seekable. So a crash leaves a playable file, and stdout or a
// byte sink (non-seekable) simply keeps the streaming header.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/audio/audio_writer.h"

namespace monologue {

class WavWriter final : public AudioWriter {
 public:
  // `path` "-" = stdout. Uses options.sample_rate and options.wav_sample_format.
  static absl::StatusOr<std::unique_ptr<WavWriter>> Create(std::string_view path,
                                                           const AudioWriterOptions& options);
  static absl::StatusOr<std::unique_ptr<WavWriter>> Create(ByteSink sink, const AudioWriterOptions& options);
  ~WavWriter() override;

  absl::Status Write(std::span<const float> samples) override;
  absl::Status Close() override;
  int64_t samples_written() const override { return samples_written_; }

  // The header bytes for `num_samples` samples (nullopt = streaming sizes). Exposed for tests.
  static std::vector<uint8_t> Header(int sample_rate, WavSampleFormat format,
                                     std::optional<int64_t> num_samples);

 private:
  WavWriter(std::string name, const AudioWriterOptions& options);
  absl::Status Emit(const uint8_t* data, size_t size);

  std::string name_;
  AudioWriterOptions options_;
  std::FILE* file_ = nullptr;
  bool owns_file_ = false;
  bool seekable_ = false;
  ByteSink sink_;
  bool closed_ = false;
  absl::Status error_;
  int64_t samples_written_ = 0;
  std::vector<uint8_t> buffer_;
};

}  // namespace monologue
