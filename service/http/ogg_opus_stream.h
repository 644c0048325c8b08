// Streaming Ogg/Opus for the WebSocket endpoints: PCM in, complete Ogg pages out as soon as each Opus frame
// is coded (OggOpusStreamEncoder), and Ogg bytes in any chunking back to PCM (OggOpusStreamDecoder).
//
// Written on libopus + libogg directly, not on core/audio's FFmpeg writer and decoder: a live connection
// wants one short Opus frame per Ogg page, flushed the moment it is coded, and the decoder must accept
// a page that arrives split over several WebSocket messages and say exactly what is wrong with bad bytes.
// FFmpeg's Ogg muxer buffers pages by duration and its demuxer reads through an AVIOContext that expects
// to pull, which adds latency and hides the position of an error. Torch-free; no other monologue library.
//
// What the reference clients send and expect (checked against sphn 0.2.1, the Python server's codec, and the
// Moshi web client's opus-recorder): one logical stream, mono, OpusHead then OpusTags each on its own page,
// then audio pages. sphn writes one 40 ms packet per page and declares a pre-skip of 3840 (80 ms) that is
// not its encoder's real delay; its reader, like the Rust server's, plays every decoded sample. So the decoder
// here also ignores pre-skip by default (else a Full-Duplex-Bench client's audio would shift by 80 ms against
// what the reference servers hear).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace monologue {

struct OggOpusStreamEncoderOptions {
  int sample_rate = 24000;  // of the PCM given to Encode: 8000, 12000, 16000, 24000 or 48000
  int frame_ms = 20;        // Opus frame duration: 10, 20, 40 or 60 (the web client sends 20 ms frames)
  int packets_per_page = 1;  // one page per packet: every frame leaves as soon as it is coded
  int bitrate = 0;           // bits/s; 0 = libopus's default for the rate and application
  uint32_t serial = 0x6d6f6e6f;  // Ogg logical stream serial ("mono"); any value works for one stream
};

// Not thread-safe; one per outgoing stream.
class OggOpusStreamEncoder {
 public:
  static absl::StatusOr<std::unique_ptr<OggOpusStreamEncoder>> Create(
      const OggOpusStreamEncoderOptions& options = {});
  ~OggOpusStreamEncoder();
  OggOpusStreamEncoder(const OggOpusStreamEncoder&) = delete;
  OggOpusStreamEncoder& operator=(const OggOpusStreamEncoder&) = delete;

  // Appends mono float PCM (any count, also 0) and returns the bytes of the Ogg pages completed by it: the
  // OpusHead and OpusTags pages on the first call, then one page per packets_per_page coded frames. Samples
  // short of a whole frame wait for the next call.
  absl::StatusOr<std::string> Encode(std::span<const float> pcm);

  // Codes what is left (padded with silence to whole frames, and far enough to flush the encoder's
  // look-ahead) and returns the last pages; the final one has the end-of-stream flag and a granule position
  // that trims the padding, so a decoder honouring pre-skip and end trimming returns exactly the samples
  // given. Encode after Finish is an error.
  absl::StatusOr<std::string> Finish();

  int frame_samples() const;       // samples per Opus frame at sample_rate
  int pre_skip_48k() const;        // the encoder's look-ahead as written into OpusHead (48 kHz samples)
  int64_t pages_written() const;

  struct Impl;

 private:
  explicit OggOpusStreamEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct OggOpusStreamDecoderOptions {
  int sample_rate = 24000;  // of the PCM returned: 8000, 12000, 16000, 24000 or 48000
  // Drop OpusHead's pre-skip from the start and trim the last page to its granule position (RFC 7845). Off
  // by default: the reference servers play every decoded sample (see the file comment).
  bool apply_pre_skip_and_end_trim = false;
  // A page larger than Ogg allows is impossible, so more bytes than this without one complete page mean the
  // input is not Ogg (bounds the memory a bad client can make us hold).
  size_t max_pending_bytes = 1 << 17;
};

// Not thread-safe; one per incoming stream.
class OggOpusStreamDecoder {
 public:
  static absl::StatusOr<std::unique_ptr<OggOpusStreamDecoder>> Create(
      const OggOpusStreamDecoderOptions& options = {});
  ~OggOpusStreamDecoder();
  OggOpusStreamDecoder(const OggOpusStreamDecoder&) = delete;
  OggOpusStreamDecoder& operator=(const OggOpusStreamDecoder&) = delete;

  // Appends Ogg bytes (any split: a page may span calls, a call may hold many pages) and returns the mono
  // PCM of every audio packet completed. Stereo streams are mixed down by libopus. A chained stream (a new
  // beginning-of-stream page after the previous stream ended or changed serial) starts over at its OpusHead.
  // Errors (the decoder is unusable afterwards): bytes that are not Ogg pages, a damaged page (CRC), a
  // stream that is not Opus, audio before OpusHead, a gap in the page sequence, a packet libopus rejects;
  // each names what was wrong and the byte offset in the whole input where its page started.
  absl::StatusOr<std::vector<float>> Decode(std::span<const uint8_t> bytes);

  int64_t bytes_consumed() const;   // total bytes given to Decode
  int64_t samples_decoded() const;  // total samples returned
  int input_sample_rate() const;    // OpusHead's "input sample rate" field (0 before OpusHead)
  int channels() const;             // OpusHead's channel count (0 before OpusHead)

  struct Impl;

 private:
  explicit OggOpusStreamDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace monologue
