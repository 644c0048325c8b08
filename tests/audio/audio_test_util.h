// Helpers shared by the audio tests: fixture paths, scratch paths, waveform similarity measures.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "core/audio/audio_decoder.h"
#include "core/audio/audio_writer.h"
#include "gtest/gtest.h"

namespace monologue::testing {

// Options built field by field (GCC warns on designated initializers that skip fields).
template <typename F>
AudioDecoderOptions DecoderOptions(F set) {
  AudioDecoderOptions o;
  set(o);
  return o;
}
template <typename F>
AudioWriterOptions WriterOptions(F set) {
  AudioWriterOptions o;
  set(o);
  return o;
}


inline std::string AudioData(const std::string& name) {
  return std::string(MONOLOGUE_TEST_DATA_DIR) + "/audio/" + name;
}

// A path in the suite's scratch folder, unique per test.
inline std::string TmpPath(const std::string& name) {
  const char* dir = std::getenv("MONOLOGUE_TEST_TMP");
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string prefix = std::string(info->test_suite_name()) + "." + info->name() + ".";
  for (char& c : prefix) {
    if (c == '/') c = '_';
  }
  return (dir != nullptr ? std::string(dir) + "/" : ::testing::TempDir()) + prefix + name;
}

inline std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteBytes(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Normalised cross-correlation of a[i] with b[i + lag] over the overlap.
inline double Correlation(std::span<const float> a, std::span<const float> b, int lag = 0) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const long j = static_cast<long>(i) + lag;
    if (j < 0 || j >= static_cast<long>(b.size())) continue;
    ab += static_cast<double>(a[i]) * b[j];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[j]) * b[j];
  }
  return (aa > 0 && bb > 0) ? ab / std::sqrt(aa * bb) : 0.0;
}

struct BestLag {
  int lag = 0;
  double correlation = -2;
};

inline BestLag BestCorrelation(std::span<const float> a, std::span<const float> b, int max_lag) {
  BestLag best;
  for (int lag = -max_lag; lag <= max_lag; ++lag) {
    const double c = Correlation(a, b, lag);
    if (c > best.correlation) best = {lag, c};
  }
  return best;
}

// Signal-to-noise ratio of `test` against `reference` in dB over the common length.
inline double SnrDb(std::span<const float> reference, std::span<const float> test) {
  double signal = 0, noise = 0;
  const size_t n = std::min(reference.size(), test.size());
  for (size_t i = 0; i < n; ++i) {
    signal += static_cast<double>(reference[i]) * reference[i];
    const double d = static_cast<double>(reference[i]) - test[i];
    noise += d * d;
  }
  return 10.0 * std::log10(signal / std::max(noise, 1e-30));
}

}  // namespace monologue::testing
