// `monologue serve --http`: /api/tts_streaming speaks the Rust moshi-server's TTS protocol as DSM's
// tts_rust_server.py does (voice/format query parameters, one Text message per word, Eos; Ready, Audio, Text
// with start_s/stop_s, the close) and gives the reference TTS fixture's audio and words, as the gRPC Synthesis
// service does; the raw formats carry the same audio; a bad voice or format and a full server get Error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <thread>

#include "nlohmann/json.hpp"
#include "service/http/ogg_opus_stream.h"
#include "service_test_util.h"
#include "tests/service/tts_reference.h"
#include "ws_test_client.h"

namespace monologue::service_test {
namespace {

const std::string kTtsData = TtsData();
using test_process::RunMonologue;
using test_process::RunResult;
using test_process::ShellQuote;

struct TtsRun {
  std::vector<std::string> types;
  std::vector<float> pcm;
  std::string raw;  // raw formats: every binary message
  std::vector<Word> words;
  std::string error;
  bool closed = false;
  int close_code = 0;
};

// Sends the words of `script` (one Text message per word, as the DSM script) and Eos; reads to the close.
TtsRun RunTts(WsClient& client, const std::vector<std::string>& script, bool msgpack_format, bool frames = false) {
  TtsRun run;
  std::thread writer([&] {
    for (const std::string& turn : script) {
      std::istringstream words(turn);
      std::string w;
      while (words >> w) {
        // The WebSocket text frame is Text too: the raw-format runs use it.
        if (!(frames ? client.Send(w, /*binary=*/false) : client.Send(TaggedStr("Text", "text", w)))) return;
      }
    }
    frames ? client.Send(std::string("\0", 1)) : client.Send(TaggedOnly("Eos"));
  });
  while (auto m = client.Read()) {
    if (!msgpack_format) {
      run.raw += m->data;
      continue;
    }
    auto msg = Unpack(m->data);
    if (!msg.has_value()) break;
    run.types.push_back(msg->type());
    if (msg->type() == "Audio") {
      const msgpack::object& pcm = msg->fields.at("pcm");
      for (uint32_t i = 0; i < pcm.via.array.size; ++i) {
        EXPECT_EQ(pcm.via.array.ptr[i].type, msgpack::type::FLOAT32);
        run.pcm.push_back(pcm.via.array.ptr[i].as<float>());
      }
    } else if (msg->type() == "Text") {
      EXPECT_EQ(msg->Type("start_s"), msgpack::type::FLOAT64);
      run.words.push_back({msg->Str("text"), msg->F64("start_s"), msg->F64("stop_s")});
    } else if (msg->type() == "Error") {
      run.error = msg->Str("message");
    }
  }
  writer.join();
  run.closed = client.closed;
  run.close_code = client.close_code;
  return run;
}

class WsTtsTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({"--tts", kTtsData + "tiny-tts", "--voices", kTtsData + "voices", "--default-voice",
                                 "alice", "--tts-temp", "0", "--max-tts-streams", "2", "--threads", "1", "--http",
                                 "127.0.0.1:0"},
                                /*with_stt=*/false);
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
ServerProcess* WsTtsTest::server_ = nullptr;
std::string WsTtsTest::http_;

TEST_F(WsTtsTest, PcmMessagePackGivesTheReferenceAudioAndWords) {
  const TtsReference single = LoadTtsReference("single_greedy");
  WsClient client(http_, "/api/tts_streaming?voice=alice&format=PcmMessagePack");
  ASSERT_TRUE(client.connected);
  const TtsRun run = RunTts(client, single.script, true);
  EXPECT_TRUE(run.error.empty()) << run.error;
  ASSERT_FALSE(run.types.empty());
  EXPECT_EQ(run.types.front(), "Ready");
  EXPECT_TRUE(run.closed);  // the server closes after the last audio
  EXPECT_EQ(run.close_code, 1000);
  ASSERT_EQ(static_cast<int64_t>(run.pcm.size()), single.frames * 1920);
  EXPECT_LT(RelativeL2(run.pcm, single.pcm), 1e-4);
  EXPECT_EQ(run.words, single.words);
}

TEST_F(WsTtsTest, RawFormatsCarryTheSameAudio) {
  const TtsReference single = LoadTtsReference("single_greedy");
  // Pcm: f32 little-endian bytes only (no Ready, no words); text frames as Text, "\0" as Eos.
  WsClient pcm_client(http_, "/api/tts_streaming?voice=alice&format=Pcm");
  ASSERT_TRUE(pcm_client.connected);
  const TtsRun pcm = RunTts(pcm_client, single.script, false, /*frames=*/true);
  ASSERT_EQ(static_cast<int64_t>(pcm.raw.size()), single.frames * 1920 * 4);
  std::vector<float> samples(pcm.raw.size() / 4);
  std::memcpy(samples.data(), pcm.raw.data(), pcm.raw.size());
  EXPECT_LT(RelativeL2(samples, single.pcm), 1e-4);
  // OggOpus (the Rust server's default format): an Ogg/Opus stream of the same audio (lossy).
  WsClient ogg_client(http_, "/api/tts_streaming?voice=alice");
  ASSERT_TRUE(ogg_client.connected);
  const TtsRun ogg = RunTts(ogg_client, single.script, false);
  ASSERT_GT(ogg.raw.size(), 4u);
  EXPECT_EQ(ogg.raw.substr(0, 4), "OggS");
  auto decoder = OggOpusStreamDecoder::Create();
  ASSERT_TRUE(decoder.ok());
  auto decoded = (*decoder)->Decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ogg.raw.data()), ogg.raw.size()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_NEAR(static_cast<double>(decoded->size()), static_cast<double>(single.frames * 1920), 2 * 1920);
}

TEST_F(WsTtsTest, BadVoiceOrFormatGetsError) {
  for (const std::string& target : {std::string("/api/tts_streaming?voice=nobody&format=PcmMessagePack"),
                                    std::string("/api/tts_streaming?voice=../alice&format=PcmMessagePack"),
                                    std::string("/api/tts_streaming?format=Wav")}) {
    WsClient client(http_, target);
    ASSERT_TRUE(client.connected);
    auto m = client.Read();
    ASSERT_TRUE(m.has_value()) << target;
    auto msg = Unpack(m->data);
    ASSERT_TRUE(msg.has_value());
    EXPECT_EQ(msg->type(), "Error") << target;
    EXPECT_FALSE(msg->Str("message").empty());
    EXPECT_FALSE(client.Read().has_value());
    EXPECT_TRUE(client.closed);
  }
}

TEST(WsTtsLimitsTest, FullServerGetsError) {
  ServerProcess server({"--tts", kTtsData + "tiny-tts", "--voices", kTtsData + "voices", "--default-voice", "alice",
                        "--max-tts-streams", "1", "--threads", "1", "--http", "127.0.0.1:0"},
                       /*with_stt=*/false);
  ASSERT_TRUE(server.ok());
  const std::string http = server.HttpAddress();
  ASSERT_FALSE(http.empty());
  WsClient a(http, "/api/tts_streaming?format=PcmMessagePack");
  ASSERT_TRUE(a.connected);
  auto ready = a.Read();
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(Unpack(ready->data)->type(), "Ready");
  WsClient b(http, "/api/tts_streaming?format=PcmMessagePack");
  ASSERT_TRUE(b.connected);
  auto error = b.Read();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(Unpack(error->data)->type(), "Error");
  EXPECT_EQ(Unpack(error->data)->Str("message"), "no free channels");
  EXPECT_FALSE(b.Read().has_value());
}

bool ValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

// Found by probing the server with bad input (2026-12-03): bad query parameters close with 1008 (1013, "try
// again later", only for a full server), a seed must fit 64 bits exactly, a close reason stays valid UTF-8, a
// client that sends nothing for --idle-timeout loses its slot, an oversized request gets 431, a MessagePack
// header claiming 4e9 entries is named (it was std::bad_alloc). A parameter given twice is refused.
TEST(WsTtsLimitsTest, BadParametersQuietClientsAndOversizedRequestsAreRefusedSayingWhy) {
  ServerProcess server(
      {"--tts", kTtsData + "tiny-tts", "--voices", kTtsData + "voices", "--default-voice", "alice",
       "--max-tts-streams", "1", "--threads", "1", "--idle-timeout", "1", "--http", "127.0.0.1:0"},
      /*with_stt=*/false);
  ASSERT_TRUE(server.ok());
  const std::string http = server.HttpAddress();
  ASSERT_FALSE(http.empty());
  const std::string base = "/api/tts_streaming?format=PcmMessagePack&";
  std::string e_acute;
  for (int i = 0; i < 60; ++i) e_acute += "%C3%A9";
  for (const auto& [query, expected] : std::vector<std::pair<std::string, std::string>>{
           {"seed=18446744073709551616", "seed=18446744073709551616: expected a whole number"},
           {"seed=1.5", "seed=1.5: expected a whole number"},
           {"seed=-1", "seed=-1: expected"},
           {"temperature=inf", "temperature=inf: expected a number from 0 to"},
           {"temperature=nan", "temperature=nan: expected"},
           {"voice=a" + e_acute, "not found"},
           // Which of two values was meant cannot be known (it used to be the last, silently).
           {"voice=alice&voice=bob", "query parameter voice is given more than once"},
           {"temperature=0.5&temp%65rature=0.5", "query parameter temperature is given more than once"}}) {
    WsClient client(http, base + query);
    ASSERT_TRUE(client.connected) << query;
    auto error = client.Read();
    ASSERT_TRUE(error.has_value()) << query;
    EXPECT_EQ(Unpack(error->data)->type(), "Error") << query;
    EXPECT_NE(Unpack(error->data)->Str("message").find(expected), std::string::npos)
        << query << ": " << Unpack(error->data)->Str("message");
    EXPECT_FALSE(client.Read().has_value());
    EXPECT_EQ(client.close_code, 1008) << query;
    EXPECT_TRUE(ValidUtf8(client.close_reason)) << query << ": " << client.close_reason;
  }
  {
    WsClient largest_seed(http, base + "seed=18446744073709551615");
    ASSERT_TRUE(largest_seed.connected);
    auto ready = largest_seed.Read();
    ASSERT_TRUE(ready.has_value());
    EXPECT_EQ(Unpack(ready->data)->type(), "Ready");
  }
  // The only slot, once the client before has let go of it (its close reaches the server a moment later).
  auto connect_ready = [&]() -> std::unique_ptr<WsClient> {
    for (int attempt = 0; attempt < 40; ++attempt) {
      auto client = std::make_unique<WsClient>(http, base + "voice=alice");
      auto first = client->Read();
      if (first.has_value() && Unpack(first->data)->type() == "Ready") return client;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return nullptr;
  };
  {
    // A map whose "text" claims 2^32 - 1 array entries in a 22-byte message.
    std::unique_ptr<WsClient> c = connect_ready();
    ASSERT_NE(c, nullptr);
    WsClient& client = *c;
    ASSERT_TRUE(client.Send(std::string("\x82\xa4type\xa4Text\xa4text\xdd\xff\xff\xff\xff", 22)));
    auto error = client.Read();
    ASSERT_TRUE(error.has_value());
    EXPECT_NE(Unpack(error->data)->Str("message").find("longer than the 22-byte message"), std::string::npos)
        << Unpack(error->data)->Str("message");
  }
  {
    // Connected, then silent: the slot goes back after --idle-timeout (1 s).
    std::unique_ptr<WsClient> c = connect_ready();
    ASSERT_NE(c, nullptr);
    WsClient& quiet = *c;
    auto error = quiet.Read();
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(Unpack(error->data)->Str("message"), "no message for 1 s: keep sending, or end the stream");
    EXPECT_FALSE(quiet.Read().has_value());
    EXPECT_TRUE(quiet.closed);
  }
  EXPECT_NE(connect_ready(), nullptr);
  EXPECT_EQ(UpgradeStatus(http, "/api/tts_streaming?voice=" + std::string(9000, 'a')), 431);
}

// A stream stopped at `--tts-max-steps` with text left keeps what it produced and says so: the WebSocket
// sends the audio (the reference's first frames) and words, then an Error naming the limit; the gRPC end
// carries `truncated`, which `monologue synthesize --server` reports with exit status 1, keeping the audio.
TEST(WsTtsLimitsTest, AStreamStoppedAtTheStepLimitKeepsItsAudioAndSaysSo) {
  const TtsReference ref = LoadTtsReference("single_greedy");
  constexpr int kMaxSteps = 30;  // the audio starts after 16 (1.28 s), the text ends at step 67
  ServerProcess server({"--tts", kTtsData + "tiny-tts", "--voices", kTtsData + "voices", "--default-voice",
                        "alice", "--tts-temp", "0", "--max-tts-streams", "1", "--threads", "1",
                        "--tts-max-steps", std::to_string(kMaxSteps), "--http", "127.0.0.1:0"},
                       /*with_stt=*/false);
  ASSERT_TRUE(server.ok());
  const std::string http = server.HttpAddress();
  ASSERT_FALSE(http.empty());
  WsClient client(http, "/api/tts_streaming?voice=alice&format=PcmMessagePack");
  ASSERT_TRUE(client.connected);
  const TtsRun run = RunTts(client, ref.script, /*msgpack_format=*/true);
  ASSERT_FALSE(run.types.empty());
  EXPECT_EQ(run.types.back(), "Error");
  EXPECT_NE(run.error.find("30-step limit"), std::string::npos) << run.error;
  EXPECT_NE(run.error.find("text left unspoken"), std::string::npos) << run.error;
  EXPECT_TRUE(run.closed);
  // Every frame the 30 steps decoded came, equal to the reference's start.
  ASSERT_GT(run.pcm.size(), 0u);
  ASSERT_EQ(run.pcm.size() % 1920, 0u);
  EXPECT_LT(static_cast<int64_t>(run.pcm.size()), ref.frames * 1920);
  const size_t compared = std::min(run.pcm.size(), ref.pcm.size());
  EXPECT_LT(RelativeL2(
                std::vector<float>(run.pcm.begin(), run.pcm.begin() + static_cast<std::ptrdiff_t>(compared)),
                std::vector<float>(ref.pcm.begin(), ref.pcm.begin() + static_cast<std::ptrdiff_t>(compared))),
            1e-4);

  const std::filesystem::path raw = ScratchDir() / "truncated.raw";
  const RunResult cli =
      RunMonologue("synthesize " + ShellQuote(ref.script[0]) + " --server " + server.address() +
                   " --voice alice --temp 0 -o " + raw.string() + " --format f32le");
  EXPECT_EQ(cli.exit_code, 1) << cli.err;
  EXPECT_NE(cli.err.find("the server stopped at its step limit (30 steps"), std::string::npos) << cli.err;
  EXPECT_EQ(ReadFileBytes(raw.string()).size(), run.pcm.size() * sizeof(float));
}

}  // namespace
}  // namespace monologue::service_test
