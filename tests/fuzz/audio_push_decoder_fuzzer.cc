// Fuzz target: the push audio decoder the service feeds with clients' bytes (core/audio, FFmpeg: WAV, Ogg,
// Opus, MP3, FLAC, ...). The input is pushed in a few uneven chunks and read to the end: any bytes give
// samples or a status, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/audio/audio_decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  monologue::AudioDecoderOptions options;
  auto decoder = monologue::AudioDecoder::OpenPush(options, "fuzz input");
  // Chunk sizes from the first byte, so that the fuzzer also explores how input is split.
  const size_t chunk = 1 + (size > 0 ? data[0] : 0) * 37;
  for (size_t at = 0; at < size; at += chunk) {
    const size_t n = size - at < chunk ? size - at : chunk;
    if (!decoder->Push(std::span<const uint8_t>(data + at, n)).ok()) break;
    auto some = decoder->Read(4096);
    if (!some.ok()) return 0;
  }
  (void)decoder->Finish();
  for (int reads = 0; reads < 100000; ++reads) {
    auto samples = decoder->Read(1 << 16);
    if (!samples.ok() || samples->empty()) break;
  }
  return 0;
}
