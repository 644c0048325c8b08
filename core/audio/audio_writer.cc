#include "core/audio/audio_writer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/audio/ogg_opus_writer.h"
#include "core/audio/wav_writer.h"

namespace monologue {
namespace {

// The format name from options.format, else from the path's extension ("" if neither says).
std::string ResolveFormat(std::string_view path, const AudioWriterOptions& options) {
  if (!options.format.empty()) return absl::AsciiStrToLower(options.format);
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) return "";
  return absl::AsciiStrToLower(std::string(path.substr(dot + 1)));
}

absl::Status UnknownFormat(absl::string_view where, absl::string_view format) {
  if (format.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": cannot tell the output format (give a .wav, .ogg or .opus name or a format)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": unsupported output format '", format, "' (supported: wav, ogg, opus)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AudioWriter>> OpenAudioWriter(std::string_view path,
                                                             const AudioWriterOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("audio output: empty path");
  const std::string format = ResolveFormat(path == "-" ? std::string_view() : path, options);
  AudioWriterOptions resolved = options;
  resolved.format = format;
  if (format == "wav") {
    auto writer = WavWriter::Create(path, resolved);
    if (!writer.ok()) return writer.status();
    return std::unique_ptr<AudioWriter>(std::move(*writer));
  }
  if (format == "ogg" || format == "opus") {
    auto writer = OggOpusWriter::Create(path, resolved);
    if (!writer.ok()) return writer.status();
    return std::unique_ptr<AudioWriter>(std::move(*writer));
  }
  return UnknownFormat(path == "-" ? std::string("stdout") : std::string(path), format);
}

absl::StatusOr<std::unique_ptr<AudioWriter>> OpenAudioWriter(ByteSink sink,
                                                             const AudioWriterOptions& options) {
  const std::string format = absl::AsciiStrToLower(options.format);
  if (format == "wav") {
    auto writer = WavWriter::Create(std::move(sink), options);
    if (!writer.ok()) return writer.status();
    return std::unique_ptr<AudioWriter>(std::move(*writer));
  }
  if (format == "ogg" || format == "opus") {
    auto writer = OggOpusWriter::Create(std::move(sink), options);
    if (!writer.ok()) return writer.status();
    return std::unique_ptr<AudioWriter>(std::move(*writer));
  }
  return UnknownFormat("audio byte stream", format);
}

}  // namespace monologue
