// monologue-decode-audio INPUT OUT.f32: the samples the engines hear for INPUT (core/audio's decoder: any
// FFmpeg input, channels averaged, resampled to 24 kHz mono), written as raw little-endian float32. For
// measurements against the reference's loaders (tests/reference/measure_resampler.py).
#include <cstdio>
#include <string>

#include "core/audio/audio_decoder.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: monologue-decode-audio INPUT OUT.f32\n");
    return 2;
  }
  auto decoded = monologue::DecodeAudioFile(argv[1]);
  if (!decoded.ok()) {
    std::fprintf(stderr, "monologue-decode-audio: %s\n", std::string(decoded.status().message()).c_str());
    return 1;
  }
  if (!decoded->warning.ok()) {
    std::fprintf(stderr, "monologue-decode-audio: warning: %s\n", std::string(decoded->warning.message()).c_str());
  }
  std::FILE* out = std::fopen(argv[2], "wb");
  if (out == nullptr) {
    std::fprintf(stderr, "monologue-decode-audio: cannot write %s\n", argv[2]);
    return 1;
  }
  const size_t n = decoded->samples.size();
  const bool ok = std::fwrite(decoded->samples.data(), sizeof(float), n, out) == n;
  if (std::fclose(out) != 0 || !ok) {
    std::fprintf(stderr, "monologue-decode-audio: writing %s failed\n", argv[2]);
    return 1;
  }
  std::fprintf(stderr, "monologue-decode-audio: %zu samples at 24 kHz from %d Hz, %d channel(s)\n", n,
               decoded->info.source_sample_rate, decoded->info.source_channels);
  return 0;
}
