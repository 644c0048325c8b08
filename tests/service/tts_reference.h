// The TTS reference fixtures (tests/data/tts/ref_<name>.{json,safetensors}, made by
// tests/reference/make_tts_fixtures.py) as the service tests compare with them: the script, the first frames of
// the audio, the utterance length and the words. Read by hand: the service suite is torch-free.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/service/service_test_util.h"

namespace monologue::service_test {

inline std::string TtsData() { return std::string(MONOLOGUE_TEST_DATA_DIR) + "/tts/"; }

struct TtsReference {
  std::vector<std::string> script;
  std::vector<float> pcm;  // the frames the fixture keeps
  int64_t frames = 0;      // decoded frames of the whole utterance
  std::vector<Word> words;
};

// The float32 tensor `pcm` of a fixture's safetensors file.
inline std::vector<float> ReadFixturePcm(const std::string& path) {
  const std::string bytes = ReadFileBytes(path);
  uint64_t header_len = 0;
  if (bytes.size() < 8) {
    ADD_FAILURE() << path << " is not a safetensors file";
    return {};
  }
  std::memcpy(&header_len, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, header_len));
  const auto& pcm = header.at("pcm");
  EXPECT_EQ(pcm.at("dtype"), "F32");
  const size_t begin = pcm.at("data_offsets")[0].get<size_t>(), end = pcm.at("data_offsets")[1].get<size_t>();
  std::vector<float> out((end - begin) / 4);
  std::memcpy(out.data(), bytes.data() + 8 + header_len + begin, end - begin);
  return out;
}

inline TtsReference LoadTtsReference(const std::string& name) {
  TtsReference r;
  const auto meta = nlohmann::json::parse(ReadFileBytes(TtsData() + "ref_" + name + ".json"));
  r.script = meta["script"].get<std::vector<std::string>>();
  r.frames = meta["end_step"].get<int64_t>() + 2;
  const auto& transcript = meta["transcript"];
  for (size_t i = 0; i < transcript.size(); ++i) {
    const double start = transcript[i][1].get<int64_t>() / 12.5;
    const double end = i + 1 < transcript.size() ? transcript[i + 1][1].get<int64_t>() / 12.5
                                                 : meta["end_step"].get<int64_t>() / 12.5;
    r.words.push_back({transcript[i][0].get<std::string>(), start, end});
  }
  r.pcm = ReadFixturePcm(TtsData() + "ref_" + name + ".safetensors");
  return r;
}

// ||a - ref|| / ||ref|| over the samples both have.
inline double RelativeL2(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size() && i < a.size(); ++i) {
    num += (a[i] - ref[i]) * (a[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-24));
}

}  // namespace monologue::service_test
