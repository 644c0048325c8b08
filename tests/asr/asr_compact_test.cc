// Compacted engine steps (AsrEngineOptions::compact_steps, the default): an 8-slot engine whose live sessions
// sit at slots 1, 4 and 6 (joining late, resetting, finishing at different frames) produces the same
// transcripts as the same engine computing every slot under the exec mask, and as the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "asr/asr_engine.h"
#include "tests/asr/asr_test_util.h"

namespace monologue {
namespace {

using asr_test::ReadClip;
using asr_test::Transcript;

std::array<Transcript, 3> RunScatteredSessions(bool compact) {
  std::array<Transcript, 3> out;
  AsrEngineOptions options;
  options.batch_size = 8;
  options.threads = 1;
  options.compact_steps = compact;
  auto engine_or = AsrEngine::Load(asr_test::ModelDir("tiny-stt"), options);
  EXPECT_TRUE(engine_or.ok()) << engine_or.status();
  if (!engine_or.ok()) return out;
  AsrEngine& engine = **engine_or;
  // Take slots 0..6 and keep 1, 4 and 6 (the others leave again).
  std::vector<std::unique_ptr<AsrSession>> all;
  for (int i = 0; i < 7; ++i) {
    auto s = engine.OpenSession();
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return out;
    all.push_back(std::move(*s));
  }
  std::array<std::unique_ptr<AsrSession>, 3> live = {std::move(all[1]), std::move(all[4]), std::move(all[6])};
  all.clear();
  EXPECT_EQ(live[0]->slot(), 1);
  EXPECT_EQ(live[1]->slot(), 4);
  EXPECT_EQ(live[2]->slot(), 6);
  const std::vector<float> en = ReadClip("speech_en"), fr = ReadClip("speech_fr");
  const std::array<const std::vector<float>*, 3> clips = {&en, &fr, &en};
  const std::array<size_t, 3> chunk = {1500, 2500, 1920};
  std::array<size_t, 3> pos = {0, 0, 0};
  std::vector<float> junk(7 * 1920 + 5);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = 0.2f * static_cast<float>((i * 7919) % 101) / 101.0f;
  EXPECT_TRUE(live[2]->PushAudio(junk).ok());  // slot 6 hears junk first, then restarts on its clip
  for (int step = 0; step < 400; ++step) {
    if (step == 5) {
      live[2]->PollEvents();
      EXPECT_TRUE(live[2]->Reset().ok());
    }
    bool more = false;
    for (size_t i = 0; i < 3; ++i) {
      if (i == 1 && step < 12) continue;  // slot 4 joins late
      if (i == 2 && step < 5) continue;   // slot 6's clip starts after its reset
      const size_t n = std::min(chunk[i], clips[i]->size() - pos[i]);
      if (n > 0) {
        EXPECT_TRUE(live[i]->PushAudio(std::span<const float>(clips[i]->data() + pos[i], n)).ok());
        pos[i] += n;
        if (pos[i] == clips[i]->size()) {
          EXPECT_TRUE(live[i]->Close().ok());
        }
      }
      more = more || pos[i] < clips[i]->size();
    }
    EXPECT_TRUE(engine.Step().ok());
    for (size_t i = 0; i < 3; ++i) asr_test::Collect(*live[i], out[i]);
    if (!more) break;
  }
  EXPECT_TRUE(engine.RunUntilIdle().ok());
  for (size_t i = 0; i < 3; ++i) {
    asr_test::Collect(*live[i], out[i]);
    out[i].tokens = live[i]->text_tokens();
  }
  return out;
}

TEST(AsrCompact, ScatteredSlotsEqualTheFullBatchStepAndTheReference) {
  const auto compact = RunScatteredSessions(true);
  const auto full = RunScatteredSessions(false);
  const std::array<const char*, 3> clip = {"speech_en", "speech_fr", "speech_en"};
  for (size_t i = 0; i < 3; ++i) {
    const asr_test::Reference ref = asr_test::LoadReference("tiny-stt", clip[i]);
    EXPECT_EQ(compact[i].tokens, ref.tokens) << "session " << i;
    EXPECT_EQ(compact[i].tokens, full[i].tokens) << "session " << i;
    EXPECT_EQ(compact[i].ends, 1);
    ASSERT_EQ(compact[i].vad.size(), full[i].vad.size()) << "session " << i;
    for (size_t k = 0; k < compact[i].vad.size(); ++k) {
      ASSERT_EQ(compact[i].vad[k].step, full[i].vad[k].step);
      for (size_t h = 0; h < compact[i].vad[k].vad.size(); ++h) {
        EXPECT_NEAR(compact[i].vad[k].vad[h], full[i].vad[k].vad[h], 1e-5) << "session " << i << " step " << k;
      }
    }
    ASSERT_EQ(compact[i].words.size(), full[i].words.size());
    for (size_t w = 0; w < compact[i].words.size(); ++w) {
      EXPECT_EQ(compact[i].words[w].text, full[i].words[w].text);
      EXPECT_EQ(compact[i].words[w].start_s, full[i].words[w].start_s);
    }
  }
}

}  // namespace
}  // namespace monologue
