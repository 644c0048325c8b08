// DialogueEngine against the reference's offline loop (tests/reference/make_dialogue_fixtures.py): text
// tokens and Moshi's audio codes identical at every frame, output PCM within 1e-4 relative L2; batches,
// late joins, resets and leaves equal the solo reference runs; bad models and misuse are clear errors.
#include "dialogue/dialogue_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/audio/audio_decoder.h"
#include "core/config/model_config.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_loader.h"
#include "dialogue/dialogue_engine_builder.h"
#include "tests/common/quantised_info.h"
#include "tests/dialogue/dialogue_fixtures.h"

namespace monologue {
namespace {

using dialogue_test::ClipPath;
using dialogue_test::LoadReference;
using dialogue_test::ModelDir;
using dialogue_test::Reference;
using dialogue_test::RelativeL2;
namespace fs = std::filesystem;

// The input of a case: prepended zeros, then the clip's first `samples` samples.
std::vector<float> CaseInput(const Reference& ref) {
  auto decoded = DecodeAudioFile(ClipPath(ref.meta["clip"].get<std::string>()));
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  std::vector<float> x(ref.meta["prepend_samples"].get<size_t>(), 0.0f);
  const size_t n = std::min(decoded->samples.size(), ref.meta["samples"].get<size_t>());
  x.insert(x.end(), decoded->samples.begin(), decoded->samples.begin() + static_cast<std::ptrdiff_t>(n));
  return x;
}

DialogueEngineOptions CaseOptions(const Reference& ref, int batch = 1) {
  DialogueEngineOptions o;
  o.batch_size = batch;
  o.threads = 1;
  const auto& ov = ref.meta["overrides"];
  if (ov.contains("temp")) o.sampling.temp = ov["temp"].get<double>();
  if (ov.contains("temp_text")) o.sampling.temp_text = ov["temp_text"].get<double>();
  if (ov.contains("top_k")) o.sampling.top_k = ov["top_k"].get<int>();
  if (ov.contains("top_k_text")) o.sampling.top_k_text = ov["top_k_text"].get<int>();
  o.sampling.seed = ref.meta["seed"].get<uint64_t>();
  return o;
}

struct Output {
  std::vector<int> tokens;
  std::vector<std::vector<int>> codes;
  std::vector<float> audio;
  std::string text;
  std::vector<int> text_ids;
  int ends = 0;
};

void Collect(DialogueSession& s, Output& out) {
  for (DialogueEvent& e : s.PollEvents()) {
    switch (e.kind) {
      case DialogueEvent::Kind::kAudio:
        EXPECT_EQ(out.ends, 0);
        if (!e.codes.empty()) {
          EXPECT_EQ(e.frame, static_cast<int64_t>(out.tokens.size()));
          EXPECT_EQ(e.audio.size(), 1920u);
          out.tokens.push_back(e.token);
          out.codes.push_back(e.codes);
        }
        out.audio.insert(out.audio.end(), e.audio.begin(), e.audio.end());
        break;
      case DialogueEvent::Kind::kText:
        out.text += e.text;
        out.text_ids.push_back(e.token);
        break;
      case DialogueEvent::Kind::kEnd:
        out.ends++;
        break;
    }
  }
}

// Pushes in odd chunk sizes, stepping between pushes, then closes and runs to the end.
Output RunSession(DialogueEngine& engine, DialogueSession& s, const std::vector<float>& x) {
  Output out;
  const std::vector<size_t> chunks = {1000, 3333, 1920, 77, 5000};
  size_t pos = 0, k = 0;
  while (pos < x.size()) {
    const size_t n = std::min(chunks[k++ % chunks.size()], x.size() - pos);
    EXPECT_TRUE(s.PushAudio(std::span<const float>(x.data() + pos, n)).ok());
    pos += n;
    EXPECT_TRUE(engine.RunUntilIdle().ok());
    Collect(s, out);
  }
  EXPECT_TRUE(s.Close().ok());
  EXPECT_TRUE(engine.RunUntilIdle().ok());
  Collect(s, out);
  return out;
}

void ExpectMatches(const Output& out, const Reference& ref, const std::string& what) {
  EXPECT_EQ(out.ends, 1) << what;
  ASSERT_EQ(out.tokens.size(), ref.text_tokens.size()) << what;
  for (size_t f = 0; f < out.tokens.size(); ++f) {
    ASSERT_EQ(out.tokens[f], ref.text_tokens[f]) << what << " text token at frame " << f;
    ASSERT_EQ(out.codes[f], ref.codes[f]) << what << " audio codes at frame " << f;
  }
  const size_t prepend = ref.meta["prepend_samples"].get<size_t>();
  const size_t total = prepend + ref.meta["samples"].get<size_t>();
  ASSERT_EQ(out.audio.size(), total) << what;
  for (size_t i = ref.text_tokens.size() * 1920; i < total; ++i) ASSERT_EQ(out.audio[i], 0.0f) << what;
  if (!ref.pcm.empty()) {
    std::vector<float> aligned(out.audio.begin() + static_cast<std::ptrdiff_t>(prepend), out.audio.end());
    ASSERT_EQ(aligned.size(), ref.pcm.size());
    EXPECT_LT(RelativeL2(aligned, ref.pcm), 1e-4) << what;
  }
  std::vector<int> printable;
  for (int t : ref.text_tokens)
    if (t != 0 && t != 3) printable.push_back(t);
  EXPECT_EQ(out.text_ids, printable) << what;
}

class DialogueCaseTest : public ::testing::TestWithParam<std::string> {};

DialogueEngineOptions OneThread() {
  DialogueEngineOptions o;
  o.threads = 1;
  return o;
}

TEST_P(DialogueCaseTest, MatchesReferenceAtEveryFrame) {
  const Reference ref = LoadReference(GetParam());
  auto engine = DialogueEngine::Load(ModelDir(ref.meta["variant"].get<std::string>()), CaseOptions(ref));
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->info().lora, ref.meta["variant"] == "lora");
  auto session = (*engine)->OpenSession();
  ASSERT_TRUE(session.ok()) << session.status();
  ExpectMatches(RunSession(**engine, **session, CaseInput(ref)), ref, GetParam());
}

INSTANTIATE_TEST_SUITE_P(dialogue, DialogueCaseTest,
                         ::testing::Values("greedy_en", "greedy_fr", "greedy_en_silence", "sampled_en",
                                           "sampled_fr_silence", "gencfg_en", "lora_greedy_en",
                                           "lora_sampled_fr"));

// A session's own sampling settings on an engine configured otherwise (here greedy) equal the reference run
// with those settings, next to a greedy session in the same batch.
TEST(dialogue, PerSessionSamplingEqualsItsReferenceRun) {
  const Reference sampled = LoadReference("sampled_en"), greedy = LoadReference("greedy_fr");
  DialogueEngineOptions o = CaseOptions(greedy, 2);
  auto engine = DialogueEngine::Load(ModelDir(), o);
  ASSERT_TRUE(engine.ok()) << engine.status();
  DialogueSampling own;
  const auto& ov = sampled.meta["overrides"];
  own.temp = ov["temp"].get<double>();
  own.temp_text = ov["temp_text"].get<double>();
  own.top_k = ov["top_k"].get<int>();
  own.top_k_text = ov["top_k_text"].get<int>();
  auto a = (*engine)->OpenSession(sampled.meta["seed"].get<uint64_t>(), own);
  auto b = (*engine)->OpenSession(greedy.meta["seed"].get<uint64_t>());
  ASSERT_TRUE(a.ok() && b.ok());
  const std::vector<float> xa = CaseInput(sampled), xb = CaseInput(greedy);
  ASSERT_TRUE((*a)->PushAudio(xa).ok());
  ASSERT_TRUE((*b)->PushAudio(xb).ok());
  ASSERT_TRUE((*a)->Close().ok());
  ASSERT_TRUE((*b)->Close().ok());
  ASSERT_TRUE((*engine)->RunUntilIdle().ok());
  Output oa, ob;
  Collect(**a, oa);
  Collect(**b, ob);
  ExpectMatches(oa, sampled, "sampled_en (per-session)");
  ExpectMatches(ob, greedy, "greedy_fr (beside it)");
  DialogueSampling bad;
  bad.top_k = 0;
  EXPECT_EQ((*engine)->OpenSession(std::nullopt, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// A LoRA adapter given as a file (chat --lora) on the base model equals the reference's LoRA-fused run (the
// fixture's scaling 2.0 is also the config default).
TEST(dialogue, LoraFileOptionEqualsTheReferenceLoraRun) {
  const Reference ref = LoadReference("lora_greedy_en");
  DialogueEngineOptions o = CaseOptions(ref);
  o.lora_path = dialogue_test::DataDir() + "/lora.safetensors";
  auto engine = DialogueEngine::Load(ModelDir(), o);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_TRUE((*engine)->info().lora);
  auto session = (*engine)->OpenSession();
  ASSERT_TRUE(session.ok());
  ExpectMatches(RunSession(**engine, **session, CaseInput(ref)), ref, "lora file option");
  o.lora_path = dialogue_test::DataDir() + "/no-such-lora.safetensors";
  auto missing = DialogueEngine::Load(ModelDir(), o);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("--lora"), std::string::npos) << missing.status();
}

TEST(dialogue, CheckpointSamplingSettingsApply) {
  auto engine = DialogueEngine::Load(ModelDir("gencfg"), OneThread());
  ASSERT_TRUE(engine.ok()) << engine.status();
  const DialogueModelInfo& info = (*engine)->info();
  EXPECT_DOUBLE_EQ(info.temp, 0.9);
  EXPECT_DOUBLE_EQ(info.temp_text, 0.6);
  EXPECT_EQ(info.top_k, 40);
  EXPECT_EQ(info.top_k_text, 20);
  auto plain = DialogueEngine::Load(ModelDir(), OneThread());
  ASSERT_TRUE(plain.ok()) << plain.status();
  // The reference LMGen defaults.
  EXPECT_DOUBLE_EQ((*plain)->info().temp, 0.8);
  EXPECT_DOUBLE_EQ((*plain)->info().temp_text, 0.7);
  EXPECT_EQ((*plain)->info().top_k, 250);
  EXPECT_EQ((*plain)->info().top_k_text, 25);
  EXPECT_EQ((*plain)->info().dep_q, 8);
}

// Greedy runs do not depend on the other slots: a batch of different inputs equals each alone.
TEST(dialogue, BatchEqualsEachAlone) {
  const std::vector<std::string> names = {"greedy_en", "greedy_fr", "greedy_en_silence"};
  std::vector<Reference> refs;
  for (const auto& n : names) refs.push_back(LoadReference(n));
  auto engine = DialogueEngine::Load(ModelDir(), CaseOptions(refs[0], 3));
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::vector<std::unique_ptr<DialogueSession>> sessions;
  std::vector<std::vector<float>> inputs;
  for (const auto& r : refs) {
    auto s = (*engine)->OpenSession();
    ASSERT_TRUE(s.ok()) << s.status();
    sessions.push_back(std::move(*s));
    inputs.push_back(CaseInput(r));
  }
  EXPECT_EQ((*engine)->free_slots(), 0);
  EXPECT_EQ((*engine)->OpenSession().status().code(), absl::StatusCode::kResourceExhausted);
  // Different chunkings per slot, interleaved.
  std::vector<Output> outs(3);
  std::vector<size_t> pos(3, 0);
  const std::vector<size_t> chunk = {2500, 1920, 4100};
  bool more = true;
  while (more) {
    more = false;
    for (int b = 0; b < 3; ++b) {
      const size_t n = std::min(chunk[b], inputs[b].size() - pos[b]);
      if (n > 0) {
        ASSERT_TRUE(sessions[b]->PushAudio(std::span<const float>(inputs[b].data() + pos[b], n)).ok());
        pos[b] += n;
        more = true;
      } else {
        ASSERT_TRUE(sessions[b]->Close().ok());
      }
    }
    ASSERT_TRUE((*engine)->Step().ok());
    for (int b = 0; b < 3; ++b) Collect(*sessions[b], outs[b]);
  }
  ASSERT_TRUE((*engine)->RunUntilIdle().ok());
  for (int b = 0; b < 3; ++b) {
    Collect(*sessions[b], outs[b]);
    ExpectMatches(outs[b], refs[b], names[b] + " in a batch of 3");
  }
}

// A session that joins while another is mid-way, one that leaves and is replaced, and one reset mid-way.
TEST(dialogue, LateJoinLeaveAndResetEqualSoloRuns) {
  const Reference en = LoadReference("greedy_en");
  const Reference fr = LoadReference("greedy_fr");
  auto engine = DialogueEngine::Load(ModelDir(), CaseOptions(en, 2));
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::vector<float> x_en = CaseInput(en), x_fr = CaseInput(fr);

  // Slot A runs fr for 6 frames, then B joins with en; A then finishes.
  auto a = (*engine)->OpenSession();
  ASSERT_TRUE(a.ok());
  Output out_a;
  ASSERT_TRUE((*a)->PushAudio(std::span<const float>(x_fr.data(), 6 * 1920)).ok());
  ASSERT_TRUE((*engine)->RunUntilIdle().ok());
  Collect(**a, out_a);
  EXPECT_EQ(out_a.tokens.size(), 6u);
  auto b = (*engine)->OpenSession();
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE((*a)->PushAudio(std::span<const float>(x_fr.data() + 6 * 1920, x_fr.size() - 6 * 1920)).ok());
  ASSERT_TRUE((*a)->Close().ok());
  Output out_b = RunSession(**engine, **b, x_en);
  Collect(**a, out_a);
  ExpectMatches(out_a, fr, "first session");
  ExpectMatches(out_b, en, "late-joining session");

  // A leaves; a new session takes its slot while B's slot is idle-but-open.
  a->reset();
  auto c = (*engine)->OpenSession();
  ASSERT_TRUE(c.ok());
  ExpectMatches(RunSession(**engine, **c, x_fr), fr, "session in a freed slot");

  // Reset mid-way: 7 frames of fr, then Reset and the whole en clip.
  ASSERT_TRUE((*c)->Reset().ok());
  ASSERT_TRUE((*c)->PushAudio(std::span<const float>(x_fr.data(), 7 * 1920 + 100)).ok());
  ASSERT_TRUE((*engine)->RunUntilIdle().ok());
  EXPECT_EQ((*c)->frames_done(), 7);
  ASSERT_TRUE((*c)->Reset().ok());
  EXPECT_TRUE((*c)->PollEvents().empty());
  ExpectMatches(RunSession(**engine, **c, x_en), en, "session reset mid-way");
}

// Sampling with one generator per session: sessions with their own seeds in one batch, one joining late and
// one reset mid-way, each draw exactly what the reference draws alone after torch.manual_seed(seed).
TEST(dialogue, SampledSessionsInABatchEqualTheirSoloRuns) {
  const Reference en = LoadReference("sampled_en");
  const Reference fr = LoadReference("sampled_fr_silence");
  ASSERT_EQ(en.meta["overrides"], fr.meta["overrides"]);
  auto engine = DialogueEngine::Load(ModelDir(), CaseOptions(en, 2));
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::vector<float> x_en = CaseInput(en), x_fr = CaseInput(fr);
  const uint64_t seed_en = en.meta["seed"].get<uint64_t>(), seed_fr = fr.meta["seed"].get<uint64_t>();

  auto a = (*engine)->OpenSession(seed_fr);
  ASSERT_TRUE(a.ok());
  Output out_a;
  ASSERT_TRUE((*a)->PushAudio(std::span<const float>(x_fr.data(), 5 * 1920 + 10)).ok());
  ASSERT_TRUE((*engine)->RunUntilIdle().ok());
  Collect(**a, out_a);
  auto b = (*engine)->OpenSession(seed_en);
  ASSERT_TRUE(b.ok());
  // b: 3 frames of the fr clip, then a reset and the en clip; a goes on meanwhile.
  ASSERT_TRUE((*b)->PushAudio(std::span<const float>(x_fr.data(), 3 * 1920)).ok());
  ASSERT_TRUE((*a)->PushAudio(std::span<const float>(x_fr.data() + 5 * 1920 + 10, 4 * 1920)).ok());
  ASSERT_TRUE((*engine)->RunUntilIdle().ok());
  Collect(**a, out_a);
  ASSERT_TRUE((*b)->Reset().ok());
  const size_t rest = 5 * 1920 + 10 + 4 * 1920;
  ASSERT_TRUE((*a)->PushAudio(std::span<const float>(x_fr.data() + rest, x_fr.size() - rest)).ok());
  ASSERT_TRUE((*a)->Close().ok());
  Output out_b = RunSession(**engine, **b, x_en);
  Collect(**a, out_a);
  ExpectMatches(out_a, fr, "sampled session");
  ExpectMatches(out_b, en, "sampled session joining late, reset mid-way");
}

// Compacted steps (the default): 8 slots, sampled sessions at slots 1 and 6 (the others taken and left again),
// the second joining 4 frames late; each step runs only the slots that advance, padded to a power of two with
// idle slots that must stay untouched. Each session draws exactly its solo reference run.
TEST(dialogue, ScatteredSlotsOfEightEqualTheirSoloRuns) {
  const Reference en = LoadReference("sampled_en");
  const Reference fr = LoadReference("sampled_fr_silence");
  auto engine = DialogueEngine::Load(ModelDir(), CaseOptions(en, 8));
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::vector<float> x_en = CaseInput(en), x_fr = CaseInput(fr);
  std::vector<std::unique_ptr<DialogueSession>> all;
  for (int i = 0; i < 7; ++i) {
    auto s = (*engine)->OpenSession(i == 6 ? en.meta["seed"].get<uint64_t>() : fr.meta["seed"].get<uint64_t>());
    ASSERT_TRUE(s.ok()) << s.status();
    all.push_back(std::move(*s));
  }
  std::unique_ptr<DialogueSession> a = std::move(all[1]), b = std::move(all[6]);
  all.clear();
  ASSERT_EQ(a->slot(), 1);
  ASSERT_EQ(b->slot(), 6);
  Output out_a;
  ASSERT_TRUE(a->PushAudio(std::span<const float>(x_fr.data(), 4 * 1920)).ok());
  ASSERT_TRUE((*engine)->RunUntilIdle().ok());
  Collect(*a, out_a);
  ASSERT_TRUE(a->PushAudio(std::span<const float>(x_fr.data() + 4 * 1920, x_fr.size() - 4 * 1920)).ok());
  ASSERT_TRUE(a->Close().ok());
  Output out_b = RunSession(**engine, *b, x_en);
  ASSERT_TRUE((*engine)->RunUntilIdle().ok());
  Collect(*a, out_a);
  ExpectMatches(out_a, fr, "slot 1");
  ExpectMatches(out_b, en, "slot 6, joining late");
}

// Live use: a model thread steps when there is work (WaitForWork), the session pushes from another thread and
// reads with WaitEvents; the result is the reference's.
TEST(dialogue, ThreadedPushAndWaitEventsMatchReference) {
  const Reference ref = LoadReference("sampled_en");
  auto engine = DialogueEngine::Load(ModelDir(), CaseOptions(ref, 2));
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto s = (*engine)->OpenSession(ref.meta["seed"].get<uint64_t>());
  ASSERT_TRUE(s.ok());
  std::atomic<bool> stop{false};
  std::thread model([&] {
    while (!stop) {
      auto n = (*engine)->Step();
      ASSERT_TRUE(n.ok()) << n.status();
      if (*n == 0) (*engine)->WaitForWork(std::chrono::milliseconds(5));
    }
  });
  const std::vector<float> x = CaseInput(ref);
  std::thread pusher([&] {
    for (size_t pos = 0; pos < x.size(); pos += 700) {
      const size_t n = std::min<size_t>(700, x.size() - pos);
      EXPECT_TRUE((*s)->PushAudio(std::span<const float>(x.data() + pos, n)).ok());
    }
    EXPECT_TRUE((*s)->Close().ok());
  });
  Output out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (out.ends == 0 && std::chrono::steady_clock::now() < deadline) {
    for (DialogueEvent& e : (*s)->WaitEvents(std::chrono::milliseconds(50))) {
      if (e.kind == DialogueEvent::Kind::kAudio) {
        if (!e.codes.empty()) {
          out.tokens.push_back(e.token);
          out.codes.push_back(e.codes);
        }
        out.audio.insert(out.audio.end(), e.audio.begin(), e.audio.end());
      } else if (e.kind == DialogueEvent::Kind::kText) {
        out.text_ids.push_back(e.token);
      } else {
        out.ends++;
      }
    }
  }
  pusher.join();
  stop = true;
  model.join();
  ExpectMatches(out, ref, "threaded session");
}

// Close() racing a step that holds the stream's last frame: the stream still ends after that frame, with
// exactly the input's length (a frame in flight used to be padded as if lost, then sent after kEnd).
TEST(dialogue, CloseDuringAStepKeepsTheInputLength) {
  auto engine = DialogueEngine::Load(ModelDir(), OneThread());
  ASSERT_TRUE(engine.ok()) << engine.status();
  std::atomic<bool> stop{false};
  std::thread model([&] {
    while (!stop) {
      auto n = (*engine)->Step();
      ASSERT_TRUE(n.ok()) << n.status();
      if (*n == 0) (*engine)->WaitForWork(std::chrono::milliseconds(1));
    }
  });
  for (int round = 0; round < 40; ++round) {
    auto s = (*engine)->OpenSession();
    ASSERT_TRUE(s.ok());
    const size_t samples = 1920 * 3 + 100 * static_cast<size_t>(round % 7);
    const std::vector<float> x(samples, 0.01f);
    ASSERT_TRUE((*s)->PushAudio(x).ok());
    // Close as soon as all but the last frame are done: the model thread is then taking the last one.
    const auto wait_until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((*s)->frames_done() < 2 && std::chrono::steady_clock::now() < wait_until) std::this_thread::yield();
    ASSERT_TRUE((*s)->Close().ok());
    size_t got = 0;
    int ends = 0;
    bool after_end = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (ends == 0 && std::chrono::steady_clock::now() < deadline) {
      for (DialogueEvent& e : (*s)->WaitEvents(std::chrono::milliseconds(20))) {
        if (ends > 0) after_end = true;
        if (e.kind == DialogueEvent::Kind::kAudio) got += e.audio.size();
        if (e.kind == DialogueEvent::Kind::kEnd) ends++;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    after_end = after_end || !(*s)->PollEvents().empty();
    EXPECT_EQ(ends, 1) << "round " << round;
    EXPECT_EQ(got, samples) << "round " << round;
    EXPECT_FALSE(after_end) << "round " << round;
  }
  stop = true;
  model.join();
}

TEST(dialogue, SeededSamplingIsReproducibleAndSeedDependent) {
  const Reference ref = LoadReference("sampled_en");
  DialogueEngineOptions o = CaseOptions(ref);
  o.sampling.seed = ref.meta["seed"].get<uint64_t>() + 1;
  auto engine = DialogueEngine::Load(ModelDir(), o);
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto s = (*engine)->OpenSession();
  ASSERT_TRUE(s.ok());
  const Output out = RunSession(**engine, **s, CaseInput(ref));
  ASSERT_EQ(out.tokens.size(), ref.text_tokens.size());
  EXPECT_FALSE(out.tokens == ref.text_tokens && out.codes == ref.codes);
}

TEST(dialogue, RejectsOtherModelsAndMisuse) {
  // An STT model directory.
  auto stt = DialogueEngine::Load(std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/tiny-stt");
  ASSERT_FALSE(stt.ok());
  EXPECT_EQ(stt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(stt.status().message().find("'stt'"), std::string::npos) << stt.status();
  // A missing Mimi file.
  const std::string dir = ModelDir();
  const fs::path broken = fs::absolute("broken-model");
  fs::create_directories(broken);
  std::ifstream in(fs::path(dir) / "config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["moshi_name"] = (fs::path(dir) / "model.safetensors").string();
  cfg["mimi_config_name"] = (fs::path(dir) / "mimi_config.json").string();
  cfg["tokenizer_name"] = (fs::path(dir) / "tokenizer.model").string();
  std::ofstream(broken / "config.json") << cfg.dump();
  auto missing = DialogueEngine::Load(broken.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("Mimi weights"), std::string::npos) << missing.status();
  // Bad options.
  DialogueEngineOptions no_slots;
  no_slots.batch_size = 0;
  EXPECT_FALSE(DialogueEngine::Load(dir, no_slots).ok());
  DialogueEngineOptions bad;
  bad.sampling.top_k = 0;
  EXPECT_FALSE(DialogueEngine::Load(dir, bad).ok());
  // Push after close.
  auto engine = DialogueEngine::Load(dir, OneThread());
  ASSERT_TRUE(engine.ok());
  auto s = (*engine)->OpenSession();
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Close().ok());
  const float x[4] = {0, 0, 0, 0};
  EXPECT_EQ((*s)->PushAudio(x).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*engine)->RunUntilIdle().ok());
  // An empty stream ends at once with no audio.
  Output out;
  Collect(**s, out);
  EXPECT_EQ(out.ends, 1);
  EXPECT_TRUE(out.audio.empty());
  EXPECT_TRUE((*s)->finished());
}

TEST(dialogue, MimiWhoseBinsDifferFromTheLmCardIsRefusedNamingBoth) {
  // The tiny Moshi LM with codecs of twice and half its card: refused at creation (the user's codes would
  // overflow the LM's audio embeddings mid-stream, or the LM's tokens Mimi's codebooks), naming both sizes.
  const std::string dir = ModelDir();
  auto config = LoadModelConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  auto files = ResolveModelFiles(dir, *config, "");
  ASSERT_TRUE(files.ok()) << files.status();
  auto lm = LmModel::LoadFile(config->lm, files->lm.string());
  ASSERT_TRUE(lm.ok()) << lm.status();
  const int64_t card = config->lm.card;
  for (const int64_t bins : {2 * card, card / 2}) {
    MimiConfig other = config->mimi;
    other.quantizer.bins = bins;
    auto mimi = RandomMimi(other, /*seed=*/0, c10::Device(c10::kCPU));
    ASSERT_TRUE(mimi.ok()) << mimi.status();
    auto engine = DialogueEngineBuilder::Create(*config, *lm, *mimi, nullptr, OneThread());
    ASSERT_FALSE(engine.ok()) << bins;
    EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(engine.status().message());
    EXPECT_NE(message.find(std::to_string(bins)), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(card)), std::string::npos) << message;
  }
  // The model's own codec is accepted.
  auto own = RandomMimi(config->mimi, /*seed=*/0, c10::Device(c10::kCPU));
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_TRUE(DialogueEngineBuilder::Create(*config, *lm, *own, nullptr, OneThread()).ok());
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

// `dtype` int8 / int4 (weights quantised at load, CPU) through the whole dialogue engine on the greedy cases:
// the output keeps the input's length and ends once; Moshi's audio codes are compared with the reference's
// (f32) frame by frame, with floors only a broken path falls below (chance is 1 in the tiny model's card).
// One flipped greedy token changes everything after it, so the floors are on the first frame and on the
// share of all codes. Measured: int8 kept the first frame whole and 59-93% of all codes, int4 62% of the
// first frame and 8% of all (the tiny model's int4 groups span nearly whole rows). The engine reports the
// dtype and the quantisation.
void ExpectQuantisedDialogueFollowsReference(const std::string& dtype, double first_frame_floor,
                                             double floor) {
  for (const std::string name : {"greedy_en", "greedy_fr"}) {
    SCOPED_TRACE(dtype + " " + name);
    const Reference ref = LoadReference(name);
    DialogueEngineOptions options = CaseOptions(ref);
    options.dtype = dtype;
    auto engine = DialogueEngine::Load(ModelDir(ref.meta["variant"].get<std::string>()), options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    test_util::ExpectQuantisedAtLoad((*engine)->info(), dtype);
    auto session = (*engine)->OpenSession();
    ASSERT_TRUE(session.ok()) << session.status();
    const std::vector<float> input = CaseInput(ref);
    const Output out = RunSession(**engine, **session, input);
    EXPECT_EQ(out.ends, 1);
    ASSERT_EQ(out.audio.size(), input.size());
    for (float v : out.audio) ASSERT_TRUE(std::isfinite(v));
    ASSERT_EQ(out.codes.size(), ref.codes.size());
    ASSERT_FALSE(out.codes.empty());
    size_t equal = 0, total = 0;
    for (size_t f = 0; f < out.codes.size(); ++f) {
      ASSERT_EQ(out.codes[f].size(), ref.codes[f].size());
      for (size_t k = 0; k < out.codes[f].size(); ++k) equal += out.codes[f][k] == ref.codes[f][k];
      total += out.codes[f].size();
    }
    size_t first = 0;
    for (size_t k = 0; k < out.codes[0].size(); ++k) first += out.codes[0][k] == ref.codes[0][k];
    const double rate = static_cast<double>(equal) / static_cast<double>(total);
    const double first_frame = static_cast<double>(first) / static_cast<double>(out.codes[0].size());
    std::printf(
        "%s %s: %zu frames, %.1f%% of Moshi's audio codes equal to the reference's, %.0f%% of the first "
        "frame's\n",
        dtype.c_str(), name.c_str(), out.codes.size(), 100 * rate, 100 * first_frame);
    EXPECT_GE(first_frame, first_frame_floor);
    EXPECT_GT(rate, floor);
  }
}

TEST(DialogueQuantised, Int8RunFollowsTheReference) {
  ExpectQuantisedDialogueFollowsReference("int8", 0.5, 0.05);
}
TEST(DialogueQuantised, Int4RunFollowsTheReference) {
  ExpectQuantisedDialogueFollowsReference("int4", 0.25, 0.03);
}

}  // namespace
}  // namespace monologue
