// Shared helpers for the asr tests: fixture paths, reference records, running a clip through a session.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "asr/asr_engine.h"
#include "core/audio/audio_decoder.h"
#include "core/io/safetensors.h"
#include "nlohmann/json.hpp"

namespace monologue::asr_test {

inline std::string DataDir() { return std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr"; }
inline std::string ModelDir(const std::string& name = "tiny-stt") { return DataDir() + "/" + name; }

inline std::vector<float> ReadClip(const std::string& clip) {
  auto decoded = DecodeAudioFile(DataDir() + "/" + clip + ".wav");
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? decoded->samples : std::vector<float>{};
}

inline nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

struct Reference {
  std::vector<int> tokens;
  std::vector<std::vector<float>> vad;  // [steps][heads]
  nlohmann::json meta;
};

inline Reference LoadReference(const std::string& model, const std::string& clip) {
  Reference ref;
  const std::string stem = DataDir() + "/ref_" + model + "_" + clip;
  ref.meta = ReadJson(stem + ".json");
  auto file = SafeTensorsFile::Open(stem + ".safetensors");
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return ref;
  at::Tensor tokens = *(*file)->Load("tokens");
  at::Tensor vad = *(*file)->Load("vad");
  for (int64_t i = 0; i < tokens.size(0); ++i)
    ref.tokens.push_back(static_cast<int>(tokens[i].item<int64_t>()));
  for (int64_t i = 0; i < vad.size(0); ++i) {
    std::vector<float> row;
    for (int64_t h = 0; h < vad.size(1); ++h) row.push_back(vad[i][h].item<float>());
    ref.vad.push_back(row);
  }
  return ref;
}

struct Transcript {
  std::vector<AsrWord> words;
  std::vector<AsrEvent> vad;
  std::vector<AsrEvent> end_of_turn;
  std::string text;  // kText pieces concatenated
  int ends = 0;
  std::vector<int> tokens;
};

inline void Collect(AsrSession& session, Transcript& t) {
  for (AsrEvent& e : session.PollEvents()) {
    switch (e.kind) {
      case AsrEvent::Kind::kWord:
        EXPECT_EQ(t.ends, 0) << "word after end";
        t.words.push_back(e.word);
        break;
      case AsrEvent::Kind::kVad:
        t.vad.push_back(e);
        break;
      case AsrEvent::Kind::kEndOfTurn:
        t.end_of_turn.push_back(e);
        break;
      case AsrEvent::Kind::kText:
        t.text += e.text;
        break;
      case AsrEvent::Kind::kEnd:
        t.ends++;
        break;
    }
  }
}

// Pushes `audio` in chunks of the given sizes (cycled), stepping the engine between pushes, then closes and
// runs to the end.
inline Transcript RunClip(AsrEngine& engine, AsrSession& session, const std::vector<float>& audio,
                          const std::vector<size_t>& chunks = {1000, 3333, 1920, 77, 5000}) {
  Transcript t;
  size_t pos = 0, k = 0;
  while (pos < audio.size()) {
    const size_t n = std::min(chunks[k++ % chunks.size()], audio.size() - pos);
    EXPECT_TRUE(session.PushAudio(std::span<const float>(audio.data() + pos, n)).ok());
    pos += n;
    EXPECT_TRUE(engine.RunUntilIdle().ok());
    Collect(session, t);
  }
  EXPECT_TRUE(session.Close().ok());
  EXPECT_TRUE(engine.RunUntilIdle().ok());
  Collect(session, t);
  t.tokens = session.text_tokens();
  return t;
}

inline void ExpectWordsEqual(const std::vector<AsrWord>& got, const nlohmann::json& want,
                             const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].text, want[i]["text"].get<std::string>()) << what << " word " << i;
    // The reference computes some times in float32 (tensor arithmetic): equal within its precision.
    EXPECT_NEAR(got[i].start_s, want[i]["start"].get<double>(), 1e-6) << what << " word " << i;
    EXPECT_NEAR(got[i].end_s, want[i]["end"].get<double>(), 1e-6) << what << " word " << i;
  }
}

}  // namespace monologue::asr_test
