#include "service/stream_audio.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/audio/audio_writer.h"

namespace monologue {

namespace v1 = ::monologue::v1;

absl::StatusOr<AudioInputFormat> InputFormatFromProto(const v1::AudioFormat& af, const std::string& field) {
  AudioInputFormat format;
  switch (af.encoding()) {
    case v1::LINEAR_PCM_S16LE:
      format.encoding = AudioInputFormat::Encoding::kPcm16;
      break;
    case v1::FLOAT32_LE:
      format.encoding = AudioInputFormat::Encoding::kFloat32;
      break;
    case v1::OGG_OPUS:
      format.encoding = AudioInputFormat::Encoding::kOggOpus;
      break;
    case v1::CONTAINER_AUTO:
      format.encoding = AudioInputFormat::Encoding::kContainerAuto;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".encoding is required (LINEAR_PCM_S16LE, FLOAT32_LE, OGG_OPUS or CONTAINER_AUTO)"));
  }
  format.sample_rate = af.sample_rate_hz();
  format.channels = af.channels() == 0 ? 1 : af.channels();
  return format;
}

StreamAudioEncoder::~StreamAudioEncoder() = default;

absl::StatusOr<std::unique_ptr<StreamAudioEncoder>> StreamAudioEncoder::Create(v1::AudioEncoding encoding,
                                                                               const std::string& field) {
  std::unique_ptr<StreamAudioEncoder> e(new StreamAudioEncoder());
  switch (encoding) {
    case v1::AUDIO_ENCODING_UNSPECIFIED:
    case v1::LINEAR_PCM_S16LE:
      e->encoding_ = v1::LINEAR_PCM_S16LE;
      break;
    case v1::FLOAT32_LE:
      e->encoding_ = v1::FLOAT32_LE;
      break;
    case v1::OGG_OPUS: {
      e->encoding_ = v1::OGG_OPUS;
      StreamAudioEncoder* raw = e.get();
      AudioWriterOptions options;
      options.format = "ogg";
      options.ogg_page_duration_ms = 80;  // a page per frame or so: low latency
      auto writer = OpenAudioWriter(
          [raw](std::span<const uint8_t> bytes) {
            raw->pending_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            return absl::OkStatus();
          },
          options);
      if (!writer.ok()) return writer.status();
      e->ogg_ = std::move(*writer);
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": output encoding must be LINEAR_PCM_S16LE, FLOAT32_LE or OGG_OPUS"));
  }
  return e;
}

absl::StatusOr<std::string> StreamAudioEncoder::Encode(std::span<const float> samples) {
  std::string out;
  if (encoding_ == v1::FLOAT32_LE) {
    out.resize(samples.size() * sizeof(float));
    std::memcpy(out.data(), samples.data(), out.size());
  } else if (encoding_ == v1::LINEAR_PCM_S16LE) {
    out.resize(samples.size() * 2);
    for (size_t i = 0; i < samples.size(); ++i) {
      const float x = std::isnan(samples[i]) ? 0.0f : samples[i];
      const auto v = static_cast<int16_t>(std::clamp(std::lround(x * 32768.0f), -32768L, 32767L));
      std::memcpy(out.data() + 2 * i, &v, 2);
    }
  } else {
    if (absl::Status st = ogg_->Write(samples); !st.ok()) return st;
    out.swap(pending_);
  }
  return out;
}

absl::StatusOr<std::string> StreamAudioEncoder::Finish() {
  std::string out;
  if (ogg_ != nullptr) {
    if (absl::Status st = ogg_->Close(); !st.ok()) return st;
    out.swap(pending_);
  }
  return out;
}

std::optional<v1::AudioChunk> StreamAudioEncoder::MakeChunk(std::string bytes) {
  if (bytes.empty()) return std::nullopt;
  v1::AudioChunk chunk;
  chunk.set_data(std::move(bytes));
  chunk.set_start_seconds(chunk_start_);
  chunk.set_duration_seconds(seconds_ - chunk_start_);
  chunk_start_ = seconds_;
  return chunk;
}

absl::StatusOr<std::optional<v1::AudioChunk>> StreamAudioEncoder::NextChunk(std::span<const float> samples) {
  auto bytes = Encode(samples);
  if (!bytes.ok()) return bytes.status();
  seconds_ += static_cast<double>(samples.size()) / 24000.0;
  return MakeChunk(std::move(*bytes));
}

absl::StatusOr<std::optional<v1::AudioChunk>> StreamAudioEncoder::LastChunk() {
  auto bytes = Finish();
  if (!bytes.ok()) return bytes.status();
  return MakeChunk(std::move(*bytes));
}

}  // namespace monologue
