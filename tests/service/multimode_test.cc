// One `monologue serve` process hosting transcription, synthesis and dialogue: concurrent Synthesize streams
// give the reference TTS fixtures' audio and words, Converse streams give what the local dialogue engine gives,
// a full mode refuses at once while the others keep serving, bad configs get their codes, cancel frees the
// slot, health per service, ListVoices.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
#include <sstream>
#include <thread>

#include "dialogue/dialogue_engine.h"
#include "monologue/v1/dialogue.grpc.pb.h"
#include "monologue/v1/synthesis.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/service/service_test_util.h"
#include "tests/service/tts_reference.h"
#include "tts/tts_engine.h"

namespace monologue::service_test {
namespace {

namespace fs = std::filesystem;

using test_process::RunMonologue;
using test_process::RunResult;
using test_process::ShellQuote;

std::vector<std::string> AllModes(int tts_slots = 2, int dialogue_slots = 2) {
  return {"--tts",  TtsData() + "tiny-tts", "--voices", TtsData() + "voices", "--default-voice", "alice", "--tts-temp", "0",
          "--dialogue", TinyMoshiModel(), "--max-tts-streams", std::to_string(tts_slots), "--max-dialogue-streams",
          std::to_string(dialogue_slots), "--threads", "1"};
}

struct SynthResult {
  grpc::Status status;
  bool started = false;
  std::vector<float> pcm;
  std::vector<Word> words;
  int ends = 0;
};

struct SynthOptions {
  std::vector<std::string> voices;
  v1::AudioEncoding encoding = v1::FLOAT32_LE;
  bool send_config = true;
  int cancel_after_audio = -1;   // cancel once this many audio chunks arrived (0: as soon as `started` arrives)
  std::function<void()> on_started;
  // When valid, the text stream is half-closed only once this is ready (or after 60 s): until then the
  // stream cannot finish (a slot waiting for text does not step), whatever the machine's speed.
  std::shared_future<void> close_text_after;
  std::function<void(v1::SynthesizeConfig*)> edit_config;  // applied to the config before it is sent
};

SynthOptions Voices(std::vector<std::string> voices) {
  SynthOptions o;
  o.voices = std::move(voices);
  return o;
}
SynthOptions Encoding(v1::AudioEncoding encoding) {
  SynthOptions o;
  o.encoding = encoding;
  return o;
}

SynthResult Synthesize(grpc::Channel* channel, const std::vector<std::string>& turns, const SynthOptions& o = {}) {
  auto stub = v1::Synthesis::NewStub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto stream = stub->Synthesize(&ctx);
  std::thread writer([&] {
    if (o.send_config) {
      v1::SynthesizeRequest c;
      for (const auto& v : o.voices) c.mutable_config()->add_voices(v);
      c.mutable_config()->set_output_encoding(o.encoding);
      if (o.edit_config) o.edit_config(c.mutable_config());
      if (!stream->Write(c)) return;
    }
    for (size_t t = 0; t < turns.size(); ++t) {
      // Word by word, as an LLM would send it.
      std::istringstream words(turns[t]);
      std::string w;
      bool first = true;
      while (words >> w) {
        v1::SynthesizeRequest r;
        r.set_text((first ? "" : " ") + w);
        first = false;
        if (!stream->Write(r)) return;
      }
      if (t + 1 < turns.size()) {
        v1::SynthesizeRequest r;
        r.set_end_turn(true);
        if (!stream->Write(r)) return;
      }
    }
    if (o.close_text_after.valid()) o.close_text_after.wait_for(std::chrono::seconds(60));
    stream->WritesDone();
  });
  SynthResult result;
  v1::SynthesizeResponse response;
  int audio_chunks = 0;
  while (stream->Read(&response)) {
    switch (response.event_case()) {
      case v1::SynthesizeResponse::kStarted:
        result.started = true;
        if (o.on_started) o.on_started();
        if (o.cancel_after_audio == 0) ctx.TryCancel();
        break;
      case v1::SynthesizeResponse::kAudio: {
        const std::string& d = response.audio().data();
        const size_t n = d.size() / 4;
        const size_t at = result.pcm.size();
        result.pcm.resize(at + n);
        std::memcpy(result.pcm.data() + at, d.data(), n * 4);
        if (++audio_chunks == o.cancel_after_audio) ctx.TryCancel();
        break;
      }
      case v1::SynthesizeResponse::kWord:
        result.words.push_back({response.word().text(), response.word().start_seconds(), response.word().end_seconds()});
        break;
      case v1::SynthesizeResponse::kEnd:
        result.ends++;
        break;
      default:
        break;
    }
  }
  writer.join();
  result.status = stream->Finish();
  return result;
}

void ExpectTtsReference(const SynthResult& r, const TtsReference& c) {
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_TRUE(r.started);
  EXPECT_EQ(r.ends, 1);
  ASSERT_EQ(static_cast<int64_t>(r.pcm.size()), c.frames * 1920);
  std::vector<float> head(r.pcm.begin(), r.pcm.begin() + static_cast<std::ptrdiff_t>(c.pcm.size()));
  EXPECT_LT(RelativeL2(head, c.pcm), 1e-4);
  EXPECT_EQ(r.words, c.words);
}

class MultiModeTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(AllModes());
    ASSERT_TRUE(server_->ok()) << "monologue serve did not start";
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ServerProcess* server_;
};
ServerProcess* MultiModeTest::server_ = nullptr;

TEST_F(MultiModeTest, ConcurrentSynthesizeStreamsEqualTheReference) {
  const TtsReference single = LoadTtsReference("single_greedy"), french = LoadTtsReference("french_greedy");
  auto channel = server_->Channel();
  SynthResult a, b;
  std::thread ta([&] { a = Synthesize(channel.get(), single.script, Voices({"alice"})); });
  std::thread tb([&] { b = Synthesize(channel.get(), french.script, Voices({"carol"})); });
  ta.join();
  tb.join();
  ExpectTtsReference(a, single);
  ExpectTtsReference(b, french);
}

TEST_F(MultiModeTest, DialogueScriptWithTwoVoices) {
  const TtsReference dialogue = LoadTtsReference("dialogue_greedy");
  auto channel = server_->Channel();
  ExpectTtsReference(Synthesize(channel.get(), dialogue.script, Voices({"bob", "carol"})), dialogue);
}

TEST_F(MultiModeTest, ListVoicesAndHealthPerService) {
  auto channel = server_->Channel();
  auto stub = v1::Synthesis::NewStub(channel);
  grpc::ClientContext ctx;
  v1::ListVoicesResponse voices;
  ASSERT_TRUE(stub->ListVoices(&ctx, v1::ListVoicesRequest(), &voices).ok());
  EXPECT_EQ(std::vector<std::string>(voices.voices().begin(), voices.voices().end()),
            (std::vector<std::string>{"alice", "bob", "broken", "carol"}));
  EXPECT_EQ(voices.default_voice(), "alice");
  for (const char* service : {"", "monologue.v1.Transcription", "monologue.v1.Synthesis", "monologue.v1.Dialogue"}) {
    EXPECT_EQ(HealthStatus(channel.get(), service), 1) << service;  // SERVING
  }
  EXPECT_EQ(HealthStatus(channel.get(), "monologue.v1.Nothing"), -100 - grpc::StatusCode::NOT_FOUND);
}

TEST_F(MultiModeTest, BadSynthesisConfigsGetInvalidArgument) {
  auto channel = server_->Channel();
  SynthResult unknown = Synthesize(channel.get(), {"Hello there."}, Voices({"alicia"}));
  EXPECT_EQ(unknown.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(unknown.status.error_message().find("closest: alice"), std::string::npos) << unknown.status.error_message();
  SynthResult traversal = Synthesize(channel.get(), {"Hello there."}, Voices({"../voices/alice"}));
  EXPECT_EQ(traversal.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  SynthResult broken = Synthesize(channel.get(), {"Hello there."}, Voices({"broken"}));
  EXPECT_EQ(broken.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(broken.status.error_message().find("speaker_wavs"), std::string::npos);
  SynthResult encoding = Synthesize(channel.get(), {"Hello there."}, Encoding(v1::CONTAINER_AUTO));
  EXPECT_EQ(encoding.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  SynthOptions without_config;
  without_config.send_config = false;
  SynthResult no_config = Synthesize(channel.get(), {"Hello there."}, without_config);
  EXPECT_EQ(no_config.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Values found by probing the server (2026-12-03): a huge echoed name made the status too big for gRPC's
  // trailer limit (the client got RESOURCE_EXHAUSTED about metadata), INT32_MAX padding wrapped to 0.
  auto edited = [](std::function<void(v1::SynthesizeConfig*)> edit) {
    SynthOptions o;
    o.edit_config = std::move(edit);
    return o;
  };
  SynthResult long_name = Synthesize(channel.get(), {"Hello there."}, Voices({std::string(5000, 'a')}));
  EXPECT_EQ(long_name.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << long_name.status.error_message();
  EXPECT_LT(long_name.status.error_message().size(), 1100u);
  EXPECT_NE(long_name.status.error_message().find("bytes in all)"), std::string::npos);
  SynthResult padding =
      Synthesize(channel.get(), {"Hello there."},
                 edited([](v1::SynthesizeConfig* c) { c->set_padding_between(2147483647); }));
  EXPECT_EQ(padding.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(padding.status.error_message().find(
                "padding between words must be from 0 to 100 steps (got 2147483647)"),
            std::string::npos)
      << padding.status.error_message();
  SynthResult hot = Synthesize(channel.get(), {"Hello there."}, edited([](v1::SynthesizeConfig* c) {
                                 c->set_temperature(std::numeric_limits<double>::infinity());
                               }));
  EXPECT_EQ(hot.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(hot.status.error_message().find("temperature must be a finite number >= 0 (got inf)"),
            std::string::npos)
      << hot.status.error_message();
  SynthResult empty = Synthesize(channel.get(), {"  ((  ))  "});
  EXPECT_EQ(empty.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(empty.status.error_message().find("no text to speak"), std::string::npos);
  // Ogg/Opus output works (pages, first one "OggS").
  auto stub = v1::Synthesis::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->Synthesize(&ctx);
  v1::SynthesizeRequest c;
  c.mutable_config()->set_output_encoding(v1::OGG_OPUS);
  ASSERT_TRUE(stream->Write(c));
  v1::SynthesizeRequest t;
  t.set_text("Short one.");
  ASSERT_TRUE(stream->Write(t));
  stream->WritesDone();
  std::string ogg;
  v1::SynthesizeResponse response;
  while (stream->Read(&response)) {
    if (response.has_audio()) ogg += response.audio().data();
  }
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(ogg.substr(0, 4), "OggS");
}

// `monologue synthesize --server` writes what the local CLI writes (the reference fixture's audio and words).
TEST_F(MultiModeTest, SynthesizeCliThroughTheServer) {
  const TtsReference single = LoadTtsReference("single_greedy");
  const fs::path dir = ScratchDir();
  const fs::path raw = dir / "remote.raw", words = dir / "remote.words.json";
  const RunResult run = RunMonologue("synthesize " + ShellQuote(single.script[0]) + " --server " +
                                     server_->address() + " --voice alice --temp 0 -o " + raw.string() +
                                     " --format f32le --words-out " + words.string());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string bytes = ReadFileBytes(raw.string());
  SynthResult r;
  r.started = true;
  r.ends = 1;
  r.pcm.resize(bytes.size() / 4);
  std::memcpy(r.pcm.data(), bytes.data(), r.pcm.size() * 4);
  for (const auto& w : nlohmann::json::parse(ReadFileBytes(words.string()))) {
    r.words.push_back({w["text"].get<std::string>(), w["start"].get<double>(), w["end"].get<double>()});
  }
  ExpectTtsReference(r, single);
  // A voice the server does not have: exit 1 with the server's message.
  const RunResult bad = RunMonologue("synthesize hello --server " + server_->address() + " --voice nobody -o " +
                                     (dir / "bad.wav").string());
  EXPECT_NE(bad.exit_code, 0);
  const std::string& err = bad.err;
  EXPECT_NE(err.find("voice 'nobody' not found"), std::string::npos) << err;
}

// `monologue chat --server` writes what the local `monologue chat` writes (same length, same text, samples
// within one 16-bit step: the server batches).
TEST_F(MultiModeTest, ChatCliThroughTheServer) {
  const fs::path dir = ScratchDir();
  const std::string input = AsrData() + "/speech_en.wav";
  const RunResult remote = RunMonologue("chat " + input + " --server " + server_->address() + " --seed 5 " +
                                        "--prepend-silence 0.5 -o " + (dir / "remote.wav").string() +
                                        " --text-out " + (dir / "remote.json").string());
  const RunResult local = RunMonologue("chat " + input + " --model " + TinyMoshiModel() + " --threads 1 --seed 5 " +
                                       "--prepend-silence 0.5 --no-progress -o " + (dir / "local.wav").string() +
                                       " --text-out " + (dir / "local.json").string());
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  ASSERT_EQ(local.exit_code, 0) << local.err;
  const std::string a = ReadFileBytes((dir / "remote.wav").string()), b = ReadFileBytes((dir / "local.wav").string());
  ASSERT_EQ(a.size(), b.size());
  int max_diff = 0;
  for (size_t i = 44; i + 1 < a.size(); i += 2) {
    int16_t x, y;
    std::memcpy(&x, a.data() + i, 2);
    std::memcpy(&y, b.data() + i, 2);
    max_diff = std::max(max_diff, std::abs(x - y));
  }
  EXPECT_LE(max_diff, 1);
  const auto ja = nlohmann::json::parse(ReadFileBytes((dir / "remote.json").string()));
  const auto jb = nlohmann::json::parse(ReadFileBytes((dir / "local.json").string()));
  EXPECT_EQ(ja["text"], jb["text"]);
  EXPECT_EQ(ja["words"], jb["words"]);
}

// The dialogue engine in this process, on the same model and input: what the server must send.
std::vector<float> LocalDialogue(const std::vector<float>& input, uint64_t seed, std::vector<std::string>* pieces) {
  DialogueEngineOptions o;
  o.threads = 1;
  auto engine = DialogueEngine::Load(TinyMoshiModel(), o);
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return {};
  auto session = (*engine)->OpenSession(seed);
  EXPECT_TRUE(session.ok());
  EXPECT_TRUE((*session)->PushAudio(input).ok());
  EXPECT_TRUE((*session)->Close().ok());
  EXPECT_TRUE((*engine)->RunUntilIdle().ok());
  std::vector<float> out;
  for (const DialogueEvent& e : (*session)->PollEvents()) {
    if (e.kind == DialogueEvent::Kind::kAudio) out.insert(out.end(), e.audio.begin(), e.audio.end());
    if (e.kind == DialogueEvent::Kind::kText) pieces->push_back(e.text);
  }
  return out;
}

struct ConverseResult {
  grpc::Status status;
  std::vector<float> pcm;
  std::vector<std::string> pieces;
};

ConverseResult Converse(grpc::Channel* channel, const std::vector<float>& input, std::optional<uint64_t> seed,
                        bool with_config = true, bool greedy = false) {
  auto stub = v1::Dialogue::NewStub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto stream = stub->Converse(&ctx);
  std::thread writer([&] {
    if (with_config) {
      v1::ConverseRequest c;
      c.mutable_config()->mutable_input_format()->set_encoding(v1::FLOAT32_LE);
      c.mutable_config()->mutable_input_format()->set_sample_rate_hz(24000);
      c.mutable_config()->set_output_encoding(v1::FLOAT32_LE);
      if (seed.has_value()) c.mutable_config()->set_seed(*seed);
      if (greedy) {
        c.mutable_config()->set_temperature(0);
        c.mutable_config()->set_text_temperature(0);
      }
      if (!stream->Write(c)) return;
    }
    const std::string bytes = Float32Bytes(input);
    for (size_t pos = 0; pos < bytes.size(); pos += 7680) {
      v1::ConverseRequest r;
      r.set_audio(bytes.substr(pos, 7680));
      if (!stream->Write(r)) return;
    }
    stream->WritesDone();
  });
  ConverseResult result;
  v1::ConverseResponse response;
  while (stream->Read(&response)) {
    if (response.has_audio()) {
      const std::string& d = response.audio().data();
      const size_t at = result.pcm.size();
      result.pcm.resize(at + d.size() / 4);
      std::memcpy(result.pcm.data() + at, d.data(), d.size() / 4 * 4);
    }
    if (response.has_text()) result.pieces.push_back(response.text().text());
  }
  writer.join();
  result.status = stream->Finish();
  return result;
}

TEST_F(MultiModeTest, ConcurrentConverseStreamsEqualTheLocalEngine) {
  const std::vector<float> en = Clip("speech_en"), fr = Clip("speech_fr");
  std::vector<std::string> en_pieces, fr_pieces;
  const std::vector<float> want_en = LocalDialogue(en, 1234, &en_pieces);
  const std::vector<float> want_fr = LocalDialogue(fr, 7, &fr_pieces);
  auto channel = server_->Channel();
  ConverseResult a, b;
  std::thread ta([&] { a = Converse(channel.get(), en, 1234); });
  std::thread tb([&] { b = Converse(channel.get(), fr, 7); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_EQ(a.pcm.size(), en.size());  // time-aligned, as long as the input
  EXPECT_EQ(b.pcm.size(), fr.size());
  // The same tokens (text pieces) and audio up to float rounding (a batch of 2 vs 1 in Mimi's matmuls).
  ASSERT_EQ(a.pcm.size(), want_en.size());
  ASSERT_EQ(b.pcm.size(), want_fr.size());
  EXPECT_LT(RelativeL2(a.pcm, want_en), 1e-4);
  EXPECT_LT(RelativeL2(b.pcm, want_fr), 1e-4);
  EXPECT_EQ(a.pieces, en_pieces);
  EXPECT_EQ(b.pieces, fr_pieces);
  // A stream's own sampling settings: greedy on the server's sampling model equals the local greedy run.
  DialogueEngineOptions greedy_options;
  greedy_options.threads = 1;
  greedy_options.sampling.temp = 0;
  greedy_options.sampling.temp_text = 0;
  std::vector<std::string> greedy_pieces;
  std::vector<float> want_greedy;
  {
    auto engine = DialogueEngine::Load(TinyMoshiModel(), greedy_options);
    ASSERT_TRUE(engine.ok());
    auto session = (*engine)->OpenSession();
    ASSERT_TRUE((*session)->PushAudio(en).ok() && (*session)->Close().ok() && (*engine)->RunUntilIdle().ok());
    for (const DialogueEvent& e : (*session)->PollEvents()) {
      if (e.kind == DialogueEvent::Kind::kAudio) want_greedy.insert(want_greedy.end(), e.audio.begin(), e.audio.end());
      if (e.kind == DialogueEvent::Kind::kText) greedy_pieces.push_back(e.text);
    }
  }
  ConverseResult greedy = Converse(channel.get(), en, std::nullopt, true, /*greedy=*/true);
  ASSERT_TRUE(greedy.status.ok()) << greedy.status.error_message();
  EXPECT_EQ(greedy.pieces, greedy_pieces);
  ASSERT_EQ(greedy.pcm.size(), want_greedy.size());
  EXPECT_LT(RelativeL2(greedy.pcm, want_greedy), 1e-4);
  ConverseResult no_config = Converse(channel.get(), en, std::nullopt, /*with_config=*/false);
  EXPECT_EQ(no_config.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// A mode at capacity refuses at once; the other modes keep serving; a cancelled stream frees its slot at once.
TEST(MultiModeLimitsTest, FullModeRefusesWhileOthersServe) {
  const int metrics_port = FreePort();
  std::vector<std::string> args = AllModes(/*tts_slots=*/1, /*dialogue_slots=*/1);
  args.push_back("--metrics-listen");
  args.push_back("127.0.0.1:" + std::to_string(metrics_port));
  ServerProcess server(args);
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  const TtsReference single = LoadTtsReference("single_greedy");
  SynthResult refused;
  StreamResult transcription;
  SynthOptions busy;
  busy.on_started = [&] {
    refused = Synthesize(channel.get(), {"Another text."});
    transcription = RunStream(channel.get(), Pcm16Bytes(Clip("speech_en")));
  };
  SynthResult first = Synthesize(channel.get(), single.script, busy);
  ExpectTtsReference(first, single);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.status.error_message().find("no free synthesis slot"), std::string::npos);
  EXPECT_TRUE(transcription.status.ok()) << transcription.status.error_message();
  EXPECT_FALSE(transcription.words.empty());
  // Cancel once the stream has its slot (mid-synthesis): the server frees the slot as soon as it learns of
  // the cancel (a moment after the client), and the next stream gets it.
  SynthOptions cancel;
  cancel.cancel_after_audio = 0;
  SynthResult cancelled = Synthesize(channel.get(), single.script, cancel);
  EXPECT_EQ(cancelled.status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitForMetric(metrics_port, "monologue_synthesis_streams_open", 0));
  ExpectTtsReference(Synthesize(channel.get(), single.script), single);
  ConverseResult conversation = Converse(channel.get(), Clip("speech_fr"), 3);
  EXPECT_TRUE(conversation.status.ok()) << conversation.status.error_message();
  // Metrics per mode.
  const std::string metrics = HttpGet(metrics_port, "/metrics");
  auto value = [&](const std::string& series) {
    const size_t at = metrics.find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + series.size() + 2));
  };
  EXPECT_EQ(value("monologue_synthesis_streams_started_total"), 3) << metrics;
  EXPECT_EQ(value("monologue_synthesis_stream_refusals_total{reason=\"no_free_slot\"}"), 1) << metrics;
  EXPECT_EQ(value("monologue_synthesis_streams_finished_total{code=\"CANCELLED\"}"), 1) << metrics;
  EXPECT_EQ(value("monologue_synthesis_streams_finished_total{code=\"OK\"}"), 2) << metrics;
  EXPECT_EQ(value("monologue_synthesis_first_audio_seconds_count"), 2) << metrics;  // the cancelled one had none
  EXPECT_EQ(value("monologue_synthesis_batch_slots"), 1) << metrics;
  EXPECT_EQ(value("monologue_dialogue_streams_started_total"), 1) << metrics;
  EXPECT_GT(value("monologue_dialogue_frame_lag_seconds_count"), 10) << metrics;
  EXPECT_EQ(value("monologue_streams_started_total"), 1) << metrics;  // transcription
  EXPECT_EQ(value("monologue_synthesis_streams_open"), 0) << metrics;
}

// SIGTERM: every mode drains; health says NOT_SERVING meanwhile; a live synthesis stream finishes.
TEST(MultiModeLimitsTest, SigtermDrainsEveryMode) {
  ServerProcess server(AllModes());
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  const TtsReference single = LoadTtsReference("single_greedy");
  SynthOptions o;
  int health_during = 0;
  SynthResult refused_after;
  // The live stream's text stays open until the checks are done: a tiny model synthesises the whole script
  // in less than the 200 ms below, and the server would be gone before it is asked.
  std::promise<void> checked;
  o.close_text_after = checked.get_future().share();
  o.on_started = [&] {
    server.Signal(SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    health_during = HealthStatus(channel.get(), "monologue.v1.Synthesis");
    refused_after = Synthesize(channel.get(), {"Too late."});
    checked.set_value();
  };
  SynthResult live = Synthesize(channel.get(), single.script, o);
  ExpectTtsReference(live, single);
  EXPECT_EQ(health_during, 2);  // NOT_SERVING
  EXPECT_EQ(refused_after.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(server.Wait(30), 0);
}

// `serve --dtype int8`: every mode's engine loads its LM quantised, and each stream gives what the same
// engine in this process gives with int8 weights (greedy), not what the float model gives (the tiny models'
// greedy runs part ways between int8 and f32: tests/tts and tests/dialogue).
TEST(MultiModeQuantisedTest, Int8ServerEqualsTheLocalInt8Engines) {
  std::vector<std::string> args = AllModes();
  args.insert(args.end(), {"--dtype", "int8"});
  ServerProcess server(args);
  ASSERT_TRUE(server.ok()) << "monologue serve --dtype int8 did not start";
  auto channel = server.Channel();

  // Transcription.
  const std::vector<float> en = Clip("speech_en");
  const StreamResult heard = RunStream(channel.get(), Pcm16Bytes(en));
  ASSERT_TRUE(heard.status.ok()) << heard.status.error_message();
  const std::vector<Word> want_words = EngineWords(en, "int8");
  ASSERT_FALSE(want_words.empty());
  EXPECT_EQ(heard.words, want_words);

  // Synthesis: the fixture's script and voice, the server's settings (greedy, cfg 2), int8.
  const TtsReference single = LoadTtsReference("single_greedy");
  const SynthResult spoken = Synthesize(channel.get(), single.script, Voices({"alice"}));
  ASSERT_TRUE(spoken.status.ok()) << spoken.status.error_message();
  TtsEngineOptions tts_options;
  tts_options.threads = 1;
  tts_options.temp = 0;
  tts_options.dtype = "int8";
  auto tts = TtsEngine::Load(TtsData() + "tiny-tts", tts_options);
  ASSERT_TRUE(tts.ok()) << tts.status();
  EXPECT_EQ((*tts)->info().dtype, "int8");
  TtsSessionOptions session_options;
  session_options.voices = {TtsData() + "voices/alice.0000tiny@0.safetensors"};
  auto local = (*tts)->OpenSession(session_options);
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE((*local)->PushText(single.script[0]).ok());
  ASSERT_TRUE((*local)->Close().ok());
  ASSERT_TRUE((*tts)->RunUntilIdle().ok());
  std::vector<float> want_pcm;
  std::vector<Word> want_spoken;
  for (const TtsEvent& e : (*local)->PollEvents()) {
    if (e.kind == TtsEvent::Kind::kAudio) want_pcm.insert(want_pcm.end(), e.audio.begin(), e.audio.end());
    if (e.kind == TtsEvent::Kind::kWord) want_spoken.push_back({e.word.text, e.word.start_s, e.word.end_s});
  }
  ASSERT_EQ(spoken.pcm.size(), want_pcm.size());
  EXPECT_LT(RelativeL2(spoken.pcm, want_pcm), 1e-4);
  EXPECT_EQ(spoken.words, want_spoken);
  EXPECT_NE(static_cast<int64_t>(spoken.pcm.size()), single.frames * 1920)
      << "as long as the float model's utterance: was the LM quantised?";

  // Dialogue, greedy.
  DialogueEngineOptions dialogue_options;
  dialogue_options.threads = 1;
  dialogue_options.dtype = "int8";
  dialogue_options.sampling.temp = 0;
  dialogue_options.sampling.temp_text = 0;
  auto dialogue = DialogueEngine::Load(TinyMoshiModel(), dialogue_options);
  ASSERT_TRUE(dialogue.ok()) << dialogue.status();
  auto session = (*dialogue)->OpenSession();
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE((*session)->PushAudio(en).ok() && (*session)->Close().ok() && (*dialogue)->RunUntilIdle().ok());
  std::vector<float> want_reply;
  std::vector<std::string> want_pieces;
  for (const DialogueEvent& e : (*session)->PollEvents()) {
    if (e.kind == DialogueEvent::Kind::kAudio)
      want_reply.insert(want_reply.end(), e.audio.begin(), e.audio.end());
    if (e.kind == DialogueEvent::Kind::kText) want_pieces.push_back(e.text);
  }
  const ConverseResult reply = Converse(channel.get(), en, std::nullopt, true, /*greedy=*/true);
  ASSERT_TRUE(reply.status.ok()) << reply.status.error_message();
  ASSERT_EQ(reply.pcm.size(), want_reply.size());
  EXPECT_LT(RelativeL2(reply.pcm, want_reply), 1e-4);
  EXPECT_EQ(reply.pieces, want_pieces);
}

}  // namespace
}  // namespace monologue::service_test
