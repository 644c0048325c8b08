// The FFmpeg pipeline behind AudioDecoder (demux -> decode -> downmix/resample) and the sample queue its
// decoders share. Internal to core/audio: the pull decoder (audio_decoder.cc) and the push decoder
// (push_decoder.cc) are its two users.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/audio/audio_decoder.h"
#include "core/audio/ffmpeg_util.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace monologue::audio_internal {

// Source sample rates a decode accepts (old 4 kHz speech codecs to studio 768 kHz).
inline constexpr int kMinSampleRate = 4000;
inline constexpr int kMaxSampleRate = 768000;

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
      std::string audio;  // an audio stream FFmpeg would not pick: its header's numbers say why
      for (unsigned i = 0; i < fmt_->nb_streams; ++i) {
        const AVCodecParameters* par = fmt_->streams[i]->codecpar;
        const char* kind = av_get_media_type_string(par->codec_type);
        kinds.push_back(kind != nullptr ? kind : "unknown");
        if (par->codec_type == AVMEDIA_TYPE_AUDIO && audio.empty()) audio = DescribeAudio(par);
      }
      if (!audio.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(name_, ": the audio stream's header is unusable (",
                                                       audio, "): a damaged or mis-written header"));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          name_, ": not an audio file: no audio stream (FFmpeg reads it as '", fmt_->iformat->name, "' with ",
          fmt_->nb_streams, " stream(s)", kinds.empty() ? "" : ": ", absl::StrJoin(kinds, ", "), ")"));
    }
    if (rc == AVERROR_DECODER_NOT_FOUND || (rc >= 0 && codec == nullptr)) {
      const int index = av_find_best_stream(fmt_, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
      const std::string audio = index >= 0 ? DescribeAudio(fmt_->streams[index]->codecpar) : "";
      return absl::UnimplementedError(absl::StrCat(name_, ": no decoder for its audio",
                                                   audio.empty() ? "" : absl::StrCat(" (", audio, ")"),
                                                   " in this FFmpeg build, or a damaged header"));
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

  // "codec pcm_s16le, 0 channels, 24000 Hz, 16 bits per sample": what a stream's header says.
  static std::string DescribeAudio(const AVCodecParameters* par) {
    const char* codec = avcodec_get_name(par->codec_id);
    return absl::StrCat("codec ", codec != nullptr ? codec : "unknown", ", ", par->ch_layout.nb_channels,
                        " channel(s), ", par->sample_rate, " Hz, ", par->bits_per_coded_sample,
                        " bits per sample");
  }

  // Remembers the first breakage; decoding stops there (after draining what the decoder holds).
  void NoteBreak(absl::string_view what, int rc) {
    if (break_reason_.empty()) break_reason_ = absl::StrCat(what, ": ", FfmpegErrorText(rc));
  }

  void Stop(absl::Status status, std::vector<float>* out) {
    if (break_reason_.empty()) {
      // The stream's name leads the final message once; the reason drops its own copy.
      break_reason_ = std::string(status.message());
      const std::string prefix = name_ + ": ";
      if (break_reason_.rfind(prefix, 0) == 0) break_reason_.erase(0, prefix.size());
    }
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
    if (rc < 0) {
      // FFmpeg's resampler mixes at most 64 channels (SWR_CH_MAX).
      return audio_internal::FfmpegStatus(
          rc, absl::StrCat(name_, ": cannot set up the resampler for ", channels, " channels at ",
                           frame->sample_rate, " Hz",
                           channels > 64 ? " (at most 64 channels can be mixed down to mono)" : ""));
    }
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
      // A header's rate decides how many samples its bytes become: 1 Hz made an 8 KB WAV into 4000 s of
      // audio (2 GB at 24 kHz). Real audio is at least telephone-band.
      if (frame->sample_rate < kMinSampleRate || frame->sample_rate > kMaxSampleRate) {
        return absl::InvalidArgumentError(absl::StrCat(
            name_, ": sample rate ", frame->sample_rate,
            " Hz in the audio's header; supported: ", kMinSampleRate, " to ", kMaxSampleRate, " Hz"));
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
    for (int i = 0; i < n; ++i) {
      const float x = (*out)[old_size + static_cast<size_t>(i)];
      if (!(std::fabs(x) <= kMaxDecodedSample)) {  // NaN too
        out->resize(old_size + static_cast<size_t>(i));
        produced_ += i;  // the samples before it stand, and are counted
        return absl::InvalidArgumentError(
            absl::StrCat(name_, ": the audio holds the sample ", x, " at ",
                         static_cast<double>(produced_) / options_.target_sample_rate,
                         " s: samples are in [-1, 1] (a float file written with 16-bit values?)"));
      }
    }
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

}  // namespace monologue::audio_internal
