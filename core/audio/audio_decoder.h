// Decodes any audio FFmpeg knows (WAV, FLAC, MP3, Ogg/Opus, Ogg/Vorbis, M4A/AAC, ...) to mono float32 at
// a target rate (24 kHz, Mimi's rate, by default), incrementally: a long input is never held whole.
//
// Sources:
//   AudioDecoder::Open(path)      a file, a FIFO / named pipe, or "-" for stdin (pull: Read blocks on I/O)
//   AudioDecoder::OpenPush()      bytes the caller appends with Push() and ends with Finish() (the gRPC
//                                 service feeds compressed chunks this way); Read never waits for more input
//
// Conversion: every decoded frame goes through libswresample:
//   - channels -> mono by the exact mean of all input channels (an explicit 1/C matrix, like the reference's
//     `mean over channels`; FFmpeg's default downmix would weight stereo by 1/sqrt(2) instead);
//   - sample format -> packed float32 in [-1, 1] (integer PCM is divided by 2^(bits-1));
//   - rate -> target with the SoX resampler (soxr, 28-bit precision, default pass band ~0.91 Nyquist,
//     linear phase). The reference resamples with julius/sphn, so samples agree across resamplers only
//     approximately (correlation ~1), never exactly.
// Same input, same frames, same output: how the caller slices Read() or Push() does not change a sample.
//
// Push sources: Push()/Finish() may be called from another thread than Read() (e.g. a gRPC reader thread
// feeding a model thread); one background thread per decoder runs FFmpeg. Latency before the first
// sample depends on the container: Ogg pages come out as soon as they are complete, raw FLAC holds up to
// ~3 frames, and FFmpeg's WAV demuxer reads 64 KiB ahead (S/PDIF detection) before its first packet, so
// raw PCM is better handled without FFmpeg on latency-sensitive paths.
//
// Errors name the input: missing file, not audio, no audio stream, empty input. A stream that breaks
// half-way (corrupt packet, truncated file) is decoded up to the damage; Read() first returns all of that
// audio, then a sticky kDataLoss status saying at which time (in output samples / seconds) it stopped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace monologue {

// Decoded samples beyond this magnitude are refused: audio lives in [-1, 1], a few times over is clipped
// speech, far beyond is a float file written at the wrong scale (16-bit values), which would be transcribed
// as noise.
inline constexpr float kMaxDecodedSample = 64.0f;

struct AudioDecoderOptions {
  int target_sample_rate = 24000;
  // FFmpeg demuxer name ("ogg", "wav", "mp3", "flac", ...) to skip probing; empty = probe the content.
  // Useful for non-seekable inputs whose format is known (less data read before the first sample).
  std::string format_hint;
  // Push sources only: how many output samples the background decoder may hold before it waits for the
  // reader (memory bound; a Read on a push source also returns once this many are ready).
  size_t max_buffered_samples = 24000 * 10;
};

// What the input declares (valid after Open; for push sources once has_info() is true).
struct AudioStreamInfo {
  std::string container;  // FFmpeg demuxer name, e.g. "ogg", "wav", "mov,mp4,m4a,3gp,3g2,mj2"
  std::string codec;      // FFmpeg codec name, e.g. "opus", "pcm_s16le", "mp3"
  int source_sample_rate = 0;
  int source_channels = 0;
  int output_sample_rate = 0;
  // Declared or estimated duration of the input, if the container tells it.
  std::optional<double> duration_seconds;
  bool duration_is_estimate = false;  // e.g. MP3 without a Xing/LAME header: guessed from the bitrate
};

// One decoded input with everything read at once (for short inputs and tests).
struct DecodedAudio {
  std::vector<float> samples;
  AudioStreamInfo info;
  // OK, or the kDataLoss status if the input broke off (samples then hold what came before).
  absl::Status warning;
};

class AudioDecoder {
 public:
  // Opens a file path, a FIFO path, or "-" (stdin). Reads the header (and, for files, probes the streams).
  static absl::StatusOr<std::unique_ptr<AudioDecoder>> Open(std::string_view path,
                                                            const AudioDecoderOptions& options = {});
  // A decoder fed by Push(). `name` only labels messages (e.g. "request 12 audio").
  static std::unique_ptr<AudioDecoder> OpenPush(const AudioDecoderOptions& options = {},
                                                std::string_view name = "pushed audio");

  virtual ~AudioDecoder() = default;

  // Push sources only: appends compressed bytes / marks the end of the input. Push after Finish fails.
  virtual absl::Status Push(std::span<const uint8_t> bytes);
  virtual absl::Status Finish();

  // Returns up to `max_samples` (> 0) output samples.
  //   file / pipe sources: blocks on input until max_samples are ready or the stream ends;
  //   push sources: returns whatever the bytes pushed so far decode to (waits only for that CPU work).
  // An empty result means end of stream (file sources, or push sources after Finish) or, for push sources
  // before Finish, "nothing more decodable yet": check at_end(). Errors are sticky: after a stream broke
  // off, the remaining good samples come first, then the kDataLoss status on every later call.
  virtual absl::StatusOr<std::vector<float>> Read(size_t max_samples) = 0;

  // True once every sample has been returned (or a fatal error occurred).
  virtual bool at_end() const = 0;
  // Push sources learn the stream parameters only after enough bytes arrived; file sources always have them.
  virtual bool has_info() const = 0;
  virtual AudioStreamInfo info() const = 0;
  // Output samples returned by Read so far.
  virtual int64_t samples_read() const = 0;
  // Input label used in messages (the path, "stdin", or the push name).
  virtual const std::string& name() const = 0;
};

// Opens `path` and reads it to the end. A broken-off stream is not an error here: see DecodedAudio::warning.
absl::StatusOr<DecodedAudio> DecodeAudioFile(std::string_view path, const AudioDecoderOptions& options = {});

}  // namespace monologue
