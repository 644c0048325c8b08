// TtsEngine against the reference TTSModel (fixtures from tests/reference/make_tts_fixtures.py on the tiny
// TTS models in tests/data/tts): text stream, audio codes and decoded PCM at every frame, word timestamps;
// streamed text, batches, late joins and resets against the same solo reference runs; bad input.
#include "tts/tts_engine.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config/model_config.h"
#include "core/io/safetensors.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_loader.h"
#include "core/text/text_tokenizer.h"
#include "nlohmann/json.hpp"
#include "tests/common/quantised_info.h"
#include "tests/config/test_dirs.h"
#include "tts/tts_engine_builder.h"
#include "tts/tts_script.h"

namespace monologue {
namespace {

const std::string kData = std::string(MONOLOGUE_TEST_DATA_DIR) + "/tts";

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

struct Fixture {
  std::string name;
  nlohmann::json meta;
  std::map<std::string, at::Tensor> tensors;
};

Fixture LoadFixture(const std::string& name) {
  Fixture f;
  f.name = name;
  f.meta = ReadJson(kData + "/ref_" + name + ".json");
  auto file = SafeTensorsFile::Open(kData + "/ref_" + name + ".safetensors");
  EXPECT_TRUE(file.ok()) << file.status();
  for (const auto& info : (*file)->tensors()) f.tensors[info.name] = (*file)->Load(info.name)->clone();
  return f;
}

TtsEngineOptions EngineOptions(const nlohmann::json& meta, int batch = 1) {
  TtsEngineOptions o;
  o.batch_size = batch;
  o.threads = 1;
  o.temp = meta["temp"].get<double>();
  o.top_k = meta["top_k"].get<int>();
  o.top_k_text = meta["top_k_text"].get<int>();
  if (!meta["seed"].is_null()) o.seed = meta["seed"].get<uint64_t>();
  o.cfg_coef = meta["cfg_coef"].get<double>();
  o.n_q = meta["n_q"].get<int>();
  return o;
}

TtsSessionOptions SessionOptions(const nlohmann::json& meta) {
  TtsSessionOptions o;
  for (const auto& v : meta["voices"]) o.voices.push_back(kData + "/voices/" + v.get<std::string>());
  o.padding_between = meta["padding_between"].get<int>();
  o.padding_bonus = meta["padding_bonus"].get<double>();
  return o;
}

struct Synthesis {
  std::vector<int64_t> fed;
  std::vector<int64_t> codes;  // [frames][Q]
  std::vector<float> pcm;
  std::vector<TtsWord> words;
  bool ended = false;
};

void Collect(TtsSession& s, Synthesis& r) {
  for (TtsEvent& e : s.PollEvents()) {
    if (e.kind == TtsEvent::Kind::kAudio) r.pcm.insert(r.pcm.end(), e.audio.begin(), e.audio.end());
    if (e.kind == TtsEvent::Kind::kWord) r.words.push_back(e.word);
    if (e.kind == TtsEvent::Kind::kEnd) r.ended = true;
  }
  if (r.ended) {
    r.fed = s.text_tokens();
    r.codes = s.codes();
  }
}

absl::Status PushScript(TtsSession& s, const nlohmann::json& script) {
  for (size_t t = 0; t < script.size(); ++t) {
    if (absl::Status st = s.PushText(script[t].get<std::string>()); !st.ok()) return st;
    if (t + 1 < script.size()) {
      if (absl::Status st = s.EndTurn(); !st.ok()) return st;
    }
  }
  return s.Close();
}

double RelL2(const std::vector<float>& a, const at::Tensor& ref) {
  at::Tensor x = at::tensor(a, at::kFloat);
  if (x.numel() != ref.numel()) return 1e9;
  return (x - ref).norm().item<double>() / std::max(ref.norm().item<double>(), 1e-12);
}

// Compares a finished run with item `item` of a fixture (batch fixtures hold [B, ...] tensors); only the
// item's own steps (its end + delay + final padding) and frames count.
void ExpectMatches(const Synthesis& r, const Fixture& f, int item = -1) {
  SCOPED_TRACE(f.name + (item >= 0 ? " item " + std::to_string(item) : std::string()));
  ASSERT_TRUE(r.ended);
  const nlohmann::json& m = item >= 0 ? f.meta["items"][item] : f.meta;
  const int64_t end_step = m["end_step"].get<int64_t>();
  const int64_t steps = end_step + f.meta["delay_steps"].get<int64_t>() + f.meta["final_padding"].get<int64_t>();
  const int64_t frames = steps - f.meta["delay_steps"].get<int64_t>() - f.meta["max_delay"].get<int64_t>();
  at::Tensor fed = item >= 0 ? f.tensors.at("text_fed")[item] : f.tensors.at("text_fed");
  at::Tensor codes = item >= 0 ? f.tensors.at("codes")[item] : f.tensors.at("codes");  // [Q, F]
  ASSERT_EQ(static_cast<int64_t>(r.fed.size()), steps);
  EXPECT_TRUE(at::equal(at::tensor(r.fed, at::kLong), fed.narrow(0, 0, steps))) << "text stream differs";
  const int64_t q = codes.size(0);
  ASSERT_EQ(static_cast<int64_t>(r.codes.size()), frames * q);
  at::Tensor got = at::tensor(r.codes, at::kLong).view({frames, q}).t();
  EXPECT_TRUE(at::equal(got, codes.narrow(1, 0, frames))) << "audio codes differ";
  {
    at::Tensor pcm = item >= 0 ? f.tensors.at("pcm")[item] : f.tensors.at("pcm");
    // The fixtures keep the first frames of PCM (all of them for single_greedy) to stay small.
    ASSERT_EQ(static_cast<int64_t>(r.pcm.size()), frames * 1920);
    const int64_t kept = std::min<int64_t>(pcm.numel(), frames * 1920);
    std::vector<float> head(r.pcm.begin(), r.pcm.begin() + kept);
    EXPECT_LT(RelL2(head, pcm.narrow(0, 0, kept)), 1e-4);
  }
  const auto& transcript = m["transcript"];
  ASSERT_EQ(r.words.size(), transcript.size());
  for (size_t i = 0; i < r.words.size(); ++i) {
    EXPECT_EQ(r.words[i].text, transcript[i][0].get<std::string>());
    const int64_t step = transcript[i][1].get<int64_t>();
    EXPECT_EQ(r.words[i].step, step);
    EXPECT_DOUBLE_EQ(r.words[i].start_s, step / 12.5);
    const double end = i + 1 < transcript.size() ? transcript[i + 1][1].get<int64_t>() / 12.5 : end_step / 12.5;
    EXPECT_DOUBLE_EQ(r.words[i].end_s, end);
  }
}

std::unique_ptr<TtsEngine> LoadEngine(const Fixture& f, int batch = 1) {
  auto engine = TtsEngine::Load(kData + "/" + f.meta["model"].get<std::string>(), EngineOptions(f.meta, batch));
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

Synthesis RunWhole(const Fixture& f) {
  Synthesis r;
  auto engine = LoadEngine(f);
  if (engine == nullptr) return r;
  auto session = engine->OpenSession(SessionOptions(f.meta));
  EXPECT_TRUE(session.ok()) << session.status();
  if (!session.ok()) return r;
  EXPECT_TRUE(PushScript(**session, f.meta["script"]).ok());
  EXPECT_TRUE(engine->RunUntilIdle().ok());
  Collect(**session, r);
  return r;
}

class TtsReferenceCase : public testing::TestWithParam<std::string> {};

TEST_P(TtsReferenceCase, EqualsTheReferenceAtEveryFrame) {
  Fixture f = LoadFixture(GetParam());
  ExpectMatches(RunWhole(f), f);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TtsReferenceCase,
                         testing::Values("single_greedy", "dialogue_greedy", "break_greedy", "long_greedy",
                                         "single_sampled", "nocfg_cfg2_greedy", "padding_bonus_greedy",
                                         "french_greedy"));

TEST(TtsEngineTest, ScriptEntriesEqualTheReferences) {
  const nlohmann::json cases = ReadJson(kData + "/script_cases.json");
  auto tokenizer = TextTokenizer::Load(kData + "/tiny-tts/tokenizer.model");
  ASSERT_TRUE(tokenizer.ok());
  const TextTokenizer* tok = tokenizer->get();
  ASSERT_GT(cases["cases"].size(), 10u);
  for (const auto& c : cases["cases"]) {
    tts::ScriptOptions o;
    o.multi_speaker = c["multi_speaker"].get<bool>();
    o.padding_between = c["padding_between"].get<int>();
    o.frame_rate = cases["frame_rate"].get<double>();
    o.ids.card = cases["card"].get<int64_t>();
    std::vector<std::string> turns = c["script"].get<std::vector<std::string>>();
    auto entries = tts::ScriptToEntries([tok](std::string_view w) { return tok->Encode(w); }, o, turns);
    ASSERT_TRUE(entries.ok()) << c["script"].dump();
    ASSERT_EQ(entries->size(), c["entries"].size()) << c["script"].dump();
    for (size_t i = 0; i < entries->size(); ++i) {
      const auto& want = c["entries"][i];
      EXPECT_EQ((*entries)[i].tokens, want["tokens"].get<std::vector<int>>()) << c["script"].dump();
      EXPECT_EQ((*entries)[i].text, want["text"].get<std::string>()) << c["script"].dump();
      EXPECT_EQ((*entries)[i].padding, want["padding"].get<int>()) << c["script"].dump();
    }
  }
}

TEST(TtsEngineTest, StreamedTextEqualsTheWholeText) {
  Fixture f = LoadFixture("dialogue_greedy");
  auto engine = LoadEngine(f);
  ASSERT_NE(engine, nullptr);
  auto session = engine->OpenSession(SessionOptions(f.meta));
  ASSERT_TRUE(session.ok());
  Synthesis r;
  const auto& script = f.meta["script"];
  for (size_t t = 0; t < script.size(); ++t) {
    const std::string text = script[t].get<std::string>();
    // A few characters at a time, stepping as far as the engine can in between.
    for (size_t pos = 0; pos < text.size(); pos += 3) {
      ASSERT_TRUE((*session)->PushText(text.substr(pos, 3)).ok());
      ASSERT_TRUE(engine->RunUntilIdle().ok());
      Collect(**session, r);
    }
    if (t + 1 < script.size()) {
      ASSERT_TRUE((*session)->EndTurn().ok());
    }
  }
  // It spoke while the text was arriving: only the last words wait for the end of the text.
  EXPECT_FALSE(r.ended);
  EXPECT_GT((*session)->steps_done(), 40);
  EXPECT_FALSE(r.pcm.empty());
  ASSERT_TRUE((*session)->Close().ok());
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  Collect(**session, r);
  ExpectMatches(r, f);
}

TEST(TtsEngineTest, BatchOfDifferentTextsEqualsEachAlone) {
  std::vector<Fixture> fixtures = {LoadFixture("single_greedy"), LoadFixture("break_greedy"),
                                   LoadFixture("french_greedy")};
  auto engine = LoadEngine(fixtures[0], 3);
  ASSERT_NE(engine, nullptr);
  std::vector<std::unique_ptr<TtsSession>> sessions;
  for (const Fixture& f : fixtures) {
    auto s = engine->OpenSession(SessionOptions(f.meta));
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(PushScript(**s, f.meta["script"]).ok());
    sessions.push_back(std::move(*s));
  }
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  for (size_t i = 0; i < fixtures.size(); ++i) {
    Synthesis r;
    Collect(*sessions[i], r);
    ExpectMatches(r, fixtures[i]);
  }
}

TEST(TtsEngineTest, BatchEqualsTheReferencesBatch) {
  Fixture f = LoadFixture("batch3_greedy");
  auto engine = LoadEngine(f, 3);
  ASSERT_NE(engine, nullptr);
  std::vector<std::unique_ptr<TtsSession>> sessions;
  for (const auto& item : f.meta["items"]) {
    auto s = engine->OpenSession(SessionOptions(f.meta));
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(PushScript(**s, item["script"]).ok());
    sessions.push_back(std::move(*s));
  }
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  for (size_t i = 0; i < sessions.size(); ++i) {
    Synthesis r;
    Collect(*sessions[i], r);
    ExpectMatches(r, f, static_cast<int>(i));
  }
}

TEST(TtsEngineTest, LateJoinAndResetEqualTheirSoloRuns) {
  Fixture a = LoadFixture("single_greedy"), b = LoadFixture("french_greedy"), c = LoadFixture("break_greedy");
  auto engine = LoadEngine(a, 2);
  ASSERT_NE(engine, nullptr);
  auto first = engine->OpenSession(SessionOptions(c.meta));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(PushScript(**first, c.meta["script"]).ok());
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(engine->Step().ok());
  // Joins 7 frames late.
  auto second = engine->OpenSession(SessionOptions(b.meta));
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(PushScript(**second, b.meta["script"]).ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(engine->Step().ok());
  // The first one restarts half-way through (same voice) and speaks its text again from the start.
  ASSERT_TRUE((*first)->Reset().ok());
  EXPECT_TRUE((*first)->PollEvents().empty());
  EXPECT_EQ((*first)->steps_done(), 0);
  ASSERT_TRUE(PushScript(**first, c.meta["script"]).ok());
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  Synthesis rb, rc;
  Collect(**second, rb);
  ExpectMatches(rb, b);
  Collect(**first, rc);
  ExpectMatches(rc, c);
}

TEST(TtsEngineTest, ScatteredSlotsOfEightEqualTheirSoloRuns) {
  // Compacted steps (the default): 8 slots, sessions at slots 1, 4 and 6 (the others taken and left again),
  // one joining 5 frames late; each step computes only the stepping slots, padded to a power of two with
  // idle slots that must stay untouched. Every session equals its solo reference run at every frame.
  std::vector<Fixture> fixtures = {LoadFixture("single_greedy"), LoadFixture("break_greedy"),
                                   LoadFixture("french_greedy")};
  auto engine = LoadEngine(fixtures[0], 8);
  ASSERT_NE(engine, nullptr);
  std::vector<std::unique_ptr<TtsSession>> all;
  for (int i = 0; i < 7; ++i) {
    auto s = engine->OpenSession(SessionOptions(fixtures[i == 4 ? 1 : i == 6 ? 2 : 0].meta));
    ASSERT_TRUE(s.ok()) << s.status();
    all.push_back(std::move(*s));
  }
  std::vector<std::unique_ptr<TtsSession>> live;
  live.push_back(std::move(all[1]));
  live.push_back(std::move(all[4]));
  live.push_back(std::move(all[6]));
  all.clear();
  ASSERT_EQ(live[1]->slot(), 4);
  ASSERT_TRUE(PushScript(*live[0], fixtures[0].meta["script"]).ok());
  ASSERT_TRUE(PushScript(*live[2], fixtures[2].meta["script"]).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(engine->Step().ok());
  ASSERT_TRUE(PushScript(*live[1], fixtures[1].meta["script"]).ok());
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  for (size_t i = 0; i < fixtures.size(); ++i) {
    Synthesis r;
    Collect(*live[i], r);
    ExpectMatches(r, fixtures[i]);
  }
}

TEST(TtsEngineTest, BadInputGetsClearErrors) {
  Fixture f = LoadFixture("single_greedy");
  auto engine = LoadEngine(f, 2);
  ASSERT_NE(engine, nullptr);
  TtsSessionOptions o = SessionOptions(f.meta);
  // A voice of the wrong shape, a missing voice, none at all, too many, a cfg value the model lacks.
  TtsSessionOptions broken = o;
  broken.voices = {kData + "/voices/broken.0000tiny@0.safetensors"};
  auto s1 = engine->OpenSession(broken);
  EXPECT_EQ(s1.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s1.status().message().find("speaker_wavs"), std::string::npos) << s1.status();
  TtsSessionOptions missing = o;
  missing.voices = {kData + "/voices/nobody.safetensors"};
  EXPECT_EQ(engine->OpenSession(missing).status().code(), absl::StatusCode::kNotFound);
  TtsSessionOptions none = o;
  none.voices.clear();
  EXPECT_EQ(engine->OpenSession(none).status().code(), absl::StatusCode::kInvalidArgument);
  TtsSessionOptions six = o;
  six.voices.assign(6, o.voices[0]);
  EXPECT_EQ(engine->OpenSession(six).status().code(), absl::StatusCode::kInvalidArgument);
  TtsSessionOptions cfg = o;
  cfg.cfg_coef = 2.2;
  auto s2 = engine->OpenSession(cfg);
  EXPECT_EQ(s2.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s2.status().message().find("2.5"), std::string::npos) << s2.status();
  // Empty text and a bad break tag; the other slot keeps working meanwhile.
  auto good = engine->OpenSession(o);
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(PushScript(**good, f.meta["script"]).ok());
  auto empty = engine->OpenSession(o);
  ASSERT_TRUE(empty.ok());
  ASSERT_TRUE((*empty)->PushText("   \n ").ok());
  EXPECT_EQ((*empty)->Close().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*empty)->PushText("a <break time=\"1x5s\"/> b").code(), absl::StatusCode::kInvalidArgument);
  empty->reset();
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  Synthesis r;
  Collect(**good, r);
  ExpectMatches(r, f);
  // More sessions than slots.
  auto x = engine->OpenSession(o);
  auto y = engine->OpenSession(o);
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(y.status().code(), absl::StatusCode::kResourceExhausted);
  // Models: too many codebooks, an STT model, a missing directory.
  TtsEngineOptions opts = EngineOptions(f.meta);
  opts.n_q = 32;
  EXPECT_EQ(TtsEngine::Load(kData + "/tiny-tts", opts).status().code(), absl::StatusCode::kInvalidArgument);
  auto stt = TtsEngine::Load(std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/tiny-stt", EngineOptions(f.meta));
  EXPECT_EQ(stt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(stt.status().message().find("text-to-speech"), std::string::npos) << stt.status();
  EXPECT_EQ(TtsEngine::Load(kData + "/no-such-model", EngineOptions(f.meta)).status().code(),
            absl::StatusCode::kNotFound);
}

// A stream that reaches max_steps with text left says so in its end event (the audio so far stands); one that
// finishes its text does not. Nor does one whose text ended but whose last audio (delay_steps after it) lies
// past the limit: that is truncated too (a config with a huge delay gave an empty WAV and no word of it).
TEST(TtsEngineTest, AStreamCutAtMaxStepsSaysItWasTruncated) {
  Fixture f = LoadFixture("single_greedy");
  int64_t natural_end = 0;
  for (const int max_steps : {12, 4000, -1}) {
    TtsEngineOptions opts = EngineOptions(f.meta);
    opts.max_steps =
        max_steps > 0 ? max_steps : static_cast<int>(natural_end - 1);  // -1: just short of the end
    auto engine = TtsEngine::Load(kData + "/tiny-tts", opts);
    ASSERT_TRUE(engine.ok()) << engine.status();
    auto s = (*engine)->OpenSession(SessionOptions(f.meta));
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE(PushScript(**s, f.meta["script"]).ok());
    ASSERT_TRUE((*engine)->RunUntilIdle().ok());
    bool ended = false, truncated = false;
    int64_t end_step = 0;
    for (TtsEvent& e : (*s)->PollEvents()) {
      if (e.kind != TtsEvent::Kind::kEnd) continue;
      ended = true;
      truncated = e.truncated;
      end_step = e.step;
    }
    ASSERT_TRUE(ended) << "max_steps " << max_steps;
    EXPECT_EQ(truncated, max_steps != 4000) << "ended at step " << end_step;
    if (max_steps == 12) {
      EXPECT_EQ(end_step, 12);
    }
    if (max_steps == 4000) natural_end = end_step;
  }
}

// Voices and configs that would make noise or fail mid-stream are refused, naming the file and the value.
TEST(TtsEngineErrors, NonFiniteVoicesAndOutOfRangeConfigsAreRefused) {
  Fixture f = LoadFixture("single_greedy");
  auto engine = TtsEngine::Load(kData + "/tiny-tts", EngineOptions(f.meta));
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::filesystem::path dir = testing_dirs::FreshDir("tts", "bad_inputs");
  const std::string nan_voice = (dir / "nan.safetensors").string();
  ASSERT_TRUE(WriteSafeTensors(nan_voice, {{"speaker_wavs", at::full({1, 16, 125}, INFINITY)}}).ok());
  TtsSessionOptions o = SessionOptions(f.meta);
  o.voices = {nan_voice};
  auto s = (*engine)->OpenSession(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("holds NaN or infinite values"), std::string::npos) << s.status();
  // config.json copies: a delay of 1e9 s, a CFG value that is not a number.
  nlohmann::json config = nlohmann::json::parse(std::ifstream(kData + "/tiny-tts/config.json"));
  for (const char* key : {"moshi_name", "mimi_name", "mimi_config_name", "tokenizer_name"}) {
    if (config.contains(key)) config[key] = kData + "/tiny-tts/" + config[key].get<std::string>();
  }
  nlohmann::json delay = config;
  delay["tts_config"]["audio_delay"] = 1e9;
  std::ofstream(dir / "config.json") << delay.dump();
  auto d = TtsEngine::Load(dir.string(), EngineOptions(f.meta));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("tts_config.audio_delay must be from 0 to 60 (got 1000000000.0)"),
            std::string::npos)
      << d.status();
  nlohmann::json values = config;
  ASSERT_TRUE(values["conditioners"]["cfg"]["lut"].contains("possible_values"));
  values["conditioners"]["cfg"]["lut"]["possible_values"][0] = "abc";
  std::ofstream(dir / "config.json", std::ios::trunc) << values.dump();
  auto v = TtsEngine::Load(dir.string(), EngineOptions(f.meta));
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("possible value 'abc' is not a number"), std::string::npos)
      << v.status();
  std::ofstream(dir / "config.json", std::ios::trunc) << config.dump();
  EXPECT_TRUE(TtsEngine::Load(dir.string(), EngineOptions(f.meta)).ok());
}

TEST(TtsEngineTest, VoicesResolveByNameWithCloseMatchesOnError) {
  const std::string suffix = ".0000tiny@0.safetensors";
  auto alice = ResolveVoice("alice", kData + "/voices", suffix);
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(*alice, kData + "/voices/alice" + suffix);
  auto path = ResolveVoice(kData + "/voices/bob" + suffix, "", suffix);
  ASSERT_TRUE(path.ok()) << path.status();
  auto typo = ResolveVoice("alise", kData + "/voices", suffix);
  EXPECT_EQ(typo.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(typo.status().message().find("closest: alice"), std::string::npos) << typo.status();
  EXPECT_EQ(ListVoices(kData + "/voices", suffix),
            (std::vector<std::string>{"alice", "bob", "broken", "carol"}));
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

TEST(TtsEngineTest, SampledSessionJoiningLateDrawsItsSoloReferenceRun) {
  Fixture sampled = LoadFixture("single_sampled"), other = LoadFixture("dialogue_greedy");
  TtsEngineOptions o = EngineOptions(sampled.meta, 2);  // temp 0.6, seed 1234
  auto engine = TtsEngine::Load(kData + "/tiny-tts", o);
  ASSERT_TRUE(engine.ok()) << engine.status();
  TtsSessionOptions first_options = SessionOptions(other.meta);
  first_options.seed = 99;
  auto first = (*engine)->OpenSession(first_options);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(PushScript(**first, other.meta["script"]).ok());
  // The first session gets past the audio delay (the depformer runs for it) before the second one joins.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE((*engine)->Step().ok());
  auto second = (*engine)->OpenSession(SessionOptions(sampled.meta));
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(PushScript(**second, sampled.meta["script"]).ok());
  ASSERT_TRUE((*engine)->RunUntilIdle().ok());
  Synthesis r;
  Collect(**second, r);
  ExpectMatches(r, sampled);
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

// A session's own temperature and seed on a greedy engine, and a held session (flow control), still equal
// their reference runs.
TEST(TtsEngineTest, PerSessionSamplingAndHoldKeepTheReferenceOutput) {
  Fixture sampled = LoadFixture("single_sampled"), greedy = LoadFixture("french_greedy");
  auto engine = LoadEngine(greedy, 2);  // temp 0
  ASSERT_NE(engine, nullptr);
  TtsSessionOptions so = SessionOptions(sampled.meta);
  so.temp = 0.6;
  so.seed = 1234;
  auto a = engine->OpenSession(so);
  auto b = engine->OpenSession(SessionOptions(greedy.meta));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(PushScript(**a, sampled.meta["script"]).ok());
  ASSERT_TRUE(PushScript(**b, greedy.meta["script"]).ok());
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(engine->Step().ok());
  (*b)->Hold(true);
  const int64_t held_at = (*b)->steps_done();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(engine->Step().ok());
  EXPECT_EQ((*b)->steps_done(), held_at);
  (*b)->Hold(false);
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  Synthesis ra, rb;
  Collect(**a, ra);
  Collect(**b, rb);
  ExpectMatches(ra, sampled);
  ExpectMatches(rb, greedy);
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

TEST(TtsEngineErrors, LmCardBeyondMimiBinsIsRefusedNamingBoth) {
  // The tiny TTS LM (card 64) with a codec of 32 bins: its audio tokens could not be decoded; refused at
  // creation.
  const std::string dir = kData + "/tiny-tts";
  auto config = LoadModelConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->lm.card, 64);
  auto lm = LmModel::LoadFile(config->lm, dir + "/model.safetensors");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto tokenizer = TextTokenizer::Load(dir + "/tokenizer.model");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  std::shared_ptr<const TextTokenizer> shared_tokenizer = std::move(*tokenizer);
  MimiConfig narrow = config->mimi;
  narrow.quantizer.bins = 32;
  auto mimi = RandomMimi(narrow, /*seed=*/0, c10::Device(c10::kCPU));
  ASSERT_TRUE(mimi.ok()) << mimi.status();
  auto engine = TtsEngineBuilder::Create(*config, *lm, *mimi, shared_tokenizer, TtsEngineOptions{});
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("card 64 exceeds Mimi's 32 bins"), std::string::npos)
      << engine.status();
  MimiConfig own = config->mimi;
  own.quantizer.bins = 64;
  auto matching = RandomMimi(own, /*seed=*/0, c10::Device(c10::kCPU));
  ASSERT_TRUE(matching.ok()) << matching.status();
  EXPECT_TRUE(TtsEngineBuilder::Create(*config, *lm, *matching, shared_tokenizer, TtsEngineOptions{}).ok());
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

// `dtype` int8 / int4 (weights quantised at load, CPU) through the whole TTS engine on the greedy fixtures:
// every word of the script comes out once, in order, in about as many frames; the audio codes are compared
// with the reference's (f32) frame by frame, with floors only a broken path falls below (chance is 1 in 64
// here). One flipped greedy token changes everything after it, so past the first frames the runs part ways:
// measured, int8 kept the first frame whole and the first 3-34 frames in every codebook (10-67% of all codes
// equal), int4 38-88% of the first frame (5-9% of all); the tiny model's int4 groups span nearly whole rows.
// The engine reports the dtype and the quantisation.
void ExpectQuantisedRunFollowsReference(const std::string& dtype, double first_frame_floor, double floor) {
  for (const std::string name : {"single_greedy", "long_greedy", "french_greedy"}) {
    SCOPED_TRACE(dtype + " " + name);
    Fixture f = LoadFixture(name);
    TtsEngineOptions options = EngineOptions(f.meta);
    options.dtype = dtype;
    auto engine = TtsEngine::Load(kData + "/" + f.meta["model"].get<std::string>(), options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    test_util::ExpectQuantisedAtLoad((*engine)->info(), dtype);
    auto session = (*engine)->OpenSession(SessionOptions(f.meta));
    ASSERT_TRUE(session.ok()) << session.status();
    ASSERT_TRUE(PushScript(**session, f.meta["script"]).ok());
    ASSERT_TRUE((*engine)->RunUntilIdle().ok());
    Synthesis r;
    Collect(**session, r);
    ASSERT_TRUE(r.ended);

    const auto& transcript = f.meta["transcript"];
    ASSERT_EQ(r.words.size(), transcript.size());
    for (size_t i = 0; i < r.words.size(); ++i)
      EXPECT_EQ(r.words[i].text, transcript[i][0].get<std::string>());

    const at::Tensor codes = f.tensors.at("codes");  // [Q, F]
    const int64_t q = codes.size(0);
    ASSERT_EQ(static_cast<int64_t>(r.codes.size()) % q, 0);
    const int64_t frames = static_cast<int64_t>(r.codes.size()) / q;
    ASSERT_GT(frames, 0);
    ASSERT_EQ(static_cast<int64_t>(r.pcm.size()), frames * 1920);
    double energy = 0;
    for (float v : r.pcm) {
      ASSERT_TRUE(std::isfinite(v));
      energy += static_cast<double>(v) * v;
    }
    EXPECT_GT(energy, 0.0);
    const int64_t common = std::min(frames, codes.size(1));
    const at::Tensor got = at::tensor(r.codes, at::kLong).view({frames, q}).t().narrow(1, 0, common);
    const at::Tensor equal = got.eq(codes.narrow(1, 0, common));
    const double rate = equal.to(at::kDouble).mean().item<double>();
    int64_t leading = 0;  // frames equal in every codebook before the first difference
    while (leading < common && equal.select(1, leading).all().item<bool>()) ++leading;
    const double first_frame = equal.select(1, 0).to(at::kDouble).mean().item<double>();
    std::printf(
        "%s %s: %lld frames (reference %lld), %.1f%% of the audio codes equal to the reference's, the "
        "first %lld frames whole, %.0f%% of the first frame's codes\n",
        dtype.c_str(), name.c_str(), static_cast<long long>(frames), static_cast<long long>(codes.size(1)),
        100 * rate, static_cast<long long>(leading), 100 * first_frame);
    EXPECT_GE(first_frame, first_frame_floor);
    EXPECT_GT(rate, floor);
    EXPECT_NEAR(static_cast<double>(frames), static_cast<double>(codes.size(1)), 0.15 * codes.size(1));
  }
}

TEST(TtsQuantised, Int8RunFollowsTheReference) { ExpectQuantisedRunFollowsReference("int8", 0.75, 0.05); }
TEST(TtsQuantised, Int4RunFollowsTheReference) { ExpectQuantisedRunFollowsReference("int4", 0.25, 0.03); }

}  // namespace
}  // namespace monologue
