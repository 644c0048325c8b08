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
#include "core/audio/ffmpeg_util.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace monologue {

using audio_internal::AvCodecContextDeleter;
using audio_internal::AvFrameDeleter;
using audio_internal::AvPacketDeleter;
using audio_internal::ClearLastFfmpegError;
using audio_internal::FfmpegErrorText;
using audio_internal::SwrContextDeleter;

absl::Status AudioDecoder::Push(std::span<const uint8_t>) {
  return absl::FailedPreconditionError(
      absl::StrCat(name(), ": Push() is only for decoders made by OpenPush()"));
}
absl::Status AudioDecoder::Finish() {
  return absl::FailedPreconditionError(
      absl::StrCat(name(), ": Finish() is only for decoders made by OpenPush()"));
}

namespace {

constexpr int kPushIoBufferSize = 4096;

// The demux -> decode -> downmix/resample pipeline for one input. Not thread-safe; the push decoder runs it
// on its own thread.
class DecodeEngine {
 public:
  DecodeEngine(std::string name, const AudioDecoderOptions& options)
      : name_(std::move(name)), options_(options) {}
  ~DecodeEngine() {
    // With AVFMT_FLAG_CUSTOM_IO, avformat_close_input leaves fmt_->pb to its owner.
    if (fmt_ != nullptr) avformat_close_input(&fmt_);
  }

  // `url` is an FFmpeg URL ("file:...", "pipe:0"); with `custom_io` it is ignored and reads go through it.
  // `streaming`: the input cannot seek, so probe less data before the first sample.
  // `no_seek`: read a seekable file front to back only (see AudioDecoder::Open).
  absl::Status Open(const std::string& url, AVIOContext* custom_io, bool streaming, bool no_seek = false) {
    audio_internal::InstallFfmpegLogCallback();
    ClearLastFfmpegError();
    if (options_.target_sample_rate < 1000 || options_.target_sample_rate > 384000) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_, ": target sample rate ", options_.target_sample_rate, " Hz is out of range"));
    }
    fmt_ = avformat_alloc_context();
    if (fmt_ == nullptr) return absl::ResourceExhaustedError("avformat_alloc_context failed");
    if (custom_io != nullptr) {
      fmt_->pb = custom_io;
      fmt_->flags |= AVFMT_FLAG_CUSTOM_IO;
    }
    // A known format skips probing, which on a pipe means fewer bytes before the first sample.
    const AVInputFormat* input_format = nullptr;
    if (!options_.format_hint.empty()) {
      input_format = av_find_input_format(options_.format_hint.c_str());
      if (input_format == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(name_, ": unknown input format '", options_.format_hint, "'"));
      }
    }
    AVDictionary* dict = nullptr;
    // Never let a container reference other protocols (http, tcp, ...): inputs may be untrusted uploads.
    av_dict_set(&dict, "protocol_whitelist", "file,pipe", 0);
    if (streaming) {
      // Defaults (5 MB / 5 s) would hold back the first samples of a live stream for seconds.
      av_dict_set(&dict, "probesize", "32768", 0);
      av_dict_set(&dict, "analyzeduration", "500000", 0);
    }
    // The file protocol's own option: FFmpeg then never seeks (e.g. to the end of an Ogg file for its
    // duration, which fails when the file is truncated).
    if (no_seek) av_dict_set(&dict, "seekable", "0", 0);
    int rc = avformat_open_input(&fmt_, url.c_str(), input_format, &dict);
    av_dict_free(&dict);
    if (rc < 0) {
      fmt_ = nullptr;  // freed by avformat_open_input on failure
      open_averror_ = rc;
      return OpenError(rc);
    }
    // Reads the first packets to learn codec parameters the header may lack (e.g. MP3, raw ADTS AAC).
    rc = avformat_find_stream_info(fmt_, nullptr);
    if (rc < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_, ": cannot read the stream parameters: ", FfmpegErrorText(rc)));
    }
    const AVCodec* codec = nullptr;
    rc = av_find_best_stream(fmt_, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (rc == AVERROR_STREAM_NOT_FOUND) {
      std::vector<std::string> kinds;
      for (unsigned i = 0; i < fmt_->nb_streams; ++i) {
        const char* kind = av_get_media_type_string(fmt_->streams[i]->codecpar->codec_type);
        kinds.push_back(kind != nullptr ? kind : "unknown");
      }
      return absl::InvalidArgumentError(absl::StrCat(
          name_, ": not an audio file: no audio stream (FFmpeg reads it as '", fmt_->iformat->name, "' with ",
          fmt_->nb_streams, " stream(s)", kinds.empty() ? "" : ": ", absl::StrJoin(kinds, ", "), ")"));
    }
    if (rc == AVERROR_DECODER_NOT_FOUND || (rc >= 0 && codec == nullptr)) {
      return absl::UnimplementedError(
          absl::StrCat(name_, ": no decoder for the audio codec in this FFmpeg build"));
    }
    if (rc < 0) return audio_internal::FfmpegStatus(rc, absl::StrCat(name_, ": no usable audio stream"));
    stream_index_ = rc;
    // Only the chosen stream is demuxed; video / other audio tracks are skipped by the demuxer.
    for (unsigned i = 0; i < fmt_->nb_streams; ++i) {
      if (static_cast<int>(i) != stream_index_) fmt_->streams[i]->discard = AVDISCARD_ALL;
    }
    AVStream* stream = fmt_->streams[stream_index_];

    dec_.reset(avcodec_alloc_context3(codec));
    if (!dec_) return absl::ResourceExhaustedError("avcodec_alloc_context3 failed");
    rc = avcodec_parameters_to_context(dec_.get(), stream->codecpar);
    if (rc < 0) return audio_internal::FfmpegStatus(rc, absl::StrCat(name_, ": bad codec parameters"));
    // The packet time base lets the decoder apply the container's start trimming (Opus pre-skip, MP3/AAC
    // encoder delay from the LAME header / edit list) so sample 0 is the first real sample.
    dec_->pkt_timebase = stream->time_base;
    dec_->thread_count = 1;
    rc = avcodec_open2(dec_.get(), codec, nullptr);
    if (rc < 0) {
      return audio_internal::FfmpegStatus(
          rc, absl::StrCat(name_, ": cannot open the ", avcodec_get_name(stream->codecpar->codec_id),
                           " decoder"));
    }
    pkt_.reset(av_packet_alloc());
    frame_.reset(av_frame_alloc());
    if (!pkt_ || !frame_) return absl::ResourceExhaustedError("av_packet_alloc/av_frame_alloc failed");

    info_.container = fmt_->iformat->name;
    info_.codec = avcodec_get_name(stream->codecpar->codec_id);
    info_.source_sample_rate = stream->codecpar->sample_rate;
    info_.source_channels = stream->codecpar->ch_layout.nb_channels;
    info_.output_sample_rate = options_.target_sample_rate;
    if (stream->duration != AV_NOPTS_VALUE && stream->duration > 0) {
      info_.duration_seconds = stream->duration * av_q2d(stream->time_base);
    } else if (fmt_->duration != AV_NOPTS_VALUE && fmt_->duration > 0) {
      info_.duration_seconds = static_cast<double>(fmt_->duration) / AV_TIME_BASE;
    }
    info_.duration_is_estimate = fmt_->duration_estimation_method == AVFMT_DURATION_FROM_BITRATE;
    return absl::OkStatus();
  }

  // Runs the pipeline until it appended at least one sample to `out` or the stream finished.
  void Step(std::vector<float>* out) {
    const size_t before = out->size();
    while (out->size() == before && !finished_) {
      int rc = avcodec_receive_frame(dec_.get(), frame_.get());
      if (rc == 0) {
        absl::Status status = Convert(frame_.get(), out);
        av_frame_unref(frame_.get());
        if (!status.ok()) Stop(std::move(status), out);
        continue;
      }
      if (rc == AVERROR_EOF) {
        Finalize(out);
        continue;
      }
      if (rc != AVERROR(EAGAIN)) {
        NoteBreak("the decoder failed", rc);
        Finalize(out);
        continue;
      }
      // The decoder wants input: the next packet of our stream, or the end-of-stream flush.
      ClearLastFfmpegError();
      rc = av_read_frame(fmt_, pkt_.get());
      if (rc < 0) {
        if (rc != AVERROR_EOF && !avio_feof(fmt_->pb)) NoteBreak("reading the input failed", rc);
        // An empty packet drains the frames the decoder still holds.
        avcodec_send_packet(dec_.get(), nullptr);
        continue;
      }
      if (pkt_->stream_index != stream_index_) {
        av_packet_unref(pkt_.get());
        continue;
      }
      rc = avcodec_send_packet(dec_.get(), pkt_.get());
      av_packet_unref(pkt_.get());
      if (rc < 0 && rc != AVERROR(EAGAIN)) {
        NoteBreak("a corrupt packet could not be decoded", rc);
        avcodec_send_packet(dec_.get(), nullptr);
      }
    }
  }

  // The input's end is known to be damaged (`reason`); reported as kDataLoss when the stream ends.
  void SetDamagedEnd(std::string reason) { damaged_end_ = std::move(reason); }
  // Duration the file's own header declares, when FFmpeg does not keep it (a WAV 'data' chunk size).
  void SetDeclaredSeconds(double seconds) { declared_seconds_ = seconds; }

  bool finished() const { return finished_; }
  // The AVERROR with which avformat_open_input failed (0 if it did not).
  int open_averror() const { return open_averror_; }
  const absl::Status& stream_error() const { return stream_error_; }
  const AudioStreamInfo& info() const { return info_; }

 private:
  absl::Status OpenError(int rc) {
    if (rc == AVERROR(ENOENT)) return absl::NotFoundError(absl::StrCat(name_, ": no such file"));
    if (rc == AVERROR_EOF) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_, ": input is empty or too short to recognise its format"));
    }
    if (rc == AVERROR_INVALIDDATA) {
      return absl::InvalidArgumentError(absl::StrCat(
          name_, ": not an audio file FFmpeg recognises (unknown or corrupt format: ", FfmpegErrorText(rc),
          ")"));
    }
    return audio_internal::FfmpegStatus(rc, absl::StrCat(name_, ": cannot open"));
  }

  // Remembers the first breakage; decoding stops there (after draining what the decoder holds).
  void NoteBreak(absl::string_view what, int rc) {
    if (break_reason_.empty()) break_reason_ = absl::StrCat(what, ": ", FfmpegErrorText(rc));
  }

  void Stop(absl::Status status, std::vector<float>* out) {
    if (break_reason_.empty()) break_reason_ = std::string(status.message());
    Finalize(out);
  }

  double Seconds(int64_t samples) const { return static_cast<double>(samples) / options_.target_sample_rate; }

  // End of stream: flush the resampler's delay line, then decide whether the stream ended early.
  void Finalize(std::vector<float>* out) {
    if (finished_) return;
    FlushResampler(out);
    finished_ = true;
    if (!break_reason_.empty()) {
      stream_error_ = absl::DataLossError(
          absl::StrFormat("%s: decoding stopped after %.3f s of audio (%d samples at %d Hz): %s", name_,
                          Seconds(produced_), produced_, options_.target_sample_rate, break_reason_));
      return;
    }
    if (!damaged_end_.empty()) {
      stream_error_ = absl::DataLossError(
          absl::StrFormat("%s: input is damaged or truncated (%s); decoding stopped after %.3f s of audio "
                          "(%d samples at %d Hz)",
                          name_, damaged_end_, Seconds(produced_), produced_, options_.target_sample_rate));
      return;
    }
    // A clean end earlier than the header promised means a truncated input (e.g. a cut-off download).
    // Codec padding and priming make small differences normal; durations guessed from the bitrate are
    // too rough to judge.
    std::optional<double> declared_seconds = declared_seconds_;
    if (!declared_seconds.has_value() && !info_.duration_is_estimate)
      declared_seconds = info_.duration_seconds;
    if (declared_seconds.has_value()) {
      const double declared = *declared_seconds;
      const double decoded = Seconds(produced_);
      if (decoded < declared - std::max(0.15, 0.03 * declared)) {
        stream_error_ = absl::DataLossError(absl::StrFormat(
            "%s: input ends early (truncated?): the header declares %.3f s but decoding stopped after %.3f s "
            "(%d samples at %d Hz)",
            name_, declared, decoded, produced_, options_.target_sample_rate));
      }
    }
  }

  // (Re)creates the resampler for the frame's layout / format / rate. Chained Ogg streams or concatenated
  // pipes may change them mid-stream; the old resampler is flushed first so no sample is lost.
  absl::Status InitResampler(const AVFrame* frame, std::vector<float>* out) {
    FlushResampler(out);
    AVChannelLayout in_layout{};
    if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || frame->ch_layout.nb_channels == 0) {
      const int channels = frame->ch_layout.nb_channels > 0 ? frame->ch_layout.nb_channels : 1;
      av_channel_layout_default(&in_layout, channels);
    } else if (av_channel_layout_copy(&in_layout, &frame->ch_layout) < 0) {
      return absl::ResourceExhaustedError("av_channel_layout_copy failed");
    }
    const int channels = in_layout.nb_channels;
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;  // non-const: FFmpeg 5.1 takes a mutable pointer
    SwrContext* swr = nullptr;
    // Converts the decoder's native format (often planar float or int16) to packed float mono.
    int rc = swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_FLT, options_.target_sample_rate, &in_layout,
                                 static_cast<AVSampleFormat>(frame->format), frame->sample_rate, 0, nullptr);
    av_channel_layout_uninit(&in_layout);
    if (rc < 0) return audio_internal::FfmpegStatus(rc, absl::StrCat(name_, ": cannot set up the resampler"));
    swr_.reset(swr);
    // soxr at 28-bit precision: a very-high-quality linear-phase band-limited resampler (libsoxr's "VHQ").
    av_opt_set(swr, "resampler", "soxr", 0);
    av_opt_set_double(swr, "precision", 28.0, 0);
    // Mono = exact mean of all channels (FFmpeg's own downmix matrix would not be the mean).
    std::vector<double> matrix(channels, 1.0 / channels);
    rc = swr_set_matrix(swr, matrix.data(), channels);
    if (rc < 0)
      return audio_internal::FfmpegStatus(rc, absl::StrCat(name_, ": cannot set the downmix matrix"));
    rc = swr_init(swr);
    if (rc < 0) return audio_internal::FfmpegStatus(rc, absl::StrCat(name_, ": cannot start the resampler"));
    swr_rate_ = frame->sample_rate;
    swr_format_ = frame->format;
    av_channel_layout_uninit(&swr_layout_);
    av_channel_layout_copy(&swr_layout_, &frame->ch_layout);
    return absl::OkStatus();
  }

  absl::Status Convert(const AVFrame* frame, std::vector<float>* out) {
    if (frame->nb_samples <= 0) return absl::OkStatus();
    if (!swr_ || frame->sample_rate != swr_rate_ || frame->format != swr_format_ ||
        av_channel_layout_compare(&frame->ch_layout, &swr_layout_) != 0) {
      if (frame->sample_rate <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(name_, ": decoded frame without a sample rate"));
      }
      absl::Status status = InitResampler(frame, out);
      if (!status.ok()) return status;
    }
    const int capacity = swr_get_out_samples(swr_.get(), frame->nb_samples);
    if (capacity < 0) return audio_internal::FfmpegStatus(capacity, absl::StrCat(name_, ": resampler"));
    const size_t old_size = out->size();
    out->resize(old_size + capacity);
    uint8_t* dst = reinterpret_cast<uint8_t*>(out->data() + old_size);
    const int n = swr_convert(swr_.get(), &dst, capacity, const_cast<const uint8_t**>(frame->extended_data),
                              frame->nb_samples);
    if (n < 0) {
      out->resize(old_size);
      return audio_internal::FfmpegStatus(n, absl::StrCat(name_, ": resampling failed"));
    }
    out->resize(old_size + n);
    produced_ += n;
    return absl::OkStatus();
  }

  // Drains the samples still inside the resampler's filter (its delay) at the end or before a re-init.
  void FlushResampler(std::vector<float>* out) {
    if (!swr_) return;
    while (true) {
      const int capacity = std::max(swr_get_out_samples(swr_.get(), 0), 256);
      const size_t old_size = out->size();
      out->resize(old_size + capacity);
      uint8_t* dst = reinterpret_cast<uint8_t*>(out->data() + old_size);
      const int n = swr_convert(swr_.get(), &dst, capacity, nullptr, 0);
      out->resize(old_size + std::max(n, 0));
      if (n <= 0) break;
      produced_ += n;
    }
    swr_.reset();
  }

  std::string name_;
  AudioDecoderOptions options_;
  AVFormatContext* fmt_ = nullptr;
  int stream_index_ = -1;
  std::unique_ptr<AVCodecContext, AvCodecContextDeleter> dec_;
  std::unique_ptr<AVPacket, AvPacketDeleter> pkt_;
  std::unique_ptr<AVFrame, AvFrameDeleter> frame_;
  std::unique_ptr<SwrContext, SwrContextDeleter> swr_;
  int swr_rate_ = 0;
  int swr_format_ = -1;
  AVChannelLayout swr_layout_{};
  AudioStreamInfo info_;
  int64_t produced_ = 0;
  bool finished_ = false;
  std::string break_reason_;
  std::string damaged_end_;
  int open_averror_ = 0;
  std::optional<double> declared_seconds_;
  absl::Status stream_error_;
};

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

// Samples decoded but not yet handed out; a vector with a read offset (compacted when half consumed).
class SampleQueue {
 public:
  size_t size() const { return data_.size() - offset_; }
  std::vector<float>* tail() { return &data_; }
  void Append(const std::vector<float>& samples) {
    data_.insert(data_.end(), samples.begin(), samples.end());
  }
  std::vector<float> Take(size_t n) {
    n = std::min(n, size());
    std::vector<float> result(data_.begin() + offset_, data_.begin() + offset_ + n);
    offset_ += n;
    if (offset_ > 0 && offset_ * 2 >= data_.size()) {
      data_.erase(data_.begin(), data_.begin() + offset_);
      offset_ = 0;
    }
    return result;
  }

 private:
  std::vector<float> data_;
  size_t offset_ = 0;
};

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

// Push source: a background thread runs the pipeline, reading through a custom AVIOContext whose read
// callback blocks until the caller pushes bytes (or finishes). Read() never waits for input: it waits only
// until the thread has decoded everything pushed so far ("starved"), or has enough samples.
class PushDecoder final : public AudioDecoder {
 public:
  PushDecoder(std::string name, const AudioDecoderOptions& options)
      : name_(name), options_(options), engine_(std::make_unique<DecodeEngine>(std::move(name), options)) {
    if (options_.max_buffered_samples == 0) options_.max_buffered_samples = 1;
    auto* buffer = static_cast<uint8_t*>(av_malloc(kPushIoBufferSize));
    // write_flag = 0, no seek callback: FFmpeg treats the input as a non-seekable stream.
    avio_ =
        avio_alloc_context(buffer, kPushIoBufferSize, 0, this, &PushDecoder::ReadCallback, nullptr, nullptr);
    thread_ = std::thread([this] { Run(); });
  }

  ~PushDecoder() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_ = true;
    }
    cv_.notify_all();
    thread_.join();
    engine_.reset();  // closes the demuxer before its AVIOContext goes away
    if (avio_ != nullptr) {
      av_freep(&avio_->buffer);
      avio_context_free(&avio_);
    }
  }

  absl::Status Push(std::span<const uint8_t> bytes) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (input_finished_) {
        return absl::FailedPreconditionError(absl::StrCat(name_, ": Push() after Finish()"));
      }
      input_.insert(input_.end(), bytes.begin(), bytes.end());
      bytes_pushed_ += bytes.size();
    }
    cv_.notify_all();
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      input_finished_ = true;
    }
    cv_.notify_all();
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<float>> Read(size_t max_samples) override {
    if (max_samples == 0) return absl::InvalidArgumentError(absl::StrCat(name_, ": Read(0)"));
    std::unique_lock<std::mutex> lock(mu_);
    const size_t enough = std::min(max_samples, options_.max_buffered_samples);
    cv_.wait(lock, [&] { return output_.size() >= enough || thread_done_ || Starved(); });
    if (output_.size() == 0 && thread_done_ && !final_status_.ok()) return final_status_;
    std::vector<float> result = output_.Take(max_samples);
    samples_read_ += static_cast<int64_t>(result.size());
    lock.unlock();
    cv_.notify_all();  // the decoder thread may wait for room in the output queue
    return result;
  }

  bool at_end() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return thread_done_ && output_.size() == 0;
  }
  bool has_info() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return has_info_;
  }
  AudioStreamInfo info() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return info_;
  }
  int64_t samples_read() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return samples_read_;
  }
  const std::string& name() const override { return name_; }

 private:
  // The decoder thread waits in the read callback with nothing left to read: all pushed bytes are used.
  bool Starved() const { return waiting_for_input_ && input_offset_ == input_.size() && !input_finished_; }

  static int ReadCallback(void* opaque, uint8_t* buf, int size) {
    auto* self = static_cast<PushDecoder*>(opaque);
    std::unique_lock<std::mutex> lock(self->mu_);
    while (self->input_offset_ == self->input_.size() && !self->input_finished_ && !self->cancel_) {
      self->waiting_for_input_ = true;
      self->cv_.notify_all();
      self->cv_.wait(lock);
    }
    self->waiting_for_input_ = false;
    if (self->cancel_) return AVERROR_EXIT;
    const size_t available = self->input_.size() - self->input_offset_;
    if (available == 0) return AVERROR_EOF;
    const size_t n = std::min(available, static_cast<size_t>(size));
    std::memcpy(buf, self->input_.data() + self->input_offset_, n);
    self->input_offset_ += n;
    if (self->input_offset_ == self->input_.size()) {
      self->input_.clear();
      self->input_offset_ = 0;
    }
    return static_cast<int>(n);
  }

  void Run() {
    absl::Status status = avio_ == nullptr ? absl::ResourceExhaustedError("avio_alloc_context failed")
                                           : engine_->Open("", avio_, /*streaming=*/true);
    if (!status.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (bytes_pushed_ == 0 && input_finished_) {
        status = absl::InvalidArgumentError(absl::StrCat(name_, ": empty input (no bytes were pushed)"));
      }
      final_status_ = cancel_ ? absl::CancelledError(absl::StrCat(name_, ": decoder closed")) : status;
      thread_done_ = true;
      cv_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      info_ = engine_->info();
      has_info_ = true;
    }
    std::vector<float> chunk;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return output_.size() < options_.max_buffered_samples || cancel_; });
        if (cancel_) break;
      }
      chunk.clear();
      engine_->Step(&chunk);
      std::lock_guard<std::mutex> lock(mu_);
      output_.Append(chunk);
      if (engine_->finished() || cancel_) {
        final_status_ = engine_->stream_error();
        break;
      }
      cv_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu_);
    thread_done_ = true;
    cv_.notify_all();
  }

  std::string name_;
  AudioDecoderOptions options_;
  std::unique_ptr<DecodeEngine> engine_;
  AVIOContext* avio_ = nullptr;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint8_t> input_;  // guarded by mu_, as is everything below
  size_t input_offset_ = 0;
  size_t bytes_pushed_ = 0;
  bool input_finished_ = false;
  bool cancel_ = false;
  bool waiting_for_input_ = false;
  bool thread_done_ = false;
  bool has_info_ = false;
  AudioStreamInfo info_;
  SampleQueue output_;
  absl::Status final_status_;
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

std::unique_ptr<AudioDecoder> AudioDecoder::OpenPush(const AudioDecoderOptions& options,
                                                     std::string_view name) {
  return std::make_unique<PushDecoder>(std::string(name), options);
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
