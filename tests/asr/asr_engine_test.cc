// The streaming session API against the reference transcriber (tests/reference/make_asr_fixtures.py): greedy
// text tokens over the whole clip, word timestamps, VAD probabilities, end of turn; batching, joining,
// leaving and resetting slots; errors.
#include "asr/asr_engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "asr/asr_engine_builder.h"
#include "core/config/hf_cache.h"
#include "core/mimi/mimi_loader.h"
#include "core/text/text_tokenizer.h"
#include "tests/asr/asr_test_util.h"
#include "tests/config/test_dirs.h"

namespace monologue {
namespace {

using asr_test::LoadReference;
using asr_test::ModelDir;
using asr_test::ReadClip;
using asr_test::RunClip;
using asr_test::Transcript;

std::unique_ptr<AsrEngine> LoadEngine(int batch, const std::string& model = "tiny-stt") {
  AsrEngineOptions options;
  options.batch_size = batch;
  options.threads = 1;  // the tiny model gains nothing from more; the test machine's cores are shared
  auto engine = AsrEngine::Load(ModelDir(model), options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

void ExpectMatchesReference(const Transcript& t, const std::string& model, const std::string& clip) {
  const asr_test::Reference ref = LoadReference(model, clip);
  const std::string what = model + "/" + clip;
  ASSERT_FALSE(ref.tokens.empty());
  EXPECT_EQ(t.tokens, ref.tokens) << what;
  asr_test::ExpectWordsEqual(t.words, ref.meta["words"], what);
  EXPECT_EQ(t.ends, 1) << what;
  // VAD: one event per step whose frame holds input audio, probabilities as the reference computed them.
  const int64_t pad_left = ref.meta["pad_left"].get<int64_t>();
  const int64_t samples = ref.meta["samples"].get<int64_t>();
  size_t expected_vad = 0;
  for (size_t s = 0; s < ref.tokens.size(); ++s) {
    const int64_t start = static_cast<int64_t>(s) * 1920;
    if (start + 1920 > pad_left && start < pad_left + samples) ++expected_vad;
  }
  ASSERT_EQ(t.vad.size(), expected_vad) << what;
  for (const AsrEvent& e : t.vad) {
    ASSERT_LT(e.step, static_cast<int64_t>(ref.vad.size()));
    ASSERT_EQ(e.vad.size(), ref.vad[e.step].size());
    for (size_t h = 0; h < e.vad.size(); ++h) EXPECT_NEAR(e.vad[h], ref.vad[e.step][h], 1e-4) << what;
    EXPECT_NEAR(e.time_s, ((e.step + 1) * 1920.0 - pad_left) / 24000.0, 1e-9);
  }
  // End of turn: the steps the DSM script's own --vad loop reported over these recorded steps
  // (tests/reference/make_asr_fixtures.py), less those whose frame holds no input audio (the engine does
  // not report on its own padding).
  std::vector<int64_t> want_eot;
  for (const int64_t s : ref.meta.at("end_of_turn_steps").get<std::vector<int64_t>>()) {
    const int64_t start = s * 1920;
    if (start + 1920 > pad_left && start < pad_left + samples) want_eot.push_back(s);
  }
  std::vector<int64_t> got_eot;
  for (const AsrEvent& e : t.end_of_turn) got_eot.push_back(e.step);
  EXPECT_EQ(got_eot, want_eot) << what;
}

TEST(AsrEngine, MatchesReferenceTranscriberOnSpeech) {
  for (const std::string model : {"tiny-stt", "tiny-stt-prefix"}) {
    auto engine = LoadEngine(1, model);
    ASSERT_NE(engine, nullptr);
    for (const std::string clip : {"speech_en", "speech_fr"}) {
      auto session = engine->OpenSession();
      ASSERT_TRUE(session.ok()) << session.status();
      Transcript t = RunClip(*engine, **session, ReadClip(clip));
      ExpectMatchesReference(t, model, clip);
      // The pieces the reference printer shows.
      auto ref = LoadReference(model, clip);
      EXPECT_FALSE(t.words.empty());
      EXPECT_TRUE((*session)->finished());
    }
  }
}

TEST(AsrEngine, TextEventsArePrintablePieces) {
  auto engine = LoadEngine(1);
  ASSERT_NE(engine, nullptr);
  auto session = engine->OpenSession();
  ASSERT_TRUE(session.ok());
  Transcript t = RunClip(*engine, **session, ReadClip("speech_fr"));
  auto tokenizer = TextTokenizer::Load(ModelDir() + "/tokenizer.model");
  ASSERT_TRUE(tokenizer.ok());
  auto printable = (*tokenizer)->PrintableText(t.tokens);
  ASSERT_TRUE(printable.ok());
  EXPECT_EQ(t.text, *printable);
  // Word ids: the segment ids above PAD; a single-word segment decodes back to its text.
  for (const AsrWord& w : t.words) {
    ASSERT_FALSE(w.tokens.empty()) << w.text;
    for (int id : w.tokens) EXPECT_GT(id, 3);
    auto decoded = (*tokenizer)->Decode(w.tokens);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, w.text);
    EXPECT_LE(w.start_s, w.end_s);
  }
}

TEST(AsrEngine, ChunkingDoesNotMatter) {
  auto engine = LoadEngine(1);
  ASSERT_NE(engine, nullptr);
  const std::vector<float> audio = ReadClip("speech_en");
  std::vector<int> first;
  for (const std::vector<size_t>& chunks :
       std::vector<std::vector<size_t>>{{1}, {1920}, {100000000}, {7, 4000}}) {
    if (chunks[0] == 1) continue;  // (one-sample pushes are covered by {7, 4000} well enough and are slow)
    auto session = engine->OpenSession();
    ASSERT_TRUE(session.ok());
    Transcript t = RunClip(*engine, **session, audio, chunks);
    if (first.empty()) first = t.tokens;
    EXPECT_EQ(t.tokens, first);
  }
  EXPECT_EQ(first, LoadReference("tiny-stt", "speech_en").tokens);
}

// Sessions join and leave at different frames of a shared batch; each one's stream equals the reference.
TEST(AsrEngine, BatchSlotsJoinLeaveAndResetIndependently) {
  auto engine = LoadEngine(3);
  ASSERT_NE(engine, nullptr);
  const std::vector<float> en = ReadClip("speech_en");
  const std::vector<float> fr = ReadClip("speech_fr");
  auto a = engine->OpenSession();
  ASSERT_TRUE(a.ok());
  Transcript ta, tb, tc;
  // A runs alone for a while.
  ASSERT_TRUE((*a)->PushAudio(std::span<const float>(en.data(), 20 * 1920)).ok());
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  asr_test::Collect(**a, ta);
  // B joins; C opens, receives junk, and resets mid-stream before its real clip.
  auto b = engine->OpenSession();
  auto c = engine->OpenSession();
  ASSERT_TRUE(b.ok() && c.ok());
  EXPECT_EQ(engine->free_slots(), 0);
  EXPECT_EQ(engine->OpenSession().status().code(), absl::StatusCode::kResourceExhausted);
  std::vector<float> junk(9 * 1920 + 11);
  for (size_t i = 0; i < junk.size(); ++i)
    junk[i] = 0.3f * std::sin(0.01f * static_cast<float>(i * i % 9973));
  ASSERT_TRUE((*c)->PushAudio(junk).ok());
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  (*c)->PollEvents();
  ASSERT_TRUE((*c)->Reset().ok());
  // Interleave: each step, feed one frame-ish chunk to each live session.
  size_t pa = 20 * 1920, pb = 0, pc = 0;
  while (pa < en.size() || pb < fr.size() || pc < en.size()) {
    auto feed = [](AsrSession& s, const std::vector<float>& x, size_t& p, size_t n) {
      n = std::min(n, x.size() - p);
      if (n > 0) {
        ASSERT_TRUE(s.PushAudio(std::span<const float>(x.data() + p, n)).ok());
      }
      p += n;
    };
    feed(**a, en, pa, 1500);
    feed(**b, fr, pb, 2500);
    feed(**c, en, pc, 1920);
    ASSERT_TRUE(engine->Step().ok());
    asr_test::Collect(**a, ta);
    asr_test::Collect(**b, tb);
    asr_test::Collect(**c, tc);
    if (pb >= fr.size() && !(*b)->finished()) {
      ASSERT_TRUE((*b)->Close().ok());
    }
  }
  ASSERT_TRUE((*a)->Close().ok());
  ASSERT_TRUE((*c)->Close().ok());
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  asr_test::Collect(**a, ta);
  asr_test::Collect(**b, tb);
  asr_test::Collect(**c, tc);
  ta.tokens = (*a)->text_tokens();
  tb.tokens = (*b)->text_tokens();
  tc.tokens = (*c)->text_tokens();
  ExpectMatchesReference(ta, "tiny-stt", "speech_en");
  ExpectMatchesReference(tb, "tiny-stt", "speech_fr");
  ExpectMatchesReference(tc, "tiny-stt", "speech_en");

  // B leaves; a new session takes its slot (fresh stream) while A and C are finished.
  const int slot_b = (*b)->slot();
  b->reset();
  auto d = engine->OpenSession();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->slot(), slot_b);
  Transcript td = RunClip(*engine, **d, fr);
  ExpectMatchesReference(td, "tiny-stt", "speech_fr");
}

// The service's shape: a model thread stepping (waiting for work when idle), feeder threads pushing audio,
// readers waiting for events.
TEST(AsrEngine, ThreadedModelLoopFeedersAndReaders) {
  auto engine = LoadEngine(2);
  ASSERT_NE(engine, nullptr);
  std::atomic<bool> running{true};
  std::thread model([&] {
    while (running) {
      auto n = engine->Step();
      ASSERT_TRUE(n.ok()) << n.status();
      if (*n == 0) engine->WaitForWork(std::chrono::milliseconds(20));
    }
  });
  auto run_one = [&](const std::string& clip, Transcript* t) {
    auto session = engine->OpenSession();
    ASSERT_TRUE(session.ok());
    const std::vector<float> audio = ReadClip(clip);
    std::thread feeder([&] {
      for (size_t pos = 0; pos < audio.size(); pos += 2400) {
        const size_t n = std::min<size_t>(2400, audio.size() - pos);
        ASSERT_TRUE((*session)->PushAudio(std::span<const float>(audio.data() + pos, n)).ok());
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      ASSERT_TRUE((*session)->Close().ok());
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (t->ends == 0 && std::chrono::steady_clock::now() < deadline) {
      for (const AsrEvent& e : (*session)->WaitEvents(std::chrono::milliseconds(50))) {
        if (e.kind == AsrEvent::Kind::kWord) t->words.push_back(e.word);
        if (e.kind == AsrEvent::Kind::kVad) t->vad.push_back(e);
        if (e.kind == AsrEvent::Kind::kEndOfTurn) t->end_of_turn.push_back(e);
        if (e.kind == AsrEvent::Kind::kEnd) t->ends++;
      }
    }
    feeder.join();
    t->tokens = (*session)->text_tokens();
  };
  Transcript en, fr;
  std::thread a([&] { run_one("speech_en", &en); });
  std::thread b([&] { run_one("speech_fr", &fr); });
  a.join();
  b.join();
  running = false;
  model.join();
  ExpectMatchesReference(en, "tiny-stt", "speech_en");
  ExpectMatchesReference(fr, "tiny-stt", "speech_fr");
}

TEST(AsrEngine, CloseFlushesWithoutCallerPadding) {
  auto engine = LoadEngine(1);
  ASSERT_NE(engine, nullptr);
  auto session = engine->OpenSession();
  ASSERT_TRUE(session.ok());
  const std::vector<float> audio = ReadClip("speech_fr");
  ASSERT_TRUE((*session)->PushAudio(audio).ok());
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  EXPECT_FALSE((*session)->finished());
  // Before Close, only whole frames of input were stepped.
  EXPECT_EQ((*session)->frames_done(), static_cast<int64_t>(audio.size() / 1920));
  ASSERT_TRUE((*session)->Close().ok());
  EXPECT_EQ((*session)->PushAudio(audio).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  EXPECT_TRUE((*session)->finished());
  // Exactly the reference's number of steps: (samples + pad) / 1920, rounded down.
  EXPECT_EQ((*session)->frames_done(), static_cast<int64_t>((audio.size() + 36000) / 1920));
  auto events = (*session)->PollEvents();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().kind, AsrEvent::Kind::kEnd);
  // Idle engine: nothing runs.
  auto n = engine->Step();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
}

TEST(AsrEngine, EmptyStreamEndsCleanly) {
  auto engine = LoadEngine(1);
  ASSERT_NE(engine, nullptr);
  auto session = engine->OpenSession();
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE((*session)->Close().ok());
  ASSERT_TRUE(engine->RunUntilIdle().ok());
  Transcript t;
  asr_test::Collect(**session, t);
  EXPECT_EQ(t.ends, 1);
  EXPECT_TRUE(t.vad.empty());  // no frame holds input
}

TEST(AsrEngineErrors, WrongModelTypeMissingFilesBadOptions) {
  auto tts = AsrEngine::Load(std::string(MONOLOGUE_TEST_DATA_DIR) + "/configs/tiny-tts");
  ASSERT_FALSE(tts.ok());
  EXPECT_EQ(tts.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tts.status().message().find("'tts'"), std::string::npos) << tts.status();
  EXPECT_NE(tts.status().message().find("stt"), std::string::npos) << tts.status();

  auto missing = AsrEngine::Load(asr_test::DataDir() + "/no-such-model");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  // A copy of the config whose tokenizer and Mimi files are absent: both named in one message.
  const std::filesystem::path dir = testing_dirs::FreshDir("asr", "missing_files");
  auto config = asr_test::ReadJson(ModelDir() + "/config.json");
  config["moshi_name"] = ModelDir() + "/model.safetensors";
  config["mimi_config_name"] = ModelDir() + "/mimi_config.json";
  config["mimi_name"] = "absent_mimi.safetensors";
  config["tokenizer_name"] = "absent_tokenizer.model";
  std::ofstream(dir / "config.json") << config.dump();
  auto incomplete = AsrEngine::Load(dir.string());
  ASSERT_FALSE(incomplete.ok());
  EXPECT_EQ(incomplete.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(incomplete.status().message().find("absent_tokenizer.model"), std::string::npos);
  EXPECT_NE(incomplete.status().message().find("text tokenizer"), std::string::npos);
  EXPECT_NE(incomplete.status().message().find("absent_mimi.safetensors"), std::string::npos);

  AsrEngineOptions bad;
  bad.batch_size = 0;
  EXPECT_EQ(AsrEngine::Load(ModelDir(), bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.batch_size = 1;
  bad.device = "tpu";
  EXPECT_EQ(AsrEngine::Load(ModelDir(), bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// stt_config's delays size the padding made for every stream: a value out of [0, 60] s (1e9 used to abort in
// a vector's length check mid-transcript) or not a number is refused at load, naming the key and the value.
TEST(AsrEngineErrors, SttConfigDelaysOutOfRangeAreRefusedNamingTheKey) {
  const std::filesystem::path dir = testing_dirs::FreshDir("asr", "stt_config_range");
  auto config = asr_test::ReadJson(ModelDir() + "/config.json");
  config["moshi_name"] = ModelDir() + "/model.safetensors";
  config["mimi_config_name"] = ModelDir() + "/mimi_config.json";
  config["mimi_name"] = ModelDir() + "/mimi.safetensors";
  config["tokenizer_name"] = ModelDir() + "/tokenizer.model";
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"audio_delay_seconds", 1e9}, {"audio_delay_seconds", -1}, {"audio_silence_prefix_seconds", 1e6}};
  for (const auto& [key, value] : cases) {
    nlohmann::json c = config;
    c["stt_config"][key] = value;
    std::ofstream(dir / "config.json") << c.dump();
    auto engine = AsrEngine::Load(dir.string());
    ASSERT_FALSE(engine.ok()) << key << " " << value.dump();
    EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(engine.status().message().find("stt_config." + key + " must be from 0 to 60 seconds (got " +
                                             value.dump() + ")"),
              std::string::npos)
        << engine.status();
  }
  // The same copy with the model's own values loads.
  std::ofstream(dir / "config.json") << config.dump();
  EXPECT_TRUE(AsrEngine::Load(dir.string()).ok());
}

TEST(AsrEngineErrors, MimiWithMoreBinsThanTheLmCardIsRefusedNamingBoth) {
  // The tiny STT LM (card 64) with a codec whose codes take 128 values: refused at creation, instead of an
  // index error in the middle of a stream.
  auto config = LoadModelConfig(ModelDir());
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->lm.card, 64);
  auto lm = LmModel::LoadFile(config->lm, ModelDir() + "/model.safetensors");
  ASSERT_TRUE(lm.ok()) << lm.status();
  MimiConfig wide = config->mimi;
  wide.quantizer.bins = 128;
  auto mimi = RandomMimi(wide, /*seed=*/0, c10::Device(c10::kCPU));
  ASSERT_TRUE(mimi.ok()) << mimi.status();
  auto engine = AsrEngineBuilder::Create(*config, *lm, *mimi, nullptr, AsrEngineOptions{});
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("take 128 values"), std::string::npos) << engine.status();
  EXPECT_NE(engine.status().message().find("hold 64"), std::string::npos) << engine.status();
  // The model's own codec (as many bins as the card) is accepted.
  MimiConfig own = config->mimi;
  own.quantizer.bins = 64;
  auto matching = RandomMimi(own, /*seed=*/0, c10::Device(c10::kCPU));
  ASSERT_TRUE(matching.ok()) << matching.status();
  EXPECT_TRUE(AsrEngineBuilder::Create(*config, *lm, *matching, nullptr, AsrEngineOptions{}).ok());
}

TEST(AsrEngineErrors, HfRepoResolution) {
  const std::filesystem::path hub = testing_dirs::FreshDir("asr", "hf_hub");
  setenv("HF_HUB_CACHE", hub.c_str(), 1);
  auto none = ResolveHfRepoSnapshot("kyutai/stt-1b-en_fr");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("models--kyutai--stt-1b-en_fr"), std::string::npos) << none.status();
  EXPECT_EQ(ResolveHfRepoSnapshot("not-a-repo").status().code(), absl::StatusCode::kInvalidArgument);

  // A snapshot with config.json but only some files: the missing ones are named.
  const std::filesystem::path repo = hub / "models--kyutai--stt-tiny";
  const std::filesystem::path snap = repo / "snapshots" / "abc123";
  std::filesystem::create_directories(snap);
  std::filesystem::create_directories(repo / "refs");
  std::ofstream(repo / "refs" / "main") << "abc123";
  std::filesystem::copy_file(ModelDir() + "/config.json", snap / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(ModelDir() + "/mimi_config.json", snap / "mimi_config.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(ModelDir() + "/tokenizer.model", snap / "tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing);
  auto partial = ResolveHfRepoSnapshot("kyutai/stt-tiny");
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.status().message().find("model.safetensors"), std::string::npos) << partial.status();
  EXPECT_NE(partial.status().message().find("mimi.safetensors"), std::string::npos) << partial.status();
  EXPECT_EQ(partial.status().message().find("tokenizer.model"), std::string::npos) << partial.status();
  // Complete it: resolves to the snapshot, which loads.
  std::filesystem::copy_file(ModelDir() + "/model.safetensors", snap / "model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(ModelDir() + "/mimi.safetensors", snap / "mimi.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  auto ok = ResolveHfRepoSnapshot("kyutai/stt-tiny");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(std::filesystem::path(*ok), snap);
  EXPECT_TRUE(AsrEngine::Load(*ok).ok());
  // refs/main naming a snapshot that is gone: said, never another snapshot (the audit's case: an older
  // snapshot was used silently). A revision is looked up by its own ref or commit.
  std::ofstream(repo / "refs" / "main") << "def456";
  auto gone = ResolveHfRepoSnapshot("kyutai/stt-tiny");
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("refs/main in the cache names commit def456"), std::string::npos)
      << gone.status();
  auto by_commit = ResolveHfRepoSnapshot("kyutai/stt-tiny", "abc123");
  ASSERT_TRUE(by_commit.ok()) << by_commit.status();
  EXPECT_EQ(std::filesystem::path(*by_commit), snap);
  auto other = ResolveHfRepoSnapshot("kyutai/stt-tiny", "v2");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("revision 'v2' is not in the local Hugging Face cache"),
            std::string::npos)
      << other.status();
  unsetenv("HF_HUB_CACHE");
}

}  // namespace
}  // namespace monologue
