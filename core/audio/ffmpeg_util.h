// Small FFmpeg helpers shared by the decoder and the writers (internal to monologue_audio; no FFmpeg types
// leak into the public headers except through this file).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libswresample/swresample.h>
}

namespace monologue::audio_internal {

// FFmpeg's text for an AVERROR code, plus the last error line FFmpeg logged on this thread (often more
// specific, e.g. "Invalid data found when processing input" + "[ogg] Page at 1234 is missing granule").
std::string FfmpegErrorText(int averror);

// Routes FFmpeg's global logging through our callback (once per process): messages are not printed unless
// the level set by SetFfmpegLogLevel allows it, but error lines are remembered per thread for statuses.
void InstallFfmpegLogCallback();

// Clears the remembered last FFmpeg error line of this thread (before an operation whose error we report).
void ClearLastFfmpegError();

// Maps an AVERROR to a Status with a message "<what>: <ffmpeg text>".
absl::Status FfmpegStatus(int averror, absl::string_view what);

// Unique-pointer style owners for FFmpeg objects.
struct AvPacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct AvFrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct AvCodecContextDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct SwrContextDeleter {
  void operator()(SwrContext* s) const { swr_free(&s); }
};
struct AvAudioFifoDeleter {
  void operator()(AVAudioFifo* f) const { av_audio_fifo_free(f); }
};

}  // namespace monologue::audio_internal
