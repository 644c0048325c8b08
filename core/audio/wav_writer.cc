#include "core/audio/wav_writer.h"

#include <sys/stat.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"

namespace monologue {
namespace {

static_assert(std::endian::native == std::endian::little, "WAV samples are written in host byte order");

void Put32(std::vector<uint8_t>* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void Put16(std::vector<uint8_t>* out, uint16_t v) {
  out->push_back(static_cast<uint8_t>(v));
  out->push_back(static_cast<uint8_t>(v >> 8));
}
void PutTag(std::vector<uint8_t>* out, const char* tag) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<uint8_t>(tag[i]));
}

int BytesPerSample(WavSampleFormat format) { return format == WavSampleFormat::kPcm16 ? 2 : 4; }

int16_t ToPcm16(float x) {
  if (std::isnan(x)) return 0;
  const float scaled = x * 32768.0f;
  if (scaled >= 32767.0f) return 32767;
  if (scaled <= -32768.0f) return -32768;
  return static_cast<int16_t>(std::lrintf(scaled));
}

}  // namespace

std::vector<uint8_t> WavWriter::Header(int sample_rate, WavSampleFormat format,
                                       std::optional<int64_t> num_samples) {
  const bool is_float = format == WavSampleFormat::kFloat32;
  const uint32_t bytes_per_sample = BytesPerSample(format);
  const uint32_t fmt_size = is_float ? 18 : 16;  // non-PCM formats carry cbSize
  const uint32_t header_size = 12 + 8 + fmt_size + (is_float ? 12 : 0) + 8;
  // Streaming sizes: RIFF / data 0xFFFFFFFF ("to the end of the file"); the fact count 0 ("unknown"), since
  // readers take a nonzero fact count as the true length.
  uint32_t riff_size = 0xFFFFFFFFu, data_size = 0xFFFFFFFFu, fact_count = 0;
  if (num_samples.has_value()) {
    const uint64_t data = static_cast<uint64_t>(*num_samples) * bytes_per_sample;
    if (data + header_size - 8 <= 0xFFFFFFFFull) {  // larger than 4 GiB: keep the streaming sizes
      data_size = static_cast<uint32_t>(data);
      riff_size = static_cast<uint32_t>(data + header_size - 8);
      fact_count = static_cast<uint32_t>(*num_samples);
    }
  }
  std::vector<uint8_t> h;
  PutTag(&h, "RIFF");
  Put32(&h, riff_size);
  PutTag(&h, "WAVE");
  PutTag(&h, "fmt ");
  Put32(&h, fmt_size);
  Put16(&h, is_float ? 3 : 1);  // WAVE_FORMAT_IEEE_FLOAT / WAVE_FORMAT_PCM
  Put16(&h, 1);                 // channels
  Put32(&h, static_cast<uint32_t>(sample_rate));
  Put32(&h, static_cast<uint32_t>(sample_rate) * bytes_per_sample);  // byte rate
  Put16(&h, static_cast<uint16_t>(bytes_per_sample));                // block align
  Put16(&h, static_cast<uint16_t>(8 * bytes_per_sample));            // bits per sample
  if (is_float) {
    Put16(&h, 0);  // cbSize
    PutTag(&h, "fact");
    Put32(&h, 4);
    Put32(&h, fact_count);
  }
  PutTag(&h, "data");
  Put32(&h, data_size);
  return h;
}

WavWriter::WavWriter(std::string name, const AudioWriterOptions& options)
    : name_(std::move(name)), options_(options) {}

absl::StatusOr<std::unique_ptr<WavWriter>> WavWriter::Create(std::string_view path,
                                                             const AudioWriterOptions& options) {
  if (options.sample_rate <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(path), ": invalid sample rate ", options.sample_rate));
  }
  std::unique_ptr<WavWriter> writer(new WavWriter(path == "-" ? "stdout" : std::string(path), options));
  if (path == "-") {
    writer->file_ = stdout;
    struct stat st {};
    // stdout redirected to a regular file at offset 0 can still get its header patched.
    writer->seekable_ = fstat(fileno(stdout), &st) == 0 && S_ISREG(st.st_mode) && ftello(stdout) == 0;
  } else {
    writer->file_ = std::fopen(std::string(path).c_str(), "wb");
    if (writer->file_ == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(path), ": cannot create: ", std::strerror(errno)));
    }
    writer->owns_file_ = true;
    struct stat st {};
    writer->seekable_ = fstat(fileno(writer->file_), &st) == 0 && S_ISREG(st.st_mode);
  }
  const std::vector<uint8_t> header = Header(options.sample_rate, options.wav_sample_format, std::nullopt);
  absl::Status status = writer->Emit(header.data(), header.size());
  if (!status.ok()) return status;
  return writer;
}

absl::StatusOr<std::unique_ptr<WavWriter>> WavWriter::Create(ByteSink sink,
                                                             const AudioWriterOptions& options) {
  if (!sink) return absl::InvalidArgumentError("WAV writer: null byte sink");
  if (options.sample_rate <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("WAV writer: invalid sample rate ", options.sample_rate));
  }
  std::unique_ptr<WavWriter> writer(new WavWriter("WAV byte stream", options));
  writer->sink_ = std::move(sink);
  const std::vector<uint8_t> header = Header(options.sample_rate, options.wav_sample_format, std::nullopt);
  absl::Status status = writer->Emit(header.data(), header.size());
  if (!status.ok()) return status;
  return writer;
}

WavWriter::~WavWriter() { Close().IgnoreError(); }

absl::Status WavWriter::Emit(const uint8_t* data, size_t size) {
  if (sink_) {
    absl::Status status = sink_(std::span<const uint8_t>(data, size));
    if (!status.ok()) error_ = status;
    return status;
  }
  // Flushed at once: a crash after Write returns loses nothing that Write accepted.
  if (std::fwrite(data, 1, size, file_) != size || std::fflush(file_) != 0) {
    error_ = absl::DataLossError(absl::StrCat(name_, ": write failed: ", std::strerror(errno)));
    return error_;
  }
  return absl::OkStatus();
}

absl::Status WavWriter::Write(std::span<const float> samples) {
  if (closed_) return absl::FailedPreconditionError(absl::StrCat(name_, ": Write() after Close()"));
  if (!error_.ok()) return error_;
  if (samples.empty()) return absl::OkStatus();
  buffer_.resize(samples.size() * BytesPerSample(options_.wav_sample_format));
  if (options_.wav_sample_format == WavSampleFormat::kPcm16) {
    auto* dst = reinterpret_cast<int16_t*>(buffer_.data());
    for (size_t i = 0; i < samples.size(); ++i) dst[i] = ToPcm16(samples[i]);
  } else {
    auto* dst = reinterpret_cast<float*>(buffer_.data());
    for (size_t i = 0; i < samples.size(); ++i) dst[i] = std::isfinite(samples[i]) ? samples[i] : 0.0f;
  }
  absl::Status status = Emit(buffer_.data(), buffer_.size());
  if (!status.ok()) return status;
  samples_written_ += static_cast<int64_t>(samples.size());
  return absl::OkStatus();
}

absl::Status WavWriter::Close() {
  if (closed_) return error_;
  closed_ = true;
  if (file_ != nullptr) {
    if (seekable_ && error_.ok()) {
      // Patch the sizes now that they are known (the header length does not change).
      const std::vector<uint8_t> header =
          Header(options_.sample_rate, options_.wav_sample_format, samples_written_);
      const off_t end = ftello(file_);
      if (fseeko(file_, 0, SEEK_SET) != 0 ||
          std::fwrite(header.data(), 1, header.size(), file_) != header.size() ||
          fseeko(file_, end, SEEK_SET) != 0 || std::fflush(file_) != 0) {
        error_ = absl::DataLossError(
            absl::StrCat(name_, ": cannot finalize the WAV header: ", std::strerror(errno)));
      }
    }
    if (owns_file_) {
      if (std::fclose(file_) != 0 && error_.ok()) {
        error_ = absl::DataLossError(absl::StrCat(name_, ": close failed: ", std::strerror(errno)));
      }
    } else {
      std::fflush(file_);
    }
    file_ = nullptr;
  }
  return error_;
}

}  // namespace monologue
