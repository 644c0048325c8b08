// Incremental audio writers: mono float samples in, a WAV or Ogg/Opus file (or byte stream) out.
//
//   auto writer = OpenAudioWriter("out.ogg", {.sample_rate = 24000});
//   RETURN_IF_ERROR((*writer)->Write(chunk));   // as chunks come
//   RETURN_IF_ERROR((*writer)->Close());        // finalizes (WAV sizes, last Opus frame, Ogg EOS page)
//
// Every Write reaches the OS before it returns, so a crash mid-way leaves a readable file: a WAV keeps its
// streaming header (sizes 0xFFFFFFFF = "until end of file"), an Ogg file all its completed pages.
// Destroying a writer without Close() finalizes it best-effort.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace monologue {

enum class WavSampleFormat {
  kPcm16,    // 16-bit signed PCM: round(x * 32768), clamped to [-32768, 32767]; NaN -> 0
  kFloat32,  // 32-bit IEEE float (WAVE_FORMAT_IEEE_FLOAT), samples stored exactly; NaN/inf -> 0
};

struct AudioWriterOptions {
  // Rate of the samples given to Write (Mimi's 24 kHz by default).
  int sample_rate = 24000;
  // "wav", "ogg" or "opus"; empty = from the path's extension (.wav, .ogg, .opus). Required for "-" (stdout)
  // and for byte sinks.
  std::string format;
  WavSampleFormat wav_sample_format = WavSampleFormat::kPcm16;
  // Opus: target bitrate in bits/s (libopus VBR), and the longest time the Ogg muxer holds audio before
  // emitting a page (lower = lower latency for streaming, slightly more container overhead).
  int opus_bitrate = 32000;
  int ogg_page_duration_ms = 100;
};

class AudioWriter {
 public:
  virtual ~AudioWriter() = default;
  // Appends mono samples (nominally in [-1, 1]). Any length, including 0.
  virtual absl::Status Write(std::span<const float> samples) = 0;
  // Flushes and finalizes. Further Writes fail; a second Close is a no-op.
  virtual absl::Status Close() = 0;
  // Samples accepted by Write so far.
  virtual int64_t samples_written() const = 0;
};

// Receives encoded bytes in order (e.g. to forward Ogg pages on a gRPC stream). A non-OK status fails the
// Write / Close that produced the bytes.
using ByteSink = std::function<absl::Status(std::span<const uint8_t> bytes)>;

// Opens a writer for `path` ("-" = stdout), choosing the format from options.format or the extension.
// Files are created or truncated.
absl::StatusOr<std::unique_ptr<AudioWriter>> OpenAudioWriter(std::string_view path,
                                                             const AudioWriterOptions& options = {});

// Same, writing to a byte sink (non-seekable: a WAV gets the streaming header). options.format is required.
absl::StatusOr<std::unique_ptr<AudioWriter>> OpenAudioWriter(ByteSink sink,
                                                             const AudioWriterOptions& options);

}  // namespace monologue
