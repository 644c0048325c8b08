#include "service/audio_input.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/audio/audio_decoder.h"

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

namespace monologue {

namespace {
constexpr size_t kDecoderReadChunk = 24000;
}  // namespace

DecodedChunk DecodeOutsideLock(std::mutex& mu, const std::shared_ptr<AudioInput>& input, std::string_view bytes,
                               bool finish) {
  std::shared_ptr<AudioInput> decoder;
  {
    std::lock_guard<std::mutex> lock(mu);
    decoder = input;
  }
  DecodedChunk out;
  if (decoder == nullptr) return out;
  out.ready = true;
  out.status = finish ? decoder->Finish(out.samples)
                      : decoder->Push(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                               bytes.size()),
                                      out.samples);
  return out;
}

absl::StatusOr<std::unique_ptr<AudioInput>> AudioInput::Create(const AudioInputFormat& format,
                                                               const std::string& name, int target_rate) {
  using E = AudioInputFormat::Encoding;
  const bool raw = format.encoding == E::kPcm16 || format.encoding == E::kFloat32;
  if (raw) {
    if (format.sample_rate < 8000 || format.sample_rate > 192000) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": sample_rate_hz must be in 8000..192000 for raw PCM (got ", format.sample_rate, ")"));
    }
    if (format.channels < 1 || format.channels > 8) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": channels must be in 1..8 (got ", format.channels, ")"));
    }
  }
  std::unique_ptr<AudioInput> input(new AudioInput(format, name, target_rate));
  if (!raw) {
    AudioDecoderOptions options;
    options.target_sample_rate = target_rate;
    if (format.encoding == E::kOggOpus) options.format_hint = "ogg";
    input->decoder_ = AudioDecoder::OpenPush(options, name);
  } else if (format.sample_rate != target_rate) {
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    SwrContext* swr = nullptr;
    int rc = swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_FLT, target_rate, &mono, AV_SAMPLE_FMT_FLT,
                                 format.sample_rate, 0, nullptr);
    if (rc < 0 || swr == nullptr)
      return absl::InternalError(absl::StrCat(name, ": cannot set up the resampler"));
    av_opt_set(swr, "resampler", "soxr", 0);
    av_opt_set_double(swr, "precision", 28.0, 0);
    if (swr_init(swr) < 0) {
      swr_free(&swr);
      return absl::InternalError(absl::StrCat(name, ": cannot initialise the resampler"));
    }
    input->swr_ = swr;
  }
  return input;
}

AudioInput::AudioInput(const AudioInputFormat& format, std::string name, int target_rate)
    : format_(format), name_(std::move(name)), target_rate_(target_rate) {}

AudioInput::~AudioInput() {
  if (swr_ != nullptr) swr_free(&swr_);
}

absl::Status AudioInput::Resample(const float* mono, int n, std::vector<float>& out) {
  if (swr_ == nullptr) {
    out.insert(out.end(), mono, mono + n);
    return absl::OkStatus();
  }
  const int capacity = std::max(swr_get_out_samples(swr_, n), 256);
  const size_t old = out.size();
  out.resize(old + static_cast<size_t>(capacity));
  auto* dst = reinterpret_cast<uint8_t*>(out.data() + old);
  const auto* src = reinterpret_cast<const uint8_t*>(mono);
  const int got = swr_convert(swr_, &dst, capacity, n > 0 ? &src : nullptr, n);
  if (got < 0) {
    out.resize(old);
    return absl::InternalError(absl::StrCat(name_, ": resampling failed"));
  }
  out.resize(old + static_cast<size_t>(got));
  return absl::OkStatus();
}

absl::Status AudioInput::DrainDecoder(std::vector<float>& out) {
  while (true) {
    auto chunk = decoder_->Read(kDecoderReadChunk);
    if (!chunk.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("audio could not be decoded: ", chunk.status().message()));
    }
    if (chunk->empty()) return absl::OkStatus();
    out.insert(out.end(), chunk->begin(), chunk->end());
  }
}

absl::Status AudioInput::Push(std::span<const uint8_t> bytes, std::vector<float>& out) {
  if (!error_.ok()) return error_;
  bytes_ += static_cast<int64_t>(bytes.size());
  if (decoder_ != nullptr) {
    if (absl::Status st = decoder_->Push(bytes); !st.ok()) {
      error_ = absl::InvalidArgumentError(absl::StrCat(name_, ": ", st.message()));
      return error_;
    }
    error_ = DrainDecoder(out);
    return error_;
  }
  const bool pcm16 = format_.encoding == AudioInputFormat::Encoding::kPcm16;
  const size_t sample_bytes = pcm16 ? 2 : 4;
  const size_t frame_bytes = sample_bytes * static_cast<size_t>(format_.channels);
  partial_.insert(partial_.end(), bytes.begin(), bytes.end());
  const size_t frames = partial_.size() / frame_bytes;
  std::vector<float> mono(frames);
  const float scale = 1.0f / static_cast<float>(format_.channels);
  for (size_t f = 0; f < frames; ++f) {
    float sum = 0;
    for (int c = 0; c < format_.channels; ++c) {
      const uint8_t* p = partial_.data() + f * frame_bytes + static_cast<size_t>(c) * sample_bytes;
      float v;
      if (pcm16) {
        int16_t s;
        std::memcpy(&s, p, 2);
        v = static_cast<float>(s) / 32768.0f;
      } else {
        std::memcpy(&v, p, 4);
        if (!std::isfinite(v)) {
          error_ =
              absl::InvalidArgumentError(absl::StrCat(name_, ": FLOAT32_LE audio holds a non-finite sample (",
                                                      v, ") at input sample frame ", frames_in_ + f));
          return error_;
        }
        if (std::fabs(v) > kMaxFloatSample) {
          error_ = absl::InvalidArgumentError(absl::StrCat(
              name_, ": FLOAT32_LE audio holds the sample ", v, " at input sample frame ", frames_in_ + f,
              ": float samples are in [-1, 1] (16-bit values belong in LINEAR_PCM_S16LE)"));
          return error_;
        }
      }
      sum += v;
    }
    mono[f] = format_.channels == 1 ? sum : sum * scale;
  }
  partial_.erase(partial_.begin(), partial_.begin() + static_cast<std::ptrdiff_t>(frames * frame_bytes));
  frames_in_ += static_cast<int64_t>(frames);
  error_ = Resample(mono.data(), static_cast<int>(frames), out);
  return error_;
}

absl::Status AudioInput::Finish(std::vector<float>& out) {
  if (!error_.ok()) return error_;
  // No bytes at all is an empty stream in every encoding (a client that stops before sending audio): it ends
  // with nothing transcribed, as raw PCM does, rather than the decoder's "empty input" error.
  if (decoder_ != nullptr && bytes_ == 0) return absl::OkStatus();
  if (decoder_ != nullptr) {
    if (absl::Status st = decoder_->Finish(); !st.ok()) {
      error_ = absl::InvalidArgumentError(absl::StrCat(name_, ": ", st.message()));
      return error_;
    }
    // Read at least once after the end of the input: a decoder thread that has already ended with an error
    // (a header refused before any sample) is at_end() too, and only Read gives its error. (Asking at_end()
    // first lost it whenever the thread was quicker than this call: "holds no decodable audio" instead.)
    do {
      const size_t before = out.size();
      if (absl::Status st = DrainDecoder(out); !st.ok()) {
        error_ = st;
        return error_;
      }
      if (out.size() == before && decoder_->at_end()) break;
    } while (!decoder_->at_end());
    if (bytes_ > 0 && decoder_->samples_read() == 0) {
      error_ = absl::InvalidArgumentError(
          absl::StrCat(name_, ": the compressed audio (", bytes_, " bytes) holds no decodable audio"));
      return error_;
    }
    return absl::OkStatus();
  }
  if (!partial_.empty()) {
    error_ = absl::InvalidArgumentError(absl::StrCat(
        name_, ": the audio ends with ", partial_.size(), " bytes, less than one whole sample frame (",
        (format_.encoding == AudioInputFormat::Encoding::kPcm16 ? 2 : 4) * format_.channels, " bytes)"));
    return error_;
  }
  if (swr_ != nullptr) error_ = Resample(nullptr, 0, out);
  return error_;
}

}  // namespace monologue
