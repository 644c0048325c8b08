// AudioDecoder::Open (files, FIFOs, stdin) and DecodeAudioFile; the push decoder is push_decoder.cc.
#include "core/audio/audio_decoder.h"

#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/audio/decode_pipeline.h"
#include "core/audio/ffmpeg_util.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace monologue {

using audio_internal::DecodeEngine;
using audio_internal::SampleQueue;

absl::Status AudioDecoder::Push(std::span<const uint8_t>) {
  return absl::FailedPreconditionError(
      absl::StrCat(name(), ": Push() is only for decoders made by OpenPush()"));
}
absl::Status AudioDecoder::Finish() {
  return absl::FailedPreconditionError(
      absl::StrCat(name(), ": Finish() is only for decoders made by OpenPush()"));
}

namespace {

// Why the end of an Ogg file is damaged, or "" if its last page is complete and marked end-of-stream.
// FFmpeg's Ogg demuxer silently drops a page cut off by truncation, and every muxer flags the last page
// of a finished stream with EOS, so this catches cut-off downloads and unfinished recordings.
std::string OggTailProblem(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  // A page is at most 27 + 255 + 255 * 255 bytes; the tail window holds the last one whole.
  constexpr long kWindow = 27 + 255 + 255 * 255 + 4;
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  const long start = std::max(0L, size - kWindow);
  std::vector<uint8_t> tail(static_cast<size_t>(size - start));
  std::fseek(f, start, SEEK_SET);
  const size_t n = std::fread(tail.data(), 1, tail.size(), f);
  std::fclose(f);
  tail.resize(n);
  for (size_t at = tail.size() >= 4 ? tail.size() - 4 : 0; at-- > 0;) {
    if (std::memcmp(tail.data() + at, "OggS", 4) != 0) continue;
    if (at + 27 > tail.size()) return "the last Ogg page is cut off";
    const uint8_t flags = tail[at + 5];
    const size_t segments = tail[at + 26];
    if (at + 27 + segments > tail.size()) return "the last Ogg page is cut off";
    size_t body = 0;
    for (size_t i = 0; i < segments; ++i) body += tail[at + 27 + i];
    const size_t end = at + 27 + segments + body;
    if (end > tail.size()) return "the last Ogg page is cut off";
    if (end < tail.size()) return "";  // trailing bytes after a complete page: not ours to judge
    return (flags & 0x04) ? "" : "the Ogg stream has no end-of-stream page";
  }
  return "";
}

// The duration a WAV header declares in its 'data' chunk, if the file is a plain RIFF/WAVE with a real size
// (not 0 / 0xFFFFFFFF streaming sizes). FFmpeg clips that size to the file size, hiding truncation.
std::optional<double> WavDeclaredSeconds(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return std::nullopt;
  uint8_t buf[4096];
  const size_t n = std::fread(buf, 1, sizeof(buf), f);
  std::fclose(f);
  auto u32 = [&](size_t at) {
    return static_cast<uint32_t>(buf[at]) | static_cast<uint32_t>(buf[at + 1]) << 8 |
           static_cast<uint32_t>(buf[at + 2]) << 16 | static_cast<uint32_t>(buf[at + 3]) << 24;
  };
  if (n < 12 || std::memcmp(buf, "RIFF", 4) != 0 || std::memcmp(buf + 8, "WAVE", 4) != 0) return std::nullopt;
  uint32_t rate = 0, block_align = 0;
  for (size_t at = 12; at + 8 <= n;) {
    const uint32_t size = u32(at + 4);
    if (std::memcmp(buf + at, "fmt ", 4) == 0 && at + 8 + 14 <= n) {
      rate = u32(at + 8 + 4);
      block_align = static_cast<uint32_t>(buf[at + 8 + 12]) | static_cast<uint32_t>(buf[at + 8 + 13]) << 8;
    } else if (std::memcmp(buf + at, "data", 4) == 0) {
      if (size == 0 || size == 0xFFFFFFFFu || rate == 0 || block_align == 0) return std::nullopt;
      return static_cast<double>(size / block_align) / rate;
    }
    at += 8 + static_cast<size_t>(size) + (size & 1);
  }
  return std::nullopt;
}


// File / FIFO / stdin: the caller's thread runs the pipeline; Read blocks on I/O.
class PullDecoder final : public AudioDecoder {
 public:
  PullDecoder(std::string name, const AudioDecoderOptions& options)
      : name_(name), options_(options), engine_(std::make_unique<DecodeEngine>(std::move(name), options)) {}

  absl::Status OpenStdin() { return engine_->Open("pipe:0", nullptr, /*streaming=*/true); }

  absl::Status OpenFile(const std::string& path, bool regular) {
    // "file:" keeps a path containing ':' from being read as another protocol; FIFOs work through it too.
    const std::string url = absl::StrCat("file:", path);
    absl::Status status = engine_->Open(url, nullptr, /*streaming=*/!regular);
    if (!status.ok() && regular && engine_->open_averror() == AVERROR_EOF) {
      // Seekable Ogg files are opened by reading their last page for the duration; a truncated file then
      // fails to open at all. Read it front to back instead and decode what is there.
      engine_ = std::make_unique<DecodeEngine>(name_, options_);
      if (engine_->Open(url, nullptr, /*streaming=*/false, /*no_seek=*/true).ok()) {
        engine_->SetDamagedEnd("its end could not be read");
        status = absl::OkStatus();
      }
    }
    if (!status.ok()) return status;
    if (regular && engine_->info().container == "wav") {
      if (auto declared = WavDeclaredSeconds(path)) engine_->SetDeclaredSeconds(*declared);
    }
    if (regular && (engine_->info().container == "ogg" || engine_->info().container == "opus")) {
      if (std::string problem = OggTailProblem(path); !problem.empty()) engine_->SetDamagedEnd(problem);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<float>> Read(size_t max_samples) override {
    if (max_samples == 0) return absl::InvalidArgumentError(absl::StrCat(name_, ": Read(0)"));
    while (pending_.size() < max_samples && !engine_->finished()) engine_->Step(pending_.tail());
    if (pending_.size() == 0 && engine_->finished() && !engine_->stream_error().ok()) {
      return engine_->stream_error();
    }
    std::vector<float> result = pending_.Take(max_samples);
    samples_read_ += static_cast<int64_t>(result.size());
    return result;
  }

  bool at_end() const override { return engine_->finished() && pending_.size() == 0; }
  bool has_info() const override { return true; }
  AudioStreamInfo info() const override { return engine_->info(); }
  int64_t samples_read() const override { return samples_read_; }
  const std::string& name() const override { return name_; }

 private:
  std::string name_;
  AudioDecoderOptions options_;
  std::unique_ptr<DecodeEngine> engine_;
  SampleQueue pending_;
  int64_t samples_read_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<AudioDecoder>> AudioDecoder::Open(std::string_view path,
                                                                 const AudioDecoderOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("audio input: empty path");
  if (path == "-") {
    auto decoder = std::make_unique<PullDecoder>("stdin", options);
    absl::Status status = decoder->OpenStdin();
    if (!status.ok()) return status;
    return std::unique_ptr<AudioDecoder>(std::move(decoder));
  }
  const std::string name(path);
  struct stat st {};
  if (stat(name.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(name, ": no such file"));
    return absl::InvalidArgumentError(absl::StrCat(name, ": cannot access: ", std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(name, ": is a directory"));
  const bool regular = S_ISREG(st.st_mode);
  if (regular && st.st_size == 0)
    return absl::InvalidArgumentError(absl::StrCat(name, ": empty file (0 bytes)"));
  auto decoder = std::make_unique<PullDecoder>(name, options);
  absl::Status status = decoder->OpenFile(name, regular);
  if (!status.ok()) return status;
  return std::unique_ptr<AudioDecoder>(std::move(decoder));
}

absl::StatusOr<DecodedAudio> DecodeAudioFile(std::string_view path, const AudioDecoderOptions& options) {
  auto decoder = AudioDecoder::Open(path, options);
  if (!decoder.ok()) return decoder.status();
  DecodedAudio result;
  result.info = (*decoder)->info();
  while (true) {
    auto chunk = (*decoder)->Read(1 << 16);
    if (!chunk.ok()) {
      if (!absl::IsDataLoss(chunk.status())) return chunk.status();
      result.warning = chunk.status();
      break;
    }
    if (chunk->empty()) break;
    result.samples.insert(result.samples.end(), chunk->begin(), chunk->end());
  }
  return result;
}

}  // namespace monologue
