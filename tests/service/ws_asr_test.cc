// `monologue serve --http`: /api/asr-streaming speaks the Rust moshi-server's MessagePack protocol as the DSM
// script stt_from_file_rust_server.py uses it (Ready, Audio in 80 ms float32 chunks, a Marker, silence; Word /
// EndWord / Step / Marker back) and gives the engine's words for the same audio; a full server answers Error
// "no free channels" and closes; a malformed or unknown message, an oversized message and a vanished client
// end only that connection and free its slot; the API key is checked before the upgrade.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "service/http/ogg_opus_stream.h"
#include "service_test_util.h"
#include "ws_test_client.h"

namespace monologue::service_test {
namespace {

constexpr size_t kFrame = 1920;

struct AsrRun {
  bool ready_first = false;
  std::vector<Word> words;  // Word + its EndWord
  std::vector<std::string> open_words;  // Word messages still without EndWord when the marker came
  int steps = 0;
  size_t prs_size = 0;
  int64_t last_step_idx = -1;
  bool steps_increase = true;
  bool marker = false;
  int64_t marker_id = -1;
  std::string error;
};

// Sends `audio`, then `silence_before_marker` zeros, a Marker, and `silence_after` zeros (as the DSM script);
// reads until the Marker comes back (or an Error / the close).
AsrRun RunAsr(WsClient& client, const std::vector<float>& audio, size_t silence_before_marker, size_t silence_after) {
  AsrRun run;
  std::thread writer([&] {
    std::vector<float> all = audio;
    all.resize(audio.size() + silence_before_marker, 0.0f);
    for (size_t i = 0; i < all.size(); i += kFrame) {
      if (!client.Send(AudioMessage(all.data() + i, std::min(kFrame, all.size() - i)))) return;
    }
    if (!client.Send(TaggedInt("Marker", "id", 7))) return;
    const std::vector<float> zeros(kFrame, 0.0f);
    for (size_t i = 0; i < silence_after; i += kFrame) {
      if (!client.Send(AudioMessage(zeros.data(), kFrame))) return;
    }
  });
  bool first = true;
  while (auto m = client.Read()) {
    auto msg = Unpack(m->data);
    if (!msg.has_value()) break;
    const std::string type = msg->type();
    if (first) run.ready_first = type == "Ready";
    first = false;
    if (type == "Word") {
      EXPECT_EQ(msg->Type("start_time"), msgpack::type::FLOAT64);
      run.open_words.push_back(msg->Str("text"));
      run.words.push_back({msg->Str("text"), msg->F64("start_time"), -1});
    } else if (type == "EndWord") {
      EXPECT_EQ(msg->Type("stop_time"), msgpack::type::FLOAT64);
      if (!run.open_words.empty()) {
        // The first open word gets its end (words end in order).
        for (Word& w : run.words) {
          if (w.end < 0) {
            w.end = msg->F64("stop_time");
            break;
          }
        }
        run.open_words.erase(run.open_words.begin());
      }
    } else if (type == "Step") {
      run.steps++;
      run.prs_size = msg->fields.at("prs").via.array.size;
      const int64_t idx = msg->fields.at("step_idx").as<int64_t>();
      run.steps_increase = run.steps_increase && idx > run.last_step_idx;
      run.last_step_idx = idx;
      EXPECT_TRUE(msg->Has("buffered_pcm"));
    } else if (type == "Marker") {
      run.marker = true;
      run.marker_id = msg->fields.at("id").as<int64_t>();
      break;
    } else if (type == "Error") {
      run.error = msg->Str("message");
      break;
    }
  }
  writer.join();
  return run;
}

// The words the engine decides for `audio` followed by `zeros` of silence, without closing the stream (what a
// connection has been told once the marker comes back).
std::vector<Word> EngineWordsOpen(const std::vector<float>& audio, size_t zeros) {
  auto engine = AsrEngine::Load(TinyModel());
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return {};
  auto session = (*engine)->OpenSession();
  EXPECT_TRUE(session.ok());
  std::vector<float> all = audio;
  all.resize(audio.size() + zeros, 0.0f);
  EXPECT_TRUE((*session)->PushAudio(all).ok());
  EXPECT_TRUE((*engine)->RunUntilIdle().ok());
  std::vector<Word> words;
  for (const AsrEvent& e : (*session)->PollEvents()) {
    if (e.kind == AsrEvent::Kind::kWord) words.push_back({e.word.text, e.word.start_s, e.word.end_s});
  }
  return words;
}

class WsAsrTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A small message limit (64 KiB): an oversized message then still fits the socket buffers, so this
    // synchronous client finishes writing it before it reads the answer.
    server_ = new ServerProcess(
        {"--http", "127.0.0.1:0", "--max-streams", "2", "--threads", "1", "--http-max-message-bytes", "65536"});
    ASSERT_TRUE(server_->ok()) << "monologue serve did not start";
    http_ = server_->HttpAddress();
    ASSERT_FALSE(http_.empty());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ServerProcess* server_;
  static std::string http_;
};
ServerProcess* WsAsrTest::server_ = nullptr;
std::string WsAsrTest::http_;

TEST_F(WsAsrTest, WordsEqualTheEngineAndTheMarkerComesBack) {
  const std::vector<float> clip = Clip("speech_en");
  const size_t pad = 36000;  // (delay 0.5 s + 1 s) of zeros: what Close() appends
  WsClient client(http_, "/api/asr-streaming");
  ASSERT_TRUE(client.connected) << client.http_status;
  const AsrRun run = RunAsr(client, clip, pad, 24000 * 3);
  client.Close();
  EXPECT_TRUE(run.error.empty()) << run.error;
  EXPECT_TRUE(run.ready_first);
  ASSERT_TRUE(run.marker);
  EXPECT_EQ(run.marker_id, 7);
  // Every word decided within the audio before the marker is the engine's, with its times.
  const std::vector<Word> expected = EngineWordsOpen(clip, pad);
  ASSERT_FALSE(expected.empty());
  ASSERT_GE(run.words.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(run.words[i], expected[i]) << "word " << i;
  // ... and those are the words `transcribe` / the gRPC service give (all but the stream's last one, which
  // only the end of the stream decides).
  const std::vector<Word> closed = EngineWords(clip);
  for (size_t i = 0; i + 1 < closed.size() && i < expected.size(); ++i) EXPECT_EQ(expected[i], closed[i]);
  // The tiny model has VAD heads: one Step per step with audio, P(no voice) per head.
  EXPECT_GT(run.steps, 50);
  EXPECT_EQ(run.prs_size, 4u);
  EXPECT_TRUE(run.steps_increase);
}

// The Rust server's other audio message: {"type": "OggOpus", "data": <Ogg/Opus bytes>} in any split.
TEST_F(WsAsrTest, OggOpusAudioGivesTheWordsOfTheDecodedAudio) {
  const std::vector<float> clip = Clip("speech_en");
  auto encoder = OggOpusStreamEncoder::Create();
  ASSERT_TRUE(encoder.ok());
  std::string ogg = *(*encoder)->Encode(clip);
  ogg += *(*encoder)->Finish();
  auto decoder = OggOpusStreamDecoder::Create();
  auto decoded = (*decoder)->Decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ogg.data()), ogg.size()));
  ASSERT_TRUE(decoded.ok());
  const size_t pad = 36000;
  WsClient client(http_, "/api/asr-streaming");
  ASSERT_TRUE(client.connected);
  AsrRun run;
  std::thread writer([&] {
    for (size_t i = 0; i < ogg.size(); i += 3000) {
      msgpack::sbuffer b;
      msgpack::packer<msgpack::sbuffer> p(b);
      p.pack_map(2);
      p.pack(std::string("type"));
      p.pack(std::string("OggOpus"));
      p.pack(std::string("data"));
      const std::string part = ogg.substr(i, 3000);
      p.pack_bin(static_cast<uint32_t>(part.size()));
      p.pack_bin_body(part.data(), static_cast<uint32_t>(part.size()));
      if (!client.Send(std::string(b.data(), b.size()))) return;
    }
    const std::vector<float> zeros(pad + 24000 * 3, 0.0f);
    for (size_t i = 0; i < pad; i += kFrame) client.Send(AudioMessage(zeros.data(), kFrame));
    client.Send(TaggedInt("Marker", "id", 3));
    for (size_t i = 0; i < 24000 * 3; i += kFrame) client.Send(AudioMessage(zeros.data(), kFrame));
  });
  while (auto m = client.Read()) {
    auto msg = Unpack(m->data);
    ASSERT_TRUE(msg.has_value());
    ASSERT_NE(msg->type(), "Error") << msg->Str("message");
    if (msg->type() == "Word") run.words.push_back({msg->Str("text"), msg->F64("start_time"), -1});
    if (msg->type() == "EndWord") {
      for (Word& w : run.words) {
        if (w.end < 0) {
          w.end = msg->F64("stop_time");
          break;
        }
      }
    }
    if (msg->type() == "Marker") break;
  }
  writer.join();
  const std::vector<Word> expected = EngineWordsOpen(*decoded, pad);
  ASSERT_FALSE(expected.empty());
  ASSERT_GE(run.words.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(run.words[i], expected[i]) << "word " << i;
}

TEST_F(WsAsrTest, MalformedAndUnknownMessagesCloseOnlyThatConnection) {
  WsClient good(http_, "/api/asr-streaming");
  ASSERT_TRUE(good.connected);
  for (const std::string& bad : {std::string("\xc1\xff not msgpack", 14), TaggedStr("Bogus", "x", "y"),
                                 TaggedStr("Audio", "pcm", "not an array")}) {
    WsClient client(http_, "/api/asr-streaming");
    ASSERT_TRUE(client.connected);
    auto ready = client.Read();
    ASSERT_TRUE(ready.has_value());
    EXPECT_EQ(Unpack(ready->data)->type(), "Ready");
    ASSERT_TRUE(client.Send(bad));
    auto error = client.Read();
    ASSERT_TRUE(error.has_value());
    auto msg = Unpack(error->data);
    ASSERT_TRUE(msg.has_value());
    EXPECT_EQ(msg->type(), "Error");
    EXPECT_FALSE(msg->Str("message").empty());
    EXPECT_FALSE(client.Read().has_value());
    EXPECT_TRUE(client.closed);
  }
  // Samples far outside [-1, 1] (16-bit values sent as floats) are refused, naming the sample.
  {
    WsClient client(http_, "/api/asr-streaming");
    ASSERT_TRUE(client.connected);
    ASSERT_TRUE(client.Read().has_value());  // Ready
    std::vector<float> loud(1920, 0.01f);
    loud[100] = 12000.0f;
    ASSERT_TRUE(client.Send(AudioMessage(loud.data(), loud.size())));
    auto error = client.Read();
    ASSERT_TRUE(error.has_value());
    auto msg = Unpack(error->data);
    ASSERT_TRUE(msg.has_value());
    EXPECT_EQ(msg->type(), "Error");
    EXPECT_NE(msg->Str("message").find("\"pcm\"[100] is 12000: samples are in [-1, 1]"), std::string::npos)
        << msg->Str("message");
  }
  // The other connection still works.
  const AsrRun run = RunAsr(good, std::vector<float>(24000, 0.0f), 0, 24000 * 2);
  EXPECT_TRUE(run.ready_first);
  EXPECT_TRUE(run.marker) << run.error;
}

TEST_F(WsAsrTest, OversizedMessageClosesThatConnection) {
  WsClient client(http_, "/api/asr-streaming");
  ASSERT_TRUE(client.connected);
  ASSERT_TRUE(client.Read().has_value());  // Ready
  const std::vector<float> big(20000, 0.001f);  // 100 KB of float32 > the 64 KiB limit
  // Written from another thread while this one reads, as the Python clients do.
  std::thread writer([&] { client.Send(AudioMessage(big.data(), big.size())); });
  std::vector<std::string> types, errors;
  while (auto m = client.Read()) {
    auto msg = Unpack(m->data);
    ASSERT_TRUE(msg.has_value());
    types.push_back(msg->type());
    if (msg->type() == "Error") errors.push_back(msg->Str("message"));
  }
  writer.join();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(types.back(), "Error");  // the last message before the close
  EXPECT_NE(errors[0].find("message too big"), std::string::npos) << errors[0];
  EXPECT_TRUE(client.closed);
  EXPECT_EQ(client.close_code, 1009);  // message too big
  WsClient next(http_, "/api/asr-streaming");
  ASSERT_TRUE(next.connected);
  auto ready = next.Read();
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(Unpack(ready->data)->type(), "Ready");
}

TEST_F(WsAsrTest, UnknownPathsAndModesNotServed) {
  EXPECT_EQ(UpgradeStatus(http_, "/api/asr-streaming"), 101);
  EXPECT_EQ(UpgradeStatus(http_, "/api/nothing-here"), 404);
  EXPECT_EQ(UpgradeStatus(http_, "/api/tts_streaming"), 404);  // this server has no --tts
  EXPECT_EQ(UpgradeStatus(http_, "/api/chat"), 404);
}

// A server with one slot: a second connection gets the Rust server's Error and the close; a client that drops
// its TCP connection without a close frees the slot for the next.
TEST(WsAsrLimitsTest, FullServerRefusesAndAVanishedClientFreesItsSlot) {
  ServerProcess server({"--http", "127.0.0.1:0", "--max-streams", "1", "--threads", "1"});
  ASSERT_TRUE(server.ok());
  const std::string http = server.HttpAddress();
  auto a = std::make_unique<WsClient>(http, "/api/asr-streaming");
  ASSERT_TRUE(a->connected);
  ASSERT_TRUE(a->Read().has_value());  // Ready: a holds the only slot
  WsClient b(http, "/api/asr-streaming");
  ASSERT_TRUE(b.connected);
  auto error = b.Read();
  ASSERT_TRUE(error.has_value());
  auto msg = Unpack(error->data);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->type(), "Error");
  EXPECT_EQ(msg->Str("message"), "no free channels");
  EXPECT_FALSE(b.Read().has_value());
  EXPECT_TRUE(b.closed);
  // a is unaffected.
  const std::vector<float> second(24000, 0.0f);
  ASSERT_TRUE(a->Send(AudioMessage(second.data(), second.size())));
  a->Drop();  // vanishes mid-stream
  a.reset();
  // The slot comes back (the server notices the dropped connection at once: the read fails).
  bool ready = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ready && std::chrono::steady_clock::now() < deadline) {
    WsClient c(http, "/api/asr-streaming");
    ASSERT_TRUE(c.connected);
    auto first = c.Read();
    ASSERT_TRUE(first.has_value());
    ready = Unpack(first->data)->type() == "Ready";
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(ready);
}

// One scheduler per mode: a gRPC stream and a WebSocket connection take the same batch slots, and the mode's
// metrics count both.
TEST(WsAsrLimitsTest, GrpcAndWebSocketShareTheSlotsAndTheMetrics) {
  const int metrics_port = FreePort();
  ServerProcess server({"--http", "127.0.0.1:0", "--max-streams", "1", "--threads", "1", "--metrics-listen",
                        "127.0.0.1:" + std::to_string(metrics_port)});
  ASSERT_TRUE(server.ok());
  const std::string http = server.HttpAddress();
  auto channel = server.Channel();
  // A gRPC stream holds the only slot until its deadline.
  std::promise<void> started;
  StreamOptions hold;
  hold.half_close = false;
  hold.deadline_ms = 1500;
  hold.on_started = [&] { started.set_value(); };
  auto grpc_stream = std::async(std::launch::async, [&] {
    return RunStream(channel.get(), Pcm16Bytes(std::vector<float>(9600, 0.0f)), hold);
  });
  started.get_future().wait();
  {
    WsClient refused(http, "/api/asr-streaming");
    ASSERT_TRUE(refused.connected);
    auto error = refused.Read();
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(Unpack(error->data)->Str("message"), "no free channels");
  }
  EXPECT_EQ(grpc_stream.get().status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // Now a WebSocket connection takes the slot (once the server has seen the gRPC stream go) ...
  std::unique_ptr<WsClient> holder;
  for (int attempt = 0; attempt < 50 && holder == nullptr; ++attempt) {
    auto c = std::make_unique<WsClient>(http, "/api/asr-streaming");
    auto first = c->Read();
    if (first.has_value() && Unpack(first->data)->type() == "Ready") {
      holder = std::move(c);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ASSERT_NE(holder, nullptr);
  EXPECT_TRUE(WaitForMetric(metrics_port, "monologue_streams_open", 1));
  // ... and a gRPC stream is refused.
  StreamResult refused = RunStream(channel.get(), Pcm16Bytes(std::vector<float>(9600, 0.0f)));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.status.error_message();
  holder->Close();
  EXPECT_TRUE(WaitForMetric(metrics_port, "monologue_streams_open", 0));
  const std::string metrics = HttpGet(metrics_port, "/metrics");
  EXPECT_EQ(MetricValue(metrics, "monologue_streams_started_total"), 2) << metrics;
  EXPECT_GE(MetricValue(metrics, "monologue_stream_refusals_total{reason=\"no_free_slot\"}"), 2) << metrics;
}

// A client that sends but never reads: its output backs up, the server stops reading it, and the connection
// is dropped once it has been unresponsive for --idle-timeout; its slot is then free for the next one.
TEST(WsAsrLimitsTest, AClientThatNeverReadsIsDroppedAndItsSlotFreed) {
  ServerProcess server({"--http", "127.0.0.1:0", "--max-streams", "1", "--threads", "1", "--idle-timeout", "2",
                        "--max-pending-responses", "40"});
  ASSERT_TRUE(server.ok());
  const std::string http = server.HttpAddress();
  auto slow = std::make_unique<WsClient>(http, "/api/asr-streaming");
  ASSERT_TRUE(slow->connected);
  std::thread writer([&] {
    const std::vector<float> chunk(1920, 0.01f);
    for (int i = 0; i < 5000; ++i) {
      if (!slow->Send(AudioMessage(chunk.data(), chunk.size()))) return;
    }
  });
  bool ready = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!ready && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    WsClient c(http, "/api/asr-streaming");
    ASSERT_TRUE(c.connected);
    auto first = c.Read();
    ready = first.has_value() && Unpack(first->data)->type() == "Ready";
  }
  EXPECT_TRUE(ready) << "the slot of a client that never reads was not freed";
  slow->Drop();
  writer.join();
}

// SIGTERM: new upgrades get 503 at once; a live connection that outlives the drain period gets the protocol's
// Error and the close 1001 (going away); the server exits 0.
TEST(WsAsrLimitsTest, SigtermRefusesNewConnectionsAndCutsLiveOnesAtTheDeadline) {
  ServerProcess server({"--http", "127.0.0.1:0", "--threads", "1", "--drain-seconds", "1"});
  ASSERT_TRUE(server.ok());
  const std::string http = server.HttpAddress();
  WsClient live(http, "/api/asr-streaming");
  ASSERT_TRUE(live.connected);
  ASSERT_TRUE(live.Read().has_value());  // Ready
  server.Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(UpgradeStatus(http, "/api/asr-streaming"), 503);
  std::string error;
  while (auto m = live.Read()) {
    auto msg = Unpack(m->data);
    if (msg.has_value() && msg->type() == "Error") error = msg->Str("message");
  }
  EXPECT_NE(error.find("shutting down"), std::string::npos) << error;
  EXPECT_TRUE(live.closed);
  EXPECT_EQ(live.close_code, 1001);
  EXPECT_EQ(server.Wait(10), 0);
}

TEST(WsAsrLimitsTest, ApiKeyIsCheckedBeforeTheUpgrade) {
  ServerProcess server({"--http", "127.0.0.1:0", "--api-key", "secret-key", "--threads", "1"});
  ASSERT_TRUE(server.ok());
  const std::string http = server.HttpAddress();
  EXPECT_EQ(UpgradeStatus(http, "/api/asr-streaming"), 401);
  EXPECT_EQ(UpgradeStatus(http, "/api/asr-streaming", {{"kyutai-api-key", "public_token"}}), 401);
  EXPECT_EQ(UpgradeStatus(http, "/api/asr-streaming?auth_id=wrong"), 401);
  // The header wins over the query parameter, as in the Rust server.
  EXPECT_EQ(UpgradeStatus(http, "/api/asr-streaming?auth_id=secret-key", {{"kyutai-api-key", "wrong"}}), 401);
  WsClient header(http, "/api/asr-streaming", {{"kyutai-api-key", "secret-key"}});
  EXPECT_TRUE(header.connected);
  WsClient query(http, "/api/asr-streaming?auth_id=secret-key");
  EXPECT_TRUE(query.connected);
  auto ready = query.Read();
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(Unpack(ready->data)->type(), "Ready");
}

}  // namespace
}  // namespace monologue::service_test

namespace monologue::service_test {
namespace {

// Found by a bad-input audit (2026-12-03): with --web-root, GET //etc/shadow returned the file (the path
// after its first '/' was absolute and replaced the root when joined). Any path must stay under the root.
TEST(WebRootTest, PathsOutsideTheRootAreNotServed) {
  const char* tmp = std::getenv("MONOLOGUE_TEST_TMP");
  const std::filesystem::path root = std::filesystem::path(tmp != nullptr ? tmp : ".") / "web_root_test";
  std::filesystem::create_directories(root);
  std::ofstream(root / "index.html") << "<p>the page</p>";
  ServerProcess server({"--http", "127.0.0.1:0", "--web-root", root.string(), "--threads", "1"});
  ASSERT_TRUE(server.ok());
  const std::string http = server.HttpAddress();
  const int port = std::stoi(http.substr(http.rfind(':') + 1));
  EXPECT_NE(HttpGet(port, "/").find("<p>the page</p>"), std::string::npos);
  for (const std::string& path : {std::string("//etc/passwd"), std::string("///etc/passwd"),
                                  "/" + root.string() + "/index.html", std::string("/../../etc/passwd"),
                                  std::string("/a/../../../etc/passwd"), std::string("/%2e%2e/etc/passwd")}) {
    const std::string response = HttpGet(port, path);
    EXPECT_NE(response.find(" 404 "), std::string::npos) << path << ": " << response.substr(0, 200);
    EXPECT_EQ(response.find("root:"), std::string::npos) << path;
  }
}

}  // namespace
}  // namespace monologue::service_test
