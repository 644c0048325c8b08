// Incremental Ogg/Opus writer: libavcodec's libopus encoder into libavformat's Ogg muxer.
//
// libopus accepts 8/12/16/24/48 kHz input, so Mimi's 24 kHz goes in unchanged (the Opus decoder always
// plays back at 48 kHz; OpusHead records the 24 kHz input rate). Other input rates are resampled to 48 kHz
// with libswresample (soxr) first. Samples are regrouped into exact 20 ms encoder frames; the last partial
// frame is encoded short and its end is trimmed through the final granule position, so a decoder returns
// exactly the number of samples written. Pages are emitted at least every ogg_page_duration_ms and each
// Write pushes completed pages to the output.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/audio/audio_writer.h"

namespace monologue {

class OggOpusWriter final : public AudioWriter {
 public:
  // `path` "-" = stdout. options.format "opus" selects FFmpeg's "opus" muxer flavour (same bytes layout,
  // .opus extension); anything else the "ogg" muxer.
  static absl::StatusOr<std::unique_ptr<OggOpusWriter>> Create(std::string_view path,
                                                               const AudioWriterOptions& options);
  static absl::StatusOr<std::unique_ptr<OggOpusWriter>> Create(ByteSink sink,
                                                               const AudioWriterOptions& options);
  ~OggOpusWriter() override;

  absl::Status Write(std::span<const float> samples) override;
  absl::Status Close() override;
  int64_t samples_written() const override;

  struct Impl;  // FFmpeg state (ogg_opus_writer.cc)

 private:
  explicit OggOpusWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace monologue
