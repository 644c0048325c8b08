#include "core/audio/ogg_opus_writer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/audio/ffmpeg_util.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace monologue {

using audio_internal::AvAudioFifoDeleter;
using audio_internal::AvCodecContextDeleter;
using audio_internal::AvFrameDeleter;
using audio_internal::AvPacketDeleter;
using audio_internal::FfmpegStatus;
using audio_internal::SwrContextDeleter;

namespace {
constexpr int kSinkBufferSize = 4096;

bool OpusAcceptsRate(int rate) {
  return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}
}  // namespace

struct OggOpusWriter::Impl {
  std::string name;
  AudioWriterOptions options;
  AVFormatContext* oc = nullptr;
  bool owns_io = false;  // avio_open'ed by us (path / stdout) rather than a sink AVIOContext
  ByteSink sink;
  absl::Status sink_error;
  AVStream* stream = nullptr;
  std::unique_ptr<AVCodecContext, AvCodecContextDeleter> enc;
  std::unique_ptr<SwrContext, SwrContextDeleter> swr;  // only when the input rate is not an Opus rate
  std::unique_ptr<AVAudioFifo, AvAudioFifoDeleter> fifo;
  std::unique_ptr<AVFrame, AvFrameDeleter> frame;
  std::unique_ptr<AVPacket, AvPacketDeleter> pkt;
  std::vector<float> scratch;
  int64_t next_pts = 0;  // in encoder samples
  int64_t samples_written = 0;
  bool header_written = false;
  bool closed = false;
  absl::Status error;

  ~Impl() {
    if (oc != nullptr) {
      if (owns_io) {
        avio_closep(&oc->pb);
      } else if (oc->pb != nullptr) {
        av_freep(&oc->pb->buffer);
        avio_context_free(&oc->pb);
      }
      avformat_free_context(oc);
    }
  }

  static int SinkWrite(void* opaque, uint8_t* buf, int size) {
    auto* self = static_cast<Impl*>(opaque);
    if (!self->sink_error.ok()) return AVERROR_EXTERNAL;
    self->sink_error = self->sink(std::span<const uint8_t>(buf, size));
    return self->sink_error.ok() ? size : AVERROR_EXTERNAL;
  }

  absl::Status Fail(int rc, absl::string_view what) {
    if (!sink_error.ok()) {
      error = sink_error;
    } else {
      error = FfmpegStatus(rc, absl::StrCat(name, ": ", what));
    }
    return error;
  }

  // Sets up muxer, encoder, and writes the stream headers (OpusHead / OpusTags pages).
  absl::Status Init(const std::string& url) {
    audio_internal::InstallFfmpegLogCallback();
    audio_internal::ClearLastFfmpegError();
    if (options.sample_rate <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": invalid sample rate ", options.sample_rate));
    }
    if (options.opus_bitrate < 500 || options.opus_bitrate > 512000) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": Opus bitrate ", options.opus_bitrate, " b/s is outside [500, 512000]"));
    }
    const char* muxer = options.format == "opus" ? "opus" : "ogg";
    int rc = avformat_alloc_output_context2(&oc, nullptr, muxer, nullptr);
    if (rc < 0 || oc == nullptr) return Fail(rc, absl::StrCat("no '", muxer, "' muxer in this FFmpeg build"));

    if (sink) {
      // Bytes leave through our callback; write_flag = 1, not seekable (the Ogg muxer never seeks).
      auto* buffer = static_cast<uint8_t*>(av_malloc(kSinkBufferSize));
      oc->pb = avio_alloc_context(buffer, kSinkBufferSize, 1, this, nullptr, &Impl::SinkWrite, nullptr);
      if (oc->pb == nullptr) return absl::ResourceExhaustedError("avio_alloc_context failed");
    } else {
      rc = avio_open(&oc->pb, url.c_str(), AVIO_FLAG_WRITE);
      if (rc < 0) return Fail(rc, "cannot create the output file");
      owns_io = true;
    }

    // FFmpeg's native Opus encoder is experimental; libopus is the real one.
    const AVCodec* codec = avcodec_find_encoder_by_name("libopus");
    if (codec == nullptr)
      return absl::UnimplementedError(absl::StrCat(name, ": FFmpeg was built without libopus"));
    enc.reset(avcodec_alloc_context3(codec));
    if (!enc) return absl::ResourceExhaustedError("avcodec_alloc_context3 failed");
    const int enc_rate = OpusAcceptsRate(options.sample_rate) ? options.sample_rate : 48000;
    enc->sample_rate = enc_rate;
    enc->sample_fmt = AV_SAMPLE_FMT_FLT;            // libopus takes float directly (no int16 quantisation)
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;  // non-const: FFmpeg 5.1 takes a mutable pointer
    av_channel_layout_copy(&enc->ch_layout, &mono);
    enc->bit_rate = options.opus_bitrate;
    enc->time_base = AVRational{1, enc_rate};
    // Ogg carries OpusHead as stream extradata, which the encoder only fills with a global header.
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    rc = avcodec_open2(enc.get(), codec, nullptr);
    if (rc < 0) return Fail(rc, "cannot open the libopus encoder");

    if (enc_rate != options.sample_rate) {
      SwrContext* s = nullptr;
      rc = swr_alloc_set_opts2(&s, &mono, AV_SAMPLE_FMT_FLT, enc_rate, &mono, AV_SAMPLE_FMT_FLT,
                               options.sample_rate, 0, nullptr);
      if (rc < 0) return Fail(rc, "cannot set up the resampler");
      swr.reset(s);
      av_opt_set(s, "resampler", "soxr", 0);
      av_opt_set_double(s, "precision", 28.0, 0);
      rc = swr_init(s);
      if (rc < 0) return Fail(rc, "cannot start the resampler");
    }

    stream = avformat_new_stream(oc, nullptr);
    if (stream == nullptr) return absl::ResourceExhaustedError("avformat_new_stream failed");
    rc = avcodec_parameters_from_context(stream->codecpar, enc.get());
    if (rc < 0) return Fail(rc, "cannot copy the encoder parameters");
    stream->time_base = enc->time_base;

    AVDictionary* mux_options = nullptr;
    // The muxer otherwise holds up to 1 s of audio per page; shorter pages reach the output sooner.
    const int64_t page_us = std::max<int64_t>(1, options.ogg_page_duration_ms) * 1000;
    av_dict_set_int(&mux_options, "page_duration", page_us, 0);
    rc = avformat_write_header(oc, &mux_options);
    av_dict_free(&mux_options);
    if (rc < 0) return Fail(rc, "cannot write the Ogg headers");
    header_written = true;
    avio_flush(oc->pb);

    const int frame_size = enc->frame_size > 0 ? enc->frame_size : enc_rate / 50;
    fifo.reset(av_audio_fifo_alloc(AV_SAMPLE_FMT_FLT, 1, 4 * frame_size));
    frame.reset(av_frame_alloc());
    pkt.reset(av_packet_alloc());
    if (!fifo || !frame || !pkt) return absl::ResourceExhaustedError("FFmpeg allocation failed");
    return absl::OkStatus();
  }

  int FrameSize() const { return enc->frame_size > 0 ? enc->frame_size : enc->sample_rate / 50; }

  // Moves every packet the encoder has ready into the muxer.
  absl::Status DrainPackets() {
    while (true) {
      int rc = avcodec_receive_packet(enc.get(), pkt.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return absl::OkStatus();
      if (rc < 0) return Fail(rc, "Opus encoding failed");
      av_packet_rescale_ts(pkt.get(), enc->time_base, stream->time_base);
      pkt->stream_index = stream->index;
      rc = av_write_frame(oc, pkt.get());
      av_packet_unref(pkt.get());
      if (rc < 0) return Fail(rc, "writing an Ogg page failed");
    }
  }

  // Encodes `n` samples from the FIFO (n < frame size only for the last frame).
  absl::Status EncodeFromFifo(int n) {
    av_frame_unref(frame.get());
    frame->nb_samples = n;
    frame->format = AV_SAMPLE_FMT_FLT;
    frame->sample_rate = enc->sample_rate;
    av_channel_layout_copy(&frame->ch_layout, &enc->ch_layout);
    int rc = av_frame_get_buffer(frame.get(), 0);
    if (rc < 0) return Fail(rc, "frame allocation failed");
    if (av_audio_fifo_read(fifo.get(), reinterpret_cast<void**>(frame->data), n) != n) {
      return absl::InternalError(absl::StrCat(name, ": audio FIFO underrun"));
    }
    frame->pts = next_pts;
    next_pts += n;
    rc = avcodec_send_frame(enc.get(), frame.get());
    if (rc < 0) return Fail(rc, "Opus encoding failed");
    return DrainPackets();
  }

  absl::Status AddToFifo(const float* data, int n) {
    if (n <= 0) return absl::OkStatus();
    void* planes[1] = {const_cast<float*>(data)};
    if (av_audio_fifo_write(fifo.get(), planes, n) != n) {
      return absl::ResourceExhaustedError(absl::StrCat(name, ": audio FIFO write failed"));
    }
    return absl::OkStatus();
  }

  // Resamples (if needed) and queues samples, then encodes every full frame.
  absl::Status Queue(const float* data, int n, bool flush_resampler) {
    if (swr) {
      const int capacity = swr_get_out_samples(swr.get(), n) + 64;
      std::vector<float> resampled(capacity);
      uint8_t* dst = reinterpret_cast<uint8_t*>(resampled.data());
      const uint8_t* src = reinterpret_cast<const uint8_t*>(data);
      int got =
          swr_convert(swr.get(), &dst, capacity, flush_resampler ? nullptr : &src, flush_resampler ? 0 : n);
      if (got < 0) return Fail(got, "resampling failed");
      absl::Status status = AddToFifo(resampled.data(), got);
      if (!status.ok()) return status;
    } else {
      absl::Status status = AddToFifo(data, n);
      if (!status.ok()) return status;
    }
    while (av_audio_fifo_size(fifo.get()) >= FrameSize()) {
      absl::Status status = EncodeFromFifo(FrameSize());
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status Write(std::span<const float> samples) {
    if (closed) return absl::FailedPreconditionError(absl::StrCat(name, ": Write() after Close()"));
    if (!error.ok()) return error;
    if (samples.empty()) return absl::OkStatus();
    scratch.resize(samples.size());
    for (size_t i = 0; i < samples.size(); ++i) scratch[i] = std::isfinite(samples[i]) ? samples[i] : 0.0f;
    size_t offset = 0;
    while (offset < scratch.size()) {  // bounded pieces keep the resampler buffer small
      const int n = static_cast<int>(std::min<size_t>(scratch.size() - offset, 1 << 16));
      absl::Status status = Queue(scratch.data() + offset, n, false);
      if (!status.ok()) return status;
      offset += n;
    }
    samples_written += static_cast<int64_t>(samples.size());
    // Completed pages go to the OS / sink now (a crash loses at most the page under construction).
    avio_flush(oc->pb);
    if (!sink_error.ok()) return error = sink_error;
    return absl::OkStatus();
  }

  absl::Status Close() {
    if (closed) return error;
    closed = true;
    if (!header_written || !error.ok()) return error;
    absl::Status status = absl::OkStatus();
    if (swr) status = Queue(nullptr, 0, /*flush_resampler=*/true);
    // The last partial frame: libopus encodes it short (AV_CODEC_CAP_SMALL_LAST_FRAME) and the muxer's final
    // granule position trims the padding; otherwise pad with silence.
    const int left = av_audio_fifo_size(fifo.get());
    if (status.ok() && left > 0) {
      if (!(enc->codec->capabilities & AV_CODEC_CAP_SMALL_LAST_FRAME)) {
        std::vector<float> zeros(FrameSize() - left, 0.0f);
        status = AddToFifo(zeros.data(), static_cast<int>(zeros.size()));
        if (status.ok()) status = EncodeFromFifo(FrameSize());
      } else {
        status = EncodeFromFifo(left);
      }
    }
    if (status.ok()) {
      // A null frame drains the encoder's lookahead.
      int rc = avcodec_send_frame(enc.get(), nullptr);
      if (rc < 0 && rc != AVERROR_EOF) status = Fail(rc, "flushing the Opus encoder failed");
    }
    if (status.ok()) status = DrainPackets();
    // The trailer writes the last page with the end-of-stream flag.
    int rc = av_write_trailer(oc);
    if (status.ok() && rc < 0) status = Fail(rc, "cannot finish the Ogg stream");
    avio_flush(oc->pb);
    if (status.ok() && !sink_error.ok()) status = sink_error;
    if (owns_io) {
      rc = avio_closep(&oc->pb);
      owns_io = false;
      if (status.ok() && rc < 0) status = Fail(rc, "closing the output failed");
    }
    error = status;
    return error;
  }
};

OggOpusWriter::OggOpusWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

OggOpusWriter::~OggOpusWriter() {
  if (impl_) impl_->Close().IgnoreError();
}

absl::StatusOr<std::unique_ptr<OggOpusWriter>> OggOpusWriter::Create(std::string_view path,
                                                                     const AudioWriterOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->name = path == "-" ? "stdout" : std::string(path);
  impl->options = options;
  // "file:" keeps a path with ':' from naming another protocol.
  absl::Status status =
      impl->Init(path == "-" ? std::string("pipe:1") : absl::StrCat("file:", std::string(path)));
  if (!status.ok()) return status;
  return std::unique_ptr<OggOpusWriter>(new OggOpusWriter(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<OggOpusWriter>> OggOpusWriter::Create(ByteSink sink,
                                                                     const AudioWriterOptions& options) {
  if (!sink) return absl::InvalidArgumentError("Ogg/Opus writer: null byte sink");
  auto impl = std::make_unique<Impl>();
  impl->name = "Ogg/Opus byte stream";
  impl->options = options;
  impl->sink = std::move(sink);
  absl::Status status = impl->Init("");
  if (!status.ok()) return status;
  return std::unique_ptr<OggOpusWriter>(new OggOpusWriter(std::move(impl)));
}

absl::Status OggOpusWriter::Write(std::span<const float> samples) { return impl_->Write(samples); }
absl::Status OggOpusWriter::Close() { return impl_->Close(); }
int64_t OggOpusWriter::samples_written() const { return impl_->samples_written; }

}  // namespace monologue
