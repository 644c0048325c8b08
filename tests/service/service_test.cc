// The gRPC service end to end: a real `monologue serve` process on 127.0.0.1 with the tiny STT model.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <future>

#include "nlohmann/json.hpp"
#include "tests/service/service_test_util.h"

namespace monologue::service_test {
namespace {

class ServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    en_ = new std::vector<float>(Clip("speech_en"));
    fr_ = new std::vector<float>(Clip("speech_fr"));
    en_words_ = new std::vector<Word>(EngineWords(*en_));
    fr_words_ = new std::vector<Word>(EngineWords(*fr_));
  }
  static void TearDownTestSuite() {
    delete en_;
    delete fr_;
    delete en_words_;
    delete fr_words_;
  }
  static std::vector<float>* en_;
  static std::vector<float>* fr_;
  static std::vector<Word>* en_words_;
  static std::vector<Word>* fr_words_;
};
std::vector<float>* ServiceTest::en_ = nullptr;
std::vector<float>* ServiceTest::fr_ = nullptr;
std::vector<Word>* ServiceTest::en_words_ = nullptr;
std::vector<Word>* ServiceTest::fr_words_ = nullptr;

TEST_F(ServiceTest, ConcurrentStreamsEachGetTheEngineWords) {
  ASSERT_GT(en_words_->size(), 3u);
  ASSERT_GT(fr_words_->size(), 1u);
  ServerProcess server({"--max-streams", "4"});
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  // Three streams at once, different encodings and chunk sizes.
  StreamOptions float_chunks;
  float_chunks.encoding = v1::FLOAT32_LE;
  float_chunks.chunk_bytes = 4 * 1000;
  StreamOptions odd_chunks;
  odd_chunks.chunk_bytes = 777;  // PCM16 samples split across messages
  auto a = std::async(std::launch::async, [&] { return RunStream(channel.get(), Pcm16Bytes(*en_)); });
  auto b = std::async(std::launch::async,
                      [&] { return RunStream(channel.get(), Float32Bytes(*fr_), float_chunks); });
  auto c =
      std::async(std::launch::async, [&] { return RunStream(channel.get(), Pcm16Bytes(*en_), odd_chunks); });
  for (auto* f : {&a, &c}) {
    StreamResult r = f->get();
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_TRUE(r.started);
    EXPECT_EQ(r.end_messages, 1);
    EXPECT_EQ(r.end_words, static_cast<int>(r.words.size()));
    EXPECT_EQ(r.words, *en_words_);
  }
  StreamResult rb = b.get();
  ASSERT_TRUE(rb.status.ok()) << rb.status.error_message();
  EXPECT_EQ(rb.words, *fr_words_);
}

TEST_F(ServiceTest, LateJoinerAndCancelLeaveOtherStreamsUnchanged) {
  ServerProcess server({"--max-streams", "3"});
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  std::promise<void> a_started;
  StreamOptions slow;
  slow.chunk_sleep_ms = 5;  // keeps A live while the others come and go
  slow.on_started = [&] { a_started.set_value(); };
  auto a = std::async(std::launch::async, [&] { return RunStream(channel.get(), Pcm16Bytes(*en_), slow); });
  a_started.get_future().wait();
  // C cancels half-way through; B joins late and runs to the end.
  StreamOptions cancel;
  cancel.cancel_after_bytes = Pcm16Bytes(*fr_).size() / 2;
  cancel.chunk_sleep_ms = 2;
  auto c = std::async(std::launch::async, [&] { return RunStream(channel.get(), Pcm16Bytes(*fr_), cancel); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto b = std::async(std::launch::async, [&] { return RunStream(channel.get(), Pcm16Bytes(*fr_)); });
  StreamResult rc = c.get();
  EXPECT_EQ(rc.status.error_code(), grpc::StatusCode::CANCELLED) << rc.status.error_message();
  StreamResult ra = a.get();
  StreamResult rb = b.get();
  ASSERT_TRUE(ra.status.ok()) << ra.status.error_message();
  ASSERT_TRUE(rb.status.ok()) << rb.status.error_message();
  EXPECT_EQ(ra.words, *en_words_);
  EXPECT_EQ(rb.words, *fr_words_);
  // The cancelled stream's slot is free again: three new streams fit.
  std::vector<std::future<StreamResult>> again;
  for (int i = 0; i < 3; ++i) {
    again.push_back(
        std::async(std::launch::async, [&] { return RunStream(channel.get(), Pcm16Bytes(*fr_)); }));
  }
  for (auto& f : again) {
    StreamResult r = f.get();
    EXPECT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.words, *fr_words_);
  }
}

grpc::Status RunRequests(grpc::Channel* channel, const std::vector<v1::TranscribeRequest>& requests) {
  auto stub = v1::Transcription::NewStub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub->Transcribe(&ctx);
  for (const auto& r : requests) {
    if (!stream->Write(r)) break;
  }
  stream->WritesDone();
  v1::TranscribeResponse response;
  while (stream->Read(&response)) {
  }
  return stream->Finish();
}

v1::TranscribeRequest Audio(std::string bytes) {
  v1::TranscribeRequest r;
  r.set_audio(std::move(bytes));
  return r;
}

TEST_F(ServiceTest, BadConfigBadAudioAndOversizedMessagesGetTheirStatus) {
  ServerProcess server({"--max-streams", "2"});
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  const std::string pcm = Pcm16Bytes(std::vector<float>(en_->begin(), en_->begin() + 4800));
  struct Case {
    const char* what;
    std::vector<v1::TranscribeRequest> requests;
    grpc::StatusCode code;
    const char* message_part;
  };
  std::vector<float> nan_audio(1000, 0.1f);
  nan_audio[500] = std::nanf("");
  std::vector<float> int16_scale(1000, 0.1f);  // 16-bit values sent as floats
  int16_scale[700] = 12000.0f;
  // A WAV header claiming 1 Hz: 2 KB of it would be 1000 s of audio at 24 kHz.
  std::string one_hz = MakeWav(std::vector<float>(1000, 0.1f), 1);
  const std::vector<Case> cases = {
      {"audio before config", {Audio(pcm)}, grpc::StatusCode::INVALID_ARGUMENT, "must carry `config`"},
      {"no config at all", {}, grpc::StatusCode::INVALID_ARGUMENT, "before its `config`"},
      {"config twice",
       {ConfigRequest(v1::LINEAR_PCM_S16LE), ConfigRequest(v1::LINEAR_PCM_S16LE)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "only be sent once"},
      {"no encoding",
       {ConfigRequest(v1::AUDIO_ENCODING_UNSPECIFIED)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "encoding is required"},
      {"bad rate",
       {ConfigRequest(v1::LINEAR_PCM_S16LE, 100)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "sample_rate_hz"},
      {"odd PCM16 byte count",
       {ConfigRequest(v1::LINEAR_PCM_S16LE), Audio(pcm + "x")},
       grpc::StatusCode::INVALID_ARGUMENT,
       "less than one whole sample"},
      {"NaN float",
       {ConfigRequest(v1::FLOAT32_LE), Audio(Float32Bytes(nan_audio))},
       grpc::StatusCode::INVALID_ARGUMENT,
       "non-finite"},
      {"float audio at 16-bit scale",
       {ConfigRequest(v1::FLOAT32_LE), Audio(Float32Bytes(int16_scale))},
       grpc::StatusCode::INVALID_ARGUMENT,
       "holds the sample 12000 at input sample frame 700: float samples are in [-1, 1]"},
      {"a container header at 1 Hz",
       {ConfigRequest(v1::CONTAINER_AUTO), Audio(one_hz)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "sample rate 1 Hz in the audio's header"},
      {"an empty first request",
       {v1::TranscribeRequest()},
       grpc::StatusCode::INVALID_ARGUMENT,
       "must carry `config` (it was empty)"},
      {"not Ogg/Opus",
       {ConfigRequest(v1::OGG_OPUS), Audio(std::string(5000, 'z'))},
       grpc::StatusCode::INVALID_ARGUMENT,
       ""},
      // No audio at all is an empty stream in every encoding: OK, nothing transcribed (compressed ones used
      // to fail with the decoder's "empty input").
      {"no audio, PCM", {ConfigRequest(v1::LINEAR_PCM_S16LE)}, grpc::StatusCode::OK, ""},
      {"no audio, container", {ConfigRequest(v1::CONTAINER_AUTO), Audio("")}, grpc::StatusCode::OK, ""},
      {"no audio, Ogg/Opus", {ConfigRequest(v1::OGG_OPUS)}, grpc::StatusCode::OK, ""},
      {"oversized message",
       {ConfigRequest(v1::LINEAR_PCM_S16LE), Audio(std::string(100 * 1024, '\0'))},
       grpc::StatusCode::RESOURCE_EXHAUSTED,
       ""},
  };
  for (const Case& c : cases) {
    grpc::Status st = RunRequests(channel.get(), c.requests);
    EXPECT_EQ(st.error_code(), c.code) << c.what << ": " << st.error_message();
    EXPECT_NE(st.error_message().find(c.message_part), std::string::npos)
        << c.what << ": " << st.error_message();
  }
  // The server still serves normally afterwards (every failed stream gave its slot back).
  for (int i = 0; i < 2; ++i) {
    StreamResult r = RunStream(channel.get(), Pcm16Bytes(*fr_));
    EXPECT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.words, *fr_words_);
  }
}

TEST_F(ServiceTest, FullServerRefusesAtOnceAndDeadlineFreesTheSlot) {
  const int metrics_port = FreePort();
  ServerProcess server(
      {"--max-streams", "1", "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port)});
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  // A holds the only slot (it never half-closes) until its deadline.
  std::promise<void> a_started;
  StreamOptions hold;
  hold.half_close = false;
  hold.deadline_ms = 1500;
  hold.on_started = [&] { a_started.set_value(); };
  auto a = std::async(std::launch::async, [&] {
    return RunStream(channel.get(), Pcm16Bytes(std::vector<float>(en_->begin(), en_->begin() + 9600)), hold);
  });
  a_started.get_future().wait();
  const auto t0 = std::chrono::steady_clock::now();
  StreamResult refused = RunStream(channel.get(), Pcm16Bytes(*fr_));
  const double refusal_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.status.error_message();
  EXPECT_NE(refused.status.error_message().find("no free transcription slot"), std::string::npos);
  EXPECT_LT(refusal_seconds, 1.0);  // refused at once, not queued behind A
  StreamResult ra = a.get();
  EXPECT_EQ(ra.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << ra.status.error_message();
  // A's slot is freed when its deadline passes (the server learns of it a moment after the client).
  StreamResult after;
  int refused_retries =
      0;  // attempts made before the server had freed A's slot (each is refused and counted)
  for (int attempt = 0; attempt < 40; ++attempt) {
    after = RunStream(channel.get(), Pcm16Bytes(*fr_));
    if (after.status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) break;
    ++refused_retries;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.words, *fr_words_);

  const std::string metrics = HttpGet(metrics_port, "/metrics");
  EXPECT_NE(metrics.find("HTTP/1.0 200"), std::string::npos);
  auto value = [&](const std::string& series) {
    const size_t at = metrics.find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + series.size() + 2));
  };
  EXPECT_GE(value("monologue_stream_refusals_total{reason=\"no_free_slot\"}"), 1) << metrics;
  EXPECT_EQ(value("monologue_streams_started_total"), 2) << metrics;
  EXPECT_EQ(value("monologue_streams_open"), 0) << metrics;
  EXPECT_GE(value("monologue_words_total"), static_cast<double>(fr_words_->size())) << metrics;
  EXPECT_EQ(value("monologue_audio_to_word_seconds_count"), value("monologue_words_total")) << metrics;
  EXPECT_EQ(value("monologue_step_seconds_count"), value("monologue_steps_total")) << metrics;
  EXPECT_GT(value("monologue_steps_total"), 0) << metrics;
  // A's deadline reaches the server as a cancel; the refused stream (and any retry refused while A's slot was
  // still held) and `after` are counted too.
  EXPECT_EQ(value("monologue_streams_finished_total{code=\"CANCELLED\"}"), 1) << metrics;
  EXPECT_EQ(value("monologue_streams_finished_total{code=\"RESOURCE_EXHAUSTED\"}"), 1 + refused_retries)
      << metrics;
  EXPECT_EQ(value("monologue_streams_finished_total{code=\"OK\"}"), 1) << metrics;
}

TEST_F(ServiceTest, HealthAnswersServing) {
  ServerProcess server({"--max-streams", "1"});
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  EXPECT_EQ(HealthStatus(channel.get(), ""), 1);  // SERVING
  EXPECT_EQ(HealthStatus(channel.get(), "monologue.v1.Transcription"), 1);
  EXPECT_EQ(HealthStatus(channel.get(), "no.such.Service"), -100 - grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, SigtermDrainsLiveStreamsAndRefusesNewOnes) {
  ServerProcess server({"--max-streams", "2", "--drain-seconds", "20"});
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  std::promise<void> started;
  StreamOptions paced;
  paced.chunk_sleep_ms = 20;  // ~4x real time: the stream is still live when SIGTERM arrives
  paced.on_started = [&] { started.set_value(); };
  auto a = std::async(std::launch::async, [&] { return RunStream(channel.get(), Pcm16Bytes(*en_), paced); });
  started.get_future().wait();
  server.Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  StreamResult late = RunStream(channel.get(), Pcm16Bytes(*fr_));
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::UNAVAILABLE) << late.status.error_message();
  EXPECT_EQ(HealthStatus(channel.get(), ""), 2);  // NOT_SERVING while draining
  StreamResult ra = a.get();
  EXPECT_TRUE(ra.status.ok()) << ra.status.error_message();
  EXPECT_EQ(ra.words, *en_words_);
  EXPECT_EQ(server.Wait(20), 0);
}

TEST_F(ServiceTest, SigtermCutsStreamsThatOutliveTheDrainDeadline) {
  ServerProcess server({"--max-streams", "1", "--drain-seconds", "0.5"});
  ASSERT_TRUE(server.ok());
  auto channel = server.Channel();
  std::promise<void> started;
  StreamOptions endless;
  endless.half_close = false;
  endless.on_started = [&] { started.set_value(); };
  auto a =
      std::async(std::launch::async, [&] { return RunStream(channel.get(), Pcm16Bytes(*fr_), endless); });
  started.get_future().wait();
  server.Signal(SIGTERM);
  StreamResult ra = a.get();
  EXPECT_EQ(ra.status.error_code(), grpc::StatusCode::UNAVAILABLE) << ra.status.error_message();
  EXPECT_NE(ra.status.error_message().find("shutting down"), std::string::npos);
  EXPECT_EQ(server.Wait(10), 0);
}

}  // namespace
}  // namespace monologue::service_test

namespace monologue::service_test {
namespace {

using test_process::RunMonologue;
using test_process::RunOptions;
using test_process::RunResult;
using test_process::ShellQuote;

TEST(RemoteTranscribeTest, CliThroughTheServerPrintsTheLocalCliWords) {
  ServerProcess server({"--max-streams", "2"});
  ASSERT_TRUE(server.ok());
  const std::string clip = AsrData() + "/speech_fr.wav";
  const RunResult local = RunMonologue("transcribe --format json --model " + TinyModel() + " " + clip);
  const RunResult remote = RunMonologue("transcribe --format json --server " + server.address() + " " + clip);
  const RunResult from_stdin =
      RunMonologue("transcribe --server " + server.address() + " -", RunOptions{.stdin_file = clip});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  auto words = [](const std::string& json) {
    std::vector<Word> out;
    const nlohmann::json parsed = nlohmann::json::parse(json);
    for (const auto& w : parsed["words"]) {
      out.push_back({w["text"].get<std::string>(), w["start"].get<double>(), w["end"].get<double>()});
    }
    return out;
  };
  const std::vector<Word> want = words(local.out);
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(words(remote.out), want);
  std::string text;
  for (const Word& w : want) text += (text.empty() ? "" : " ") + w.text;
  EXPECT_EQ(from_stdin.out, text + "\n");
  const RunResult refused = RunMonologue("transcribe --server 127.0.0.1:1 " + clip);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("monologue transcribe: server 127.0.0.1:1:"), std::string::npos) << refused.err;
}

// A live feed (stdin still open) whose server dies: the client reports the failure with the words it had,
// at once, instead of waiting for its input to end (it used to wait on the blocked stdin read).
TEST(RemoteTranscribeTest, ALiveFeedWhoseServerDiesEndsWithoutWaitingForStdin) {
  ServerProcess server({"--max-streams", "1"});
  ASSERT_TRUE(server.ok());
  const std::string clip = AsrData() + "/speech_fr.wav";
  const std::filesystem::path stdin_closed = ScratchDir() / "live_feed_stdin_closed";
  std::filesystem::remove(stdin_closed);
  // The feeder sends the clip, lets the server transcribe it, kills the server and keeps the client's
  // stdin open for 60 s more; the marker says it got that far before the client returned.
  const std::string feeder = "cat " + ShellQuote(clip) + "; sleep 3; kill -9 " +
                             std::to_string(server.pid()) + "; sleep 60; touch " +
                             ShellQuote(stdin_closed.string());
  const std::string script = test_process::MonologueBinary() + " transcribe --server " + server.address() +
                             " - < <(exec 2>/dev/null; " + feeder + ")";
  RunOptions options;
  options.timeout_seconds = 120;
  const RunResult r = test_process::RunShell("bash -c " + ShellQuote(script), options);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(std::filesystem::exists(stdin_closed)) << "the client waited for its stdin to close";
  EXPECT_NE(r.out, "") << "no words before the server died: the stream was not live when it was killed";
  EXPECT_NE(r.err.find("monologue transcribe: server " + server.address()), std::string::npos) << r.err;
}

// Found by a bad-input audit of `serve` (2026-12-03): each of these started a server that then could not
// serve (every stream hung, failed, or was dropped), or silently opened or split it. Now refused at start.
TEST(ServeStartupTest, SettingsThatCouldNotServeAreRefusedAtStart) {
  const std::string tts = std::string(MONOLOGUE_TEST_DATA_DIR) + "/tts/";
  const std::string stt = "serve --listen 127.0.0.1:0 --model " + TinyModel() + " ";
  const std::string with_tts =
      "serve --listen 127.0.0.1:0 --tts " + tts + "tiny-tts --voices " + tts + "voices --threads 1 ";
  struct Case {
    std::string args;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{
           {stt + "--max-ahead-seconds 0", "--max-ahead-seconds: must be a finite number from 0.2 to 3600"},
           {stt + "--idle-timeout nan", "--idle-timeout: must be a finite number from 0.1 to 86400, got nan"},
           {stt + "--idle-timeout 1e308", "--idle-timeout: must be a finite number"},
           {stt + "--max-pending-responses 0", "--max-pending-responses: must be a whole number >= 1"},
           {stt + "--drain-seconds inf", "--drain-seconds: must be a finite number"},
           {stt + "--http 127.0.0.1:0 --api-key ''", "--api-key is empty"},
           {stt + "--api-key secret", "--api-key and --web-root go with --http"},
           {stt + "--voices /nonexistent --tts-temp 5", "goes with --tts"},
           {stt + "--max-dialogue-streams 3", "--max-dialogue-streams goes with --dialogue"},
           {with_tts + "--default-voice broken", "a stream with the server's defaults cannot open"},
           {with_tts + "--default-voice alice --tts-cfg-coef 1.7", "not one this model was distilled for"},
       }) {
    const RunResult r = RunMonologue(c.args, RunOptions{.stdin_file = "", .timeout_seconds = 60});
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << c.args << "\n" << r.err;
  }
}

TEST(ServeStartupTest, ABusyPortIsRefusedAndAnotherModesServerIsNamed) {
  ServerProcess first({"--threads", "1"});
  ASSERT_TRUE(first.ok());
  // gRPC's default SO_REUSEPORT let a second server start here and take half the clients.
  const RunResult second =
      RunMonologue("serve --listen " + first.address() + " --model " + TinyModel() + " --threads 1",
                   RunOptions{.stdin_file = "", .timeout_seconds = 60});
  EXPECT_NE(second.exit_code, 0) << second.err;
  // Named with the system's reason before the model loads, without gRPC's log lines.
  EXPECT_NE(second.err.find("--listen " + first.address() + ": cannot listen there: Address already in use"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(second.err.find("chttp2"), std::string::npos) << second.err;
  const RunResult foreign = RunMonologue("serve --listen 192.0.2.1:50051 --model " + TinyModel(),
                                         RunOptions{.stdin_file = "", .timeout_seconds = 60});
  EXPECT_NE(foreign.err.find("not an address of this machine"), std::string::npos) << foreign.err;
  const RunResult busy_http =
      RunMonologue("serve --listen 127.0.0.1:0 --http " + first.address() + " --model " + TinyModel(),
                   RunOptions{.stdin_file = "", .timeout_seconds = 60});
  EXPECT_NE(busy_http.err.find("--http " + first.address() + ": cannot listen there"), std::string::npos)
      << busy_http.err;
  // A synthesis client at a transcription server: named, not "server ADDR: " and nothing.
  const RunResult wrong = RunMonologue("synthesize hello --server " + first.address() + " -o " +
                                       (ScratchDir() / "wrong_mode.wav").string());
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("does not serve speech synthesis"), std::string::npos) << wrong.err;
  // Client addresses and pacing are checked: a port past 65535 wrapped to another one, "" ran locally, and
  // --speed 1e-9 hung the client.
  for (const std::string& bad :
       {std::string("127.0.0.1:112556"), std::string("''"), std::string("127.0.0.1:-1")}) {
    const RunResult r = RunMonologue("transcribe " + std::string(MONOLOGUE_TEST_DATA_DIR) +
                                     "/asr/speech_en.wav --server " + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("must be HOST:PORT with a port from 1 to 65535"), std::string::npos) << bad << r.err;
  }
  const RunResult slow = RunMonologue("transcribe " + std::string(MONOLOGUE_TEST_DATA_DIR) +
                                      "/asr/speech_en.wav --server " + first.address() + " --speed 1e-9");
  EXPECT_NE(slow.exit_code, 0);
  EXPECT_NE(slow.err.find("--speed: must be 0"), std::string::npos) << slow.err;
  // Local-model flags with --server were accepted and ignored.
  const std::string clip = std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/speech_en.wav";
  for (const std::string& args :
       {"transcribe " + clip + " --server " + first.address() + " --lora x.safetensors",
        "synthesize hello -o " + (ScratchDir() / "s.wav").string() + " --server " + first.address() +
            " --voices /tmp",
        "chat " + clip + " -o " + (ScratchDir() / "c.wav").string() + " --server " + first.address() +
            " --samples 2"}) {
    const RunResult r = RunMonologue(args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_NE(r.err.find("goes with a local model: with --server the model"), std::string::npos)
        << args << r.err;
  }
}

}  // namespace
}  // namespace monologue::service_test
